"""launch_many: many instances across many configurations, each launched exactly once.

Streamrun has no idempotency key and bills per second, so a launch whose answer was lost
is never sent again blindly. The promise, with its assumptions:

- **One client, one launch per name.** While a launch of (configuration, name) is in flight
  through a client, another call of that client for the name waits for its outcome and
  reports it as existing; it never sends a second POST. A launch counts as done only once a
  list shows it (or ``settle`` seconds later), so the next call's list sees it.
- **Lost answers are settled by listing.** A name whose launch answer was lost is launched
  again only when two whole lists taken at least ``settle`` seconds apart agree it is absent
  (a list that could not be read whole proves nothing). Instances of the lost request (by
  ``requestId``) count as found whatever their names. This assumes the server lists an
  accepted launch within ``settle`` seconds.
- **Names not echoed are never guessed.** Once an instance of this client's launch shows no
  name or another name than sent (or a listed name differs from a planned one only in case
  or length), names in that configuration are never relaunched on absence: ``UNKNOWN``.
- **Ended instances do not count.** A listed instance that can no longer run (STOPPING or
  terminal) does not satisfy its name: the name is launched again.
- **Beyond one client**, pass ``StreamrunClient(coordinator=...)``: the list, launch and
  confirmation of each (configuration, name) then hold a lock shared by every process using
  the same coordinator (see ``_coordinator``).

Every planned name has one :class:`LaunchItem` whose ``status`` moves only through
:func:`transition`, which refuses any move its table does not allow.
"""

from __future__ import annotations

