"""Waiting and watching: one shared poller per client feeds every waiter and iterator.

The poller is generic: the client hands it two fetch functions (list instances, account
wide or of one configuration; get one instance request) and it imports no resource.

Each tick it makes at most one call per distinct resource, whatever the number of
interested callers: one instance list (account wide, or of the single configuration
everyone watches), then a GET only for the watched requests whose progress the list
cannot tell. A request whose instances all appear in the list as QUEUED is still queued,
so it costs nothing; it is fetched when they all run (to confirm), or when the list does
not show them (an API that omits ``requestId``, or instances that vanished).

All polling shares one request budget (calls per second). Intervals start short, grow
with jitter while nothing changes, and snap back after a change; a 429 or ``Retry-After``
delays the whole poller. The poller's task lives only while someone is interested.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import enum
import json
import random
import time
import weakref
import zlib
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Iterable
from types import TracebackType
from typing import Any, Self

import attrs

from ._exceptions import (
    APIStatusError,
    ClientClosedError,
    InvalidArgumentError,
    NotFoundError,
    StreamrunError,
    WaiterError,
    WaitTimeoutError,
)
from ._models import Instance, InstanceRequest, InstanceState

__all__ = [
    "ChangeKind",
    "InstanceChange",
    "InstanceWatch",
    "PollPolicy",
    "RequestWatch",
]

ListInstances = Callable[[str | None], Awaitable[list[Instance]]]
GetRequest = Callable[[str], Awaitable[InstanceRequest]]

_PERMANENT_STATUSES = frozenset({401, 403})
_TOKEN_VERSION = 1


def _positive(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise InvalidArgumentError(f"{attribute.name} must be positive, got {value!r}")


@attrs.frozen(kw_only=True)
class PollPolicy:
    """How the shared poller paces itself.

    ``PollPolicy(min_interval=0.5, max_interval=10, requests_per_second=5)``: ticks come
    ``min_interval`` apart after a change and stretch by ``growth`` (with jitter) up to
    ``max_interval`` while nothing changes; all polling stays within
    ``requests_per_second``.
    """

    min_interval: float = attrs.field(default=1.0, validator=_positive)
    max_interval: float = attrs.field(default=10.0, validator=_positive)
    growth: float = attrs.field(default=1.5, validator=_positive)
    requests_per_second: float = attrs.field(default=5.0, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.max_interval < self.min_interval:
            raise InvalidArgumentError(
                f"max_interval ({self.max_interval}) must not be below "
                f"min_interval ({self.min_interval})"
            )
        if self.growth < 1:
            raise InvalidArgumentError(f"growth must be at least 1, got {self.growth}")


class ChangeKind(enum.Enum):
    """What happened to an instance between two observations."""

    ADDED = "ADDED"
    CHANGED = "CHANGED"
    REMOVED = "REMOVED"


@attrs.frozen
class InstanceChange:
    """One observed change: the instance now (as last seen, for REMOVED), the state before."""

    kind: ChangeKind
    instance: Instance
    previous: InstanceState | None = None


class _InstanceSub:
    """Interest in instance lists: a waiter or a watch."""

    __slots__ = ("configs", "registered")

    configs: frozenset[str] | None
    registered: float

    def snapshot(
        self, by_id: dict[str, Instance], previous: dict[str, Instance], taken: float
    ) -> bool:
        """Take a fresh list (and the one before); return True when satisfied and leaving."""
        raise NotImplementedError

    def fail(self, error: BaseException) -> None:
        raise NotImplementedError


class _InstanceWaiter(_InstanceSub):
    # Kept small: a fleet tool may hold ten thousand of these. The last Instance seen is
    # not kept here but found in the poller's last list when an error needs it.
    __slots__ = ("failure", "future", "instance_id", "last_state", "success")

    def __init__(
        self,
        instance_id: str,
        success: frozenset[InstanceState],
        failure: frozenset[InstanceState],
        configs: frozenset[str] | None,
        future: asyncio.Future[Instance],
    ) -> None:
        self.instance_id = instance_id
        self.success = success
        self.failure = failure
        self.configs = configs
        self.future = future
        self.last_state: InstanceState | None = None
        self.registered = time.monotonic()

    def snapshot(
        self, by_id: dict[str, Instance], previous: dict[str, Instance], taken: float
    ) -> bool:
        instance = by_id.get(self.instance_id)
        if instance is None:
            if self.last_state is not None:
                self.fail(
                    WaiterError(
                        f"instance {self.instance_id} disappeared (stopped, or stopped "
                        f"itself when idle); last seen {self.last_state}",
                        last_seen=previous.get(self.instance_id),
                    )
                )
                return True
            if taken >= self.registered:
                self.fail(WaiterError(f"instance {self.instance_id} does not exist"))
                return True
            return False
        self.last_state = instance.state
        if instance.state in self.success:
            if not self.future.done():
                self.future.set_result(instance)
            return True
        if instance.state in self.failure:
            self.fail(
                WaiterError(
                    f"instance {self.instance_id} reached {instance.state}", last_seen=instance
                )
            )
            return True
        return False

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


class _WatchSub(_InstanceSub):
    def __init__(
        self, configs: frozenset[str] | None, known: dict[str, InstanceState] | None
    ) -> None:
        self.configs = configs
        self.registered = time.monotonic()
        self.queue: asyncio.Queue[InstanceChange | BaseException | None] = asyncio.Queue()
        # A resumed watch knows only the states in its token: the first comparison looks
        # at states alone, later ones at whole instances.
        self.last = {key: Instance(id=key, state=state) for key, state in (known or {}).items()}
        self.states_only = known is not None

    def snapshot(
        self, by_id: dict[str, Instance], previous: dict[str, Instance], taken: float
    ) -> bool:
        configs = self.configs
        now = {
            key: inst
            for key, inst in by_id.items()
            if configs is None or inst.configuration_id in configs
        }
        put = self.queue.put_nowait
        last, states_only, self.states_only = self.last, self.states_only, False
        for key, gone in last.items():
            if key not in now:
                put(InstanceChange(ChangeKind.REMOVED, gone, gone.state))
        for key, inst in now.items():
            old = last.get(key)
            if old is None:
                put(InstanceChange(ChangeKind.ADDED, inst))
            elif old.state != inst.state if states_only else old != inst:
                put(InstanceChange(ChangeKind.CHANGED, inst, old.state))
        self.last = now
        return False

    def fail(self, error: BaseException) -> None:
        self.queue.put_nowait(error)


class _RequestSub:
    """Interest in one instance request: a waiter (future) or a watch (queue)."""

    __slots__ = ("failure", "future", "queue", "request_id", "success")

    def __init__(
        self,
        request_id: str,
        success: frozenset[InstanceState],
        failure: frozenset[InstanceState],
        future: asyncio.Future[InstanceRequest] | None = None,
        queue: asyncio.Queue[Any] | None = None,
    ) -> None:
        self.request_id = request_id
        self.success = success
        self.failure = failure
        self.future = future
        self.queue = queue

    def update(self, request: InstanceRequest) -> bool:
        """Deliver a new state; return True when this interest is satisfied and leaves."""
        if self.queue is not None:
            self.queue.put_nowait(request)
        if request.state in self.failure:
            self.fail(
                WaiterError(
                    f"instance request {request.id} reached {request.state}", last_seen=request
                )
            )
            return True
        if request.state in self.success:
            if self.future is not None and not self.future.done():
                self.future.set_result(request)
            return True
        return False

    def fail(self, error: BaseException) -> None:
        if self.future is not None:
            if not self.future.done():
                self.future.set_exception(error)
        elif self.queue is not None:
            self.queue.put_nowait(error)


@attrs.define
class PollStats:
    """What the poller has done: ticks and API calls, by kind."""

    ticks: int = 0
    list_calls: int = 0
    request_calls: int = 0
    errors: int = 0


class Poller:
    """The one poller of a client. Private: reached through the resource namespaces."""

    def __init__(
        self, policy: PollPolicy, list_instances: ListInstances, get_request: GetRequest
    ) -> None:
        self.policy = policy
        self._list_instances = list_instances
        self._get_request = get_request
        self._instance_subs: set[_InstanceSub] = set()
        self._request_subs: defaultdict[str, set[_RequestSub]] = defaultdict(set)
        self._requests: dict[str, InstanceRequest] = {}
        # Instances ever listed for each watched request: if all of them vanish, the
        # request can never run, and its waiters are told at once.
        self._members_seen: defaultdict[str, set[str]] = defaultdict(set)
        # The last instance list, for the errors and timeouts of waiters (which keep
        # only a state each).
        self.last_instances: dict[str, Instance] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._interval = policy.min_interval
        self._next_call = 0.0
        self._closed = False
        self.stats = PollStats()

    # -- interest -------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError("this StreamrunClient is closed; create a new one")

    def _started(self) -> None:
        if self._wake is None:
            self._wake = asyncio.Event()
        self._wake.set()
        if self._task is None or self._task.done():
            self._interval = self.policy.min_interval
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="streamrun-poller"
            )

    def add_instance_sub(self, sub: _InstanceSub) -> None:
        """Register interest in instance lists and make sure the poller runs."""
        self._check_open()
        self._instance_subs.add(sub)
        self._started()

    def discard_instance_sub(self, sub: _InstanceSub) -> None:
        """Withdraw interest; the poller stops when nobody is left."""
        self._instance_subs.discard(sub)
        self._maybe_stop()

    def add_request_sub(self, sub: _RequestSub, known: InstanceRequest | None) -> None:
        """Register interest in one request (seeded with what the caller already knows)."""
        self._check_open()
        if known is not None and sub.request_id not in self._requests:
            self._requests[sub.request_id] = known
        cached = self._requests.get(sub.request_id)
        if cached is not None and sub.update(cached):
            return
        self._request_subs[sub.request_id].add(sub)
        self._started()

    def cached_request(self, request_id: str) -> InstanceRequest | None:
        """The request as last fetched (or derived), if it is watched."""
        return self._requests.get(request_id)

    def discard_request_sub(self, sub: _RequestSub) -> None:
        """Withdraw interest in a request."""
        subs = self._request_subs.get(sub.request_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._request_subs[sub.request_id]
                self._requests.pop(sub.request_id, None)
                self._members_seen.pop(sub.request_id, None)
        self._maybe_stop()

    def _maybe_stop(self) -> None:
        if not self._instance_subs and not self._request_subs and self._task is not None:
            self._task.cancel()
            self._task = None

    @property
    def active(self) -> bool:
        """True while the poller's task exists."""
        return self._task is not None and not self._task.done()

    async def close(self) -> None:
        """End every waiter and iterator with ClientClosedError and stop the task."""
        self._closed = True
        error = ClientClosedError("the StreamrunClient was closed while waiting")
        for sub in list(self._instance_subs):
            sub.fail(error)
        for subs in list(self._request_subs.values()):
            for rsub in subs:
                rsub.fail(error)
        self._instance_subs.clear()
        self._request_subs.clear()
        self.last_instances = {}
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # -- the loop -------------------------------------------------------------

    async def _pace(self) -> None:
        """Wait for a slot in the shared request budget."""
        now = time.monotonic()
        slot = max(now, self._next_call)
        self._next_call = slot + 1.0 / self.policy.requests_per_second
        if slot > now:
            await asyncio.sleep(slot - now)

    def _list_scope(self) -> str | None:
        """The one configuration everyone watches, or None for the account-wide list."""
        if self._request_subs:
            return None
        configs: set[str] = set()
        for sub in self._instance_subs:
            if sub.configs is None:
                return None
            configs |= sub.configs
        return next(iter(configs)) if len(configs) == 1 else None

    async def _run(self) -> None:
        assert self._wake is not None
        while self._instance_subs or self._request_subs:
            self._wake.clear()
            started = time.monotonic()
            delay = await self._tick()
            # Ticks start an interval apart, however long the tick's calls took.
            delay -= time.monotonic() - started
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)
        self._task = None

    async def _tick(self) -> float:
        """Poll once; return the delay before the next tick."""
        self.stats.ticks += 1
        changed = False
        slow_down: float | None = None
        snapshot: dict[str, Instance] | None = None
        try:
            await self._pace()
            taken = time.monotonic()
            self.stats.list_calls += 1
            listed = await self._list_instances(self._list_scope())
            snapshot = {inst.id: inst for inst in listed}
            changed |= self._deliver_instances(snapshot, taken)
        except StreamrunError as error:
            slow_down = self._poll_failed(error, self._instance_subs)
        if self._request_subs:
            changed_requests, slow_requests = await self._poll_requests(snapshot)
            changed |= changed_requests
            if slow_requests is not None:
                slow_down = max(slow_down or 0.0, slow_requests)
        policy = self.policy
        if changed:
            self._interval = policy.min_interval
        else:
            grown = self._interval * policy.growth * random.uniform(0.9, 1.1)
            self._interval = min(policy.max_interval, grown)
        return max(self._interval, slow_down or 0.0)

    def _deliver_instances(self, snapshot: dict[str, Instance], taken: float) -> bool:
        previous, self.last_instances = self.last_instances, snapshot
        done = [sub for sub in list(self._instance_subs) if sub.snapshot(snapshot, previous, taken)]
        for sub in done:
            self._instance_subs.discard(sub)
        # A state change anywhere in the list brings the next tick in soon.
        return len(previous) != len(snapshot) or any(
            (before := previous.get(key)) is None or before.state is not inst.state
            for key, inst in snapshot.items()
        )

    def _poll_failed(self, error: StreamrunError, subs: Iterable[Any]) -> float:
        """Fail the subscribers for a permanent error; return how long to slow down."""
        self.stats.errors += 1
        if isinstance(error, APIStatusError):
            if error.status in _PERMANENT_STATUSES or (
                400 <= error.status < 500 and error.status not in (408, 429)
            ):
                for sub in list(subs):
                    sub.fail(error)
                if subs is self._instance_subs:
                    self._instance_subs.clear()
                return self.policy.min_interval
            if error.retry_after is not None:
                return error.retry_after
        return min(self.policy.max_interval, self._interval * 2)

    async def _poll_requests(
        self, snapshot: dict[str, Instance] | None
    ) -> tuple[bool, float | None]:
        members: defaultdict[str, list[Instance]] = defaultdict(list)
        if snapshot is not None:
            for inst in snapshot.values():
                if inst.request_id is not None:
                    members[inst.request_id].append(inst)
        for rid in self._request_subs:
            self._members_seen[rid].update(m.id for m in members.get(rid, ()))
        changed = False
        due: list[str] = []
        for rid in list(self._request_subs):
            known, found = self._requests.get(rid), members.get(rid)
            if known is None or not found:
                due.append(rid)
            elif self._all_running(known, found):
                # The list shows every instance of the request RUNNING, which is what a
                # RUNNING request means: no call needed to learn it.
                derived = attrs.evolve(
                    known, state=InstanceState.RUNNING, instance_ids=tuple(m.id for m in found)
                )
                object.__setattr__(derived, "raw", known.raw)
                changed |= self._deliver_request(rid, derived, vanished=False)
        results = await asyncio.gather(
            *(
                self._fetch_request(rid, vanished=snapshot is not None and rid not in members)
                for rid in due
            )
        )
        slow: float | None = None
        for result, delay in results:
            changed |= result
            if delay is not None:
                slow = max(slow or 0.0, delay)
        return changed, slow

    @staticmethod
    def _all_running(known: InstanceRequest, members: list[Instance]) -> bool:
        expected = known.number_of_instances or len(known.instance_ids) or len(members)
        return len(members) >= expected and all(m.state is InstanceState.RUNNING for m in members)

    async def _fetch_request(self, request_id: str, *, vanished: bool) -> tuple[bool, float | None]:
        subs = self._request_subs.get(request_id)
        if not subs:
            return False, None
        try:
            await self._pace()
            self.stats.request_calls += 1
            request = await self._get_request(request_id)
        except NotFoundError as error:
            last = self._requests.get(request_id)
            failure: StreamrunError = error
            if last is not None:
                failure = WaiterError(
                    f"instance request {request_id} disappeared; last seen {last.state}",
                    last_seen=last,
                )
            self._end_request(request_id, failure)
            return True, None
        except StreamrunError as error:
            delay = self._poll_failed(error, list(subs))
            if (
                isinstance(error, APIStatusError)
                and 400 <= error.status < 500
                and error.status not in (408, 429)
            ):
                self._end_request(request_id, None)
            return False, delay
        return self._deliver_request(request_id, request, vanished=vanished), None

    def _deliver_request(
        self, request_id: str, request: InstanceRequest, *, vanished: bool
    ) -> bool:
        """Record a request's new state and tell its subscribers; True on a change."""
        subs = self._request_subs.get(request_id)
        if not subs:
            return False
        previous = self._requests.get(request_id)
        self._requests[request_id] = request
        if (
            vanished
            and self._members_seen[request_id]
            and request.state not in {state for sub in subs for state in sub.success}
        ):
            self._end_request(
                request_id,
                WaiterError(
                    f"every instance of request {request_id} was stopped; "
                    f"it can no longer reach RUNNING (last state {request.state})",
                    last_seen=request,
                ),
            )
            return True
        if previous is not None and previous.state == request.state:
            return False
        for sub in list(subs):
            if sub.update(request):
                subs.discard(sub)
        if not subs:
            self._request_subs.pop(request_id, None)
        return True

    def _end_request(self, request_id: str, error: StreamrunError | None) -> None:
        for sub in self._request_subs.pop(request_id, set()):
            if error is not None:
                sub.fail(error)
        self._requests.pop(request_id, None)
        self._members_seen.pop(request_id, None)


