"""The emulated account: instances, instance requests, the scheduler and billing.

Time-driven changes (an instance finishing its boot, an idle instance stopping itself)
sit in a heap of events. Every operation first *settles* the account to the clock's
``now``, firing due events in time order at their own timestamps. So the real clock needs
no background task, and under the virtual clock everything is deterministic.

What the dialect makes the account do (see `Dialect`): show booting instances as
STARTING, judge requests ahead of or behind their instances, keep stopped and failed
instances visible for a while ("lingering"), and show launches to reads only later.

A request is judged by its instances still alive: one of two stopped while QUEUED, the
request runs once the other runs. A request whose instances all stopped before running
stays QUEUED; one whose instances all failed or stopped, at least one failed, is failed.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from ._clock import Clock
from ._dialect import Dialect
from ._errors import ApiError, not_found
from ._seed import ConfigurationSeed, DestinationSeed
from ._snapshot import (
    BillingReport,
    InstanceSnapshot,
    InstanceState,
    OutputsState,
    RequestSnapshot,
    RequestState,
    StateSnapshot,
    StoppedInstance,
    StopReason,
)

__all__ = ["Account", "Instance", "InstanceRequest", "LaunchSpec", "Overrides"]

Overrides = dict[str, dict[str, Any]]
_EventKind = Literal["ready", "idle"]
_NO_CAPACITY = {
    "free_slot": "No free instance slot",
    "maximum": "Maximum number of instances reached",
}


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """One instance of a launch: its name (None for a default launch) and overrides."""

    name: str | None
    overrides: Overrides


@dataclass(eq=False, slots=True)
class Instance:
    """An instance, live or lingering. ``*_timer`` hold the sequence number of the pending
    event that is still meant to fire; anything else in the heap for this instance is
    stale. ``gone_at`` is set once it stopped or failed (then it only lingers)."""

    id: str
    configuration_id: str
    name: str | None
    request_id: str | None
    created_at: float
    overrides: Overrides
    stream_key: str
    input_keys: dict[str, str]
    visible_at: float
    order: int
    state: InstanceState = "QUEUED"
    outputs: OutputsState = "OFFLINE"
    running_since: float | None = None
    boot_timer: int | None = None
    idle_timer: int | None = None
    gone_at: float | None = None
    input_fps: dict[str, float] = field(default_factory=dict)


@dataclass(eq=False, slots=True)
class InstanceRequest:
    """The record a launch leaves behind. Its state is read through `Account.request_state`:
    the moments below are when its live instances all had servers, all ran."""

    id: str
    configuration_id: str
    instance_ids: tuple[str, ...]
    created_at: float
    visible_at: float
    allocated_at: float | None = None
    running_at: float | None = None
    any_failed: bool = False
    failed: bool = False


@dataclass(order=True, frozen=True, slots=True)
class _Event:
    at: float
    seq: int
    kind: _EventKind = field(compare=False)
    instance_id: str = field(compare=False)


class Account:
    """One Streamrun account's state machine (everything but HTTP)."""

    def __init__(
        self,
        *,
        clock: Clock,
        configurations: Sequence[ConfigurationSeed],
        destinations: Sequence[DestinationSeed],
        capacity: int | None,
        slot_limit: int | None,
        boot_time: float,
        boot_jitter: float,
        idle_timeout: float | None,
        seed: int,
        epoch: datetime,
        dialect: Dialect,
        fail_rate: float,
    ) -> None:
        for name, value in (("capacity", capacity), ("slot_limit", slot_limit)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 or None, not {value}")
        if boot_time < 0 or boot_jitter < 0 or (idle_timeout is not None and idle_timeout < 0):
            raise ValueError("boot_time, boot_jitter and idle_timeout cannot be negative")
        if not 0 <= fail_rate <= 1:
            raise ValueError(f"fail_rate must be between 0 and 1, not {fail_rate}")
        self.epoch = epoch
        self.dialect = dialect
        self._clock = clock
        self._capacity = capacity
        self._slot_limit = slot_limit
        self._boot_time = boot_time
        self._boot_jitter = boot_jitter
        self._idle_timeout = idle_timeout
        self._fail_rate = fail_rate
        # Separate streams, so that e.g. drawing a boot jitter never changes later ids.
        self._id_rng = random.Random(f"{seed}:ids")
        self._boot_rng = random.Random(f"{seed}:boot")
        self._key_rng = random.Random(f"{seed}:stream-keys")
        self._fail_rng = random.Random(f"{seed}:failures")
        self.configurations: dict[str, ConfigurationSeed] = {}
        for cfg in configurations:
            cfg_id = cfg.id or self._new_id("cfg")
            self._add_unique(self.configurations, cfg_id, replace(cfg, id=cfg_id))
        self.destinations: dict[str, DestinationSeed] = {}
        for dst in destinations:
            dst_id = dst.id or self._new_id("dst")
            self._add_unique(self.destinations, dst_id, replace(dst, id=dst_id))
        self._time = clock.now()
        self._events: list[_Event] = []
        self._seq = itertools.count()
        self._order = itertools.count()  # creation order, live and lingering alike
        self._instances: dict[str, Instance] = {}
        self._lingering: dict[str, Instance] = {}  # stopped or failed, still shown
        self._requests: dict[str, InstanceRequest] = {}
        self._waiting: deque[str] = deque()  # FIFO of instances waiting for a server
        self._on_servers: set[str] = set()  # booting, starting or running instances
        self._preview_id: str | None = None
        self._billed: dict[str, float] = {}
        self._stopped: list[StoppedInstance] = []

    # -- reading -----------------------------------------------------------------

    def settle(self) -> None:
        """Fire every event due by the clock's now, in order, each at its own time."""
        now = self._clock.now()
        while self._events and self._events[0].at <= now:
            event = heapq.heappop(self._events)
            self._time = event.at
            self._fire(event)
        self._time = now
        if self._lingering:
            self._age_lingering()

    def configuration(self, configuration_id: str) -> ConfigurationSeed:
        """The configuration with that id, or a 404."""
        try:
            return self.configurations[configuration_id]
        except KeyError:
            raise not_found("configuration", configuration_id) from None

    def instances(self, configuration_id: str | None = None) -> list[Instance]:
        """Live instances in creation order, of one configuration (404 if unknown) or all."""
        self.settle()
        if configuration_id is None:
            return list(self._instances.values())
        self.configuration(configuration_id)
        return [i for i in self._instances.values() if i.configuration_id == configuration_id]

    def listed(self, configuration_id: str | None = None) -> list[Instance]:
        """What a list shows: the live and lingering instances the list lag lets through
        (a launch stopped before it showed never shows), in creation order."""
        alive = self.instances(configuration_id)
        gone = [
            i for i in self._lingering.values() if configuration_id in (None, i.configuration_id)
        ]
        shown = (i for i in (*alive, *gone) if i.visible_at <= self._time)
        return sorted(shown, key=lambda i: i.order)

    def instance(self, instance_id: str) -> Instance:
        """The live instance with that id, or a 404."""
        self.settle()
        try:
            return self._instances[instance_id]
        except KeyError:
            raise not_found("instance", instance_id) from None

    def writable(self, instance_id: str) -> Instance:
        """The live instance a write acts on: a 409 for a lingering one, else a 404."""
        self.settle()
        gone = self._lingering.get(instance_id)
        if gone is not None:
            raise ApiError(409, "conflict", f"instance {instance_id!r} is {gone.state}")
        return self.instance(instance_id)

    def find(self, instance_id: str) -> Instance | None:
        """The instance with that id, live or lingering, as it is (no settling, no lag)."""
        return self._instances.get(instance_id) or self._lingering.get(instance_id)

    def shown(self, instance_id: str) -> Instance:
        """What ``GET /instances/{id}`` finds: live (past the detail lag) or lingering."""
        self.settle()
        found = self.find(instance_id)
        if found is None or (self.dialect.detail_lag and found.visible_at > self._time):
            raise not_found("instance", instance_id)
        return found

    def request(self, request_id: str) -> InstanceRequest:
        """What ``GET /instance-requests/{id}`` finds: a request past the detail lag, or a
        404."""
        self.settle()
        found = self._requests.get(request_id)
        if found is None or (self.dialect.detail_lag and found.visible_at > self._time):
            raise not_found("instance request", request_id)
        return found

    def request_state(self, request: InstanceRequest) -> RequestState:
        """QUEUED or RUNNING (or failed) as the dialect's request timing says, now."""
        if request.failed:
            return self.dialect.failed_state
        mode = self.dialect.request_state
        if mode == "leads":
            since = request.allocated_at
        elif mode == "lags" and request.running_at is not None:
            since = request.running_at + self.dialect.request_lag
        else:
            since = request.running_at
        return "RUNNING" if since is not None and since <= self._time else "QUEUED"

    def snapshot(self) -> StateSnapshot:
        """A deep, frozen copy of the account for assertions."""
        self.settle()
        return StateSnapshot(
            now=self._time,
            instances=tuple(self._instance_snapshot(i) for i in self._instances.values()),
            requests=tuple(
                RequestSnapshot(
                    id=r.id,
                    configuration_id=r.configuration_id,
                    state=self.request_state(r),
                    instance_ids=r.instance_ids,
                    created_at=r.created_at,
                )
                for r in self._requests.values()
            ),
            stopped=tuple(self._stopped),
            lingering=tuple(self._instance_snapshot(i) for i in self._lingering.values()),
        )

    def billing(self) -> BillingReport:
        """Seconds RUNNING per instance up to now, stopped instances included."""
        self.settle()
        seconds = dict(self._billed)
        for instance in self._instances.values():
            if instance.running_since is not None:
                seconds[instance.id] += self._time - instance.running_since
        return BillingReport(seconds)

    # -- changing ----------------------------------------------------------------

    def launch(self, configuration_id: str, specs: Sequence[LaunchSpec]) -> InstanceRequest:
        """Queue one instance per spec under a new instance request."""
        self.settle()
        cfg = self.configuration(configuration_id)
        if self._slot_limit is not None:
            in_use = len(self._instances) - (self._preview_id is not None)
            free = max(0, self._slot_limit - in_use)
            if len(specs) > free:
                raise ApiError(
                    self.dialect.no_capacity_status,
                    "no_capacity",
                    _NO_CAPACITY.get(
                        self.dialect.no_capacity_wording,
                        f"Not enough instance slots: {free} instance slots available,"
                        f" {len(specs)} requested",
                    ),
                )
        request_id = self._new_id("ireq")
        visible_at = self._time + self.dialect.list_lag
        instances = [
            self._new_instance(cfg, spec.name, request_id, spec.overrides, visible_at)
            for spec in specs
        ]
        for instance in instances:
            self._instances[instance.id] = instance
            self._billed[instance.id] = 0.0
            self._waiting.append(instance.id)
        request = InstanceRequest(
            id=request_id,
            configuration_id=configuration_id,
            instance_ids=tuple(i.id for i in instances),
            created_at=self._time,
            visible_at=visible_at,
        )
        self._requests[request_id] = request
        self._schedule()
        return request

    def stop(self, instances: Sequence[Instance]) -> None:
        """Stop instances just read from this account (no settling in between, so they
        are all still alive); queued ones are cancelled, freed servers handed on."""
        for instance in instances:
            self._stop(instance, "api")
        self._schedule()

    def stop_one(self, instance_id: str) -> Instance:
        """``DELETE /instances/{id}``: a live instance stops; a lingering one is already
        stopping (nothing to do) or failed (it is cleared away); else a 404."""
        self.settle()
        instance = self._instances.get(instance_id)
        if instance is not None:
            self.stop([instance])
            return instance
        instance = self._lingering.get(instance_id)
        if instance is None:
            raise not_found("instance", instance_id)
        if instance.state == self.dialect.failed_state:
            del self._lingering[instance_id]
        return instance

    def stop_many(self, configuration_id: str | None = None) -> list[Instance]:
        """Stop every live instance (of one configuration) and clear its failed ones."""
        instances = self.instances(configuration_id)
        self.stop(instances)
        for instance in list(self._lingering.values()):
            failed = instance.state == self.dialect.failed_state
            if failed and configuration_id in (None, instance.configuration_id):
                del self._lingering[instance.id]
        return instances

    def fail(self, instance_id: str) -> None:
        """The live instance fails now: off its server, no longer billed, shown failed
        until deleted. KeyError if no such instance is live."""
        self.settle()
        self._fail(self._instances[instance_id])
        self._schedule()

    def set_input_fps(self, instance_id: str, element_id: str, fps: float) -> None:
        """What an encoder pushing into that input would make the detail report."""
        if not math.isfinite(fps) or fps < 0:  # NaN would make the detail invalid JSON
            raise ValueError(f"fps must be finite and not negative, got {fps}")
        self.settle()
        instance = self._instances[instance_id]
        if element_id not in instance.input_keys:
            raise KeyError(f"{element_id!r} is not an input of instance {instance_id!r}")
        instance.input_fps[element_id] = fps

    def restart(self, instance_id: str) -> Instance:
        """Send a RUNNING (or STARTING) instance back through its boot."""
        instance = self.writable(instance_id)
        if instance.state not in ("RUNNING", "STARTING"):
            raise ApiError(
                409,
                "conflict",
                f"instance {instance_id!r} is {instance.state}; only a RUNNING instance"
                " can be restarted",
            )
        self._bill(instance)
        instance.state = "STARTING"
        instance.idle_timer = None
        instance.boot_timer = self._arm("ready", instance.id, self._boot_duration())
        return instance

    def set_outputs(self, configuration_id: str, outputs: OutputsState) -> None:
        """Set outputs on every instance of the configuration; LIVE ends idleness."""
        for instance in self.instances(configuration_id):
            instance.outputs = outputs
            if instance.state == "RUNNING":
                self._watch_idle(instance)

    def update_overrides(self, instance_id: str, patch: Mapping[str, Overrides]) -> Overrides:
        """Merge per element: keys of each element's settings updated, others kept."""
        instance = self.writable(instance_id)
        for element_id, settings in patch.items():
            instance.overrides.setdefault(element_id, {}).update(settings)
        return instance.overrides

    def open_editor(self, configuration_id: str) -> str:
        """Give the configuration the account's one PREVIEW instance; returns its id."""
        self.settle()
        if configuration_id not in self.configurations:
            raise KeyError(configuration_id)
        self.close_editor()
        instance = self._new_instance(
            self.configurations[configuration_id], None, None, {}, self._time
        )
        instance.state = "PREVIEW"
        self._instances[instance.id] = instance
        self._preview_id = instance.id
        return instance.id

    def close_editor(self) -> None:
        """Stop the PREVIEW instance, if any."""
        self.settle()
        if self._preview_id is not None:
            self._stop(self._instances[self._preview_id], "editor")

    # -- internals ---------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}-{self._id_rng.getrandbits(64):016x}"

    def _new_key(self) -> str:
        return f"sk_{self._key_rng.getrandbits(96):024x}"

    def _new_instance(
        self,
        cfg: ConfigurationSeed,
        name: str | None,
        request_id: str | None,
        overrides: Overrides,
        visible_at: float,
    ) -> Instance:
        assert cfg.id is not None  # seeds get their ids in __init__
        inputs = [e for e in cfg.elements if e.startswith("inputstream-")]
        return Instance(
            id=self._new_id("inst"),
            configuration_id=cfg.id,
            name=name,
            request_id=request_id,
            created_at=self._time,
            overrides=overrides,
            stream_key=self._new_key(),
            input_keys={element_id: self._new_key() for element_id in inputs},
            visible_at=visible_at,
            order=next(self._order),
        )

    def _instance_snapshot(self, i: Instance) -> InstanceSnapshot:
        return InstanceSnapshot(
            id=i.id,
            configuration_id=i.configuration_id,
            name=i.name,
            state=i.state,
            outputs=i.outputs,
            request_id=i.request_id,
            overrides=copy.deepcopy(i.overrides),
            created_at=i.created_at,
            stream_key=i.stream_key,
            stream_keys=dict(i.input_keys),
        )

    @staticmethod
    def _add_unique(into: dict[str, Any], key: str, value: object) -> None:
        if key in into:
            raise ValueError(f"duplicate seed id {key!r}")
        into[key] = value

    def _boot_duration(self) -> float:
        jitter = self._boot_rng.uniform(0, self._boot_jitter) if self._boot_jitter else 0.0
        return self._boot_time + jitter

    def _arm(self, kind: _EventKind, instance_id: str, delay: float) -> int:
        seq = next(self._seq)
        heapq.heappush(self._events, _Event(self._time + delay, seq, kind, instance_id))
        return seq

    def _fire(self, event: _Event) -> None:
        instance = self._instances.get(event.instance_id)
        if instance is None:
            return
        if event.kind == "ready" and instance.boot_timer == event.seq:
            instance.boot_timer = None
            if self._fail_rate and self._fail_rng.random() < self._fail_rate:
                self._fail(instance)
                self._schedule()
                return
            instance.state = "RUNNING"
            instance.running_since = self._time
            self._watch_idle(instance)
            self._refresh_requests([instance])
        elif event.kind == "idle" and instance.idle_timer == event.seq:
            self._stop(instance, "idle")
            self._schedule()

    def _schedule(self) -> None:
        """Hand free servers to waiting instances, first come first served."""
        booted = []
        while self._waiting and (self._capacity is None or len(self._on_servers) < self._capacity):
            instance = self._instances.get(self._waiting.popleft())
            if instance is None:  # stopped while it waited
                continue
            self._on_servers.add(instance.id)
            instance.state = self.dialect.booting_state
            instance.boot_timer = self._arm("ready", instance.id, self._boot_duration())
            booted.append(instance)
        self._refresh_requests(booted)

    def _watch_idle(self, instance: Instance) -> None:
        """Arm the idle stop of a RUNNING instance with outputs OFFLINE, else disarm it."""
        if instance.outputs == "LIVE" or self._idle_timeout is None:
            instance.idle_timer = None
        elif instance.idle_timer is None:  # already OFFLINE: the countdown goes on
            instance.idle_timer = self._arm("idle", instance.id, self._idle_timeout)

    def _refresh_requests(self, instances: Iterable[Instance]) -> None:
        ids = {i.request_id for i in instances if i.request_id is not None}
        for request_id in ids:
            self._refresh_request(self._requests[request_id])

    def _refresh_request(self, request: InstanceRequest) -> None:
        """Note when the request's live instances all have servers, and all run."""
        if request.running_at is not None or request.failed:
            return
        alive = [self._instances[i] for i in request.instance_ids if i in self._instances]
        if not alive:
            request.failed = request.any_failed
            return
        if request.allocated_at is None and all(i.id in self._on_servers for i in alive):
            request.allocated_at = self._time
        if all(i.state == "RUNNING" for i in alive):
            request.running_at = self._time

    def _bill(self, instance: Instance) -> None:
        if instance.running_since is not None:
            self._billed[instance.id] += self._time - instance.running_since
            instance.running_since = None

    def _leave(self, instance: Instance, reason: StopReason) -> None:
        """Take a live instance off the account: billing ends, its server is freed."""
        del self._instances[instance.id]
        self._bill(instance)
        self._on_servers.discard(instance.id)
        instance.gone_at = self._time
        if instance.id == self._preview_id:
            self._preview_id = None
        self._stopped.append(
            StoppedInstance(instance.id, instance.configuration_id, reason, self._time)
        )

    def _stop(self, instance: Instance, reason: StopReason) -> None:
        """Remove one instance; the caller reschedules once after a batch."""
        self._leave(instance, reason)
        if self.dialect.stopping_time + self.dialect.stopped_linger > 0:
            instance.state = "STOPPING" if self.dialect.stopping_time > 0 else "STOPPED"
            self._lingering[instance.id] = instance
        self._refresh_requests([instance])

    def _fail(self, instance: Instance) -> None:
        self._leave(instance, "failed")
        instance.state = self.dialect.failed_state
        self._lingering[instance.id] = instance  # until deleted
        if instance.request_id is not None:
            self._requests[instance.request_id].any_failed = True
        self._refresh_requests([instance])

    def _age_lingering(self) -> None:
        """STOPPING turns STOPPED after ``stopping_time``; STOPPED goes after
        ``stopped_linger``; failed instances stay until deleted."""
        stopping, linger = self.dialect.stopping_time, self.dialect.stopped_linger
        for instance in list(self._lingering.values()):
            if instance.state not in ("STOPPING", "STOPPED"):
                continue
            assert instance.gone_at is not None
            age = self._time - instance.gone_at
            if age >= stopping + linger:
                del self._lingering[instance.id]
            elif age >= stopping:
                instance.state = "STOPPED"
