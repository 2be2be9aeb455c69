"""The reaper: stop what expired leases hold, confirm, and record the outcome.

``plan_reap`` is the pure core: leases and one observation (an instance list and what it
covered) in, decisions out. ``Reaper`` is the thin I/O around it: one list when no fresh
observation is given, the stops, one list to confirm them, the store updates and events.
A stop is successful only once a list made after it no longer shows the instance running
(absent, terminal or STOPPING); otherwise it is a ``ReapFailed`` event and the lease stays,
so the next round tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import attrs

from .._exceptions import NotFoundError, StreamrunError
from .._models import Instance, InstanceRequest, InstanceState
from ._events import LeaseEnded, LeaseReaped, LeaseUnmatched, ReapFailed
from ._lease import Lease, names_match
from ._stores import LeaseStore

__all__ = ["Observation", "ReapPlan", "ReapReport", "Reaper", "plan_reap"]

_log = logging.getLogger("streamrun_async.guard")

# Seconds a bound instance may be missing from lists before its lease counts as ended,
# when no list has shown it yet (lists may lag behind launches).
DEFAULT_GRACE = 120.0


def _alive(state: InstanceState) -> bool:
    return state.can_become_running


def _stopped(state: InstanceState) -> bool:
    return state.is_terminal


@attrs.frozen
class Observation:
    """An instance list taken at wall time ``taken_at``. ``covered``: the configurations
    it listed (None: the whole account), so absence means something only within them."""

    instances: Mapping[str, Instance]
    taken_at: float
    covered: frozenset[str] | None = None

    def covers(self, configuration_id: str) -> bool:
        """Whether this list shows every instance of that configuration."""
        return self.covered is None or configuration_id in self.covered

    def configuration_of(self, instance: Instance) -> str | None:
        """The instance's configuration, from the instance, or the one configuration listed."""
        if instance.configuration_id is not None:
            return instance.configuration_id
        if self.covered is not None and len(self.covered) == 1:
            return next(iter(self.covered))
        return None


@attrs.frozen
class ReapPlan:
    """What one observation decides for a set of leases.

    ``bound``: leases that learned their instance id (updated copies); ``stop``: expired
    leases whose instance may still run; ``gone``: leases whose instance has ended;
    ``stopping``: instances already STOPPING; ``unmatched``: expired leases no instance
    in the list could be matched to.
    """

    bound: tuple[Lease, ...] = ()
    stop: tuple[Lease, ...] = ()
    gone: tuple[Lease, ...] = ()
    stopping: tuple[Lease, ...] = ()
    unmatched: tuple[Lease, ...] = ()


def _by_configuration(observation: Observation) -> dict[str | None, list[Instance]]:
    index: dict[str | None, list[Instance]] = {}
    for inst in observation.instances.values():
        index.setdefault(observation.configuration_of(inst), []).append(inst)
    return index


def _match(
    lease: Lease, index: Mapping[str | None, list[Instance]], claimed: set[str]
) -> Instance | None:
    """The one listed instance this unbound lease launched, if exactly one fits."""
    candidates = [
        inst
        for inst in (*index.get(lease.configuration_id, ()), *index.get(None, ()))
        if inst.id not in claimed
    ]
    if lease.request_id is not None and any(inst.request_id for inst in candidates):
        # The list carries request ids: only this request's instances can be the lease's.
        candidates = [inst for inst in candidates if inst.request_id == lease.request_id]
    if lease.name is not None:
        candidates = [inst for inst in candidates if names_match(lease.name, inst.name)]
    elif lease.request_id is None or any(i.request_id != lease.request_id for i in candidates):
        return None  # a default launch has no name: only its request id tells its instance
    return candidates[0] if len(candidates) == 1 else None


