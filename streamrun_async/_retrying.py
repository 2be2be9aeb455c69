"""The retries of one call, composed of tenacity's own strategies.

Imported only once a call's first attempt failed with an error worth retrying: the happy
path never loads tenacity. Needs tenacity >= 8.3, where the wait is computed before the
stop strategies run (``RetryCallState.upcoming_sleep``, ``stop_before_delay``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import tenacity as _t
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from ._events import RetryScheduled, route_of_path
from ._exceptions import APIError, APIStatusError
from ._retry import RetryPolicy, is_retryable, retry_after

if TYPE_CHECKING:
    from ._events import Emitter

__all__ = ["retry_call"]

_T = TypeVar("_T")
_log = logging.getLogger("streamrun_async")


def _error(state: _t.RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome is not None else None


class WaitBackoffOrRetryAfter(wait_base):
    """The policy's jittered backoff after attempt n, or the server's Retry-After if longer."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def __call__(self, retry_state: _t.RetryCallState) -> float:
        asked = retry_after(_error(retry_state))
        return max(asked or 0.0, self.policy.backoff(retry_state.attempt_number))


class StopIfRetryAfterAbove(stop_base):
    """Stop when the server asks for a wait longer than ``cap`` seconds."""

    def __init__(self, cap: float) -> None:
        self.cap = cap

    def __call__(self, retry_state: _t.RetryCallState) -> bool:
        asked = retry_after(_error(retry_state))
        return asked is not None and asked > self.cap


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def _test_sleep(_seconds: float) -> None:
    # Test mode: the wait is computed, reported and checked against the budget, not slept;
    # yielding once still lets other tasks run, as a real sleep would.
    await asyncio.sleep(0)


def _fields(error: BaseException) -> dict[str, Any]:
    return {
        "error": type(error).__name__,
        "status": error.status if isinstance(error, APIStatusError) else None,
        "retry_after": retry_after(error),
    }


class _Call:
    """What one call's retries need to know, log and report."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        method: str,
        url: str,
        route: str,
        idempotent: bool,
        deadline: float,
        events: Emitter | None,
        call_id: int,
    ) -> None:
        self.policy = policy
        self.method = method
        self.url = url
        self.route = route or route_of_path(url)
        self.idempotent = idempotent
        self.deadline = deadline
        self.events = events
        self.call_id = call_id
        self.attempts = 1
        self.last_error: APIError | None = None

    def retryable(self, error: BaseException) -> bool:
        return isinstance(error, APIError) and is_retryable(error, idempotent=self.idempotent)

    def before_sleep(self, state: _t.RetryCallState) -> None:
        error = _error(state)
        assert isinstance(error, APIError)  # the retry predicate let only these through
        self.last_error = error
        event = RetryScheduled(
            attempt=state.attempt_number,
            wait=state.upcoming_sleep,
            cause=error,
            method=self.method,
            url=self.url,
            route=self.route,
            call_id=self.call_id,
        )
        _log.info(
            "retrying %s %s in %.2fs: attempt %d failed (%s: %s)",
            self.method,
            self.url,
            event.wait,
            event.attempt,
            type(error).__name__,
            error,
            extra={
                "streamrun": {
                    "event": "retry",
                    "method": self.method,
                    "route": self.route,
                    "url": self.url,
                    "attempt": event.attempt,
                    "wait": event.wait,
                    **_fields(error),
                }
            },
        )
        if self.policy.on_retry is not None:
            self.policy.on_retry(event)
        if self.events:
            self.events.emit(event)

    def why_stopped(self, error: APIError) -> str:
        """Why the stop strategies ended the retries: the most specific reason that holds."""
        asked = retry_after(error)
        if asked is not None and asked > self.policy.max_retry_after:
            return f"Retry-After {asked:.1f}s exceeds the cap of {self.policy.max_retry_after:.1f}s"
        if self.attempts >= self.policy.attempts:
            return f"{self.attempts} attempts made"
        return f"the retry budget of {self.policy.timeout:.1f}s leaves no room for another"

    def gave_up(self, error: APIError) -> None:
        reason = self.why_stopped(error)
        error.add_note(f"streamrun_async gave up retrying: {reason}")
        _log.warning(
            "giving up on %s %s after %d attempts: %s; last error %s: %s",
            self.method,
            self.url,
            self.attempts,
            reason,
            type(error).__name__,
            error,
            extra={
                "streamrun": {
                    "event": "give_up",
                    "method": self.method,
                    "route": self.route,
                    "url": self.url,
                    "attempts": self.attempts,
                    "reason": reason,
                    "outcome_unknown": error.outcome_unknown,
                    **_fields(error),
                }
            },
        )


async def retry_call(
    policy: RetryPolicy,
    attempt: Callable[[float], Awaitable[_T]],
    first_error: APIError,
    *,
    deadline: float,
    method: str,
    url: str,
    route: str,
    idempotent: bool,
    attempt_timeout: float,
    events: Emitter | None,
    call_id: int,
) -> _T:
    """Retry a call whose first attempt failed with ``first_error``, which is retryable."""
    call = _Call(
        policy,
        method=method,
        url=url,
        route=route,
        idempotent=idempotent,
        deadline=deadline,
        events=events,
        call_id=call_id,
    )
    pending: APIError | None = first_error

    async def next_attempt() -> _T:
        nonlocal pending
        if pending is not None:
            # Attempt 1 ran before tenacity was loaded: hand tenacity its outcome, so that
            # tenacity decides the first wait and counts attempts as we do.
            error, pending = pending, None
            raise error
        left = call.deadline - time.monotonic()
        if left <= 0 and call.last_error is not None:
            # The wait overran the budget: nothing is sent, and the error that caused the
            # wait (for a POST, one that proves the server did not act) stands.
            raise call.last_error
        call.attempts += 1
        return await attempt(min(attempt_timeout, left))

    retrying = _t.AsyncRetrying(
        retry=_t.retry_if_exception(call.retryable),
        wait=WaitBackoffOrRetryAfter(policy),
        stop=_t.stop_any(
            _t.stop_after_attempt(policy.attempts),
            # The budget counts from the first attempt, which ran before tenacity started.
            _t.stop_before_delay(max(0.0, deadline - time.monotonic())),
            StopIfRetryAfterAbove(policy.max_retry_after),
        ),
        sleep=_test_sleep if policy.testing else _sleep,
        before_sleep=call.before_sleep,
        reraise=True,
    )
    try:
        return await retrying(next_attempt)
    except APIError as error:
        if call.retryable(error):
            call.gave_up(error)
        raise