_SINGLE_STATES = {state: frozenset([state]) for state in InstanceState}
_NO_STATES: frozenset[InstanceState] = frozenset()


def _states(
    value: InstanceState | Collection[InstanceState], what: str, *, allow_empty: bool = False
) -> frozenset[InstanceState]:
    if isinstance(value, InstanceState) and value in _SINGLE_STATES:
        return _SINGLE_STATES[value]
    states = frozenset([value] if isinstance(value, str) else value)
    if not states and allow_empty:
        return _NO_STATES
    if not states or not all(isinstance(s, InstanceState) for s in states):
        raise InvalidArgumentError(f"{what} must be InstanceState members, got {value!r}")
    return states


def _check_timeout(timeout: float) -> None:
    if not timeout > 0:
        raise InvalidArgumentError(f"timeout must be positive, got {timeout!r}")


def _expire(future: asyncio.Future[Any], timeout: float, what: str, last: Any) -> None:
    if not future.done():
        state = getattr(last, "state", None)
        future.set_exception(
            WaitTimeoutError(
                f"{what} not reached within {timeout:g}s; last state seen: {state}",
                last_seen=last,
            )
        )


async def wait_for_instance(
    poller: Poller,
    instance_id: str,
    success: InstanceState | Collection[InstanceState],
    *,
    failure: Collection[InstanceState] = (),
    configuration_id: str | None = None,
    timeout: float,
) -> Instance:
    """Wait through ``poller`` until the instance reaches one of ``success``."""
    _check_timeout(timeout)
    wanted = _states(success, "success states")
    failing = _states(failure, "failure states", allow_empty=True)
    configs = None if configuration_id is None else frozenset([configuration_id])
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Instance] = loop.create_future()
    waiter = _InstanceWaiter(instance_id, wanted, failing, configs, future)
    poller.add_instance_sub(waiter)
    # A timer handle rather than asyncio.timeout(): no context object per waiter, and the
    # message is built only if the deadline passes.
    deadline = loop.call_later(
        timeout,
        lambda: _expire(
            future,
            timeout,
            f"instance {instance_id}: {'/'.join(sorted(wanted))}",
            poller.last_instances.get(instance_id),
        ),
    )
    try:
        return await future
    finally:
        deadline.cancel()
        poller.discard_instance_sub(waiter)


