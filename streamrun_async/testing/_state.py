"""The emulated account: instances, instance requests, the scheduler and billing.

Time-driven changes (an instance finishing its boot, an idle instance stopping itself)
sit in a heap of events. Every operation first *settles* the account to the clock's
``now``, firing due events in time order at their own timestamps. So the real clock needs
no background task, and under the virtual clock everything is deterministic.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import random
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from ._clock import Clock
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


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """One instance of a launch: its name (None for a default launch) and overrides."""

    name: str | None
    overrides: Overrides


@dataclass(eq=False, slots=True)
class Instance:
    """A live instance. ``*_timer`` hold the sequence number of the pending event that
    is still meant to fire; anything else in the heap for this instance is stale."""

    id: str
    configuration_id: str
    name: str | None
    request_id: str | None
    created_at: float
    overrides: Overrides
    state: InstanceState = "QUEUED"
    outputs: OutputsState = "OFFLINE"
    running_since: float | None = None
    boot_timer: int | None = None
    idle_timer: int | None = None


@dataclass(eq=False, slots=True)
class InstanceRequest:
    """The record a launch leaves behind."""

    id: str
    configuration_id: str
    instance_ids: tuple[str, ...]
    created_at: float
    state: RequestState = "QUEUED"


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
    ) -> None:
        for name, value in (("capacity", capacity), ("slot_limit", slot_limit)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 or None, not {value}")
        if boot_time < 0 or boot_jitter < 0 or (idle_timeout is not None and idle_timeout < 0):
            raise ValueError("boot_time, boot_jitter and idle_timeout cannot be negative")
        self.epoch = epoch
        self._clock = clock
        self._capacity = capacity
        self._slot_limit = slot_limit
        self._boot_time = boot_time
        self._boot_jitter = boot_jitter
        self._idle_timeout = idle_timeout
        # Separate streams, so that e.g. drawing a boot jitter never changes later ids.
        self._id_rng = random.Random(f"{seed}:ids")
        self._boot_rng = random.Random(f"{seed}:boot")
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
        self._instances: dict[str, Instance] = {}
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

    def instance(self, instance_id: str) -> Instance:
        """The live instance with that id, or a 404."""
        self.settle()
        try:
            return self._instances[instance_id]
        except KeyError:
            raise not_found("instance", instance_id) from None

    def request(self, request_id: str) -> InstanceRequest:
        """The instance request with that id, or a 404."""
        self.settle()
        try:
            return self._requests[request_id]
        except KeyError:
            raise not_found("instance request", request_id) from None

    def snapshot(self) -> StateSnapshot:
        """A deep, frozen copy of the account for assertions."""
        self.settle()
        return StateSnapshot(
            now=self._time,
            instances=tuple(
                InstanceSnapshot(
                    id=i.id,
                    configuration_id=i.configuration_id,
                    name=i.name,
                    state=i.state,
                    outputs=i.outputs,
                    request_id=i.request_id,
                    overrides=copy.deepcopy(i.overrides),
                    created_at=i.created_at,
                )
                for i in self._instances.values()
            ),
            requests=tuple(
                RequestSnapshot(
                    id=r.id,
                    configuration_id=r.configuration_id,
                    state=r.state,
                    instance_ids=r.instance_ids,
                    created_at=r.created_at,
                )
                for r in self._requests.values()
            ),
            stopped=tuple(self._stopped),
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
        self.configuration(configuration_id)
        if self._slot_limit is not None:
            in_use = len(self._instances) - (self._preview_id is not None)
            free = max(0, self._slot_limit - in_use)
            if len(specs) > free:
                raise ApiError(
                    400,
                    "no_capacity",
                    f"Not enough instance slots: {free} instance slots available,"
                    f" {len(specs)} requested",
                )
        request_id = self._new_id("ireq")
        instances = [
            Instance(
                id=self._new_id("inst"),
                configuration_id=configuration_id,
                name=spec.name,
                request_id=request_id,
                created_at=self._time,
                overrides=spec.overrides,
            )
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

    def restart(self, instance_id: str) -> Instance:
        """Send a RUNNING (or STARTING) instance back through its boot."""
        instance = self.instance(instance_id)
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
        instance = self.instance(instance_id)
        for element_id, settings in patch.items():
            instance.overrides.setdefault(element_id, {}).update(settings)
        return instance.overrides

    def open_editor(self, configuration_id: str) -> str:
        """Give the configuration the account's one PREVIEW instance; returns its id."""
        self.settle()
        if configuration_id not in self.configurations:
            raise KeyError(configuration_id)
        self.close_editor()
        instance = Instance(
            id=self._new_id("inst"),
            configuration_id=configuration_id,
            name=None,
            request_id=None,
            created_at=self._time,
            overrides={},
            state="PREVIEW",
        )
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
            instance.state = "RUNNING"
            instance.running_since = self._time
            self._watch_idle(instance)
            if instance.request_id is not None:
                self._refresh_request(self._requests[instance.request_id])
        elif event.kind == "idle" and instance.idle_timer == event.seq:
            self._stop(instance, "idle")
            self._schedule()

    def _schedule(self) -> None:
        """Hand free servers to waiting instances, first come first served."""
        while self._waiting and (self._capacity is None or len(self._on_servers) < self._capacity):
            instance = self._instances.get(self._waiting.popleft())
            if instance is None:  # stopped while it waited
                continue
            self._on_servers.add(instance.id)
            instance.boot_timer = self._arm("ready", instance.id, self._boot_duration())

    def _watch_idle(self, instance: Instance) -> None:
        """Arm the idle stop of a RUNNING instance with outputs OFFLINE, else disarm it."""
        if instance.outputs == "LIVE" or self._idle_timeout is None:
            instance.idle_timer = None
        elif instance.idle_timer is None:  # already OFFLINE: the countdown goes on
            instance.idle_timer = self._arm("idle", instance.id, self._idle_timeout)

    def _refresh_request(self, request: InstanceRequest) -> None:
        """A request runs once all of its instances still alive run."""
        if request.state == "RUNNING":
            return
        alive = [self._instances[i] for i in request.instance_ids if i in self._instances]
        if alive and all(i.state == "RUNNING" for i in alive):
            request.state = "RUNNING"

    def _bill(self, instance: Instance) -> None:
        if instance.running_since is not None:
            self._billed[instance.id] += self._time - instance.running_since
            instance.running_since = None

    def _stop(self, instance: Instance, reason: StopReason) -> None:
        """Remove one instance; the caller reschedules once after a batch."""
        del self._instances[instance.id]
        self._bill(instance)
        self._on_servers.discard(instance.id)
        if instance.id == self._preview_id:
            self._preview_id = None
        self._stopped.append(
            StoppedInstance(instance.id, instance.configuration_id, reason, self._time)
        )
        if instance.request_id is not None:
            self._refresh_request(self._requests[instance.request_id])
