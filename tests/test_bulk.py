"""launch_many against the emulator: exactly-once under faults, failures, cancellation."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from _launch_support import LAUNCH, LIST_CFG, SETTLE, emulated, fast_client, run_with_clock

import streamrun_async as sr
from streamrun_async.testing import Emulator, Fault


def plan_for(
    emu: Emulator, per_config: int, prefix: str = ""
) -> dict[str, list[sr.InstanceSettings]]:
    return {
        cfg: [
            sr.InstanceSettings(
                name=f"{prefix}{cfg}-{n}",
                overrides={"htmloverlay-1": {"url": f"https://example.test/{cfg}/{n}"}},
            )
            for n in range(per_config)
        ]
        for cfg in emu.configuration_ids
    }


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with emulated(configurations=5) as emulator:
        yield emulator


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[sr.StreamrunClient]:
    async with fast_client(emu) as c:
        yield c


async def test_five_hundred_instances_exactly_once_under_dropped_and_refused_launches() -> None:
    async with emulated(configurations=50, seed=7) as emu, fast_client(emu, attempts=6) as client:
        emu.faults.set_rate(Fault.DROP_AFTER, 0.10, route=LAUNCH)
        emu.faults.set_rate(Fault.HTTP_503, 0.10, route=LAUNCH)
        plan = plan_for(emu, 10)
        report = await run_with_clock(
            emu,
            client.launch_many(plan, concurrency=8, max_per_request=5, wait=True, settle=SETTLE),
        )
        live = emu.state.instances
        names = Counter(i.name for i in live)

    assert emu.stats.injected(Fault.DROP_AFTER) > 0
    assert emu.stats.injected(Fault.HTTP_503) > 0
    assert len(live) == 500
    assert max(names.values()) == 1
    assert set(names) == {s.name for items in plan.values() for s in items}
    assert {i.state for i in live} == {"RUNNING"}
    assert report.ok, (report.failed, report.unknown, report.wait_error)
    assert set(report.launched) == set(names)
    assert {i.state for i in report.launched.values()} == {sr.InstanceState.RUNNING}
    assert all(i.instance_id for i in report.launched.values())
    # Each dropped launch was settled by listing its configuration, never by re-sending.
    assert report.reconciliations == emu.stats.injected(Fault.DROP_AFTER)
    # A list before launching and one that confirms the launches show: 2 per configuration.
    assert emu.stats.count(LIST_CFG) == 100 + report.reconciliations


async def test_duplicate_names_are_refused_before_any_request(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    a, b = emu.configuration_ids[:2]
    plan = {
        a: [sr.InstanceSettings(name="cam"), sr.InstanceSettings(name="x")],
        b: [sr.InstanceSettings(name="cam")],
    }
    with pytest.raises(sr.InvalidArgumentError, match="cam"):
        await client.launch_many(plan)
    with pytest.raises(sr.InvalidArgumentError):
        await client.launch_many({"": [sr.InstanceSettings(name="y")]})
    with pytest.raises(sr.InvalidArgumentTypeError):
        await client.launch_many([("cfg", ["a"])])  # type: ignore[list-item]
    assert emu.stats.total == 0


async def test_a_configuration_that_404s_fails_alone(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    plan: dict[str, list[sr.InstanceSettings]] = dict(plan_for(emu, 2))
    plan["cfg-does-not-exist"] = [sr.InstanceSettings(name="ghost-1")]
    report = await client.launch_many(plan)
    assert set(report.failed) == {"ghost-1"}
    assert isinstance(report.failed["ghost-1"], sr.NotFoundError)
    assert len(report.launched) == 10
    assert len(emu.state.instances) == 10
    with pytest.raises(ExceptionGroup) as info:
        report.raise_for_failures()
    assert info.group_contains(sr.NotFoundError)


async def test_fail_fast_stops_with_the_report(emu: Emulator, client: sr.StreamrunClient) -> None:
    plan = {"cfg-missing": [sr.InstanceSettings(name="ghost")], **plan_for(emu, 1)}
    with pytest.raises(sr.LaunchError) as info:
        await client.launch_many(plan, concurrency=1, fail_fast=True)
    assert "ghost" in info.value.report.failed


async def test_no_capacity_is_a_certain_failure_reported_per_configuration() -> None:
    async with emulated(configurations=2, slot_limit=3) as emu, fast_client(emu) as client:
        a, b = emu.configuration_ids
        plan = {
            a: [sr.InstanceSettings(name=f"a{n}") for n in range(3)],
            b: [sr.InstanceSettings(name=f"b{n}") for n in range(2)],
        }
        report = await client.launch_many(plan, concurrency=1)
        assert set(report.launched) == {"a0", "a1", "a2"}
        assert {type(e) for e in report.failed.values()} == {sr.NoCapacityError}
        assert emu.stats.count(LAUNCH) == 2


async def test_rerunning_a_plan_launches_nothing_twice(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    plan = plan_for(emu, 3)
    first = await client.launch_many(plan)
    second = await client.launch_many(plan)
    assert len(emu.state.instances) == 15
    assert all(item.existing for item in second.launched.values())
    assert not any(item.existing for item in first.launched.values())
    # Even without waiting, one list call gives every name its instance id.
    live = {i.name: i.id for i in emu.state.instances}
    assert {n: i.instance_id for n, i in first.launched.items()} == live
    assert set(second.launched) == set(first.launched)


async def test_cancelled_without_rollback_keeps_what_launched_in_the_report(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    report = sr.LaunchReport()
    launched = asyncio.Event()

    def progress(event: sr.LaunchEvent) -> None:
        if event.kind is sr.LaunchEventKind.LAUNCHED:
            launched.set()

    task = asyncio.create_task(
        client.launch_many(
            plan_for(emu, 4), concurrency=1, max_per_request=1, on_progress=progress, report=report
        )
    )
    await asyncio.wait_for(launched.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    live = {i.name for i in emu.state.instances}
    # What launched is reported; a POST cut off by the cancellation may be unknown, never lost.
    assert set(report.launched) <= live <= set(report.launched) | set(report.unknown)
    assert 0 < len(live) < 20
    # At most the one POST on the wire (concurrency=1), and the report says so.
    assert len(report.unknown) <= 1
    for name in report.unknown:
        assert "on the wire" in (report.items[name].reason or "")


async def test_cancelled_with_rollback_leaves_no_orphan(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    report = sr.LaunchReport()
    launched = asyncio.Event()

    def progress(event: sr.LaunchEvent) -> None:
        if event.kind is sr.LaunchEventKind.LAUNCHED:
            launched.set()

    # One launch already running before the call must survive the rollback.
    before = await client.configurations.launch(emu.configuration_ids[0])
    task = asyncio.create_task(
        client.launch_many(
            plan_for(emu, 4),
            concurrency=1,
            max_per_request=1,
            rollback=True,
            on_progress=progress,
            report=report,
        )
    )
    await asyncio.wait_for(launched.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert report.rolled_back
    assert not report.launched
    assert not report.rollback_errors
    assert {report.items[n].status for n in report.rolled_back} == {sr.LaunchStatus.ROLLED_BACK}
    assert [i.request_id for i in emu.state.instances] == [before.id]


async def test_iterating_reports_progress_until_running(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    report = sr.LaunchReport()
    kinds: list[sr.LaunchEventKind] = []

    async def consume() -> None:
        async for event in client.launch_many_iter(plan_for(emu, 2), report=report):
            kinds.append(event.kind)

    await run_with_clock(emu, consume())
    counts = Counter(kinds)
    assert counts[sr.LaunchEventKind.SUBMITTED] == 5
    assert counts[sr.LaunchEventKind.LAUNCHED] == 5
    assert counts[sr.LaunchEventKind.RUNNING] == 5
    assert kinds.index(sr.LaunchEventKind.RUNNING) > kinds.index(sr.LaunchEventKind.LAUNCHED)
    assert report.ok
    assert len(report.launched) == 10


async def test_wait_deadline_is_reported_not_hidden(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    report = await client.launch_many(plan_for(emu, 1), wait=True, timeout=0.05)
    assert isinstance(report.wait_error, sr.WaitTimeoutError)
    assert len(report.launched) == 5
    assert {i.state for i in report.launched.values()} == {sr.InstanceState.QUEUED}
    with pytest.raises(ExceptionGroup) as info:
        report.raise_for_failures()
    assert info.group_contains(sr.WaitTimeoutError)


async def test_launches_lost_every_time_end_as_failures_not_a_loop(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    cfg = emu.configuration_ids[0]
    # The connection drops before the server acts, on every launch: nothing ever starts.
    emu.faults.set_rate(Fault.DROP_BEFORE, 1.0, route=LAUNCH)
    report = await client.launch_many({cfg: [sr.InstanceSettings(name="never")]}, settle=SETTLE)
    assert isinstance(report.failed["never"], sr.APIConnectionError)
    assert not report.launched
    assert not report.unknown
    assert report.reconciliations == emu.stats.count(LAUNCH) == 5
    assert emu.state.instances == ()
