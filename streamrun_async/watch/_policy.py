"""``PollPolicy``: how the shared poller paces itself and how long it trusts silence."""

from __future__ import annotations

import attrs

from .._exceptions import InvalidArgumentError

__all__ = ["PollPolicy"]


def _positive(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise InvalidArgumentError(f"{attribute.name} must be a positive number, got {value!r}")


def _not_negative(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise InvalidArgumentError(f"{attribute.name} must be zero or more, got {value!r}")


@attrs.frozen(kw_only=True)
class PollPolicy:
    """How the shared poller paces itself.

    ``PollPolicy(min_interval=0.5, max_interval=10, requests_per_second=5)``: list calls
    come at least ``min_interval`` apart (a floor, whoever asks), stretch by ``growth``
    (with jitter) up to ``max_interval`` while nothing changes, and every call of the
    poller stays within ``requests_per_second``.

    ``absence_grace``: an instance is "gone" (or "does not exist") only once it was missing
    from at least two consecutive lists spanning that many seconds, so that an eventually
    consistent list cannot fail a wait. ``give_up_after``: waits and watches end with the
    last poll error after that many seconds of nothing but failed polls.
    """

    min_interval: float = attrs.field(default=1.0, validator=_positive)
    max_interval: float = attrs.field(default=10.0, validator=_positive)
    growth: float = attrs.field(default=1.5, validator=_positive)
    requests_per_second: float = attrs.field(default=5.0, validator=_positive)
    absence_grace: float = attrs.field(default=3.0, validator=_not_negative)
    give_up_after: float = attrs.field(default=120.0, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.max_interval < self.min_interval:
            raise InvalidArgumentError(
                f"max_interval ({self.max_interval}) must not be below "
                f"min_interval ({self.min_interval})"
            )
        if self.growth < 1:
            raise InvalidArgumentError(f"growth must be at least 1, got {self.growth}")
