"""What the guard tells the client's hooks: frozen records, like the client's own events.

Errors are events too (a stop that did not take, a lease no instance matches): the
reaper runs in the background, so an exception would reach nobody. Each is also logged
on the ``streamrun_async.guard`` logger, at WARNING for errors.
"""

from __future__ import annotations

import attrs

from ._lease import Lease

__all__ = [
    "BudgetBreached",
    "BudgetWarning",
    "GuardEvent",
    "LeaseEnded",
    "LeaseReaped",
    "LeaseUnmatched",
    "LeaseWriteFailed",
    "ReapFailed",
]


@attrs.frozen(kw_only=True)
class LeaseReaped:
    """The reaper stopped an expired lease's instance, and a later list confirmed it."""

    lease: Lease
    instance_id: str


@attrs.frozen(kw_only=True)
class ReapFailed:
    """A stop failed, or was answered but did not take; the lease is kept and retried.

    ``reason``: ``"stop_failed"`` (the DELETE failed: ``error`` says why) or
    ``"not_confirmed"`` (the instance was still listed after the stop).
    """

    lease: Lease
    instance_id: str
    reason: str
    error: str | None = None


@attrs.frozen(kw_only=True)
class LeaseUnmatched:
    """An expired lease whose instance no list or request identifies; nothing was stopped."""

    lease: Lease


@attrs.frozen(kw_only=True)
class LeaseEnded:
    """A lease's instance was gone (stopped by someone else, or idle-stopped); lease dropped."""

    lease: Lease


@attrs.frozen(kw_only=True)
class LeaseWriteFailed:
    """The launch was sent but recording its request or instance ids failed.

    The leases stay, by name; the reaper still finds the instances in lists.
    """

    leases: tuple[Lease, ...]
    error: str


@attrs.frozen(kw_only=True)
class BudgetWarning:
    """Observed spend reached ``warn_at`` of ``max_spend`` (fires once per guard)."""

    owner: str
    spent: float
    max_spend: float


@attrs.frozen(kw_only=True)
class BudgetBreached:
    """Observed spend reached ``max_spend``; ``stopping``: instance ids stopped, newest first
    (empty with ``on_breach="refuse"``)."""

    owner: str
    spent: float
    max_spend: float
    stopping: tuple[str, ...]


GuardEvent = (
    LeaseReaped
    | ReapFailed
    | LeaseUnmatched
    | LeaseEnded
    | LeaseWriteFailed
    | BudgetWarning
    | BudgetBreached
)
