"""Events: what the client does, as small frozen records handed to the client's hooks.

``StreamrunClient(hooks=[...])`` takes callables, plain or ``async``. Plain hooks run at
once, in the task that made the event (so they see its context: the current span, log
context variables); async hooks run as tasks of their own and never hold up a request.
A hook that raises is logged (with its traceback the first time) and the call goes on.
With no hooks nothing is built: call sites test the emitter before making an event.

No event carries the API key or a stream key: requests are described by their method and
route template, instances and requests by their ids.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, MutableMapping
from typing import Any, Literal, Protocol, TypeAlias, TypeVar

import attrs

from ._exceptions import APIError, InvalidArgumentTypeError, WaiterError, WaitTimeoutError

__all__ = [
    "Emitter",
    "Hook",
    "PollTicked",
    "RequestFinished",
    "RequestStarted",
    "RetryScheduled",
    "WaitFinished",
    "WaitStarted",
    "route_of_path",
]

_T = TypeVar("_T")
_A = TypeVar("_A", bound="_Answer")
_log = logging.getLogger("streamrun_async")

# How long aclose() lets async hooks still running finish before cancelling them.
_HOOK_GRACE = 1.0

_API_PREFIX = "/api/v1/"
# The API's paths alternate collection and id: the name of the id after each collection.
_ID_NAMES = {
    "configurations": "{configurationId}",
    "instances": "{instanceId}",
    "instance-requests": "{requestId}",
    "destinations": "{destinationId}",
}


@functools.lru_cache(maxsize=256)
def _template(segments: tuple[str, ...]) -> str:
    # Ids sit at every second segment of the API's paths: the template names them instead
    # of quoting them, so that events and spans group by endpoint.
    parts = [
        _ID_NAMES.get(segments[i - 1], "{id}") if i % 2 else segment
        for i, segment in enumerate(segments)
    ]
    return "/" + "/".join(parts)


def route_of_path(path: str) -> str:
    """The route template of a URL path: ``/api/v1/instances/i-1`` -> ``/instances/{instanceId}``
    (any base path may come before ``/api/v1/``)."""
    _, found, tail = path.partition(_API_PREFIX)
    tail = tail.strip("/")
    return _template(tuple(tail.split("/"))) if found and tail else path


@attrs.frozen(kw_only=True)
class RequestStarted:
    """An HTTP attempt is about to be sent.

    ``call_id`` is the same for every attempt of one call; ``attempt`` counts from 1.
    ``headers`` starts empty: a plain (not async) hook may add headers to this attempt,
    such as W3C trace context. They never replace the SDK's own (authorization among them).
    """

    call_id: int
    method: str
    route: str
    attempt: int
    headers: MutableMapping[str, str] = attrs.field(factory=dict, eq=False, repr=False)


@attrs.frozen(kw_only=True)
class RequestFinished:
    """An HTTP attempt ended: with a ``status``, or with ``error`` (the exception's type name).

    A 4xx or 5xx answer has both. ``outcome_unknown`` is true when the server may have
    acted although no answer says so; ``request_id`` is the server's ``X-Request-Id``.
    """

    call_id: int
    method: str
    route: str
    attempt: int
    duration: float
    status: int | None
    error: str | None
    outcome_unknown: bool
    request_id: str | None = None


@attrs.frozen
class RetryScheduled:
    """A failed attempt will be retried after ``wait`` seconds; ``cause`` is its error."""

    attempt: int
    wait: float
    cause: APIError
    method: str
    url: str
    route: str = ""
    call_id: int = 0


@attrs.frozen(kw_only=True)
class PollTicked:
    """The shared poller finished one tick (``tick`` counts from 1).

    ``list_calls`` and ``request_calls`` are the calls this tick made; ``budget_left`` the
    calls the shared request budget (``PollPolicy.requests_per_second``) still holds;
    ``next_interval`` the seconds until the next tick; ``error`` the type name of the error
    a call of this tick met, if any.
    """

    tick: int
    list_calls: int
    request_calls: int
    budget_left: float
    next_interval: float
    duration: float
    error: str | None = None


WaitKind: TypeAlias = Literal["instance", "request"]
WaitOutcome: TypeAlias = Literal["succeeded", "failed", "timed_out", "cancelled", "error"]


@attrs.frozen(kw_only=True)
class WaitStarted:
    """A wait began: ``what`` is waited for (an instance or a request), ``subject`` its id."""

    wait_id: int
    what: WaitKind
    subject: str
    target: tuple[str, ...]
    timeout: float | None


@attrs.frozen(kw_only=True)
class WaitFinished:
    """A wait ended after ``duration`` seconds.

    ``outcome``: ``succeeded``, ``failed`` (a failure state, or the subject disappeared),
    ``timed_out``, ``cancelled`` or ``error`` (a call failed for good, the client closed);
    ``state``: the last state seen, if any; ``error``: the exception's type name.
    """

    wait_id: int
    what: WaitKind
    subject: str
    outcome: WaitOutcome
    duration: float
    state: str | None = None
    error: str | None = None


Hook: TypeAlias = Callable[[Any], object]  # may return an awaitable: then it runs as a task


class _Answer(Protocol):
    @property
    def status(self) -> int: ...
    @property
    def request_id(self) -> str | None: ...


def _hook_name(hook: object) -> str:
    return getattr(hook, "__qualname__", None) or type(hook).__qualname__


def _wait_outcome(error: BaseException) -> WaitOutcome:
    if isinstance(error, WaitTimeoutError):
        return "timed_out"
    if isinstance(error, WaiterError):
        return "failed"
    if isinstance(error, asyncio.CancelledError):
        return "cancelled"
    return "error"


def _attempt_finished(started: RequestStarted, duration: float, result: object) -> RequestFinished:
    """The end of ``started``'s attempt: ``result`` is its answer or the exception it raised
    (an error from an answer has a status too)."""
    return RequestFinished(
        call_id=started.call_id,
        method=started.method,
        route=started.route,
        attempt=started.attempt,
        duration=duration,
        status=getattr(result, "status", None),
        error=type(result).__name__ if isinstance(result, BaseException) else None,
        outcome_unknown=bool(getattr(result, "outcome_unknown", False)),
        request_id=getattr(result, "request_id", None),
    )


def _state_name(value: object) -> str | None:
    state = getattr(value, "state", None)
    return None if state is None else str(getattr(state, "value", state))


class Emitter:
    """Hands events to a client's hooks. Falsy when there are none, so that call sites
    skip building events: ``if events: events.emit(RequestStarted(...))``.
    """

    def __init__(self, hooks: Iterable[Hook] | None = None) -> None:
        self._hooks: tuple[Hook, ...] = ()
        self._tasks: set[asyncio.Task[object]] = set()
        self._failed: set[int] = set()
        self._ids = itertools.count(1)
        self._closed = False
        for hook in hooks if hooks is not None else ():
            self.add(hook)

    def __bool__(self) -> bool:
        return bool(self._hooks)

    def __repr__(self) -> str:
        return f"<Emitter of {len(self._hooks)} hooks>"

    @property
    def hooks(self) -> tuple[Hook, ...]:
        """The hooks, in the order they are called."""
        return self._hooks

    def add(self, hook: Hook) -> None:
        """Register one more hook."""
        if not callable(hook):
            raise InvalidArgumentTypeError(f"hooks must be callables, got {type(hook).__name__}")
        self._hooks = (*self._hooks, hook)

    def next_id(self) -> int:
        """A fresh id, to tie related events together (a call's attempts, a wait's ends)."""
        return next(self._ids)

    def emit(self, event: object) -> None:
        """Give ``event`` to every hook; a hook's failure is logged, never raised."""
        for hook in self._hooks:
            try:
                result = hook(event)
            except Exception:
                self._hook_failed(hook)
                continue
            if inspect.isawaitable(result):
                self._schedule(hook, result)

    def _schedule(self, hook: Hook, result: Awaitable[object]) -> None:
        if self._closed:
            if inspect.iscoroutine(result):
                result.close()  # never awaited: say so quietly rather than warn
            return
        task = asyncio.ensure_future(result)
        # The loop keeps only weak references to tasks: ours keep them alive until done.
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._hook_done, hook))

    def _hook_done(self, hook: Hook, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._hook_failed(hook, task.exception())

    def _hook_failed(self, hook: Hook, error: BaseException | None = None) -> None:
        name = _hook_name(hook)
        extra = {"streamrun": {"hook": name}}
        if id(hook) in self._failed:
            _log.debug("event hook %s raised again", name, extra=extra)
            return
        self._failed.add(id(hook))
        exc_info = error if error is not None else True
        _log.error(
            "event hook %s raised; the SDK carries on without its result (logged once, "
            "later failures at DEBUG)",
            name,
            exc_info=exc_info,
            extra=extra,
        )

    async def attempt(
        self, started: RequestStarted, send: Callable[[Mapping[str, str]], Awaitable[_A]]
    ) -> _A:
        """Run one HTTP attempt between its RequestStarted and RequestFinished events.

        ``send`` gets the headers hooks added to ``started``.
        """
        self.emit(started)
        begun = time.monotonic()
        try:
            answer = await send(started.headers)
        except BaseException as error:
            self.emit(_attempt_finished(started, time.monotonic() - begun, error))
            raise
        self.emit(_attempt_finished(started, time.monotonic() - begun, answer))
        return answer

    def wait(
        self,
        waiting: Coroutine[Any, Any, _T],
        *,
        what: WaitKind,
        subject: str,
        target: Iterable[object],
        timeout: float | None,
    ) -> Coroutine[Any, Any, _T]:
        """``waiting`` itself without hooks; with hooks, wrapped in WaitStarted/WaitFinished."""
        if not self._hooks:
            return waiting
        names = tuple(str(getattr(s, "value", s)) for s in target)
        return self._observe_wait(waiting, what, subject, names, timeout)

    async def _observe_wait(
        self,
        waiting: Coroutine[Any, Any, _T],
        what: WaitKind,
        subject: str,
        target: tuple[str, ...],
        timeout: float | None,
    ) -> _T:
        wait_id = self.next_id()
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.emit(
            WaitStarted(wait_id=wait_id, what=what, subject=subject, target=target, timeout=timeout)
        )

        def finished(outcome: WaitOutcome, seen: object, error: str | None = None) -> WaitFinished:
            return WaitFinished(
                wait_id=wait_id,
                what=what,
                subject=subject,
                outcome=outcome,
                duration=loop.time() - started,
                state=_state_name(seen),
                error=error,
            )

        try:
            result = await waiting
        except BaseException as error:
            seen = getattr(error, "last_seen", None)
            self.emit(finished(_wait_outcome(error), seen, type(error).__name__))
            raise
        self.emit(finished("succeeded", result))
        return result

    async def aclose(self) -> None:
        """Let async hooks still running finish (briefly), then cancel the rest."""
        self._closed = True
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=_HOOK_GRACE)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
