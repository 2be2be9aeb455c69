"""The two watches, on one feed base: ``async with``, ``aclose()`` that wakes a consumer
blocked on the watch, ``break`` (then garbage collection) that withdraws interest.

Pending items wait in a buffer keyed by what they are about (an instance, a request), so
a slow consumer sees everything that happened to each since it last looked, and memory
is bounded by instances, not by changes. For instances: ADDED then CHANGED is one ADDED
(of the latest); CHANGED then CHANGED is one CHANGED (from the first ``previous``);
CHANGED then REMOVED is REMOVED; ADDED then REMOVED is nothing; REMOVED then ADDED is
CHANGED. For requests, the latest state replaces an unread one.

The buffer is a separate object so that the poller, which holds the subscription, does
not keep an abandoned watch alive.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from .._exceptions import InvalidArgumentError, WaiterError, WaitTimeoutError
from .._models import InstanceRequest, InstanceState
from ._poller import Poller
from ._store import ChangeKind, InstanceChange
from ._subscriptions import (
    InstanceFeedSub,
    RequestFeedSub,
    Subscription,
    Verdict,
    acceptor,
)
from ._tokens import decode_token, encode_token

__all__ = ["InstanceWatch", "RequestWatch"]

_T = TypeVar("_T")
_RUNNING = acceptor(frozenset([InstanceState.RUNNING]), frozenset())


class _Buffer(Generic[_T]):
    """Pending items by key, an error to raise once they are read, a waiting consumer."""

    def __init__(self, merge: Callable[[_T | None, _T], _T | None]) -> None:
        self._merge = merge
        self.pending: OrderedDict[str, _T] = OrderedDict()
        self.error: BaseException | None = None
        self.closed = False
        self._waiter: asyncio.Future[None] | None = None

    def put(self, key: str, item: _T) -> None:
        merged = self._merge(self.pending.get(key), item)
        if merged is None:
            self.pending.pop(key, None)
        else:
            self.pending[key] = merged
        self._wake()

    def fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self._wake()

    def close(self) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> _T:
        """The next item; the error once items are read; StopAsyncIteration once closed."""
        while True:
            if self.closed:
                raise StopAsyncIteration
            if self.pending:
                return self.pending.popitem(last=False)[1]
            if self.error is not None:
                self.closed = True
                raise self.error
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None


def _merge_changes(old: InstanceChange | None, new: InstanceChange) -> InstanceChange | None:
    if old is None:
        return new
    kind = old.kind
    if kind is ChangeKind.ADDED:
        if new.kind is ChangeKind.REMOVED:
            return None
        return InstanceChange(ChangeKind.ADDED, new.instance)
    if kind is ChangeKind.REMOVED and new.kind is ChangeKind.ADDED:
        return InstanceChange(ChangeKind.CHANGED, new.instance, old.previous)
    return InstanceChange(new.kind, new.instance, old.previous)


class _Feed:
    """What both watches share: the lifecycle around a buffer."""

    _buffer: _Buffer[Any]
    _finalizer: weakref.finalize[Any, Any] | None = None

    def __aiter__(self) -> Self:
        return self

    def _withdraw_when_collected(self, withdraw: Callable[[], None]) -> None:
        # An abandoned watch (break out of async for) leaves the poller when collected.
        self._finalizer = weakref.finalize(self, withdraw)

    async def aclose(self) -> None:
        """Stop watching and leave the poller; a consumer waiting for an item stops too."""
        self._buffer.close()
        if self._finalizer is not None:
            self._finalizer()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class InstanceWatch(_Feed):
    """An async iterator of :class:`InstanceChange`, fed by the client's shared poller.

    Without ``resume``, the first changes are ADDED for every instance that exists.
    ``token`` is a short string of what this watch has delivered (cached: reading it
    twice without a change costs nothing; about 15 bytes per instance): pass it as
    ``client.instances.watch(resume=token)`` in a restarted process to first receive
    what changed in between. A token that does not parse, inflates beyond 1 MiB, or
    names other configurations than the watch's raises ``InvalidArgumentError``.

    The watch ends with the poller's error on a permanent one (401, 403), or after
    ``PollPolicy.give_up_after`` seconds of nothing but failed polls.
    """

    def __init__(
        self,
        poller: Poller,
        configuration_ids: Iterable[str] | None = None,
        resume: str | None = None,
    ) -> None:
        configs = None if configuration_ids is None else frozenset(configuration_ids)
        known: dict[str, InstanceState] | None = None
        if resume is not None:
            token_configs, known = decode_token(resume)
            if configs is None:
                configs = token_configs
            elif token_configs != configs:
                shown = "the whole account" if token_configs is None else sorted(token_configs)
                raise InvalidArgumentError(
                    f"this resume token is of a watch over {shown}, not {sorted(configs)}"
                )
        self._poller = poller
        self._configs = configs
        self._delivered: dict[str, InstanceState] = dict(known or {})
        self._known = known
        self._token: str | None = resume
        self._buffer: _Buffer[InstanceChange] = _Buffer(_merge_changes)
        self._sub: InstanceFeedSub | None = None

    @property
    def token(self) -> str:
        """A resume token for the changes delivered so far."""
        if self._token is None:
            self._token = encode_token(self._configs, self._delivered)
        return self._token

    def _start(self) -> None:
        buffer = self._buffer

        def changes(items: list[InstanceChange]) -> None:
            for change in items:
                buffer.put(change.instance.id, change)

        poller = self._poller
        sub = InstanceFeedSub(self._configs, self._known, poller.now(), changes, buffer.fail)
        self._sub = sub
        poller.add_feed(sub)
        self._withdraw_when_collected(lambda: poller.discard_feed(sub))

    async def __anext__(self) -> InstanceChange:
        if self._sub is None and not self._buffer.closed:
            self._start()
        try:
            change = await self._buffer.get()
        except BaseException:
            await self.aclose()
            raise
        if change.kind is ChangeKind.REMOVED:
            self._delivered.pop(change.instance.id, None)
        else:
            self._delivered[change.instance.id] = change.instance.state
        self._token = None
        return change


class _RequestDeadline(Subscription):
    """A request watch's one deadline in the poller's heap."""

    __slots__ = ("on_expire", "over")

    def __init__(self, deadline: float, on_expire: Callable[[BaseException | None], None]):
        self.deadline = deadline
        self.registered = deadline
        self.on_expire = on_expire
        self.over = False

    @property
    def done(self) -> bool:
        return self.over

    def fail(self, error: BaseException) -> None:
        self.over = True

    def expire(self, cause: BaseException | None) -> None:
        self.over = True
        self.on_expire(cause)


def _latest(old: InstanceRequest | None, new: InstanceRequest) -> InstanceRequest:
    return new


class RequestWatch(_Feed):
    """An async iterator of instance requests, each yielded when its state changes.

    It ends when every request is RUNNING, raises ``WaitTimeoutError`` when ``timeout``
    passes first (with the last state of each request still waited for, and the last poll
    error as ``__cause__`` if polls were failing), and ``WaiterError`` when a request
    reaches a state from which it cannot run, or disappears.
    """

    def __init__(
        self, poller: Poller, requests: Iterable[str | InstanceRequest], timeout: float
    ) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise InvalidArgumentError(f"timeout must be positive seconds, got {timeout!r}")
        self._poller = poller
        self._requests = list(requests)
        self._timeout = float(timeout)
        self._buffer: _Buffer[InstanceRequest] = _Buffer(_latest)
        self._remaining: set[str] = set()
        self._latest: dict[str, InstanceRequest] = {}
        self._started = False

    def _start(self) -> None:
        self._started = True
        poller, buffer, latest = self._poller, self._buffer, self._latest
        now = poller.now()
        subs: list[RequestFeedSub] = []

        def on_request(request: InstanceRequest, verdict: Verdict) -> None:
            before = latest.get(request.id)
            if before is None or before.state is not request.state:
                latest[request.id] = request
                buffer.put(request.id, request)
            if verdict is Verdict.FAILURE:
                buffer.fail(
                    WaiterError(
                        f"instance request {request.id} reached {request.state}; it will "
                        "not become RUNNING",
                        last_seen=request,
                    )
                )

        remaining = self._remaining
        timeout = self._timeout

        def on_expire(cause: BaseException | None) -> None:
            waiting = sorted(remaining)
            message = (
                f"{len(waiting)} instance request(s) not RUNNING within {timeout:g}s: "
                f"{waiting[:10]}"
            )
            if cause is not None:
                message += f"; polls were failing: {cause}"
            error = WaitTimeoutError(message, last_seen=[latest.get(r) for r in waiting])
            error.__cause__ = cause
            buffer.fail(error)

        deadline = _RequestDeadline(now + timeout, on_expire)
        for item in self._requests:
            request_id = item.id if isinstance(item, InstanceRequest) else item
            if request_id in remaining:
                continue
            remaining.add(request_id)
            sub = RequestFeedSub(request_id, _RUNNING, now, on_request, buffer.fail)
            known = item if isinstance(item, InstanceRequest) else None
            if known is not None:
                latest[request_id] = known
                buffer.put(request_id, known)
            if poller.add_request_sub(sub, known):
                subs.append(sub)
        poller.add_deadline(deadline)

        def withdraw() -> None:
            deadline.over = True
            for sub in subs:
                sub.closed = True
                poller.discard_request_sub(sub)
            subs.clear()

        self._withdraw_when_collected(withdraw)

    async def __anext__(self) -> InstanceRequest:
        if not self._started and not self._buffer.closed:
            self._start()
        if not self._remaining and not self._buffer.pending:
            await self.aclose()
            raise StopAsyncIteration
        try:
            request = await self._buffer.get()
        except BaseException:
            await self.aclose()
            raise
        if request.state is InstanceState.RUNNING:
            self._remaining.discard(request.id)
        return request
