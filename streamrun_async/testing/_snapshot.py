"""Frozen views of the emulated account, for assertions in tests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "BillingReport",
    "InstanceSnapshot",
    "InstanceState",
    "OutputsState",
    "RequestSnapshot",
    "RequestState",
    "StateSnapshot",
    "StopReason",
    "StoppedInstance",
]

InstanceState = Literal[
    "QUEUED", "STARTING", "RUNNING", "PREVIEW", "STOPPING", "STOPPED", "FAILED", "ERROR"
]
RequestState = Literal["QUEUED", "RUNNING", "FAILED", "ERROR"]
OutputsState = Literal["LIVE", "OFFLINE"]
# "api": a DELETE asked for it; "idle": RUNNING with outputs OFFLINE for idle_timeout;
# "editor": the editor closed (or opened another configuration) and took its preview along;
# "failed": it failed to boot (``fail_rate``) or was made to fail (``Emulator.fail_instance``).
StopReason = Literal["api", "idle", "editor", "failed"]


@dataclass(frozen=True, slots=True)
class InstanceSnapshot:
    """One instance; ``created_at`` is in emulator seconds. ``name`` is as launched,
    whatever the dialect echoes; ``stream_key`` is the instance's top-level key and
    ``stream_keys`` maps each input element to the key an encoder publishes with."""

    id: str
    configuration_id: str
    name: str | None
    state: InstanceState
    outputs: OutputsState
    request_id: str | None
    overrides: Mapping[str, Mapping[str, Any]]
    created_at: float
    stream_key: str = ""
    stream_keys: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        # Stream keys are secrets, even in a test's assertion message.
        return f"InstanceSnapshot(id={self.id!r}, name={self.name!r}, state={self.state!r})"


@dataclass(frozen=True, slots=True)
class RequestSnapshot:
    """One instance request; it keeps listing instances that have since stopped."""

    id: str
    configuration_id: str
    state: RequestState
    instance_ids: tuple[str, ...]
    created_at: float

    @property
    def number_of_instances(self) -> int:
        """How many instances the launch asked for."""
        return len(self.instance_ids)


@dataclass(frozen=True, slots=True)
class StoppedInstance:
    """An instance that is gone, why, and when (emulator seconds)."""

    id: str
    configuration_id: str
    reason: StopReason
    at: float


@dataclass(frozen=True, slots=True)
class StateSnapshot:
    """The account at emulator time ``now``: live instances, all requests, all stops, and
    the instances that are gone but still shown (STOPPING, STOPPED, failed)."""

    now: float
    instances: tuple[InstanceSnapshot, ...]
    requests: tuple[RequestSnapshot, ...]
    stopped: tuple[StoppedInstance, ...]
    lingering: tuple[InstanceSnapshot, ...] = ()

    def instance(self, instance_id: str) -> InstanceSnapshot:
        """The live instance with that id; KeyError when there is none."""
        for instance in self.instances:
            if instance.id == instance_id:
                return instance
        raise KeyError(instance_id)

    def request(self, request_id: str) -> RequestSnapshot:
        """The instance request with that id; KeyError when there is none."""
        for request in self.requests:
            if request.id == request_id:
                return request
        raise KeyError(request_id)

    def count(
        self, state: InstanceState | None = None, *, configuration_id: str | None = None
    ) -> int:
        """How many live instances are in ``state`` (any) of ``configuration_id`` (any)."""
        return sum(
            1
            for instance in self.instances
            if (state is None or instance.state == state)
            and (configuration_id is None or instance.configuration_id == configuration_id)
        )


@dataclass(frozen=True, slots=True)
class BillingReport:
    """Seconds spent RUNNING per instance id, stopped instances included."""

    seconds: Mapping[str, float]

    @property
    def total(self) -> float:
        """Billed seconds over all instances."""
        return sum(self.seconds.values())

    def cost(self, per_hour: float = 0.39) -> float:
        """What the total would cost at ``per_hour`` (Streamrun's example list price)."""
        return self.total * per_hour / 3600