def plan_reap(
    leases: Sequence[Lease], observation: Observation, now: float, grace: float = DEFAULT_GRACE
) -> ReapPlan:
    """Decide, for every lease the observation covers, what to do at wall time ``now``."""
    claimed = {lease.instance_id for lease in leases if lease.instance_id is not None}
    bound: list[Lease] = []
    stop: list[Lease] = []
    gone: list[Lease] = []
    stopping: list[Lease] = []
    unmatched: list[Lease] = []
    index: dict[str | None, list[Instance]] | None = None  # built only if a lease needs it
    for lease in leases:
        if not observation.covers(lease.configuration_id):
            continue
        if lease.instance_id is None:
            if index is None:
                index = _by_configuration(observation)
            found = _match(lease, index, claimed)
            if found is None:
                if lease.expired(now):
                    unmatched.append(lease)
                continue
            claimed.add(found.id)
            lease = attrs.evolve(lease, instance_id=found.id, seen_at=observation.taken_at)
            bound.append(lease)
        assert lease.instance_id is not None
        instance = observation.instances.get(lease.instance_id)
        if instance is None:
            if lease.seen_at is not None or now - lease.created_at > grace:
                gone.append(lease)
            elif lease.expired(now):
                stop.append(lease)  # not listed yet: stop it by id all the same
            continue
        if lease.seen_at is None:
            lease = attrs.evolve(lease, seen_at=observation.taken_at)
            bound.append(lease)
        if _stopped(instance.state):
            gone.append(lease)
        elif not _alive(instance.state):
            stopping.append(lease)
        elif lease.expired(now):
            stop.append(lease)
    return ReapPlan(tuple(bound), tuple(stop), tuple(gone), tuple(stopping), tuple(unmatched))


@attrs.frozen
class ReapFailure:
    """A lease whose stop did not take this round (it is retried on the next)."""

    lease: Lease
    reason: str
    error: str | None = None


@attrs.frozen
class ReapReport:
    """The outcome of one reaping round.

    ``stopped``: stops confirmed (leases removed); ``failed``: stops that failed or did
    not take (leases kept); ``ended``: leases whose instance was already gone (removed);
    ``unmatched``: expired leases no instance could be found for; ``to_stop``: what a dry
    run would have stopped.
    """

    stopped: tuple[Lease, ...] = ()
    failed: tuple[ReapFailure, ...] = ()
    ended: tuple[Lease, ...] = ()
    unmatched: tuple[Lease, ...] = ()
    to_stop: tuple[Lease, ...] = ()
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        """True when nothing failed and nothing expired was left unidentified."""
        return not self.failed and not self.unmatched


Emit = Callable[[Any], None]


