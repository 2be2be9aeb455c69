"""The retry policy: which failures are retried, how often and how long to wait.

Only this module imports tenacity, and only once an attempt has failed: the happy path
builds no retry machinery at all.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import attrs

from ._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    InvalidArgumentError,
)

__all__ = ["RetryEvent", "RetryPolicy"]

_T = TypeVar("_T")
_log = logging.getLogger("streamrun_async")

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


@attrs.frozen
class RetryEvent:
    """What a retry hook receives: the failed attempt, the wait before the next, the cause."""

    attempt: int
    wait: float
    cause: APIError
    method: str
    url: str


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
    - ``on_retry``: called with a :class:`RetryEvent` before each wait.
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
    """Whether ``error`` may be retried for a method of this idempotency."""
    if isinstance(error, APIConnectionError):
        return idempotent or not error.outcome_unknown
    if isinstance(error, APIStatusError):
        statuses = _IDEMPOTENT_RETRY_STATUSES if idempotent else _NOT_ACTED_STATUSES
        return error.status in statuses
    return False


class _RetryCall:
    """The retry bookkeeping of one call, built only after its first attempt failed."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        method: str,
        url: str,
        idempotent: bool,
        deadline: float,
        first_error: APIError,
    ) -> None:
        self.policy = policy
        self.method = method
        self.url = url
        self.idempotent = idempotent
        self.deadline = deadline
        self.pending: APIError | None = first_error
        self.next_wait = 0.0

    def plan(self, error: BaseException | None, attempt: int) -> bool:
        """Decide whether to stop after ``attempt`` failed with ``error``; set the wait."""
        if not isinstance(error, APIError) or not is_retryable(error, idempotent=self.idempotent):
            return True
        if attempt >= self.policy.attempts:
            return True
        retry_after = error.retry_after if isinstance(error, APIStatusError) else None
        if retry_after is not None and retry_after > self.policy.max_retry_after:
            _log.debug(
                "not retrying %s %s: Retry-After %.1fs exceeds the cap of %.1fs",
                self.method,
                self.url,
                retry_after,
                self.policy.max_retry_after,
            )
            return True
        wait = max(retry_after or 0.0, self.policy.backoff(attempt))
        if time.monotonic() + wait >= self.deadline:
            return True
        self.next_wait = wait
        return False


async def call_with_retries(
    policy: RetryPolicy,
    attempt: Callable[[float], Awaitable[_T]],
    *,
    method: str,
    url: str,
    idempotent: bool,
    attempt_timeout: float,
) -> _T:
    """Run ``attempt(timeout)`` until it succeeds or the policy says stop.

    ``attempt`` raises :class:`APIError` subclasses; the last one is raised when retries
    end. Each attempt gets the smaller of ``attempt_timeout`` and the budget left.
    """
    deadline = time.monotonic() + policy.timeout
    try:
        return await attempt(min(attempt_timeout, policy.timeout))
    except APIError as error:
        if policy.attempts == 1 or not is_retryable(error, idempotent=idempotent):
            raise
        first_error = error
    return await _retry(
        _RetryCall(
            policy,
            method=method,
            url=url,
            idempotent=idempotent,
            deadline=deadline,
            first_error=first_error,
        ),
        attempt,
        attempt_timeout,
    )


async def _retry(
    call: _RetryCall, attempt: Callable[[float], Awaitable[_T]], attempt_timeout: float
) -> _T:
    import tenacity as _tenacity

    policy = call.policy

    async def next_attempt() -> _T:
        # tenacity's first attempt replays the failure that brought us here, so its
        # attempt numbers match ours and its first wait comes before our second request.
        if call.pending is not None:
            error, call.pending = call.pending, None
            raise error
        left = call.deadline - time.monotonic()
        if left <= 0:
            raise APITimeoutError(
                f"{call.method} {call.url}: the retry budget of {policy.timeout:.1f}s ran out",
                method=call.method,
                url=call.url,
                outcome_unknown=not call.idempotent,
            )
        return await attempt(min(attempt_timeout, left))

    def stop(state: _tenacity.RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome is not None else None
        return call.plan(error, state.attempt_number)

    def before_sleep(state: _tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        assert isinstance(error, APIError)
        event = RetryEvent(
            attempt=state.attempt_number,
            wait=call.next_wait,
            cause=error,
            method=call.method,
            url=call.url,
        )
        _log.debug(
            "retrying %s %s after attempt %d failed (%s: %s); waiting %.2fs",
            call.method,
            call.url,
            event.attempt,
            type(error).__name__,
            error,
            event.wait,
        )
        if policy.on_retry is not None:
            policy.on_retry(event)

    async def sleep(_seconds: float) -> None:
        # tenacity computes its wait before calling stop, and plan() (run by stop) sets
        # this retry's wait: tenacity's argument is the previous retry's wait. Sleep ours,
        # the one before_sleep just reported.
        await asyncio.sleep(0 if policy.testing else call.next_wait)

    retrying = _tenacity.AsyncRetrying(
        retry=_tenacity.retry_if_exception_type(APIError),
        stop=stop,
        wait=lambda _state: call.next_wait,
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    return await retrying(next_attempt)
