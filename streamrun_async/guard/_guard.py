"""The guard of one owner: leases around launches, the reaper loop, the budget meter.

A guarded client calls :meth:`Guard.launch` around every launch POST; the guard listens
to the client's shared poller (no extra calls while anything is watched) and lists once
per ``reap_interval`` only when it holds leases and no fresh list came from the poller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from .._exceptions import (
    APIError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    StreamrunError,
)
from .._models import Instance, InstanceSettings, InstanceState
from ._budget import Budget, Meter, Spend, check_launch
from ._errors import LeaseNotFoundError, LeaseStoreError, UnknownOwnerError
from ._events import (
    BudgetBreached,
    BudgetWarning,
    LeaseUnmatched,
    LeaseWriteFailed,
    ReapFailed,
)
from ._lease import Lease, check_owner, check_ttl
from ._reaper import Observation, Reaper, ReapPlan, ReapReport, plan_reap
from ._stores import LeaseStore, SQLiteLeaseStore

if TYPE_CHECKING:
    from .._client import StreamrunClient

__all__ = [
    "Guard",
    "GuardStats",
    "Leases",
    "check_known_owner",
    "extend_lease",
    "find_lease",
    "release_lease",
]

_T = TypeVar("_T")
_log = logging.getLogger("streamrun_async.guard")
_DEFAULT_RATE = Budget().hourly_rate
# Seconds aclose() lets a round or a budget stop under way finish before cancelling it.
_CLOSE_GRACE = 5.0
# Events logged at WARNING: something may still bill, or a limit was hit.
_WARNINGS = (ReapFailed, LeaseUnmatched, LeaseWriteFailed, BudgetBreached)


def _seconds(value: object, what: str) -> float:
    seconds = check_ttl(value, what)
    if seconds is None:
        raise InvalidArgumentTypeError(f"{what} must be seconds or a timedelta, got None")
    return seconds


async def check_known_owner(store: LeaseStore, owner: str) -> str:
    """``owner`` if the store has seen it, else ``UnknownOwnerError`` naming those it has."""
    check_owner(owner)
    known = await store.owners()
    if owner not in known:
        listed = ", ".join(sorted(known)) or "none"
        raise UnknownOwnerError(
            f"the lease store {store.location!r} has no owner {owner!r} (owners: {listed})"
        )
    return owner


def find_lease(leases: Sequence[Lease], key: str) -> Lease:
    """The one lease that ``key`` (instance name, instance id or lease id) names."""
    if not isinstance(key, str) or not key:
        raise InvalidArgumentTypeError(f"a lease is named by a non-empty str, got {key!r}")
    found = [lease for lease in leases if lease.matches(key)]
    if not found:
        raise LeaseNotFoundError(f"no lease named {key!r}")
    if len(found) > 1:
        ids = ", ".join(lease.id for lease in found)
        raise InvalidArgumentError(f"{key!r} names {len(found)} leases ({ids}): use a lease id")
    return found[0]


async def extend_lease(
    store: LeaseStore, owner: str | None, key: str, by: float | timedelta, now: float
) -> Lease:
    """Move the deadline of the lease ``key`` names ``by`` later (from now if it had none)."""
    seconds = _seconds(by, "by")
    lease = find_lease(await store.leases(owner), key)
    start = lease.expires_at if lease.expires_at is not None else now
    extended = attrs.evolve(lease, expires_at=start + seconds)
    await store.put([extended])
    return extended


async def release_lease(store: LeaseStore, owner: str | None, key: str) -> Lease:
    """Forget the lease ``key`` names: its instance keeps running, unguarded."""
    lease = find_lease(await store.leases(owner), key)
    await store.delete([lease])
    return lease


@attrs.define
class GuardStats:
    """What a guard has done: reaping ``rounds`` and the instance ``lists`` it made itself
    (to observe, or to confirm stops); lists it read from the poller are not counted."""

    rounds: int = 0
    lists: int = 0


class Leases:
    """``client.leases``: the leases of the client's guard's owner."""

    def __init__(self, guard: Guard) -> None:
        self._guard = guard

    def __repr__(self) -> str:
        return f"<Leases of {self._guard.owner!r}>"

    async def list(self) -> list[Lease]:
        """This owner's leases (from every process of the owner), oldest first."""
        return await self._guard.store.leases(self._guard.owner)

    async def extend(self, name_or_id: str, *, by: float | timedelta) -> Lease:
        """Move a lease's deadline later by ``by`` (seconds or a timedelta); returns it."""
        guard = self._guard
        lease = await extend_lease(guard.store, guard.owner, name_or_id, by, guard.clock())
        guard._replace_cached(lease)
        return lease

    async def release(self, name_or_id: str) -> Lease:
        """Stop guarding an instance: the lease goes, the instance keeps running."""
        guard = self._guard
        lease = await release_lease(guard.store, guard.owner, name_or_id)
        guard._forget_cached([lease])
        return lease