import asyncio
import enum
import math
import time
import weakref
from collections import defaultdict
from collections.abc import (
    AsyncIterator,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import AbstractAsyncContextManager, nullcontext
from datetime import timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import attrs

from ._coordinator import Coordinator, CoordinatorError
from ._exceptions import (
    APIError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    StreamrunError,
    WaitError,
    WaitTimeoutError,
)
from ._http import path_segment
from ._models import Instance, InstanceRequest, InstanceSettings, InstanceState, Overrides
from ._resources import check_instances

if TYPE_CHECKING:
    from ._client import StreamrunClient

__all__ = [
    "LaunchError",
    "LaunchEvent",
    "LaunchEventKind",
    "LaunchItem",
    "LaunchReport",
    "LaunchSpec",
    "LaunchStatus",
    "LaunchTimeoutError",
    "LaunchedInstance",
    "OnExisting",
    "Plan",
    "TransitionError",
]

# Cleanup after a cancellation or failure (settle what was on the wire, roll back).
_CLEANUP_SECONDS = 30.0
# Launches of one chunk whose answers were all lost before it is reported failed.
_MAX_LAUNCH_ROUNDS = 5
# A reconciliation gives up (UNKNOWN) after this many lists that could not be read whole.
_MAX_LIST_FAILURES = 3
# After a launch, wait at most this many settle periods for a list to show it.
_CONFIRM_SETTLES = 3
# A coordinator's lease must outlast the locked work by this much beyond one POST.
_LEASE_MARGIN = 5.0

OnExisting = Literal["keep", "update"]


def _settings_tuple(items: Iterable[InstanceSettings]) -> tuple[InstanceSettings, ...]:
    return tuple(items)


@attrs.frozen
class LaunchSpec:
    """The instances to launch for one configuration."""

    configuration_id: str
    instances: tuple[InstanceSettings, ...] = attrs.field(converter=_settings_tuple)


Plan = Mapping[str, Sequence[InstanceSettings]] | Iterable[LaunchSpec]
"""``{configuration_id: [InstanceSettings, ...]}`` or a sequence of :class:`LaunchSpec`."""


# -- one state per planned name --------------------------------------------------------


class LaunchStatus(enum.Enum):
    """Where one planned name stands.

    PLANNED: nothing sent for it (yet, or ever if the call ended first). IN_FLIGHT: its
    launch is on the wire or being settled. EXISTING: it was already there (not launched
    by this call). LAUNCHED: this call's launch was accepted. RUNNING: and its request
    runs. UPDATED: it existed and the plan's overrides were patched onto it. FAILED:
    certainly not launched by this call (or, for an existing name, not updated).
    UNKNOWN: it may or may not have launched; ``reason`` says why it cannot be learned.
    ROLLED_BACK: launched by this call, then stopped because the call failed.
    """

    PLANNED = "PLANNED"
    IN_FLIGHT = "IN_FLIGHT"
    EXISTING = "EXISTING"
    LAUNCHED = "LAUNCHED"
    RUNNING = "RUNNING"
    UPDATED = "UPDATED"
    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN"
    ROLLED_BACK = "ROLLED_BACK"


_S = LaunchStatus
MOVES: Mapping[LaunchStatus, frozenset[LaunchStatus]] = MappingProxyType(
    {
        _S.PLANNED: frozenset({_S.IN_FLIGHT, _S.EXISTING, _S.FAILED, _S.UNKNOWN}),
        # Back to PLANNED: two lists agreed it is absent, so it is sent again.
        _S.IN_FLIGHT: frozenset({_S.PLANNED, _S.LAUNCHED, _S.FAILED, _S.UNKNOWN}),
        _S.EXISTING: frozenset({_S.UPDATED, _S.FAILED}),
        _S.LAUNCHED: frozenset({_S.RUNNING, _S.ROLLED_BACK}),
        _S.RUNNING: frozenset({_S.ROLLED_BACK}),
        # A later list (cleanup) may find what a lost answer hid.
        _S.UNKNOWN: frozenset({_S.LAUNCHED}),
        _S.UPDATED: frozenset(),
        _S.FAILED: frozenset(),
        _S.ROLLED_BACK: frozenset(),
    }
)
"""Each status -> the statuses it may move to; nothing else is allowed."""


class TransitionError(StreamrunError, RuntimeError):
    """A move the status table does not allow: a bug in ``launch_many``, never bad input."""


def transition(current: LaunchStatus, new: LaunchStatus) -> LaunchStatus:
    """Return ``new`` if ``current`` may move to it, else raise :class:`TransitionError`."""
    if new not in MOVES[current]:
        raise TransitionError(f"a launch item cannot move from {current.name} to {new.name}")
    return new


_PRESENT = frozenset({_S.EXISTING, _S.LAUNCHED, _S.RUNNING, _S.UPDATED})
_MINE = frozenset({_S.LAUNCHED, _S.RUNNING})


@attrs.define
class LaunchItem:
    """What is known of one planned name. ``status`` changes only through the table.

    ``existing``: it was there before (EXISTING, UPDATED, or FAILED to update).
    ``overrides_differ``: an existing instance's overrides differ from the plan's (None:
    not known). ``duplicate_ids``: other live instances of the name (stopped with
    ``dedupe=True``). ``reason``: why it is UNKNOWN or FAILED, in words; ``error``: the
    error behind it.
    """

    name: str
    configuration_id: str
    request_id: str | None = None
    instance_id: str | None = None
    state: InstanceState = InstanceState.QUEUED
    existing: bool = False
    launched_at: float = 0.0
    running_after: float | None = None
    status: LaunchStatus = attrs.field(
        default=LaunchStatus.PLANNED, on_setattr=attrs.setters.frozen
    )
    error: BaseException | None = None
    reason: str | None = None
    overrides_differ: bool | None = None
    duplicate_ids: tuple[str, ...] = ()

    def _move(self, new: LaunchStatus) -> None:
        # The one way a status changes (the attribute refuses plain assignment).
        object.__setattr__(self, "status", transition(self.status, new))


LaunchedInstance = LaunchItem
"""The former name of :class:`LaunchItem`, kept for code written against it."""


@attrs.define
class LaunchReport:
    """The outcome of ``launch_many``: ``items`` maps every planned name to its item.

    ``launched``, ``failed`` and ``unknown`` are read-only views of ``items``: names
    present (existing, launched, running or updated) -> item; FAILED names -> the error;
    UNKNOWN names -> configuration id. ``wait_error``: why waiting ended early, if it did.
    ``rollback_errors`` / ``dedupe_errors``: name -> the error of a stop that failed.
    ``duplicates_stopped``: name -> ids of duplicate instances stopped (``dedupe=True``).
    """

    items: dict[str, LaunchItem] = attrs.Factory(dict)
    wait_error: WaitError | None = None
    rollback_errors: dict[str, BaseException] = attrs.Factory(dict)
    duplicates_stopped: dict[str, tuple[str, ...]] = attrs.Factory(dict)
    dedupe_errors: dict[str, BaseException] = attrs.Factory(dict)
    launch_calls: int = 0
    reconciliations: int = 0

    def _with(self, statuses: Collection[LaunchStatus]) -> Iterator[LaunchItem]:
        return (item for item in self.items.values() if item.status in statuses)

    @property
    def launched(self) -> Mapping[str, LaunchItem]:
        """Names that are there now: existing, launched, running or updated."""
        return MappingProxyType({i.name: i for i in self._with(_PRESENT)})

    @property
    def failed(self) -> Mapping[str, BaseException]:
        """FAILED names -> the error (certainly not launched by this call)."""
        return MappingProxyType(
            {
                i.name: i.error or StreamrunError(i.reason or "failed")
                for i in self._with({_S.FAILED})
            }
        )

    @property
    def unknown(self) -> Mapping[str, str]:
        """UNKNOWN names -> their configuration id (``items[name].reason`` says why)."""
        return MappingProxyType({i.name: i.configuration_id for i in self._with({_S.UNKNOWN})})

    @property
    def rolled_back(self) -> list[str]:
        """Names launched by this call and stopped again."""
        return self.by_status(_S.ROLLED_BACK)

    @property
    def updated(self) -> list[str]:
        """Existing names whose overrides were patched to the plan's."""
        return self.by_status(_S.UPDATED)

    @property
    def kept_with_different_overrides(self) -> list[str]:
        """Existing names left as they were although their overrides differ from the plan."""
        return [i.name for i in self._with({_S.EXISTING}) if i.overrides_differ]

    def by_status(self, status: LaunchStatus) -> list[str]:
        """The names whose item has ``status``."""
        return [i.name for i in self._with({status})]

    @property
    def ok(self) -> bool:
        """True when every name is there, nothing failed to stop, and waiting succeeded."""
        return (
            all(i.status in _PRESENT for i in self.items.values())
            and self.wait_error is None
            and not self.rollback_errors
            and not self.dedupe_errors
        )

    def raise_for_failures(self) -> None:
        """Raise an ExceptionGroup of the failures (each noted with its names), if any."""
        errors: dict[int, BaseException] = {}
        for error in self.failed.values():
            errors.setdefault(id(error), error)
        for error in (*self.rollback_errors.values(), *self.dedupe_errors.values()):
            errors.setdefault(id(error), error)
        group: list[Exception] = [e for e in errors.values() if isinstance(e, Exception)]
        if self.wait_error is not None:
            group.append(self.wait_error)
        if self.unknown:
            group.append(
                StreamrunError(
                    f"the fate of {len(self.unknown)} instance(s) is unknown: "
                    f"{sorted(self.unknown)[:20]}"
                )
            )
        if group:
            raise ExceptionGroup(
                f"launch_many: {len(self.failed)} failed, {len(self.unknown)} unknown", group
            )


class LaunchError(StreamrunError):
    """``launch_many`` stopped early (``fail_fast``); ``report`` holds what happened."""

    def __init__(self, message: str, *, report: LaunchReport) -> None:
        super().__init__(message)
        self.report = report


class LaunchTimeoutError(StreamrunError, TimeoutError):
    """``launch_many``'s ``timeout`` passed before these names could be launched."""


class LaunchEventKind(enum.Enum):
    """The steps of a bulk launch, as reported to ``on_progress``."""

    EXISTING = "EXISTING"  # names already there before the call: not launched again
    SUBMITTED = "SUBMITTED"  # a launch POST is being sent
    LAUNCHED = "LAUNCHED"  # the API accepted it (or a list showed it): it exists
    RECONCILING = "RECONCILING"  # the answer was lost: listing to learn what happened
    FAILED = "FAILED"  # these names certainly did not launch
    UNKNOWN = "UNKNOWN"  # their fate could not be learned
    RUNNING = "RUNNING"  # their instance request is RUNNING
    UPDATED = "UPDATED"  # existing names whose overrides were patched to the plan's
    DUPLICATES_STOPPED = "DUPLICATES_STOPPED"  # extra instances of a name stopped (dedupe)
    ROLLED_BACK = "ROLLED_BACK"  # stopped again because the call failed or was cancelled


@attrs.frozen
class LaunchEvent:
    """One step for some names of one configuration."""

    kind: LaunchEventKind
    configuration_id: str
    names: tuple[str, ...]
    request: InstanceRequest | None = None
    error: BaseException | None = None


def normalize_plan(plan: Plan) -> list[LaunchSpec]:
    """Check a plan before anything is sent: types, ids, and names unique in the plan."""
    if isinstance(plan, Mapping):
        mapping: Mapping[str, Sequence[InstanceSettings]] = plan
        specs = [LaunchSpec(cfg, items) for cfg, items in mapping.items()]
    elif isinstance(plan, (str, bytes)) or not isinstance(plan, Iterable):
        raise InvalidArgumentTypeError("plan must be a mapping or a sequence of LaunchSpec")
    else:
        specs = list(plan)
    seen: dict[str, str] = {}
    duplicates: set[str] = set()
    for spec in specs:
        if not isinstance(spec, LaunchSpec):
            raise InvalidArgumentTypeError(f"plan items must be LaunchSpec, got {spec!r}")
        path_segment(spec.configuration_id, "configuration_id")
        check_instances(spec.instances)
        for item in spec.instances:
            if item.name in seen:
                duplicates.add(item.name)
            seen[item.name] = spec.configuration_id
    if duplicates:
        raise InvalidArgumentError(
            f"instance names must be unique within a plan; repeated: {sorted(duplicates)}"
        )
    return specs


# -- pure matching of a list against names ---------------------------------------------


def is_live(instance: Instance) -> bool:
    """True when the instance can still run: STOPPING and ended ones satisfy no name."""
    return instance.state.can_become_running


def oldest_first(instances: Iterable[Instance]) -> list[Instance]:
    """The rule every process applies to duplicates: oldest ``created_at``, then id."""

    def key(inst: Instance) -> tuple[float, str]:
        created = inst.created_at
        return (math.inf if created is None else created.timestamp(), inst.id)

    return sorted(instances, key=key)


def near_name(listed: str, planned: str) -> bool:
    """``listed`` could be ``planned`` as a server stored it (other case, cut short)."""
    return listed != planned and planned.casefold().startswith(listed.casefold())


@attrs.frozen
class Sighting:
    """What one whole list says about some names of a lost launch.

    ``found``: name -> its live instance (exact name). ``lost_requests``: request ids of
    those instances (the lost launch's). ``of_lost``: other instances of those requests
    (names not echoed as sent). ``suspicious``: new instances that may be these names
    as the server stored them (no name, or a near name).
    """

    found: Mapping[str, Instance]
    lost_requests: frozenset[str]
    of_lost: tuple[Instance, ...]
    suspicious: tuple[Instance, ...]


def sight(
    listing: Iterable[Instance],
    wanted: Collection[str],
    *,
    planned: Collection[str],
    ignore_ids: Collection[str],
    known_requests: Collection[str],
) -> Sighting:
    """Match a list against ``wanted`` names, ignoring instances already accounted for
    (``ignore_ids``: listed before the call or found earlier; ``known_requests``: this
    call's accepted requests). ``planned``: every name of the configuration's plan."""
    new = [
        inst
        for inst in listing
        if is_live(inst) and inst.id not in ignore_ids and inst.request_id not in known_requests
    ]
    found: dict[str, Instance] = {}
    for inst in oldest_first(new):
        name = inst.name
        if name is not None and name in wanted and name not in found:
            found[name] = inst
    found_ids = {inst.id for inst in found.values()}
    lost = frozenset(inst.request_id for inst in found.values() if inst.request_id is not None)
    of_lost = tuple(i for i in new if i.request_id in lost and i.id not in found_ids)
    suspicious = tuple(
        inst
        for inst in new
        if inst.id not in found_ids
        and inst.request_id not in lost
        and (
            inst.name is None
            or (inst.name not in planned and any(near_name(inst.name, w) for w in wanted))
        )
    )
    return Sighting(found, lost, of_lost, suspicious)


# -- one launch per name per client ----------------------------------------------------


@attrs.frozen
class _Outcome:
    """How a call that held a name left it, for the calls that waited on it."""

    present: bool
    unknown: bool
    request_id: str | None = None
    instance_id: str | None = None
    overrides: Overrides | None = None


class LaunchRegistry:
    """One client's names in flight, and what it learned about configurations' names.

    A name is claimed by one call at a time; others wait for the claim's outcome.
    """

    def __init__(self) -> None:
        self._claims: dict[tuple[str, str], asyncio.Future[_Outcome]] = {}
        self.untrusted: dict[str, str] = {}
        """Configuration id -> why its instance names cannot be matched to the plan."""

    def claim(
        self, configuration_id: str, names: Iterable[str]
    ) -> tuple[list[str], dict[str, asyncio.Future[_Outcome]]]:
        """Claim the free names; return them, and the futures of the names held by others."""
        loop = asyncio.get_running_loop()
        mine: list[str] = []
        theirs: dict[str, asyncio.Future[_Outcome]] = {}
        for name in names:
            key = (configuration_id, name)
            held = self._claims.get(key)
            if held is not None and not held.done() and held.get_loop() is loop:
                theirs[name] = held
            else:
                self._claims[key] = loop.create_future()
                mine.append(name)
        return mine, theirs

    def release(self, configuration_id: str, name: str, outcome: _Outcome) -> None:
        """End a claim, telling its waiters the outcome."""
        future = self._claims.pop((configuration_id, name), None)
        if future is not None and not future.done():
            future.set_result(outcome)


_REGISTRIES: weakref.WeakKeyDictionary[StreamrunClient, LaunchRegistry] = (
    weakref.WeakKeyDictionary()
)


def registry_of(client: StreamrunClient) -> LaunchRegistry:
    """The registry of one client (made on first use, gone with the client)."""
    registry = _REGISTRIES.get(client)
    if registry is None:
        registry = _REGISTRIES[client] = LaunchRegistry()
    return registry


def overrides_differ(current: Mapping[str, Any] | None, wanted: Overrides) -> bool | None:
    """True when ``current`` lacks a setting ``wanted`` has (PATCH merges, so extra
    settings already there are no difference); None when ``current`` is not known."""
    if current is None:
        return None
    for element, settings in wanted.items():
        have = current.get(element)
        if not isinstance(have, Mapping):
            return True
        if any(key not in have or have[key] != value for key, value in settings.items()):
            return True
    return False


# -- one run ---------------------------------------------------------------------------


class BulkLaunch:
    """One run of ``launch_many``. Private: use the client's methods."""

    def __init__(
        self,
        client: StreamrunClient,
        specs: list[LaunchSpec],
        *,
        concurrency: int,
        max_per_request: int,
        fail_fast: bool,
        rollback: bool,
        on_progress: Callable[[LaunchEvent], Any] | None,
        report: LaunchReport | None,
        on_existing: OnExisting = "keep",
        dedupe: bool = False,
        settle: float = 2.0,
        coordinator: Coordinator | None = None,
        attempt_timeout: float = 30.0,
        ttl: float | timedelta | None = None,
        on_timeout: Literal["raise", "stop"] = "raise",
    ) -> None:
        if on_timeout not in ("raise", "stop"):
            raise InvalidArgumentError(f'on_timeout must be "raise" or "stop", got {on_timeout!r}')
        if not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidArgumentError("concurrency must be an int >= 1")
        if not isinstance(max_per_request, int) or max_per_request < 1:
            raise InvalidArgumentError("max_per_request must be an int >= 1")
        if on_existing not in ("keep", "update"):
            raise InvalidArgumentError(
                f'on_existing must be "keep" or "update", not {on_existing!r}'
            )
        if isinstance(settle, bool) or not isinstance(settle, (int, float)) or not settle >= 0:
            raise InvalidArgumentError(f"settle must be seconds >= 0, got {settle!r}")
        if coordinator is not None and coordinator.lease is not None:
            budget = coordinator.lease - attempt_timeout - _LEASE_MARGIN
            if budget <= (_CONFIRM_SETTLES + 2) * settle:
                raise InvalidArgumentError(
                    f"the coordinator's lease ({coordinator.lease:g} s) must outlast a "
                    f"launch attempt ({attempt_timeout:g} s) and its settling: make it longer"
                )
            self._hold_budget: float | None = budget
        else:
            self._hold_budget = None
        self.client = client
        self.specs = specs
        self.max_per_request = max_per_request
        self.fail_fast = fail_fast
        self.rollback = rollback
        self.on_progress = on_progress
        self.on_existing = on_existing
        self.dedupe = dedupe
        self.settle = float(settle)
        self.coordinator = coordinator
        wants_ttl = ttl is not None or any(s.ttl is not None for p in specs for s in p.instances)
        if wants_ttl and client.configurations._guard is None:
            raise InvalidArgumentError(
                "ttl needs a guarded client: StreamrunClient(guard=sr.Guard(owner=...))"
            )
        self.ttl = ttl
        self.on_timeout = on_timeout
        self.report = report if report is not None else LaunchReport()
        self.registry = registry_of(client)
        self._slots = asyncio.Semaphore(concurrency)
        self._settings: dict[str, InstanceSettings] = {}
        self._planned: dict[str, set[str]] = {}
        # Per configuration: ids listed before launching, and ids and requests of ours.
        self._before: defaultdict[str, set[str]] = defaultdict(set)
        self._ours: defaultdict[str, set[str]] = defaultdict(set)
        self._requests: dict[str, InstanceRequest] = {}
        self._request_cfg: defaultdict[str, set[str]] = defaultdict(set)
        self._started = time.monotonic()
        for spec in specs:
            self._planned[spec.configuration_id] = {s.name for s in spec.instances}
            for settings in spec.instances:
                self._settings[settings.name] = settings
                self.report.items[settings.name] = LaunchItem(
                    name=settings.name, configuration_id=spec.configuration_id
                )

    # -- bookkeeping ---------------------------------------------------------------------

    def emit(self, kind: LaunchEventKind, cfg: str, names: Iterable[str], **kw: Any) -> None:
        hooks = self.client._events
        if self.on_progress is not None or hooks:
            event = LaunchEvent(kind, cfg, tuple(names), **kw)
            if self.on_progress is not None:
                self.on_progress(event)
            hooks.emit(event)  # the client's hooks get every step too

    def _item(self, name: str) -> LaunchItem:
        return self.report.items[name]

    def _move(self, names: Iterable[str], status: LaunchStatus, **fields: Any) -> None:
        for name in names:
            item = self._item(name)
            item._move(status)
            for key, value in fields.items():
                setattr(item, key, value)

    def _fail(self, cfg: str, names: list[str], error: BaseException) -> None:
        if not names:
            return
        error.add_note(f"configuration {cfg}: {len(names)} instance(s): {names[:20]}")
        self._move(names, _S.FAILED, error=error, reason=str(error))
        self.emit(LaunchEventKind.FAILED, cfg, names, error=error)

    def _unknown(
        self, cfg: str, names: Iterable[str], reason: str, error: BaseException | None = None
    ) -> None:
        names = list(names)
        if names:
            self._move(names, _S.UNKNOWN, reason=reason, error=error)
            self.emit(LaunchEventKind.UNKNOWN, cfg, names, error=error)

    def _launched(
        self, name: str, request_id: str | None, instance: Instance | None = None
    ) -> None:
        item = self._item(name)
        item._move(_S.LAUNCHED)
        item.request_id = request_id
        item.launched_at = time.monotonic() - self._started
        if instance is not None:
            self._adopt(item, instance)

    def _adopt(self, item: LaunchItem, instance: Instance) -> None:
        item.instance_id = instance.id
        item.state = instance.state
        item.request_id = item.request_id or instance.request_id
        self._ours[item.configuration_id].add(instance.id)

    def _distrust(self, cfg: str, reason: str) -> None:
        self.registry.untrusted.setdefault(cfg, reason)

    def _not_echoed(self, cfg: str, instances: Sequence[Instance]) -> None:
        """Instances of this call's requests listed under no name or another name than
        sent: they are this call's, and names in ``cfg`` are not trusted from now on."""
        self._ours[cfg].update(inst.id for inst in instances)
        odd = instances[0]
        self._distrust(
            cfg,
            f"an instance of request {odd.request_id} is listed with "
            f"{'no name' if odd.name is None else 'another name'} than the one sent",
        )

    # -- the run ---------------------------------------------------------------------------

    async def run(self, *, wait: bool, timeout: float | None) -> LaunchReport:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        # The call's own deadline passed while launching (not a coordinator lease's budget).
        expired = False
        try:
            async with asyncio.timeout_at(deadline) as phase:
                await self._launch_all()
        except TimeoutError:
            if not phase.expired():
                raise
            self._time_out(timeout)
            expired = True
        except BaseException:
            # Cancelled or broken: settle what was on the wire, roll back if asked, and
            # let the caller's report= object hold the outcome.
            await asyncio.shield(self._cleanup(rolling_back=self.rollback))
            raise
        if self.fail_fast and self._failing():
            # Before any waiting: fail fast means now.
            await asyncio.shield(self._cleanup(rolling_back=self.rollback))
            raise LaunchError("launch_many stopped at the first failure", report=self.report)
        try:
            if wait and not expired:
                await self._wait(deadline)
            await self._fill_instances(deadline)
        except BaseException:
            await asyncio.shield(self._cleanup(rolling_back=self.rollback))
            raise
        timed_out = expired or isinstance(self.report.wait_error, WaitTimeoutError)
        if self.on_timeout == "stop" and timed_out:
            await asyncio.shield(self._stop_unfinished())
        return self.report

    async def _stop_unfinished(self) -> None:
        """on_timeout="stop" (GUARD): what this call launched that is not RUNNING at the
        deadline is stopped, the stop confirmed by a list, and the names ROLLED_BACK."""
        from .guard._stop import stop_requests

        late = [i for i in self.report._with({_S.LAUNCHED}) if i.state != InstanceState.RUNNING]
        if not late:
            return
        client = self.client
        try:
            stopped = await stop_requests(
                client.instances.list,
                client.instances.stop,
                client.instance_requests.get,
                sorted({i.request_id for i in late if i.request_id is not None}),
                instance_ids=[i.instance_id for i in late if i.instance_id is not None],
            )
        except StreamrunError as error:
            for item in late:
                self.report.rollback_errors[item.name] = error
            return
        gone = set(stopped.stopped)
        for item in late:
            found = stopped.members.get(item.request_id or "", ())
            ids = [item.instance_id] if item.instance_id else found
            if ids and gone.issuperset(ids):
                item._move(_S.ROLLED_BACK)
                item.reason = "not RUNNING by the deadline: stopped (on_timeout='stop')"
                self.emit(LaunchEventKind.ROLLED_BACK, item.configuration_id, [item.name])

    def _failing(self) -> bool:
        return any(i.status in (_S.FAILED, _S.UNKNOWN) for i in self.report.items.values())

    def _time_out(self, timeout: float | None) -> None:
        """The call's deadline passed during the launch phase."""
        error = LaunchTimeoutError(f"launch_many: the timeout of {timeout:g} s passed")
        planned: dict[str, list[str]] = {}
        for item in self.report.items.values():
            if item.status is _S.PLANNED:
                planned.setdefault(item.configuration_id, []).append(item.name)
            elif item.status is _S.IN_FLIGHT:
                self._unknown(
                    item.configuration_id,
                    [item.name],
                    "the timeout passed while its launch was being sent or settled",
                    error,
                )
        for cfg, names in planned.items():
            self._fail(cfg, names, error)

    async def _launch_all(self) -> None:
        tasks = [asyncio.create_task(self._launch_config(spec)) for spec in self.specs]
        try:
            for finished in asyncio.as_completed(tasks):
                await finished
                if self.fail_fast and self._failing():
                    break
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _launch_config(self, spec: LaunchSpec) -> None:
        await self._names(spec.configuration_id, [s.name for s in spec.instances])

    async def _names(self, cfg: str, names: list[str]) -> None:
        """Launch the names this call can claim; wait on those another call holds."""
        mine, theirs = self.registry.claim(cfg, names)
        jobs = [self._await_other(cfg, name, future) for name, future in theirs.items()]
        if mine:
            jobs.append(self._own(cfg, mine))
        await asyncio.gather(*jobs)

    async def _await_other(self, cfg: str, name: str, claim: asyncio.Future[_Outcome]) -> None:
        outcome = await asyncio.shield(claim)
        item = self._item(name)
        if outcome.present:
            item._move(_S.EXISTING)
            item.existing = True
            item.request_id = outcome.request_id
            item.instance_id = outcome.instance_id
            item.reason = "launched by a concurrent launch_many of this client"
            self.emit(LaunchEventKind.EXISTING, cfg, [name])
            await self._on_existing(cfg, [name], {name: outcome.overrides})
        elif outcome.unknown:
            self._unknown(
                cfg, [name], "a concurrent launch_many of this client could not learn its fate"
            )
        else:
            # The other call certainly did not launch it: this call tries.
            await self._names(cfg, [name])

    async def _own(self, cfg: str, names: list[str]) -> None:
        current: dict[str, Overrides | None] = {}
        held = self._hold(cfg, names)
        try:
            async with held:
                current = await self._section(cfg, names)
        except TimeoutError:
            if not (isinstance(held, _Held) and held.expired()):
                raise
            self._lease_ran_out(cfg, names)
        except CoordinatorError as error:
            # Nothing was sent for these names: the lock could not be taken.
            self._fail(cfg, [n for n in names if self._item(n).status is _S.PLANNED], error)
        finally:
            for name in names:
                item = self._item(name)
                self.registry.release(
                    cfg,
                    name,
                    _Outcome(
                        present=item.status in _PRESENT,
                        unknown=item.status in (_S.IN_FLIGHT, _S.UNKNOWN),
                        request_id=item.request_id,
                        instance_id=item.instance_id,
                        # What the instance has, if this call set it (else unknown).
                        overrides=self._settings[name].overrides
                        if item.status in (_S.LAUNCHED, _S.RUNNING, _S.UPDATED)
                        else None,
                    ),
                )
        existing = [n for n in names if self._item(n).status is _S.EXISTING]
        if existing:
            await self._on_existing(cfg, existing, current)

    def _lease_ran_out(self, cfg: str, names: list[str]) -> None:
        error = LaunchTimeoutError(
            f"the locked work ran past {self._hold_budget:g} s, what the coordinator's "
            "lease allows: stopped before another process could take the lock"
        )
        for name in names:
            status = self._item(name).status
            if status is _S.PLANNED:
                self._fail(cfg, [name], error)
            elif status is _S.IN_FLIGHT:
                self._unknown(cfg, [name], str(error), error)

    def _hold(self, cfg: str, names: list[str]) -> AbstractAsyncContextManager[Any]:
        if self.coordinator is None:
            return nullcontext()
        return _Held(self.coordinator, [(cfg, n) for n in names], self._hold_budget)

    async def _list(self, cfg: str) -> list[Instance]:
        async with self._slots:
            return await self.client.configurations.list_instances(cfg)

    async def _section(self, cfg: str, names: list[str]) -> dict[str, Overrides | None]:
        """List, launch what is missing, confirm it shows: the work a lock covers."""
        try:
            listing = await self._list(cfg)
        except StreamrunError as error:
            self._fail(cfg, names, error)
            return {}
        self._before[cfg].update(inst.id for inst in listing)
        current = await self._classify(cfg, names, listing)
        todo = [self._settings[n] for n in names if self._item(n).status is _S.PLANNED]
        step = self.max_per_request
        await asyncio.gather(
            *(self._launch_chunk(cfg, todo[i : i + step]) for i in range(0, len(todo), step))
        )
        await self._confirm(cfg, names)
        return current

    async def _classify(
        self, cfg: str, names: list[str], listing: list[Instance]
    ) -> dict[str, Overrides | None]:
        """Sort names into existing, unknown (names not trusted) and to launch."""
        live = [inst for inst in listing if is_live(inst)]
        by_name: dict[str, list[Instance]] = {}
        for inst in live:
            if inst.name is not None:
                by_name.setdefault(inst.name, []).append(inst)
        planned = self._planned[cfg]
        unmatched = [inst for inst in live if inst.name not in planned]
        untrusted = self.registry.untrusted.get(cfg)
        existing: list[str] = []
        current: dict[str, Overrides | None] = {}
        for name in names:
            there = oldest_first(by_name.get(name, ()))
            if there:
                keep, *extra = there
                item = self._item(name)
                item._move(_S.EXISTING)
                item.existing = True
                item.duplicate_ids = tuple(i.id for i in extra)
                item.instance_id = keep.id
                item.state = keep.state
                item.request_id = keep.request_id
                current[name] = (
                    None
                    if keep.overrides is None
                    else {k: dict(v) for k, v in keep.overrides.items()}
                )
                existing.append(name)
                continue
            if untrusted is not None and unmatched:
                self._unknown(cfg, [name], f"not listed by this name, and {untrusted}")
                continue
            near = next(
                (i for i in unmatched if i.name is not None and near_name(i.name, name)), None
            )
            if near is not None:
                self._unknown(
                    cfg,
                    [name],
                    f"not listed by this name, but instance {near.id} is listed as "
                    f"{near.name!r}: it may be this name as the server stored it",
                )
        if existing:
            self.emit(LaunchEventKind.EXISTING, cfg, existing)
        if self.dedupe:
            await self._dedupe(cfg, existing)
        return current

    async def _dedupe(self, cfg: str, names: list[str]) -> None:
        """Stop every instance of a name but the oldest (the same rule in every process)."""

        async def stop(name: str) -> None:
            item = self._item(name)
            try:
                async with self._slots:
                    for instance_id in item.duplicate_ids:
                        await self.client.instances.stop(instance_id)
            except StreamrunError as error:
                self.report.dedupe_errors[name] = error
                return
            self.report.duplicates_stopped[name] = item.duplicate_ids
            self.emit(LaunchEventKind.DUPLICATES_STOPPED, cfg, [name])

        await asyncio.gather(*(stop(n) for n in names if self._item(n).duplicate_ids))

    async def _launch_chunk(self, cfg: str, chunk: list[InstanceSettings]) -> None:
        pending = chunk
        for round_no in range(1, _MAX_LAUNCH_ROUNDS + 1):
            names = [item.name for item in pending]
            try:
                async with self._slots:
                    self.emit(LaunchEventKind.SUBMITTED, cfg, names)
                    self._move(names, _S.IN_FLIGHT)
                    self.report.launch_calls += 1
                    request = await self.client.configurations.launch(cfg, pending, ttl=self.ttl)
            except APIError as error:
                if not error.outcome_unknown:
                    self._fail(cfg, names, error)
                    return
                self.emit(LaunchEventKind.RECONCILING, cfg, names, error=error)
                await self._reconcile(cfg, names, error)
                pending = [s for s in pending if self._item(s.name).status is _S.PLANNED]
                if not pending:
                    return
                if round_no == _MAX_LAUNCH_ROUNDS:
                    # Listed as missing after every launch of them was lost: report them
                    # failed rather than retry without end.
                    self._fail(cfg, [s.name for s in pending], error)
                    return
                continue
            except StreamrunError as error:
                self._fail(cfg, names, error)
                return
            request_id = request.id
            if request_id is not None and isinstance(request, InstanceRequest):
                self._requests[request_id] = request
                self._request_cfg[cfg].add(request_id)
            for name in names:
                self._launched(name, request_id)
            self.emit(
                LaunchEventKind.LAUNCHED,
                cfg,
                names,
                request=request if isinstance(request, InstanceRequest) else None,
            )
            return

    def _sight(self, cfg: str, listing: list[Instance], wanted: Collection[str]) -> Sighting:
        return sight(
            listing,
            wanted,
            planned=self._planned[cfg],
            ignore_ids=self._before[cfg] | self._ours[cfg],
            known_requests=self._request_cfg[cfg],
        )

    async def _reconcile(self, cfg: str, names: list[str], error: BaseException) -> None:
        """Settle a lost launch of ``names``: found ones LAUNCHED, ones two lists ``settle``
        seconds apart agree are absent back to PLANNED, the rest UNKNOWN."""
        self.report.reconciliations += 1
        loop = asyncio.get_running_loop()
        remaining = list(names)
        absent_since: float | None = None
        list_failures = 0
        while True:
            try:
                listing = await self._list(cfg)
            except StreamrunError as list_error:
                # A list that could not be read whole proves nothing: try again, then give up.
                list_failures += 1
                if list_failures >= _MAX_LIST_FAILURES:
                    self._unknown(
                        cfg,
                        remaining,
                        "its launch answer was lost and the configuration could not be "
                        "listed whole to learn whether it happened",
                        list_error,
                    )
                    return
                await asyncio.sleep(self.settle / 2)
                continue
            taken = loop.time()
            seen = self._sight(cfg, listing, remaining)
            for name, inst in seen.found.items():
                self._launched(name, None, inst)
            remaining = [n for n in remaining if n not in seen.found]
            if seen.found:
                self.emit(LaunchEventKind.LAUNCHED, cfg, sorted(seen.found))
            if seen.lost_requests:
                # Its request is known now: the others of the chunk went with it.
                request_id = min(seen.lost_requests)
                self._request_cfg[cfg].update(seen.lost_requests)
                if seen.of_lost:
                    self._not_echoed(cfg, seen.of_lost)
                for name in remaining:
                    self._launched(name, request_id)
                if remaining:
                    self.emit(LaunchEventKind.LAUNCHED, cfg, remaining)
                return
            if not remaining:
                return
            untrusted = self.registry.untrusted.get(cfg)
            if seen.suspicious and untrusted is None:
                first = seen.suspicious[0]
                untrusted = (
                    f"instance {first.id} appeared listed as "
                    f"{'unnamed' if first.name is None else repr(first.name)} after a launch "
                    "of these names: the server does not echo names as sent"
                )
                self._distrust(cfg, untrusted)
            if untrusted is not None:
                self._unknown(
                    cfg,
                    remaining,
                    f"its launch answer was lost and {untrusted}, so absence by name proves "
                    "nothing",
                    error,
                )
                return
            if absent_since is None:
                absent_since = taken
            elif taken - absent_since >= self.settle:
                # Two whole lists, settle seconds apart, agree: they did not launch.
                self._move(remaining, _S.PLANNED)
                return
            await asyncio.sleep(max(absent_since + self.settle - loop.time(), 0.0))

    async def _confirm(self, cfg: str, names: list[str]) -> None:
        """Wait (within ``_CONFIRM_SETTLES`` settles) until a list shows this call's new
        instances, so that whoever lists next sees them; learn their ids meanwhile."""
        waiting = {n for n in names if self._item(n).status is _S.LAUNCHED}
        if not waiting:
            return
        loop = asyncio.get_running_loop()
        give_up = loop.time() + _CONFIRM_SETTLES * self.settle
        pause = min(0.05, self.settle / 8) if self.settle else 0.0
        while True:
            try:
                listing = await self._list(cfg)
            except StreamrunError:
                listing = None
            if listing is not None:
                waiting = self._match_launched(cfg, waiting, listing)
                if not waiting:
                    return
            if loop.time() >= give_up:
                for name in waiting:
                    self._item(name).reason = "accepted, but no list showed it yet"
                return
            await asyncio.sleep(pause)
            pause = min(pause * 2, self.settle / 2)

    def _match_launched(self, cfg: str, waiting: set[str], listing: list[Instance]) -> set[str]:
        """Give launched names their instances from ``listing``; return those not seen."""
        ignore = self._before[cfg]
        new = [i for i in listing if i.id not in ignore]
        claimed = self._ours[cfg]  # instances given to names already
        by_request: dict[str, list[Instance]] = {}
        for inst in new:
            if inst.request_id is not None:
                by_request.setdefault(inst.request_id, []).append(inst)
        listed = {inst.id for inst in listing}
        left = {n for n in waiting if self._item(n).instance_id not in listed}
        for inst in new:
            name = inst.name
            if name in left and self._item(name).instance_id is None:
                self._adopt(self._item(name), inst)
                left.discard(name)
        requests: dict[str | None, list[str]] = {}
        for name in left:
            requests.setdefault(self._item(name).request_id, []).append(name)
        for request_id, group in requests.items():
            if request_id is None:
                continue
            of_request = [i for i in by_request.get(request_id, []) if i.id not in claimed]
            if of_request:
                # The request's instances are listed, but not under the names sent.
                self._not_echoed(cfg, of_request)
                if len(of_request) >= len(group):
                    left.difference_update(group)
        unnamed = [
            i for i in new if i.name is None and i.id not in claimed and i.request_id is None
        ]
        if unnamed and left and not any(i.request_id for i in new):
            # No names and no request ids: new unnamed instances are all that can show it.
            self._distrust(
                cfg, f"instance {unnamed[0].id} appeared unnamed after a launch of named ones"
            )
            for inst in unnamed:
                self._ours[cfg].add(inst.id)
            if len(unnamed) >= len(left):
                left.clear()
        return left

    async def _on_existing(
        self, cfg: str, names: list[str], current: Mapping[str, Overrides | None]
    ) -> None:
        """Tell existing names with other overrides; patch them with ``on_existing="update"``."""

        async def one(name: str) -> None:
            item = self._item(name)
            wanted = self._settings[name].overrides
            known = current.get(name)
            if known is None and item.instance_id is not None and wanted:
                try:
                    async with self._slots:
                        known = await self.client.instances.get_overrides(item.instance_id)
                except StreamrunError:
                    known = None
            item.overrides_differ = overrides_differ(known, wanted) if wanted else False
            if self.on_existing != "update" or item.overrides_differ is False:
                return
            if item.instance_id is None:
                item._move(_S.FAILED)
                item.reason = "existing, but its instance id is not known: not updated"
                return
            try:
                async with self._slots:
                    await self.client.instances.update_overrides(item.instance_id, wanted)
            except StreamrunError as error:
                item._move(_S.FAILED)
                item.error = error
                item.reason = f"existing, but updating its overrides failed: {error}"
                self.emit(LaunchEventKind.FAILED, cfg, [name], error=error)
                return
            item._move(_S.UPDATED)
            self.emit(LaunchEventKind.UPDATED, cfg, [name])

        await asyncio.gather(*(one(n) for n in names))

    # -- waiting -------------------------------------------------------------------------

    async def _wait(self, deadline: float | None) -> None:
        """Follow this call's launches (and existing names not running) to RUNNING: by
        request where the request id is known, else by instance."""
        by_request: dict[str, list[LaunchItem]] = {}
        by_instance: list[LaunchItem] = []
        for item in self.report.launched.values():
            # This call's launches are followed even when a list already showed them
            # running (one RUNNING event each); existing ones only if not running.
            if item.status is not _S.LAUNCHED and item.state is InstanceState.RUNNING:
                continue
            if item.request_id is not None:
                by_request.setdefault(item.request_id, []).append(item)
            elif item.instance_id is not None:
                by_instance.append(item)
            else:
                self.report.wait_error = self.report.wait_error or WaitError(
                    f"{item.name}: the launch was accepted without a request id and no "
                    "list showed its instance: it cannot be followed"
                )
        loop = asyncio.get_running_loop()
        left = max(math.inf if deadline is None else deadline - loop.time(), 0.001)
        await asyncio.gather(
            self._wait_requests(by_request, left),
            *(self._wait_instance(item, left) for item in by_instance),
        )

    def _running(self, items: list[LaunchItem], request: InstanceRequest | None = None) -> None:
        for item in items:
            item.state = InstanceState.RUNNING
            if item.status is _S.LAUNCHED:
                item._move(_S.RUNNING)
                item.running_after = time.monotonic() - self._started
        if items:
            names = [i.name for i in items]
            self.emit(LaunchEventKind.RUNNING, items[0].configuration_id, names, request=request)

    async def _wait_requests(self, by_request: dict[str, list[LaunchItem]], left: float) -> None:
        if not by_request:
            return
        try:
            watched = [self._requests.get(rid, rid) for rid in by_request]
            async for request in self.client.instance_requests.watch(watched, timeout=left):
                if request.state is InstanceState.RUNNING:
                    self._running(by_request.get(request.id, []), request)
        except WaitError as error:
            self.report.wait_error = error

    async def _wait_instance(self, item: LaunchItem, left: float) -> None:
        try:
            instance = await self.client.instances.wait_for_state(
                item.instance_id or "", configuration_id=item.configuration_id, timeout=left
            )
        except WaitError as error:
            self.report.wait_error = self.report.wait_error or error
            return
        item.state = instance.state
        self._running([item])

    async def _fill_instances(self, deadline: float | None) -> None:
        """One list call gives every present name its instance id and latest state, if it
        answers before the call's deadline (it only refreshes what is known)."""
        present = self.report.launched
        if not present:
            return
        try:
            async with asyncio.timeout_at(deadline):
                listed = await self.client.instances.list()
        except (StreamrunError, TimeoutError):
            return
        by_id = {i.instance_id: i for i in present.values() if i.instance_id is not None}
        for inst in listed:
            item = by_id.get(inst.id)
            if item is None:
                named = present.get(inst.name or "")
                if (
                    named is not None
                    and named.instance_id is None
                    and inst.configuration_id in (None, named.configuration_id)
                ):
                    item = named
            if item is not None:
                item.instance_id = inst.id
                item.state = inst.state

    # -- cleanup ---------------------------------------------------------------------------

    async def _cleanup(self, *, rolling_back: bool) -> None:
        """After a failure or cancellation: settle in-flight names, then roll back."""
        try:
            async with asyncio.timeout(_CLEANUP_SECONDS):
                in_flight: dict[str, list[str]] = {}
                for item in self.report.items.values():
                    if item.status is _S.IN_FLIGHT:
                        in_flight.setdefault(item.configuration_id, []).append(item.name)
                for cfg, names in in_flight.items():
                    await self._settle_once(cfg, names)
                if rolling_back:
                    await self._roll_back()
        except (TimeoutError, StreamrunError) as error:
            for item in self.report.items.values():
                if item.status is _S.IN_FLIGHT:
                    self._unknown(
                        item.configuration_id,
                        [item.name],
                        "the call ended while its launch was on the wire",
                        error,
                    )

    async def _settle_once(self, cfg: str, names: list[str]) -> None:
        """One list after an interruption: found names LAUNCHED, the rest UNKNOWN."""
        self.report.reconciliations += 1
        reason = "the call ended while its launch was on the wire, and no list showed it"
        try:
            listing = await self.client.configurations.list_instances(cfg)
        except StreamrunError as error:
            self._unknown(cfg, names, reason, error)
            return
        seen = self._sight(cfg, listing, names)
        for name, inst in seen.found.items():
            self._launched(name, None, inst)
        self._unknown(cfg, [n for n in names if n not in seen.found], reason)

    async def _roll_back(self) -> None:
        mine = {i.name: i for i in self.report._with(_MINE)}
        for cfg in sorted({item.configuration_id for item in mine.values()}):
            try:
                listed = await self.client.configurations.list_instances(cfg)
            except StreamrunError as error:
                for name, item in mine.items():
                    if item.configuration_id == cfg:
                        self.report.rollback_errors[name] = error
                continue
            targets: dict[str, list[str]] = {}
            for name, item in mine.items():
                if item.configuration_id != cfg:
                    continue
                ids = {
                    inst.id
                    for inst in listed
                    if inst.id == item.instance_id
                    or (inst.name == name and inst.id not in self._before[cfg])
                }
                if item.instance_id is not None:
                    ids.add(item.instance_id)
                targets[name] = sorted(ids)

            async def stop(name: str, ids: list[str]) -> str | None:
                try:
                    for instance_id in ids:
                        await self.client.instances.stop(instance_id)
                except StreamrunError as error:
                    self.report.rollback_errors[name] = error
                    return None
                self._item(name)._move(_S.ROLLED_BACK)
                return name

            done = await asyncio.gather(*(stop(n, ids) for n, ids in targets.items()))
            stopped = [name for name in done if name is not None]
            if stopped:
                self.emit(LaunchEventKind.ROLLED_BACK, cfg, stopped)


class _Held:
    """The coordinator's locks of some names, with the locked work bounded below the lease."""

    def __init__(
        self, coordinator: Coordinator, keys: list[tuple[str, str]], budget: float | None
    ) -> None:
        self._hold = coordinator.hold(keys)
        self._budget = budget
        self._timeout: asyncio.Timeout | None = None

    def expired(self) -> bool:
        """True when the locked work was cut off at its budget."""
        return self._timeout is not None and self._timeout.expired()

    async def __aenter__(self) -> None:
        try:
            await self._hold.__aenter__()
        except StreamrunError:
            raise
        except Exception as error:
            # The lock service's own error (Redis down, directory unwritable), typed.
            raise CoordinatorError(f"the coordinator could not take the locks: {error}") from error
        if self._budget is not None:
            self._timeout = asyncio.timeout(self._budget)
            await self._timeout.__aenter__()

    async def __aexit__(self, *exc: Any) -> bool | None:
        try:
            if self._timeout is not None:
                await self._timeout.__aexit__(*exc)
        finally:
            await self._hold.__aexit__(*exc)
        return None


async def iterate_launch(
    bulk: BulkLaunch, *, wait: bool, timeout: float | None
) -> AsyncIterator[LaunchEvent]:
    """Run ``bulk`` in a task and yield its events as they happen."""
    queue: asyncio.Queue[LaunchEvent | None] = asyncio.Queue()
    bulk.on_progress = queue.put_nowait
    task = asyncio.create_task(bulk.run(wait=wait, timeout=timeout))
    task.add_done_callback(lambda _: queue.put_nowait(None))
    try:
        while (event := await queue.get()) is not None:
            yield event
        await task
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
