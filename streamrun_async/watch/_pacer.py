"""The pacer: when the next list call may go, and how many other calls a tick may make.

Pure: told the time, given a random source. Rules, for every call of the poller:

- list calls come at least ``min_interval`` apart, whoever asks (a new waiter included);
- between lists the interval grows by ``growth`` (jitter of +-10%) up to ``max_interval``
  while nothing changes, and drops back to ``min_interval`` after a change, or while
  fetches the budget could not send are waiting;
- all calls draw on one token bucket: ``requests_per_second``, holding at most one
  ``min_interval``'s worth (and at least one call);
- a ``Retry-After`` (or a 429 without one, for the current interval doubled) holds back
  every call until it has passed; another failure doubles the interval.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from .._exceptions import APIStatusError, EventLoopError, RateLimitError, StreamrunError
from ._policy import PollPolicy

__all__ = ["Pacer", "is_permanent"]

_PERMANENT = frozenset({401, 403})


def is_permanent(error: StreamrunError, *, listing: bool) -> bool:
    """An error no later poll can cure: 401, 403, and a 4xx other than 408/429 (a 404
    of a list means the list itself is gone; a request's 404 is judged apart)."""
    if isinstance(error, EventLoopError):
        return True  # the client is busy in another running loop: no poll from here can work
    if not isinstance(error, APIStatusError):
        return False
    if error.status in _PERMANENT:
        return True
    if error.status == 404 and not listing:
        return False
    return 400 <= error.status < 500 and error.status not in (408, 429)


class Pacer:
    """Intervals, the shared budget, back-off and the failure streak."""

    def __init__(self, policy: PollPolicy, rng: Callable[[], float] = random.random) -> None:
        self.policy = policy
        self._rng = rng
        self.interval = policy.min_interval
        self.capacity = max(1.0, policy.requests_per_second * policy.min_interval)
        self._tokens = self.capacity
        self._tokens_at = -math.inf
        self.last_list: float | None = None
        self.blocked_until = -math.inf
        self.urgent = False
        self.failing_since: float | None = None
        self.last_error: StreamrunError | None = None

    # -- the budget ----------------------------------------------------------------

    def tokens(self, now: float) -> float:
        """Calls the budget holds at ``now``."""
        if self._tokens_at == -math.inf:
            return self._tokens
        refill = (now - self._tokens_at) * self.policy.requests_per_second
        return min(self.capacity, self._tokens + max(0.0, refill))

    def _spend(self, now: float, calls: float) -> None:
        self._tokens = self.tokens(now) - calls
        self._tokens_at = now

    def next_list_at(self) -> float:
        """The earliest time the next list call may be sent."""
        at = -math.inf
        if self.last_list is not None:
            at = self.last_list + (self.policy.min_interval if self.urgent else self.interval)
        short = 1.0 - self._tokens
        if short > 0 and self._tokens_at != -math.inf:
            at = max(at, self._tokens_at + short / self.policy.requests_per_second)
        return max(at, self.blocked_until)

    def listing(self, now: float, calls: int = 1) -> None:
        """A tick's list call(s) go now."""
        self._spend(now, calls)
        self.last_list = now
        self.urgent = False

    def grant(self, now: float, wanted: int) -> int:
        """How many of ``wanted`` other calls may go now (each spends one token)."""
        if now < self.blocked_until or wanted <= 0:
            return 0
        granted = min(wanted, max(0, math.floor(self.tokens(now))))
        self._spend(now, granted)
        return granted

    # -- outcomes ------------------------------------------------------------------

    def after_tick(self, *, changed: bool, backlog: bool) -> None:
        """A successful tick: snap back after a change or with work left, else grow."""
        self.failing_since = None
        self.last_error = None
        policy = self.policy
        if changed or backlog:
            self.interval = policy.min_interval
        else:
            jitter = 0.9 + 0.2 * self._rng()
            self.interval = min(policy.max_interval, self.interval * policy.growth * jitter)

    def failed(self, now: float, error: StreamrunError, *, listing: bool) -> None:
        """A call failed: hold back for ``Retry-After``, or back off."""
        if listing:
            self.last_error = error
            if self.failing_since is None:
                self.failing_since = now
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            self.blocked_until = max(self.blocked_until, now + retry_after)
        elif isinstance(error, RateLimitError):
            self.interval = min(self.policy.max_interval, self.interval * 2)
            self.blocked_until = max(self.blocked_until, now + self.interval)
        elif listing:
            self.interval = min(self.policy.max_interval, self.interval * 2)

    def failing(self) -> StreamrunError | None:
        """The last list error while lists are failing, else None."""
        return self.last_error if self.failing_since is not None else None

    def given_up(self, now: float) -> bool:
        """True after ``give_up_after`` seconds of nothing but failed lists."""
        since = self.failing_since
        return since is not None and now - since >= self.policy.give_up_after
