"""The errors of the guard, all raised before anything is sent unless said otherwise.

::

    StreamrunError
    ├── BudgetExceededError        a launch would pass max_running or the spend left
    ├── LeaseStoreError            the lease store cannot be read or written; .path
    │   ├── LeaseStorePathError    (also InvalidArgumentError) the store cannot be created
    │   └── LeaseStoreCorruptError the store's file is not a lease store
    ├── LeaseNotFoundError         (also KeyError) no lease of this owner by that name or id
    ├── UnknownOwnerError          (also InvalidArgumentError) the store never saw that owner
    └── StopNotConfirmedError      a stop was answered but the instance is still listed
"""

from __future__ import annotations

from collections.abc import Sequence

from .._exceptions import InvalidArgumentError, StreamrunError

__all__ = [
    "BudgetExceededError",
    "LeaseNotFoundError",
    "LeaseStoreCorruptError",
    "LeaseStoreError",
    "LeaseStorePathError",
    "StopNotConfirmedError",
    "UnknownOwnerError",
]


class BudgetExceededError(StreamrunError):
    """A launch was refused, before any POST, because it would break the budget.

    ``limit`` names the limit (``"max_running"`` or ``"max_spend"``); ``current`` and
    ``requested`` are in that limit's unit (instances, or money).
    """

    def __init__(self, message: str, *, limit: str, current: float, requested: float) -> None:
        super().__init__(message)
        self.limit = limit
        self.current = current
        self.requested = requested


class LeaseStoreError(StreamrunError):
    """The lease store could not be read or written; ``path`` names it (file or URL)."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class LeaseStorePathError(LeaseStoreError, InvalidArgumentError):
    """The store's file or directory cannot be created."""


class LeaseStoreCorruptError(LeaseStoreError):
    """The store's file exists but is not a lease store (or is damaged)."""


class LeaseNotFoundError(StreamrunError, KeyError):
    """No lease of this owner has that instance name, instance id or lease id."""

    def __str__(self) -> str:
        # KeyError quotes its argument; this message reads better plain.
        return str(self.args[0]) if self.args else ""


class UnknownOwnerError(InvalidArgumentError):
    """The lease store has never seen that owner (a typo would otherwise reap nothing)."""


class StopNotConfirmedError(StreamrunError):
    """Instances were asked to stop but a list made afterwards still shows them.

    ``instance_ids``: those still listed. The reaper retries them on its next round.
    """

    def __init__(self, message: str, *, instance_ids: Sequence[str]) -> None:
        super().__init__(message)
        self.instance_ids = tuple(instance_ids)