class Guard:
    """Leases, a reaper and a budget for one owner: pass it as ``StreamrunClient(guard=...)``.

    ::

        guard = sr.Guard(owner="golive-bot", default_ttl=timedelta(hours=2),
                         budget=sr.Budget(max_running=4, max_spend=10.0))
        async with sr.StreamrunClient(guard=guard) as client:
            await client.configurations.launch(cfg, [sr.InstanceSettings(name="cam-1")])

    ``store``: a :class:`LeaseStore` (default: :class:`SQLiteLeaseStore` in the user's
    state directory). ``default_ttl``: deadline of launches that give none (None: no
    deadline). ``reap_interval``: seconds between reaping rounds. ``clock``: wall time in
    seconds since the epoch (for tests). The guard starts with the client (``async with``,
    or the first launch) and first sweeps what earlier runs of this owner left expired.
    """

    def __init__(
        self,
        owner: str,
        *,
        store: LeaseStore | None = None,
        default_ttl: float | timedelta | None = None,
        budget: Budget | None = None,
        reap_interval: float | timedelta = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.owner = check_owner(owner)
        if store is not None and not isinstance(store, LeaseStore):
            raise InvalidArgumentTypeError(f"store must be a LeaseStore, got {store!r}")
        if budget is not None and not isinstance(budget, Budget):
            raise InvalidArgumentTypeError(f"budget must be a Budget, got {budget!r}")
        if not callable(clock):
            raise InvalidArgumentTypeError("clock must be a function returning epoch seconds")
        self.default_ttl = check_ttl(default_ttl, "default_ttl")
        self.reap_interval = _seconds(reap_interval, "reap_interval")
        self.budget = budget
        self.clock = clock
        self.store = store if store is not None else SQLiteLeaseStore()
        self._host = socket.gethostname()
        self._meter = Meter()
        self._leases: dict[str, Lease] = {}
        self._latest: Observation | None = None
        self._client: StreamrunClient | None = None
        self._reaper: Reaper | None = None
        self._emit: Callable[[Any], None] = lambda _: None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._start_lock: asyncio.Lock | None = None
        self._launch_lock: asyncio.Lock | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # budget stops under way
        self._closing = False
        self._warned = False
        self._breached = False
        self._remove_listener: Callable[[], None] | None = None
        self.stats = GuardStats()
        """Rounds and list calls of this guard."""

    def __repr__(self) -> str:
        return f"<Guard {self.owner!r} {self.store!r}>"

    # -- binding to a client ---------------------------------------------------------

    def _attach(
        self,
        client: StreamrunClient,
        *,
        emit: Callable[[Any], None],
        add_snapshot_listener: Callable[[Callable[..., None]], Callable[[], None]] | None,
    ) -> None:
        """Bind to the client that will launch through this guard (one client only)."""
        if self._client is not None and self._client is not client:
            raise InvalidArgumentError("this Guard already guards another StreamrunClient")
        self._client = client
        self._emit = self._logged(emit)
        self._add_listener = add_snapshot_listener
        self._reaper = Reaper(
            owner=self.owner,
            store=self.store,
            list_instances=client.instances.list,
            stop_instance=client.instances.stop,
            get_request=client.instance_requests.get,
            clock=self.clock,
            emit=self._emit,
        )
        self._reaper.observed = self._listed

    @staticmethod
    def _logged(emit: Callable[[Any], None]) -> Callable[[Any], None]:
        def emit_and_log(event: Any) -> None:
            level = logging.WARNING if isinstance(event, _WARNINGS) else logging.INFO
            _log.log(level, "guard: %r", event)
            emit(event)

        return emit_and_log

    def _bound_reaper(self) -> Reaper:
        if self._reaper is None:
            raise InvalidArgumentError("this Guard is not attached: StreamrunClient(guard=...)")
        return self._reaper

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Register the owner, sweep expired leases of earlier runs, start the reaper loop.

        Idempotent; a store that cannot be used raises here, before anything is sent.
        """
        if self._running():
            return
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._running():
                return
            reaper = self._bound_reaper()
            await self.store.add_owner(self.owner)
            self._cache(await self.store.leases(self.owner))
            try:
                await self._round(reaper, None)
            except StreamrunError as error:
                # The API being down must not keep the bot from starting: the loop retries.
                _log.warning("guard: the start-up sweep failed: %s", error)
            if self._add_listener is not None and self._remove_listener is None:
                self._remove_listener = self._add_listener(self._on_snapshot)
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(
                self._run(reaper), name=f"streamrun-reaper-{self.owner}"
            )

    def _running(self) -> bool:
        """The loop task is alive in this event loop (a client may outlive a loop)."""
        task = self._task
        if task is None or task.done():
            return False
        if task.get_loop() is asyncio.get_running_loop():
            return True
        # The loop of the first run ended: start afresh in this one.
        self._task = None
        self._start_lock = asyncio.Lock()
        self._launch_lock = None
        return False

    async def aclose(self) -> None:
        """Stop the reaper loop (leases stay in the store for the next run or for cron).

        A round or budget stop under way may finish (up to a few seconds): a stop is not
        abandoned between its DELETE and its confirming list.
        """
        self._closing = True
        if self._wake is not None:
            self._wake.set()
        tasks = [*self._tasks, *([self._task] if self._task is not None else [])]
        self._task = None
        loop = asyncio.get_running_loop()
        tasks = [task for task in tasks if task.get_loop() is loop and not task.done()]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=_CLOSE_GRACE)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._closing = False
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        await self.store.aclose()

    async def _run(self, reaper: Reaper) -> None:
        assert self._wake is not None
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.reap_interval)
            self._wake.clear()
            if self._closing:
                break
            try:
                await self._round(reaper, self._fresh_observation())
            except StreamrunError as error:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # A library turned our cancellation into an error of its own (redis-py
                    # may, mid-connect): the loop must still end, or asyncio.run hangs.
                    raise asyncio.CancelledError from error
                _log.warning(
                    "guard: reaping round failed, retried in %gs: %s", self.reap_interval, error
                )

    def _fresh_observation(self) -> Observation | None:
        """The poller's last list, if recent and covering every configuration leased."""
        latest = self._latest
        if latest is None or self.clock() - latest.taken_at > self.reap_interval:
            return None
        if all(latest.covers(lease.configuration_id) for lease in self._leases.values()):
            return latest
        return None

    async def _round(self, reaper: Reaper, observation: Observation | None) -> ReapReport:
        self.stats.rounds += 1
        report = await reaper.reap(observation)
        self._cache(await self.store.leases(self.owner))
        return report

    async def reap(self, *, dry_run: bool = False) -> ReapReport:
        """One reaping round now, with a fresh list (the loop does this by itself)."""
        reaper = self._bound_reaper()
        if dry_run:
            return await reaper.reap(dry_run=True)
        return await self._round(reaper, None)

    # -- observations ------------------------------------------------------------------

    def _on_snapshot(
        self, snapshot: Mapping[str, Instance], taken_at: float, covered: frozenset[str] | None
    ) -> None:
        """Poller listener: meter the owner's instances, wake the loop if a lease expired.

        ``taken_at`` is on the poller's clock; the guard keeps to its own wall clock.
        """
        # The view is live: copy it, as the reaper may act on it after the next tick.
        observation = Observation(dict(snapshot), self.clock(), covered)
        self._latest = observation
        plan = self._observed(observation)
        if (plan.stop or plan.gone or plan.unmatched) and self._wake is not None:
            self._wake.set()

    def _listed(self, observation: Observation) -> None:
        self.stats.lists += 1
        self._observed(observation)

    def _observed(self, observation: Observation) -> ReapPlan:
        """Meter a list (the poller's or the reaper's) and return what it decides."""
        plan = plan_reap(list(self._leases.values()), observation, observation.taken_at)
        for lease in plan.bound:
            self._leases[lease.id] = lease
        present: dict[str, str] = {}
        running: set[str] = set()
        for lease in self._leases.values():
            instance = observation.instances.get(lease.instance_id or "")
            if instance is None:
                continue
            present[instance.id] = lease.configuration_id
            if instance.state is InstanceState.RUNNING:
                running.add(instance.id)
        covered = None if observation.covered is None else set(observation.covered)
        self._meter.observe(present, running, observation.taken_at, covered)
        self._check_spend()
        return plan

    def _check_spend(self) -> None:
        budget = self.budget
        if budget is None or budget.max_spend is None:
            return
        spent = self._meter.spend(budget).cost
        if not self._warned and spent >= budget.warn_at * budget.max_spend:
            self._warned = True
            self._emit(BudgetWarning(owner=self.owner, spent=spent, max_spend=budget.max_spend))
        if not self._breached and spent >= budget.max_spend:
            self._breached = True
            newest_first = sorted(
                (lease for lease in self._leases.values() if lease.instance_id is not None),
                key=lambda lease: lease.created_at,
                reverse=True,
            )
            stopping = newest_first if budget.on_breach == "stop" else []
            self._emit(
                BudgetBreached(
                    owner=self.owner,
                    spent=spent,
                    max_spend=budget.max_spend,
                    stopping=tuple(lease.instance_id or "" for lease in stopping),
                )
            )
            if stopping:
                task = asyncio.get_running_loop().create_task(
                    self._stop_on_breach(stopping), name="streamrun-budget-stop"
                )
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _stop_on_breach(self, leases: Sequence[Lease]) -> None:
        try:
            await self._bound_reaper().stop(leases)
            self._cache(await self.store.leases(self.owner))
        except StreamrunError as error:
            _log.warning("guard: stopping on budget breach failed: %s", error)

    def spend(self) -> Spend:
        """RUNNING time of this owner's instances seen by this guard, and its cost."""
        return self._meter.spend(self.budget or Budget(hourly_rate=_DEFAULT_RATE))

    # -- the lease cache ----------------------------------------------------------------

    def _cache(self, leases: Sequence[Lease]) -> None:
        self._leases = {lease.id: lease for lease in leases}

    def _replace_cached(self, lease: Lease) -> None:
        self._leases[lease.id] = lease

    def _forget_cached(self, leases: Sequence[Lease]) -> None:
        for lease in leases:
            self._leases.pop(lease.id, None)

    # -- launching ------------------------------------------------------------------------

    @property
    def leases(self) -> Leases:
        """The ``client.leases`` namespace of this guard."""
        return Leases(self)

    def _ttls(
        self, instances: Sequence[InstanceSettings] | None, ttl: object
    ) -> list[tuple[str | None, float | None]]:
        launch_ttl = check_ttl(ttl)
        fallback = launch_ttl if launch_ttl is not None else self.default_ttl
        if instances is None:
            return [(None, fallback)]
        return [
            (item.name, check_ttl(item.ttl) if item.ttl is not None else fallback)
            for item in instances
        ]

    async def launch(
        self,
        configuration_id: str,
        instances: Sequence[InstanceSettings] | None,
        ttl: float | timedelta | None,
        send: Callable[[], Awaitable[_T]],
    ) -> _T:
        """Write the launch's leases (checking the budget), then ``send()`` the POST.

        Nothing is sent if the budget refuses or the store cannot be written. A launch
        that certainly failed takes its leases back; one whose outcome is unknown keeps
        them, so the reaper finds the instances by name if they exist.
        """
        wanted = self._ttls(instances, ttl)
        await self.start()
        if self._launch_lock is None:
            self._launch_lock = asyncio.Lock()
        # Concurrent launches of this guard (launch_many) check the budget one at a time,
        # each counting the leases the one before wrote. Only the POSTs run concurrently.
        async with self._launch_lock:
            leases = await self._write_leases(configuration_id, wanted)
        try:
            result = await send()
        except APIError as error:
            if not error.outcome_unknown:
                await self._take_back(leases)
            raise
        except StreamrunError:
            await self._take_back(leases)
            raise
        await self._record(leases, result)
        return result

    async def _write_leases(
        self, configuration_id: str, wanted: list[tuple[str | None, float | None]]
    ) -> list[Lease]:
        """Check the budget and write the leases of one launch; returns them."""
        now = self.clock()
        current = await self.store.leases(self.owner)
        self._cache(current)
        if self.budget is not None:
            budget = self.budget
            committed = sum(lease.remaining(now) or 0.0 for lease in current)
            check_launch(
                budget,
                running=len(current),
                launching=len(wanted),
                spent=self._meter.spend(budget).cost,
                committed=budget.cost(committed),
                launch_cost=budget.cost(sum(seconds or 0.0 for _, seconds in wanted)),
            )
        # A name relaunched after a lost answer keeps its pending lease (same id).
        pending = {
            lease.name: lease.id
            for lease in current
            if lease.configuration_id == configuration_id
            and lease.name is not None
            and lease.instance_id is None
        }
        leases = [
            Lease(
                id=(pending.get(name) if name is not None else None) or uuid.uuid4().hex,
                owner=self.owner,
                host=self._host,
                pid=os.getpid(),
                configuration_id=configuration_id,
                name=name,
                created_at=now,
                expires_at=None if seconds is None else now + seconds,
            )
            for name, seconds in wanted
        ]
        await self.store.put(leases)
        for lease in leases:
            self._leases[lease.id] = lease
        return leases

    async def _take_back(self, leases: Sequence[Lease]) -> None:
        self._forget_cached(leases)
        try:
            await self.store.delete(leases)
        except LeaseStoreError as error:
            # Harmless: a lease without an instance never stops anything.
            _log.warning("guard: could not remove the leases of a failed launch: %s", error)

    async def _record(self, leases: Sequence[Lease], result: object) -> None:
        request_id = getattr(result, "id", None)
        instance_ids: tuple[str, ...] = tuple(getattr(result, "instance_ids", ()) or ())
        if len(instance_ids) != len(leases):
            instance_ids = ()
        updated = [
            attrs.evolve(
                lease,
                request_id=request_id if isinstance(request_id, str) else None,
                instance_id=instance_ids[n] if instance_ids else None,
            )
            for n, lease in enumerate(leases)
        ]
        for lease in updated:
            self._leases[lease.id] = lease
        try:
            await self.store.put(updated)
        except LeaseStoreError as error:
            self._emit(LeaseWriteFailed(leases=tuple(updated), error=str(error)))
