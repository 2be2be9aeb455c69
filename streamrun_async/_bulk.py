"""launch_many: many instances across many configurations, each launched exactly once.

Streamrun has no idempotency key and bills per second, so a launch whose answer was lost
is never sent again blindly. Instead the configuration's instances are listed and
matched by name against the plan: only names truly missing are launched again, and a name
whose fate cannot be learned is reported as unknown rather than guessed.

Names already present in a configuration before the call are reported (``existing``) and
not launched again, so re-running a plan after a crash does not double it.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from ._exceptions import (
    APIError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    StreamrunError,
    WaitError,
)
from ._http import path_segment
from ._models import Instance, InstanceRequest, InstanceSettings, InstanceState
from ._resources import check_instances

if TYPE_CHECKING:
    from ._client import StreamrunClient

__all__ = [
    "LaunchError",
    "LaunchEvent",
    "LaunchEventKind",
    "LaunchReport",
    "LaunchSpec",
    "LaunchedInstance",
    "Plan",
]

# Cleanup after a cancellation or failure (reconcile, roll back) gets this long at most.
_CLEANUP_SECONDS = 30.0
# With timeout=None the wait still has a deadline, as every wait does.
_DEFAULT_WAIT_SECONDS = 600.0
# Launches of one chunk whose answers were all lost before it is reported failed.
_MAX_LAUNCH_ROUNDS = 5


def _settings_tuple(items: Iterable[InstanceSettings]) -> tuple[InstanceSettings, ...]:
    return tuple(items)


@attrs.frozen
class LaunchSpec:
    """The instances to launch for one configuration."""

    configuration_id: str
    instances: tuple[InstanceSettings, ...] = attrs.field(converter=_settings_tuple)


Plan = Mapping[str, Sequence[InstanceSettings]] | Iterable[LaunchSpec]
"""``{configuration_id: [InstanceSettings, ...]}`` or a sequence of :class:`LaunchSpec`."""


class LaunchEventKind(enum.Enum):
    """The steps of a bulk launch, as reported to ``on_progress``."""

    EXISTING = "EXISTING"  # names already running before the call: not launched again
    SUBMITTED = "SUBMITTED"  # a launch POST is being sent
    LAUNCHED = "LAUNCHED"  # the API accepted it: an instance request exists
    RECONCILING = "RECONCILING"  # the answer was lost: listing to learn what happened
    FAILED = "FAILED"  # these names certainly did not launch
    UNKNOWN = "UNKNOWN"  # their fate could not be learned
    RUNNING = "RUNNING"  # their instance request is RUNNING
    ROLLED_BACK = "ROLLED_BACK"  # stopped again because the call failed or was cancelled


@attrs.frozen
class LaunchEvent:
    """One step for some names of one configuration."""

    kind: LaunchEventKind
    configuration_id: str
    names: tuple[str, ...]
    request: InstanceRequest | None = None
    error: BaseException | None = None


@attrs.define
class LaunchedInstance:
    """What is known of one launched name."""

    name: str
    configuration_id: str
    request_id: str | None
    instance_id: str | None = None
    state: InstanceState = InstanceState.QUEUED
    existing: bool = False
    launched_at: float = 0.0
    running_after: float | None = None


@attrs.define
class LaunchReport:
    """The outcome of ``launch_many``: every planned name is in exactly one mapping.

    ``launched``: name -> :class:`LaunchedInstance`; ``failed``: name -> the typed error;
    ``unknown``: name -> configuration id, for names whose fate could not be learned;
    ``wait_error``: why waiting ended early, if it did.
    """

    launched: dict[str, LaunchedInstance] = attrs.Factory(dict)
    failed: dict[str, BaseException] = attrs.Factory(dict)
    unknown: dict[str, str] = attrs.Factory(dict)
    wait_error: WaitError | None = None
    rolled_back: list[str] = attrs.Factory(list)
    launch_calls: int = 0
    reconciliations: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing failed, nothing is unknown and waiting (if any) succeeded."""
        return not self.failed and not self.unknown and self.wait_error is None

    def raise_for_failures(self) -> None:
        """Raise an ExceptionGroup of the failures (each noted with its names), if any."""
        errors: dict[int, BaseException] = {}
        for error in self.failed.values():
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
    ) -> None:
        if not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidArgumentError("concurrency must be an int >= 1")
        if not isinstance(max_per_request, int) or max_per_request < 1:
            raise InvalidArgumentError("max_per_request must be an int >= 1")
        self.client = client
        self.specs = specs
        self.max_per_request = max_per_request
        self.fail_fast = fail_fast
        self.rollback = rollback
        self.on_progress = on_progress
        self.report = report if report is not None else LaunchReport()
        self._slots = asyncio.Semaphore(concurrency)
        # Names whose POST is on the wire: their outcome is unknown if we are interrupted.
        self._in_flight: dict[str, str] = {}
        self._existing: dict[str, set[str]] = {}
        self._requests: dict[str, InstanceRequest] = {}
        self._started = time.monotonic()

    def emit(self, kind: LaunchEventKind, cfg: str, names: Iterable[str], **kw: Any) -> None:
        if self.on_progress is not None:
            self.on_progress(LaunchEvent(kind, cfg, tuple(names), **kw))

    async def run(self, *, wait: bool, timeout: float | None) -> LaunchReport:
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            await self._launch_all()
            if wait:
                await self._wait(deadline)
            else:
                await self._fill_instances()
        except BaseException:
            # Cancelled or broken: settle what was on the wire, roll back if asked, and
            # let the caller's report= object hold the outcome.
            await asyncio.shield(self._cleanup(rolling_back=self.rollback))
            raise
        if self.fail_fast and (self.report.failed or self.report.unknown):
            await asyncio.shield(self._cleanup(rolling_back=self.rollback))
            raise LaunchError("launch_many stopped at the first failure", report=self.report)
        return self.report

    async def _launch_all(self) -> None:
        tasks = [asyncio.create_task(self._launch_config(spec)) for spec in self.specs]
        try:
            for finished in asyncio.as_completed(tasks):
                await finished
                if self.fail_fast and (self.report.failed or self.report.unknown):
                    break
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _launch_config(self, spec: LaunchSpec) -> None:
        cfg = spec.configuration_id
        names = [item.name for item in spec.instances]
        try:
            async with self._slots:
                existing = await self.client.configurations.list_instances(cfg)
        except StreamrunError as error:
            self._fail(cfg, names, error)
            return
        existing_names = {inst.name for inst in existing if inst.name is not None}
        self._existing[cfg] = {inst.id for inst in existing}
        planned = set(names)
        already = [inst for inst in existing if inst.name in planned]
        for inst in already:
            self._record(cfg, inst.name or "", inst.request_id, inst, existing=True)
        if already:
            self.emit(LaunchEventKind.EXISTING, cfg, [i.name or "" for i in already])
        todo = [item for item in spec.instances if item.name not in existing_names]
        step = self.max_per_request
        await asyncio.gather(
            *(self._launch_chunk(cfg, todo[i : i + step]) for i in range(0, len(todo), step))
        )

    async def _launch_chunk(self, cfg: str, chunk: list[InstanceSettings]) -> None:
        pending = chunk
        for round_no in range(1, _MAX_LAUNCH_ROUNDS + 1):
            names = [item.name for item in pending]
            try:
                async with self._slots:
                    self.emit(LaunchEventKind.SUBMITTED, cfg, names)
                    self._in_flight.update(dict.fromkeys(names, cfg))
                    self.report.launch_calls += 1
                    request = await self.client.configurations.launch(cfg, pending)
            except APIError as error:
                if not error.outcome_unknown:
                    self._forget(names)
                    self._fail(cfg, names, error)
                    return
                self.emit(LaunchEventKind.RECONCILING, cfg, names, error=error)
                found = await self._reconcile(cfg, names)
                if found is None:
                    return
                pending = [item for item in pending if item.name not in found]
                missing = [item.name for item in pending]
                self._forget(missing)
                if not pending:
                    return
                if round_no == _MAX_LAUNCH_ROUNDS:
                    # Listed as missing after every launch of them was lost: report them
                    # failed rather than retry without end.
                    self._fail(cfg, missing, error)
                    return
                continue
            except StreamrunError as error:
                self._forget(names)
                self._fail(cfg, names, error)
                return
            self._forget(names)
            self._requests[request.id] = request
            for name in names:
                self._record(cfg, name, request.id, None)
            self.emit(LaunchEventKind.LAUNCHED, cfg, names, request=request)
            return

    def _forget(self, names: Iterable[str]) -> None:
        for name in names:
            self._in_flight.pop(name, None)

    async def _reconcile(self, cfg: str, names: list[str]) -> set[str] | None:
        """List ``cfg`` and record which ``names`` exist; None if that cannot be learned."""
        self.report.reconciliations += 1
        try:
            listed = await self.client.configurations.list_instances(cfg)
        except StreamrunError as error:
            self._forget(names)
            for name in names:
                self.report.unknown[name] = cfg
            self.emit(LaunchEventKind.UNKNOWN, cfg, names, error=error)
            return None
        wanted = set(names)
        before = self._existing.get(cfg, set())
        found: set[str] = set()
        for inst in listed:
            if inst.name in wanted and inst.id not in before:
                found.add(inst.name)
                self._record(cfg, inst.name, inst.request_id, inst)
        self._forget(found)
        if found:
            self.emit(LaunchEventKind.LAUNCHED, cfg, sorted(found))
        return found

    def _record(
        self,
        cfg: str,
        name: str,
        request_id: str | None,
        instance: Instance | None,
        *,
        existing: bool = False,
    ) -> None:
        self.report.launched[name] = LaunchedInstance(
            name=name,
            configuration_id=cfg,
            request_id=request_id,
            instance_id=None if instance is None else instance.id,
            state=InstanceState.QUEUED if instance is None else instance.state,
            existing=existing,
            launched_at=time.monotonic() - self._started,
        )

    def _fail(self, cfg: str, names: list[str], error: BaseException) -> None:
        error.add_note(f"configuration {cfg}: {len(names)} instance(s): {names[:20]}")
        for name in names:
            self.report.failed[name] = error
        self.emit(LaunchEventKind.FAILED, cfg, names, error=error)

    async def _wait(self, deadline: float | None) -> None:
        by_request: dict[str, list[LaunchedInstance]] = {}
        for item in self.report.launched.values():
            if item.request_id is not None and item.state is not InstanceState.RUNNING:
                by_request.setdefault(item.request_id, []).append(item)
        left = _DEFAULT_WAIT_SECONDS if deadline is None else deadline - time.monotonic()
        if by_request:
            try:
                watched = [self._requests.get(rid, rid) for rid in by_request]
                async for request in self.client.instance_requests.watch(
                    watched, timeout=max(left, 0.001)
                ):
                    if request.state is InstanceState.RUNNING:
                        items = by_request.get(request.id, [])
                        for item in items:
                            item.state = InstanceState.RUNNING
                            item.running_after = time.monotonic() - self._started
                        cfg = items[0].configuration_id if items else ""
                        self.emit(
                            LaunchEventKind.RUNNING, cfg, [i.name for i in items], request=request
                        )
            except WaitError as error:
                self.report.wait_error = error
        await self._fill_instances()

    async def _fill_instances(self) -> None:
        """One list call gives every launched name its instance id and latest state."""
        try:
            listed = await self.client.instances.list()
        except StreamrunError:
            return
        for inst in listed:
            item = self.report.launched.get(inst.name or "")
            if (
                item is not None
                and item.configuration_id == inst.configuration_id
                and item.instance_id in (None, inst.id)
            ):
                item.instance_id = inst.id
                item.state = inst.state

    async def _cleanup(self, *, rolling_back: bool) -> None:
        """After a failure or cancellation: settle in-flight names, then roll back."""
        try:
            async with asyncio.timeout(_CLEANUP_SECONDS):
                in_flight: dict[str, list[str]] = {}
                for name, cfg in self._in_flight.items():
                    in_flight.setdefault(cfg, []).append(name)
                for cfg, names in in_flight.items():
                    await self._reconcile(cfg, names)
                    for name in names:
                        if name in self._in_flight:
                            self.report.unknown.setdefault(name, cfg)
                self._in_flight.clear()
                if rolling_back:
                    await self._roll_back()
        except (TimeoutError, StreamrunError):
            for name, cfg in self._in_flight.items():
                self.report.unknown.setdefault(name, cfg)

    async def _roll_back(self) -> None:
        mine = {n: i for n, i in self.report.launched.items() if not i.existing}
        configs = {item.configuration_id for item in mine.values()}
        for cfg in configs:
            listed = await self.client.configurations.list_instances(cfg)
            before = self._existing.get(cfg, set())
            targets = [
                inst
                for inst in listed
                if inst.name in mine
                and inst.id not in before
                and mine[inst.name].configuration_id == cfg
            ]
            await asyncio.gather(*(self.client.instances.stop(inst.id) for inst in targets))
            stopped = [inst.name or "" for inst in targets]
            self.report.rolled_back.extend(stopped)
            if stopped:
                self.emit(LaunchEventKind.ROLLED_BACK, cfg, stopped)


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