async def wait_for_request(
    poller: Poller,
    request: str | InstanceRequest,
    *,
    success: InstanceState | Collection[InstanceState],
    failure: Collection[InstanceState] = (),
    timeout: float,
) -> InstanceRequest:
    """Wait through ``poller`` until the request reaches one of ``success``."""
    _check_timeout(timeout)
    known = request if isinstance(request, InstanceRequest) else None
    request_id = request.id if isinstance(request, InstanceRequest) else request
    loop = asyncio.get_running_loop()
    future: asyncio.Future[InstanceRequest] = loop.create_future()
    sub = _RequestSub(
        request_id,
        _states(success, "success states"),
        _states(failure, "failure states", allow_empty=True),
        future=future,
    )
    poller.add_request_sub(sub, known)
    deadline = loop.call_later(
        timeout,
        lambda: _expire(
            future,
            timeout,
            f"instance request {request_id}: RUNNING",
            poller.cached_request(request_id) or known,
        ),
    )
    try:
        return await future
    finally:
        deadline.cancel()
        poller.discard_request_sub(sub)


def _encode_token(configs: frozenset[str] | None, states: dict[str, InstanceState]) -> str:
    payload = {
        "v": _TOKEN_VERSION,
        "c": None if configs is None else sorted(configs),
        "s": {key: str(state) for key, state in states.items()},
    }
    packed = zlib.compress(json.dumps(payload, separators=(",", ":")).encode(), 9)
    return base64.urlsafe_b64encode(packed).decode().rstrip("=")


