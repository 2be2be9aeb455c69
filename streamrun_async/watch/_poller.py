"""The thin loop: pace, list, update the store, answer, then fetch what the tracker names.

One ``Poller`` per client feeds every waiter and watch. Each tick:

1. wait until the pacer allows the next list call (``min_interval`` is a floor, whoever
   asks; a ``Retry-After`` holds everything back);
2. list the union of what subscribers need: the account, or up to three configurations
   when that is all anyone needs;
3. update the store (parsed JSON compared, models built only for what changed);
4. answer instance waiters and watches, and snapshot listeners;
5. let the tracker settle the requests the list proves RUNNING, and send GETs for the
   requests it names, oldest-fetched first, only as many as the budget holds now. They
   run beside the loop: no tick waits for them, no instance subscriber waits behind
   them. A failed list sends none.

Deadlines live in one heap with one timer for its earliest entry. The poller's task
exists only while someone is interested. It imports no resource: the client hands it a
list function (raw parsed items, no retries: the next tick is the retry) and a request
getter.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import heapq
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs

from .._converter import DecodeFailure, decode_list
from .._events import Emitter, PollTicked
from .._exceptions import (
    ClientClosedError,
    EventLoopError,
    NotFoundError,
    ResponseDecodeError,
    StreamrunError,
    WaiterError,
)
from .._models import Instance, InstanceRequest
from ._clock import Clock, LoopClock, Timer
from ._pacer import Pacer, is_permanent
from ._policy import PollPolicy
from ._store import ChangeKind, Diff, InstanceChange, Store
from ._subscriptions import (
    InstanceFeedSub,
    InstanceWaiter,
    RequestSub,
    Subscription,
    Verdict,
)
from ._tracker import RequestTracker

__all__ = ["GetRequest", "ListInstances", "PollStats", "Poller", "SnapshotListener", "TickSummary"]

ListInstances = Callable[[str | None], Awaitable[list[Any]]]
"""Lists instances as raw parsed JSON items: the account's (None) or one configuration's."""
GetRequest = Callable[[str], Awaitable[InstanceRequest]]
"""Fetches one instance request."""
SnapshotListener = Callable[[Mapping[str, Instance], float, frozenset[str] | None], None]
"""Called after every successful list: the store's snapshot, when its list was taken, and the
configurations it covered (None: the whole account)."""

_log = logging.getLogger("streamrun_async")
_MAX_SCOPED_LISTS = 3


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _decode_instances(items: list[Any]) -> list[Instance]:
    return decode_list(items, Instance, "instances")


@attrs.define
class PollStats:
    """What the poller has done: ticks and API calls, by kind."""

    ticks: int = 0
    list_calls: int = 0
    request_calls: int = 0
    errors: int = 0


@attrs.frozen
class TickSummary:
    """One tick, as the loop knows it when the tick is over."""

    taken: float
    duration: float  # from the list call's start to the end of the tick
    list_calls: int
    request_calls: int
    changes: int
    error: StreamrunError | None
    budget_left: float
    next_interval: float
    backlog: int


class Poller:
    """The one poller of a client. Private: reached through the resource namespaces."""

    def __init__(
        self,
        policy: PollPolicy,
        list_instances: ListInstances,
        get_request: GetRequest,
        *,
        decode: Callable[[list[Any]], list[Instance]] = _decode_instances,
        clock: Clock | None = None,
        pacer: Pacer | None = None,
        events: Emitter | None = None,
    ) -> None:
        self.policy = policy
        self.events = events if events is not None else Emitter()
        self.clock: Clock = clock or LoopClock()
        self._list_instances = list_instances
        self._get_request = get_request
        self.store = Store(decode, grace=policy.absence_grace)
        self.tracker = RequestTracker(policy)
        self.pacer = pacer or Pacer(policy)
        self.stats = PollStats()
        # Instance id -> its waiter, or a list when several wait for one instance (a list
        # for each of ten thousand waiters would cost a tenth of a waiter each).
        self._waiters: dict[str, InstanceWaiter | list[InstanceWaiter]] = {}
        self._feeds: list[InstanceFeedSub] = []
        self._request_subs: dict[str, list[RequestSub]] = {}
        self._scopes: Counter[str | None] = Counter()
        self._listeners: list[SnapshotListener] = []
        self._deadlines: list[Subscription] = []
        self._deadline_timer: Timer | None = None
        self._deadline_at = float("inf")
        self._compact_at = 64
        self._fetches: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    # -- interest ---------------------------------------------------------------------

    def now(self) -> float:
        """The poller's clock."""
        return self.clock.now()

    def check_open(self) -> None:
        """Refuse new interest once the client closed; follow the client into a new event
        loop once the one it ran in has ended (refused while that loop still runs)."""
        if self._closed:
            raise ClientClosedError("this StreamrunClient is closed; create a new one")
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        if self._loop is not None and not self._loop.is_closed() and self._interested():
            raise EventLoopError(
                "this StreamrunClient's waits and watches run in another event loop that is "
                "still running; use one client per loop"
            )
        # Whatever the ended loop held (tasks, timers, waiters) can never run again.
        self._task, self._wake, self._loop = None, None, loop
        self._fetches = set()
        self._deadline_timer = None
        self._deadline_at = float("inf")
        self._deadlines.clear()
        self._waiters.clear()
        self._feeds.clear()
        self._request_subs.clear()
        self._scopes.clear()
        for request_id in list(self.tracker):
            self.tracker.unwatch(request_id)

    def _fresh(self) -> bool:
        taken = self.store.taken
        return taken is not None and self.now() - taken < self.policy.min_interval

    def add_instance_waiter(self, waiter: InstanceWaiter) -> bool:
        """Register a waiter; False when the store already answered it (not registered)."""
        self.check_open()
        store = self.store
        if store.covers(waiter.configuration_id):
            instance = store.get(waiter.instance_id)
            if (
                instance is not None
                and self._in_scope(instance, waiter.configuration_id)
                and waiter.offer(instance)
            ):
                return False
        waiters, key = self._waiters, waiter.instance_id
        present = waiters.get(key)
        if present is None:
            waiters[key] = waiter
        elif isinstance(present, list):
            present.append(waiter)
        else:
            waiters[key] = [present, waiter]
        self._scopes[waiter.configuration_id] += 1
        self._arm(waiter)
        self._interest(urgent=not self._fresh() or not store.covers(waiter.configuration_id))
        return True

    def discard_instance_waiter(self, waiter: InstanceWaiter) -> None:
        """Withdraw a waiter (answered, failed, expired or cancelled)."""
        waiters, key = self._waiters, waiter.instance_id
        present = waiters.get(key)
        if present is waiter:
            del waiters[key]
        elif isinstance(present, list) and waiter in present:
            present.remove(waiter)
            if not present:
                del waiters[key]
        else:
            return
        self._unscope(waiter.configuration_id)
        self._maybe_stop()

    def add_feed(self, sub: InstanceFeedSub) -> None:
        """Register an instance watch; a fresh snapshot covering it replays at once."""
        self.check_open()
        self._feeds.append(sub)
        for config in sub.configs or (None,):
            self._scopes[config] += 1
        covered = all(self.store.covers(c) for c in (sub.configs or (None,)))
        if covered and self._fresh():
            self._start_feed(sub)
        self._interest(urgent=not sub.started)

    def discard_feed(self, sub: InstanceFeedSub) -> None:
        """Withdraw an instance watch."""
        sub.closed = True
        if sub in self._feeds:
            self._feeds.remove(sub)
            for config in sub.configs or (None,):
                self._unscope(config)
        self._maybe_stop()

    def add_request_sub(self, sub: RequestSub, known: InstanceRequest | None) -> bool:
        """Register interest in a request; False when what is known answers it already
        (nothing is kept then)."""
        self.check_open()
        for current in (known, self.tracker.known(sub.request_id)):
            if current is not None and sub.offer(current):
                return False
        entry = self.tracker.watch(sub.request_id, known, self.now())
        if known is not None:
            self.store.learn_request(sub.request_id, known.configuration_id)
        self._request_subs.setdefault(sub.request_id, []).append(sub)
        self._arm(sub)
        self._interest(urgent=entry.known is None or not self._fresh())
        return True

    def discard_request_sub(self, sub: RequestSub) -> None:
        """Withdraw interest in a request; the tracker forgets it with its last sub."""
        subs = self._request_subs.get(sub.request_id)
        if subs is not None and sub in subs:
            subs.remove(sub)
            if not subs:
                del self._request_subs[sub.request_id]
                self.tracker.unwatch(sub.request_id)
        self._maybe_stop()

    def add_snapshot_listener(self, callback: SnapshotListener) -> Callable[[], None]:
        """Call ``callback(snapshot, taken_at, covered)`` after every successful list;
        returns a function that removes it.

        ``snapshot`` is a read-only live view of the store (id -> Instance) of what the list
        covered: ``covered`` is None for the whole account, else the configurations listed
        (an instance of another configuration missing from it is not gone). Instances
        missing within ``PollPolicy.absence_grace`` are still in it, as last seen.
        Listeners observe only: they do not make the poller poll. An exception in one is
        logged and ignored.
        """
        self._listeners.append(callback)

        def remove() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return remove

    def _unscope(self, config: str | None) -> None:
        self._scopes[config] -= 1
        if self._scopes[config] <= 0:
            del self._scopes[config]

    def _interested(self) -> bool:
        return bool(self._waiters or self._feeds or self._request_subs)

    def _interest(self, *, urgent: bool) -> None:
        if urgent:
            self.pacer.urgent = True
            if self._wake is not None and not self._wake.done():
                self._wake.set_result(None)
        if self._task is None or self._task.done():
            # A context of its own: the loop serves every waiter, and must not run in (nor
            # trace or log as) the one whose call happened to start it.
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="streamrun-poller", context=contextvars.Context()
            )

    def _maybe_stop(self) -> None:
        if self._interested():
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # a wait of an ended loop, collected: nothing runs to stop
            return
        task, self._task = self._task, None
        current = asyncio.current_task()
        for pending in (task, *self._fetches):
            if pending is not None and pending is not current:
                pending.cancel()
        self._disarm()

    @property
    def active(self) -> bool:
        """True while the poller's task exists."""
        return self._task is not None and not self._task.done()

    async def close(self) -> None:
        """End every waiter and watch with ClientClosedError and stop the task."""
        self._closed = True
        self._end_all(ClientClosedError("the StreamrunClient was closed while waiting"))
        self.store.clear()
        task, self._task = self._task, None
        tasks = [t for t in (task, *self._fetches) if t is not None]
        for pending in tasks:
            pending.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._disarm()

    def _end_all(self, error: BaseException) -> None:
        for subs in list(self._waiters.values()):
            for waiter in subs if isinstance(subs, list) else [subs]:
                waiter.fail(error)
        for feed in list(self._feeds):
            feed.fail(error)
        for rsubs in list(self._request_subs.values()):
            for rsub in list(rsubs):
                rsub.fail(error)
        self._waiters.clear()
        self._feeds.clear()
        self._request_subs.clear()
        self._scopes.clear()
        for request_id in list(self.tracker):
            self.tracker.unwatch(request_id)

    # -- deadlines: one heap, one timer -----------------------------------------------

    def _arm(self, sub: Subscription) -> None:
        if sub.deadline == float("inf"):
            return
        heap = self._deadlines
        if len(heap) >= self._compact_at:
            # Ended waits stay in the heap until their deadline: drop them now and then, so
            # that a long-lived poller holds no more than twice the live ones.
            heap[:] = [entry for entry in heap if not entry.done]
            heapq.heapify(heap)
            self._compact_at = max(64, 2 * len(heap))
        heapq.heappush(heap, sub)
        if sub.deadline < self._deadline_at:
            self._schedule(sub.deadline)

    def add_deadline(self, sub: Subscription) -> None:
        """Keep ``sub``'s deadline in the heap (a watch's own deadline)."""
        self._arm(sub)

    def _schedule(self, when: float) -> None:
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
        self._deadline_at = when
        self._deadline_timer = self.clock.call_at(when, self._expire_due)

    def _disarm(self) -> None:
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
        self._deadline_timer = None
        self._deadline_at = float("inf")
        self._deadlines.clear()

    def _expire_due(self) -> None:
        self._deadline_timer = None
        self._deadline_at = float("inf")
        heap, now = self._deadlines, self.now()
        while heap and (heap[0].done or heap[0].deadline <= now):
            sub = heapq.heappop(heap)
            if not sub.done:
                sub.expire(self._cause_for(sub))
        if heap:
            self._schedule(heap[0].deadline)

    def _cause_for(self, sub: Subscription) -> StreamrunError | None:
        if isinstance(sub, RequestSub):
            entry = self.tracker.get(sub.request_id)
            if entry is not None and entry.last_error is not None:
                return entry.last_error
        return self.pacer.failing()

    # -- the loop -----------------------------------------------------------------------

    async def _run(self) -> None:
        me = asyncio.current_task()
        try:
            while self._interested():
                await self._until_due()
                if not self._interested():
                    break
                self._tick_done(await self._tick())
        finally:
            if self._task is me:
                self._task = None

    async def _until_due(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            at = self.pacer.next_list_at()
            if self.now() >= at:
                return
            wake = self._wake = loop.create_future()
            timer = self.clock.call_at(at, functools.partial(_resolve, wake))
            try:
                await wake
            finally:
                timer.cancel()
                self._wake = None

    def _list_scopes(self) -> list[str | None]:
        """The account (None), or the few configurations that are all anyone needs."""
        needed: set[str | None] = set(self._scopes)
        needed.update(self.tracker.configurations())
        if None in needed or not needed or len(needed) > _MAX_SCOPED_LISTS:
            return [None]
        return [c for c in sorted(c for c in needed if c is not None)]

    async def _tick(self) -> TickSummary:
        self.stats.ticks += 1
        pacer = self.pacer
        scopes = self._list_scopes()
        taken = self.now()
        pacer.listing(taken, len(scopes))
        lists: dict[str | None, list[Any]] = {}
        try:
            for scope in scopes:
                self.stats.list_calls += 1
                lists[scope] = await self._list_instances(scope)
            try:
                diff = self.store.update(lists, taken)
            except DecodeFailure as exc:
                raise ResponseDecodeError(
                    f"GET instances: {exc}", method="GET", url="/instances", status=200
                ) from exc
        except StreamrunError as error:
            return self._list_failed(error, taken, len(lists) + 1)
        now = self.now()
        # Absences still within their grace are settled at the shortest interval.
        unsettled = self._answer_instances(diff) or self.store.has_missing()
        self._tell_listeners(taken)
        settled, due = self.tracker.after_list(self.store, now)
        for request in settled:
            self._deliver_request(request)
        granted = pacer.grant(now, len(due))
        for request_id in due[:granted]:
            self._send_fetch(request_id)
        backlog = len(due) - granted
        pacer.after_tick(changed=bool(diff) or bool(settled), backlog=backlog > 0 or unsettled)
        return TickSummary(
            taken=taken,
            duration=self.now() - taken,
            list_calls=len(scopes),
            request_calls=granted,
            changes=len(diff.added) + len(diff.changed) + len(diff.removed) + len(settled),
            error=None,
            budget_left=pacer.tokens(now),
            next_interval=pacer.interval,
            backlog=backlog,
        )

    def _tick_done(self, summary: TickSummary) -> None:
        """The one place a tick's summary is known (events hook in here)."""
        if summary.error is not None:
            self.stats.errors += 1
        _log.debug(
            "poll tick: %d list + %d request call(s), %d change(s), error %s, "
            "budget left %.2f, next interval %.3fs, %d fetch(es) waiting",
            summary.list_calls,
            summary.request_calls,
            summary.changes,
            None if summary.error is None else type(summary.error).__name__,
            summary.budget_left,
            summary.next_interval,
            summary.backlog,
        )
        if self.events:
            self.events.emit(
                PollTicked(
                    tick=self.stats.ticks,
                    list_calls=summary.list_calls,
                    request_calls=summary.request_calls,
                    budget_left=summary.budget_left,
                    next_interval=summary.next_interval,
                    duration=self.now() - summary.taken,
                    error=None if summary.error is None else type(summary.error).__name__,
                )
            )

    def _list_failed(self, error: StreamrunError, taken: float, calls: int) -> TickSummary:
        now = self.now()
        self.pacer.failed(now, error, listing=True)
        if is_permanent(error, listing=True) or self.pacer.given_up(now):
            self._end_all(error)
        return TickSummary(
            taken=taken,
            duration=now - taken,
            list_calls=calls,
            request_calls=0,
            changes=0,
            error=error,
            budget_left=self.pacer.tokens(now),
            next_interval=self.pacer.interval,
            backlog=0,
        )

    # -- answering ----------------------------------------------------------------------

    def _in_scope(self, instance: Instance, configuration_id: str | None) -> bool:
        if configuration_id is None:
            return True
        found = self.store.configuration_of(instance)
        # Unknown (no configurationId, no per-configuration list, no known request): a
        # list cannot contradict the waiter, so it is not excluded.
        return found is None or found == configuration_id

    def _answer_instances(self, diff: Diff) -> bool:
        """Answer waiters and watches; True while some waiter's instance is missing."""
        taken, store, grace = diff.taken, self.store, self.policy.absence_grace
        unsettled = False
        for instance_id, subs in list(self._waiters.items()):
            instance = store.get(instance_id)
            for waiter in list(subs) if isinstance(subs, list) else (subs,):
                if waiter.done or taken < waiter.registered:
                    continue
                if instance is not None and self._in_scope(instance, waiter.configuration_id):
                    if instance is not waiter.last:
                        waiter.offer(instance)
                elif store.covers(waiter.configuration_id):
                    unsettled |= not waiter.absent(taken, grace)
        if not self._feeds:
            return unsettled
        changes = list(diff.changes()) if diff else []
        for feed in list(self._feeds):
            if feed.closed or taken < feed.registered:
                continue
            if not feed.started:
                self._start_feed(feed)
                continue
            mine = self._resumed_absences(feed, changes, taken) if feed.absent else changes
            unsettled |= bool(feed.absent)
            if feed.members is None:  # the whole account: the diff as it is
                if mine:
                    feed.on_changes(mine)
            else:
                self._scoped_changes(feed, mine)
        return unsettled

    def _resumed_absences(
        self, feed: InstanceFeedSub, changes: list[InstanceChange], taken: float
    ) -> list[InstanceChange]:
        """A resumed watch's token named instances the first list did not show: they are
        REMOVED after two lists spanning the grace, or back (CHANGED, or nothing)."""
        absent = feed.absent
        mine: list[InstanceChange] = []
        for change in changes:
            entry = absent.pop(change.instance.id, None)
            if entry is None or change.kind is not ChangeKind.ADDED:
                mine.append(change)
            elif change.instance.state is not entry[0]:
                mine.append(InstanceChange(ChangeKind.CHANGED, change.instance, entry[0]))
        grace = self.policy.absence_grace
        for key, (state, since, count) in list(absent.items()):
            if count + 1 >= 2 and taken - since >= grace:
                del absent[key]
                gone = Instance(id=key, state=state)
                mine.append(InstanceChange(ChangeKind.REMOVED, gone, state))
            else:
                absent[key] = (state, since, count + 1)
        return mine

    def _scoped_changes(self, feed: InstanceFeedSub, changes: list[InstanceChange]) -> None:
        """A configuration watch's share of the diff. Instances may enter its scope without
        changing (their request's configuration learned later) or leave it."""
        members = feed.members
        assert members is not None
        mine: list[InstanceChange] = []
        for change in changes:
            key = change.instance.id
            if change.kind is ChangeKind.REMOVED:
                if key in members:
                    members.discard(key)
                    mine.append(change)
            elif self._feed_wants(feed, change.instance):
                if key in members:
                    mine.append(change)
                else:
                    members.add(key)
                    mine.append(InstanceChange(ChangeKind.ADDED, change.instance))
            elif key in members:
                members.discard(key)
                mine.append(InstanceChange(ChangeKind.REMOVED, change.instance, change.previous))
        if feed.generation != self.store.generation:
            feed.generation = self.store.generation
            for key, inst in self.store.view.items():
                if key not in members and self._feed_wants(feed, inst):
                    members.add(key)
                    mine.append(InstanceChange(ChangeKind.ADDED, inst))
        if mine:
            feed.on_changes(mine)

    def _feed_wants(self, feed: InstanceFeedSub, instance: Instance) -> bool:
        configs = feed.configs
        if configs is None:
            return True
        found = self.store.configuration_of(instance)
        return found is not None and found in configs

    def _start_feed(self, feed: InstanceFeedSub) -> None:
        """A watch's first delivery: the store's content in its scope, compared with the
        states its resume token knew (if any)."""
        feed.started = True
        now = {key: inst for key, inst in self.store.view.items() if self._feed_wants(feed, inst)}
        changes: list[InstanceChange] = []
        known = feed.known
        if known is None:
            changes = [InstanceChange(ChangeKind.ADDED, inst) for inst in now.values()]
        else:
            # Missing now: REMOVED only after the same grace as any absence (below).
            taken = self.store.taken or self.now()
            feed.absent = {k: (v, taken, 1) for k, v in known.items() if k not in now}
            for key, inst in now.items():
                before = known.get(key)
                if before is None:
                    changes.append(InstanceChange(ChangeKind.ADDED, inst))
                elif before is not inst.state:
                    changes.append(InstanceChange(ChangeKind.CHANGED, inst, before))
            feed.known = None
        if feed.configs is not None:
            feed.members = set(now).union(feed.absent)
            feed.generation = self.store.generation
        if changes:
            feed.on_changes(changes)

    def _tell_listeners(self, taken: float) -> None:
        for listener in list(self._listeners):
            try:
                listener(self.store.view, taken, self.store.covered)
            except Exception:
                _log.exception("a snapshot listener failed (ignored)")

    # -- requests -----------------------------------------------------------------------

    def _deliver_request(self, request: InstanceRequest) -> None:
        subs = self._request_subs.get(request.id)
        if not subs:
            return
        for sub in list(subs):
            if not sub.done and sub.offer(request):
                subs.remove(sub)
        if not subs:
            del self._request_subs[request.id]
            self.tracker.unwatch(request.id)

    def _end_request(self, request_id: str, error: BaseException) -> None:
        for sub in self._request_subs.pop(request_id, []):
            sub.fail(error)
        self.tracker.unwatch(request_id)

    def _send_fetch(self, request_id: str) -> None:
        self.tracker.sending(request_id, self.store)
        self.stats.request_calls += 1
        task = asyncio.get_running_loop().create_task(self._fetch(request_id))
        self._fetches.add(task)
        task.add_done_callback(self._fetches.discard)

    async def _fetch(self, request_id: str) -> None:
        try:
            request = await self._get_request(request_id)
        except NotFoundError as error:
            self._not_found(request_id, error)
        except StreamrunError as error:
            self.stats.errors += 1
            now = self.now()
            self.pacer.failed(now, error, listing=False)
            if is_permanent(error, listing=False):
                if getattr(error, "status", None) in (401, 403):
                    self._end_all(error)
                else:
                    self._end_request(request_id, error)
            else:
                self.tracker.failed(request_id, error)
        else:
            self._fetched(request_id, request)
        self._maybe_stop()

    def _not_found(self, request_id: str, error: NotFoundError) -> None:
        now = self.now()
        if self.tracker.within_grace(request_id, now):
            # Just launched: a list or a request may lag behind the launch for a moment.
            self.tracker.failed(request_id, error)
            return
        last = self.tracker.known(request_id)
        if last is None:
            failure = WaiterError(f"instance request {request_id} does not exist")
        else:
            failure = WaiterError(
                f"instance request {request_id} disappeared; last seen {last.state}",
                last_seen=last,
            )
        failure.__cause__ = error
        self._end_request(request_id, failure)

    def _fetched(self, request_id: str, request: InstanceRequest) -> None:
        entry = self.tracker.fetched(request_id, request, self.now())
        if entry is None:
            return
        self.store.learn_request(request_id, request.configuration_id)
        subs = self._request_subs.get(request_id, [])
        if entry.vanished_at_fetch and all(
            sub.acceptor.judge(request.state) is Verdict.WAIT for sub in subs
        ):
            # Every instance of the request was listed, then stopped; the request (asked
            # after that) still waits, so it can never run.
            self._end_request(
                request_id,
                WaiterError(
                    f"every instance of request {request_id} was stopped; it can no "
                    f"longer reach RUNNING (the request says {request.state})",
                    last_seen=request,
                ),
            )
            return
        self._deliver_request(request)
