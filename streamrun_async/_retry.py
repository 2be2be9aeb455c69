"""The retry policy: which failures are retried, how often and how long to wait.

The first attempt of every call runs here, without tenacity; only once it failed with an
error worth retrying is ``_retrying`` (and tenacity with it) imported to run the rest.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar

import attrs

from ._events import RetryScheduled
from ._exceptions import APIConnectionError, APIError, APIStatusError, InvalidArgumentError

if TYPE_CHECKING:
    from ._events import Emitter

__all__ = ["RetryEvent", "RetryPolicy", "call_with_retries", "is_retryable", "retry_after"]

_T = TypeVar("_T")

_IDEMPOTENT_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# A server answering 429 or 503 refused the request before acting on it.
_NOT_ACTED_STATUSES = frozenset({429, 503})


def _seconds(value: float | timedelta) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 0:
        raise InvalidArgumentError(f"durations must not be negative, got {value!r}")
    return seconds


def _positive_attempts(_: object, __: attrs.Attribute[int], value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"attempts must be an int >= 1, got {value!r}")


RetryEvent = RetryScheduled
"""What ``on_retry`` receives: the event hooks get as :class:`RetryScheduled`."""


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How a client retries failed calls.

    ``RetryPolicy(attempts=5, timeout=timedelta(minutes=2))``: at most five attempts within
    two minutes, waits included. Durations are seconds or ``timedelta``.

    - ``attempts``: attempts in all, the first included (1 turns retries off).
    - ``timeout``: the budget for the whole call, attempts and waits together.
    - ``wait_initial`` / ``wait_max``: the jittered exponential backoff's first and
      largest wait.
    - ``max_retry_after``: a ``Retry-After`` longer than this fails the call at once
      instead of sleeping.
    - ``on_retry``: called with a :class:`RetryScheduled` before each wait (the client's
      hooks get the same event).
    - ``testing``: waits are computed and reported but not slept (see :meth:`for_testing`).

    GET, PUT, PATCH and DELETE retry on connection errors, timeouts, 408, 429, 500, 502,
    503 and 504. POST (launch, restart) retries only when the server certainly did not
    act: the connection could not be made, or it answered 429 or 503.
    """

    attempts: int = attrs.field(default=4, validator=_positive_attempts)
    timeout: float = attrs.field(default=120.0, converter=_seconds)
    wait_initial: float = attrs.field(default=0.5, converter=_seconds)
    wait_max: float = attrs.field(default=10.0, converter=_seconds)
    max_retry_after: float = attrs.field(default=60.0, converter=_seconds)
    on_retry: Callable[[RetryEvent], None] | None = attrs.field(default=None, eq=False)
    testing: bool = False

    @classmethod
    def for_testing(
        cls, attempts: int = 4, on_retry: Callable[[RetryEvent], None] | None = None
    ) -> RetryPolicy:
        """A policy that retries as usual but never sleeps: for fast test suites."""
        return cls(attempts=attempts, on_retry=on_retry, testing=True)

    @classmethod
    def disabled(cls) -> RetryPolicy:
        """A policy that never retries."""
        return cls(attempts=1)

    def backoff(self, attempt: int) -> float:
        """The jittered wait after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.wait_max, self.wait_initial * 2.0 ** (attempt - 1))
        # Half fixed, half random: spreads clients apart without collapsing to zero.
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def is_retryable(error: APIError, *, idempotent: bool) -> bool:
    """Whether ``error`` may be retried for a method of this idempotency.

    A POST is retried only when the server certainly did not act on it.
    """
    if isinstance(error, APIConnectionError):
        return idempotent or not error.outcome_unknown
    if isinstance(error, APIStatusError):
        statuses = _IDEMPOTENT_RETRY_STATUSES if idempotent else _NOT_ACTED_STATUSES
        return error.status in statuses
    return False


def retry_after(error: BaseException | None) -> float | None:
    """The server's ``Retry-After`` in seconds, if ``error`` is an answer that gave one."""
    return error.retry_after if isinstance(error, APIStatusError) else None


async def call_with_retries(
    policy: RetryPolicy,
    attempt: Callable[[float], Awaitable[_T]],
    *,
    method: str,
    url: str,
    idempotent: bool,
    attempt_timeout: float,
    route: str = "",
    events: Emitter | None = None,
    call_id: int = 0,
) -> _T:
    """Run ``attempt(timeout)`` until it succeeds or the policy says stop.

    ``attempt`` raises :class:`APIError` subclasses; the last one is raised when retries
    end. Each attempt gets the smaller of ``attempt_timeout`` and the budget left.
    ``route``, ``events`` and ``call_id`` describe the call to logs and hooks.
    """
    started = time.monotonic()
    try:
        return await attempt(min(attempt_timeout, policy.timeout))
    except APIError as error:
        if policy.attempts == 1 or not is_retryable(error, idempotent=idempotent):
            raise
        first_error = error
    from ._retrying import retry_call

    return await retry_call(
        policy,
        attempt,
        first_error,
        deadline=started + policy.timeout,
        method=method,
        url=url,
        route=route,
        idempotent=idempotent,
        attempt_timeout=attempt_timeout,
        events=events,
        call_id=call_id,
    )