def _described(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class Reaper:
    """One owner's reaping rounds (``owner=None``: every owner of the store, for cron)."""

    def __init__(
        self,
        *,
        owner: str | None,
        store: LeaseStore,
        list_instances: Callable[[], Awaitable[list[Instance]]],
        stop_instance: Callable[[str], Awaitable[object]],
        get_request: Callable[[str], Awaitable[InstanceRequest]],
        clock: Callable[[], float],
        emit: Emit,
        grace: float = DEFAULT_GRACE,
    ) -> None:
        self._owner = owner
        self._store = store
        self._list = list_instances
        self._stop = stop_instance
        self._get_request = get_request
        self._clock = clock
        self._emit = emit
        self._grace = grace
        self.observed: Callable[[Observation], object] = lambda _: None
        """Called with every list the reaper makes itself (the meter listens)."""

    async def observe(self) -> Observation:
        """One account-wide list, now."""
        listed = await self._list()
        observation = Observation({inst.id: inst for inst in listed}, self._clock())
        self.observed(observation)
        return observation

    async def reap(
        self, observation: Observation | None = None, *, dry_run: bool = False
    ) -> ReapReport:
        """One round: read the leases, decide on ``observation`` (else list once), stop
        what expired, confirm with a second list, update the store."""
        leases = await self._store.leases(self._owner)
        if not leases:
            return ReapReport(dry_run=dry_run)
        if observation is None:
            observation = await self.observe()
        plan = plan_reap(leases, observation, self._clock(), self._grace)
        to_stop = list(plan.stop)
        unmatched = list(plan.unmatched)
        if unmatched:
            found, unmatched = await self._resolve_by_request(unmatched, leases)
            to_stop += found
        if dry_run:
            return ReapReport(to_stop=tuple(to_stop), unmatched=tuple(unmatched), dry_run=True)
        if plan.bound:
            await self._store.put(plan.bound)
        if plan.gone:
            await self._store.delete(plan.gone)
            for lease in plan.gone:
                self._emit(LeaseEnded(lease=lease))
        for lease in unmatched:
            self._emit(LeaseUnmatched(lease=lease))
        stopped, failed = await self._stop_and_confirm(to_stop)
        return ReapReport(
            stopped=tuple(stopped),
            failed=tuple(failed),
            ended=plan.gone,
            unmatched=tuple(unmatched),
        )

    async def _resolve_by_request(
        self, unmatched: list[Lease], leases: Sequence[Lease]
    ) -> tuple[list[Lease], list[Lease]]:
        """Expired leases the list could not tell apart, bound through their request.

        When every lease of a request has expired, which instance is which does not
        matter: all of the request's instances are stopped.
        """
        found: list[Lease] = []
        still: list[Lease] = []
        claimed = {lease.instance_id for lease in leases if lease.instance_id is not None}
        by_request: dict[str, list[Lease]] = {}
        for lease in unmatched:
            if lease.request_id is None:
                still.append(lease)
            else:
                by_request.setdefault(lease.request_id, []).append(lease)
        now = self._clock()
        for request_id, group in by_request.items():
            members = [
                lease
                for lease in leases
                if lease.request_id == request_id and lease.instance_id is None
            ]
            try:
                request = await self._get_request(request_id)
            except StreamrunError as error:
                _log.warning("reaper: cannot read request %s: %s", request_id, _described(error))
                still += group
                continue
            ids = [i for i in request.instance_ids if i not in claimed]
            if len(ids) == len(members) and all(lease.expired(now) for lease in members):
                found += [
                    attrs.evolve(lease, instance_id=instance_id)
                    for lease, instance_id in zip(members, ids, strict=True)
                ]
            else:
                still += group
        return found, still

    async def stop(self, leases: Sequence[Lease]) -> ReapReport:
        """Stop these leases' instances whatever their deadlines (a budget breach), in
        the order given, and confirm as a round does."""
        stopped, failed = await self._stop_and_confirm(leases, expired_only=False)
        return ReapReport(stopped=tuple(stopped), failed=tuple(failed))

    async def _stop_and_confirm(
        self, leases: Sequence[Lease], *, expired_only: bool = True
    ) -> tuple[list[Lease], list[ReapFailure]]:
        if not leases:
            return [], []
        # Re-read just before stopping: a lease extended or released since the round
        # began (by another process too) must not be stopped.
        current = {lease.id: lease for lease in await self._store.leases(self._owner)}
        now = self._clock()
        asked: list[Lease] = []
        failed: list[ReapFailure] = []
        for lease in leases:
            fresh = current.get(lease.id)
            if fresh is None or (expired_only and not fresh.expired(now)):
                continue
            assert lease.instance_id is not None
            try:
                await self._stop(lease.instance_id)
            except NotFoundError:
                pass  # already gone: the confirming list will say so
            except StreamrunError as error:
                failed.append(self._failed(lease, "stop_failed", _described(error)))
                continue
            asked.append(lease)
        if not asked:
            return [], failed
        try:
            check = await self.observe()
        except StreamrunError as error:
            return [], failed + [
                self._failed(lease, "not_confirmed", f"the confirming list failed: {error}")
                for lease in asked
            ]
        stopped: list[Lease] = []
        for lease in asked:
            assert lease.instance_id is not None
            instance = check.instances.get(lease.instance_id)
            if instance is not None and _alive(instance.state):
                failed.append(
                    self._failed(lease, "not_confirmed", f"still listed as {instance.state}")
                )
            else:
                stopped.append(lease)
        if stopped:
            await self._store.delete(stopped)
            for lease in stopped:
                assert lease.instance_id is not None
                self._emit(LeaseReaped(lease=lease, instance_id=lease.instance_id))
        return stopped, failed

    def _failed(self, lease: Lease, reason: str, error: str | None) -> ReapFailure:
        assert lease.instance_id is not None
        self._emit(
            ReapFailed(lease=lease, instance_id=lease.instance_id, reason=reason, error=error)
        )
        return ReapFailure(lease, reason, error)