def _decode_token(token: str) -> tuple[frozenset[str] | None, dict[str, InstanceState]]:
    try:
        packed = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(zlib.decompress(packed))
        if payload["v"] != _TOKEN_VERSION:
            raise ValueError("unsupported version")
        configs = None if payload["c"] is None else frozenset(map(str, payload["c"]))
        states = {str(k): InstanceState(str(v)) for k, v in payload["s"].items()}
    except (ValueError, KeyError, TypeError, zlib.error) as exc:
        raise InvalidArgumentError(f"not a watch resume token: {exc}") from None
    return configs, states


class InstanceWatch:
    """An async iterator of :class:`InstanceChange`, fed by the client's shared poller.

    Without ``resume``, the first changes are ADDED for every instance that exists.
    ``token`` is a small string of what this watch has delivered: pass it as
    ``client.instances.watch(resume=token)`` in a restarted process to first receive
    what changed in between. Breaking out of ``async for`` (or :meth:`aclose`) withdraws
    the watch from the poller.
    """

    def __init__(
        self,
        poller: Poller,
        configuration_ids: Iterable[str] | None = None,
        resume: str | None = None,
    ) -> None:
        known: dict[str, InstanceState] | None = None
        configs = None if configuration_ids is None else frozenset(configuration_ids)
        if resume is not None:
            resumed_configs, known = _decode_token(resume)
            configs = resumed_configs if configuration_ids is None else configs
        self._poller = poller
        self._configs = configs
        self._delivered: dict[str, InstanceState] = dict(known or {})
        self._known = known
        self._sub: _WatchSub | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._done = False

    @property
    def token(self) -> str:
        """A resume token for the changes delivered so far."""
        return _encode_token(self._configs, self._delivered)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> InstanceChange:
        if self._done:
            raise StopAsyncIteration
        if self._sub is None:
            self._sub = _WatchSub(self._configs, self._known)
            self._poller.add_instance_sub(self._sub)
            # An abandoned watch (break out of async for) leaves the poller when collected.
            self._finalizer = weakref.finalize(self, self._poller.discard_instance_sub, self._sub)
        item = await self._sub.queue.get()
        if item is None:  # closed while this consumer waited
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            await self.aclose()
            raise item
        if item.kind is ChangeKind.REMOVED:
            self._delivered.pop(item.instance.id, None)
        else:
            self._delivered[item.instance.id] = item.instance.state
        return item

    async def aclose(self) -> None:
        """Stop watching and leave the poller; a consumer waiting for a change stops too."""
        self._done = True
        if self._finalizer is not None:
            self._finalizer()
        if self._sub is not None:
            self._sub.queue.put_nowait(None)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class RequestWatch:
    """An async iterator of instance requests, each yielded when its state changes.

    It ends when every request is RUNNING, and raises ``WaitTimeoutError`` when
    ``timeout`` passes first; a request that fails or disappears raises ``WaiterError``.
    """

    def __init__(
        self, poller: Poller, requests: Iterable[str | InstanceRequest], timeout: float
    ) -> None:
        self._poller = poller
        self._requests = list(requests)
        if not timeout > 0:
            raise InvalidArgumentError(f"timeout must be positive, got {timeout!r}")
        self._timeout = timeout
        self._queue: asyncio.Queue[Any] | None = None
        self._subs: list[_RequestSub] = []
        self._pending: set[str] = set()
        self._latest: dict[str, InstanceRequest] = {}
        self._deadline = 0.0  # in loop time, set when iteration starts
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def __aiter__(self) -> Self:
        return self

    def _start(self) -> asyncio.Queue[Any]:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._queue = queue
        self._deadline = asyncio.get_running_loop().time() + self._timeout
        for item in self._requests:
            request_id = item.id if isinstance(item, InstanceRequest) else item
            if request_id in self._pending:
                continue
            self._pending.add(request_id)
            sub = _RequestSub(
                request_id, _SINGLE_STATES[InstanceState.RUNNING], _NO_STATES, queue=queue
            )
            self._subs.append(sub)
            self._poller.add_request_sub(sub, item if isinstance(item, InstanceRequest) else None)
        # Like InstanceWatch: abandoning the iterator withdraws its interest when collected.
        self._finalizer = weakref.finalize(self, _discard_request_subs, self._poller, self._subs)
        return queue

    async def __anext__(self) -> InstanceRequest:
        queue = self._queue if self._queue is not None else self._start()
        if not self._pending:
            await self.aclose()
            raise StopAsyncIteration
        try:
            async with asyncio.timeout_at(self._deadline):
                item = await queue.get()
        except TimeoutError:
            pending = sorted(self._pending)
            await self.aclose()
            raise WaitTimeoutError(
                f"{len(pending)} instance request(s) not RUNNING within "
                f"{self._timeout:g}s: {pending[:10]}",
                last_seen=[self._latest.get(rid) for rid in pending],
            ) from None
        if isinstance(item, BaseException):
            await self.aclose()
            raise item
        self._latest[item.id] = item
        if item.state is InstanceState.RUNNING:
            self._pending.discard(item.id)
        return item  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        """Stop watching and leave the poller."""
        self._pending.clear()
        if self._finalizer is not None:
            self._finalizer()


def _discard_request_subs(poller: Poller, subs: list[_RequestSub]) -> None:
    for sub in subs:
        poller.discard_request_sub(sub)
    subs.clear()
