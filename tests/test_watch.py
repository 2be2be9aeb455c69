"""Waiting and watching through the shared poller, against the emulator's virtual clock."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import pytest

import streamrun_async as sr
from streamrun_async.testing import Emulator, Fault

T = TypeVar("T")
FAST = sr.PollPolicy(min_interval=0.002, max_interval=0.01, requests_per_second=5_000)
LAUNCH = "POST /configurations/{configurationId}/instances"
LIST_ALL = "GET /instances"
LIST_CFG = "GET /configurations/{configurationId}/instances"
GET_REQUEST = "GET /instance-requests/{requestId}"
GET_INSTANCE = "GET /instances/{instanceId}"


async def soon(awaitable: Awaitable[T], seconds: float = 5.0) -> T:
    """Await with a generous bound: a hang fails the test instead of stalling the suite."""
    return await asyncio.wait_for(awaitable, seconds)


async def until(predicate: Callable[[], bool], seconds: float = 5.0) -> None:
    """Let the loop run until ``predicate`` holds (bounded)."""
    async with asyncio.timeout(seconds):
        while not predicate():
            await asyncio.sleep(0.001)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(clock="virtual", boot_time=30, configurations=3) as emulator:
        yield emulator


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[sr.StreamrunClient]:
    async with emu.client(retry=sr.RetryPolicy.for_testing(), poll=FAST) as c:
        yield c


def settings(*names: str) -> list[sr.InstanceSettings]:
    return [sr.InstanceSettings(name=n) for n in names]


async def test_wait_until_running_returns_the_running_request(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    cfg = emu.configuration_ids[0]
    request = await client.configurations.launch(cfg, settings("a", "b"))
    waiter = asyncio.create_task(client.instance_requests.wait_until_running(request))
    await until(lambda: client._poller.stats.ticks >= 3)
    assert not waiter.done()
    await emu.advance(30)
    done = await soon(waiter)
    assert done.id == request.id
    assert done.state is sr.InstanceState.RUNNING


async def test_hundred_waiters_on_one_request_share_each_call(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    request = await client.configurations.launch(emu.configuration_ids[0], settings("a"))
    emu.stats.reset()
    waiters = [
        asyncio.create_task(client.instance_requests.wait_until_running(request.id))
        for _ in range(100)
    ]
    await until(lambda: client._poller.stats.ticks >= 5)
    await emu.advance(30)
    results = await soon(asyncio.gather(*waiters))
    assert {r.state for r in results} == {sr.InstanceState.RUNNING}
    ticks = client._poller.stats.ticks
    assert emu.stats.count(LIST_ALL) == ticks
    # At most one GET of the request per tick; in fact only to learn it and to confirm.
    assert emu.stats.count(GET_REQUEST) <= 2
    assert emu.stats.total == ticks + emu.stats.count(GET_REQUEST)


async def test_thousand_instance_waiters_across_fifty_configurations_use_list_calls_only() -> None:
    async with (
        Emulator(clock="virtual", boot_time=30, configurations=50) as emu,
        emu.client(retry=sr.RetryPolicy.for_testing(), poll=FAST) as client,
    ):
        for cfg in emu.configuration_ids:
            await client.configurations.launch(cfg, settings(*(f"{cfg}-{n}" for n in range(20))))
        ids = [inst.id for inst in await client.instances.list()]
        assert len(ids) == 1000
        emu.stats.reset()
        waiters = [asyncio.create_task(client.instances.wait_for_state(i)) for i in ids]
        await until(lambda: client._poller.stats.ticks >= 2)
        await emu.advance(30)
        results = await soon(asyncio.gather(*waiters))
        assert {r.state for r in results} == {sr.InstanceState.RUNNING}
        assert emu.stats.count(GET_INSTANCE) == 0
        assert emu.stats.count(LIST_ALL) == emu.stats.total == client._poller.stats.ticks


async def test_watching_one_configuration_lists_only_it(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    cfg = emu.configuration_ids[1]
    await client.configurations.launch(cfg, settings("x"))
    emu.stats.reset()
    watch = client.instances.watch([cfg])
    added = await soon(anext(watch))
    assert added.kind is sr.ChangeKind.ADDED
    await watch.aclose()
    assert emu.stats.count(LIST_CFG) >= 1
    assert emu.stats.count(LIST_ALL) == 0


async def test_transitions_arrive_once_each_in_order_per_instance() -> None:
    async with (
        Emulator(clock="virtual", boot_time=10, capacity=1, configurations=1) as emu,
        emu.client(retry=sr.RetryPolicy.for_testing(), poll=FAST) as client,
    ):
        cfg = emu.configuration_ids[0]
        watch = client.instances.watch()
        await client.configurations.launch(cfg, settings("a", "b", "c"))
        seen: list[tuple[sr.ChangeKind, str | None, sr.InstanceState | None]] = []

        async def next_change() -> None:
            change = await soon(anext(watch))
            seen.append((change.kind, change.instance.name, change.previous))

        for _ in range(3):
            await next_change()
        ids = {i.name: i.id for i in await client.instances.list()}
        # One server: b boots only once a has stopped; c waits behind b.
        await emu.advance(10)
        await next_change()
        await client.instances.stop(ids["a"])
        await next_change()
        await emu.advance(10)
        await next_change()
        await client.instances.restart(ids["b"])
        await next_change()
        await emu.advance(10)
        await next_change()
        await watch.aclose()
        assert emu.state.instance(ids["c"]).state == "QUEUED"

    added, rest = seen[:3], seen[3:]
    assert sorted(added) == [(sr.ChangeKind.ADDED, n, None) for n in "abc"]
    assert rest == [
        (sr.ChangeKind.CHANGED, "a", sr.InstanceState.QUEUED),
        (sr.ChangeKind.REMOVED, "a", sr.InstanceState.RUNNING),
        (sr.ChangeKind.CHANGED, "b", sr.InstanceState.QUEUED),
        (sr.ChangeKind.CHANGED, "b", sr.InstanceState.RUNNING),
        (sr.ChangeKind.CHANGED, "b", sr.InstanceState.STARTING),
    ]


async def test_idle_stop_is_seen_as_removed_and_fails_waiters() -> None:
    async with (
        Emulator(clock="virtual", boot_time=10, idle_timeout=300, configurations=1) as emu,
        emu.client(retry=sr.RetryPolicy.for_testing(), poll=FAST) as client,
    ):
        cfg = emu.configuration_ids[0]
        await client.configurations.launch(cfg, settings("idle"))
        await emu.advance(10)
        (instance,) = await client.instances.list()
        assert instance.state is sr.InstanceState.RUNNING
        watch = client.instances.watch()
        assert (await soon(anext(watch))).kind is sr.ChangeKind.ADDED
        # Waiting for a state it will never reach: the idle stop must end it at once.
        waiter = asyncio.create_task(
            client.instances.wait_for_state(instance.id, sr.InstanceState.PREVIEW, timeout=600)
        )
        await until(lambda: client._poller.stats.ticks >= 3)
        await emu.advance(300)
        removed = await soon(anext(watch))
        assert removed.kind is sr.ChangeKind.REMOVED
        assert removed.instance.id == instance.id
        assert removed.previous is sr.InstanceState.RUNNING
        with pytest.raises(sr.WaiterError) as info:
            await soon(waiter)
        assert info.value.last_seen.state is sr.InstanceState.RUNNING
        await watch.aclose()


async def test_wait_timeout_carries_the_last_state(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    request = await client.configurations.launch(emu.configuration_ids[0], settings("slow"))
    with pytest.raises(sr.WaitTimeoutError) as info:
        await client.instance_requests.wait_until_running(request, timeout=0.05)
    assert info.value.last_seen.state is sr.InstanceState.QUEUED
    with pytest.raises(sr.WaitTimeoutError) as info:
        async for _ in client.instance_requests.watch([request], timeout=0.05):
            pass
    assert request.id in str(info.value)
    assert [r.state for r in info.value.last_seen] == [sr.InstanceState.QUEUED]


async def test_stopped_request_instances_fail_the_request_waiter(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    cfg = emu.configuration_ids[0]
    request = await client.configurations.launch(cfg, settings("gone"))
    waiter = asyncio.create_task(client.instance_requests.wait_until_running(request))
    await until(lambda: client._poller.stats.ticks >= 2)
    await client.configurations.stop_instances(cfg)
    await emu.advance(30)
    # Every instance of the request is gone, so it can never run: the waiter is told at
    # once instead of at its ten-minute deadline.
    with pytest.raises(sr.WaiterError) as info:
        await soon(waiter)
    assert info.value.last_seen.id == request.id


async def test_poll_budget_is_respected_under_a_burst() -> None:
    budget = sr.PollPolicy(min_interval=0.001, max_interval=0.002, requests_per_second=40)
    async with (
        Emulator(clock="virtual", boot_time=30, configurations=2) as emu,
        emu.client(retry=sr.RetryPolicy.for_testing(), poll=budget) as client,
    ):
        requests = [
            await client.configurations.launch(emu.configuration_ids[n % 2], settings(f"n{n}"))
            for n in range(20)
        ]
        emu.stats.reset()
        loop = asyncio.get_running_loop()
        started = loop.time()
        waiters = [
            asyncio.create_task(client.instance_requests.wait_until_running(r.id)) for r in requests
        ]
        await until(lambda: emu.stats.total >= 30)
        elapsed = loop.time() - started
        calls = emu.stats.total
        for w in waiters:
            w.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
    # An upper bound only: a slow machine makes fewer calls, never more.
    assert calls <= 40 * elapsed + 2


async def test_cancelling_waiters_and_breaking_watches_leave_nothing_behind(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    cfg = emu.configuration_ids[0]
    request = await client.configurations.launch(cfg, settings("a"))
    waiter = asyncio.create_task(client.instance_requests.wait_until_running(request))
    async for _change in client.instances.watch():
        break
    await until(lambda: client._poller.stats.ticks >= 2)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await until(lambda: not client._poller.active)
    await until(lambda: not [t for t in asyncio.all_tasks() if t.get_name() == "streamrun-poller"])


async def test_closing_the_client_ends_waiters_clearly(emu: Emulator) -> None:
    client = emu.client(retry=sr.RetryPolicy.for_testing(), poll=FAST)
    request = await client.configurations.launch(emu.configuration_ids[0], settings("a"))
    waiter = asyncio.create_task(client.instance_requests.wait_until_running(request))
    watch = client.instances.watch()
    watching = asyncio.create_task(_drain(watch))
    await until(lambda: client._poller.stats.ticks >= 2)
    await client.aclose()
    with pytest.raises(sr.ClientClosedError):
        await soon(waiter)
    with pytest.raises(sr.ClientClosedError):
        await soon(watching)
    with pytest.raises(sr.ClientClosedError):
        await client.instances.wait_for_state("anything")


async def _drain(watch: sr.InstanceWatch) -> None:
    async for _ in watch:
        pass


async def test_a_permanent_error_ends_the_wait(emu: Emulator) -> None:
    async with sr.StreamrunClient(
        api_key="wrong-key", base_url=emu.url, retry=sr.RetryPolicy.for_testing(), poll=FAST
    ) as client:
        with pytest.raises(sr.AuthenticationError):
            await soon(client.instances.wait_for_state("inst-1"))


async def test_transient_failures_while_polling_are_ridden_out(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    cfg = emu.configuration_ids[0]
    await client.configurations.launch(cfg, settings("a"))
    (instance,) = await client.instances.list()
    emu.faults.script(LIST_ALL, [Fault.HTTP_503, Fault.DROP_AFTER, Fault.HTML_ERROR])
    waiter = asyncio.create_task(client.instances.wait_for_state(instance.id))
    await until(lambda: emu.faults.pending(LIST_ALL) == 0)
    await emu.advance(30)
    assert (await soon(waiter)).state is sr.InstanceState.RUNNING
    # aiohttp itself resends an idempotent GET once when a kept-alive connection drops,
    # so the dropped connection may never surface; the 503 and the HTML page do.
    assert client._poller.stats.errors >= 2


async def test_resume_after_a_restart_yields_what_changed_in_between(emu: Emulator) -> None:
    cfg = emu.configuration_ids[0]
    async with emu.client(retry=sr.RetryPolicy.for_testing(), poll=FAST) as first:
        await first.configurations.launch(cfg, settings("stays", "goes", "boots"))
        watch = first.instances.watch()
        for _ in range(3):
            await soon(anext(watch))
        token = watch.token
        await watch.aclose()
        before = {i.name: i for i in await first.instances.list()}

    # While no process watched: one stopped, the others booted, a new one launched.
    async with emu.client(retry=sr.RetryPolicy.for_testing(), poll=FAST) as second:
        await second.instances.stop(before["goes"].id)
        await emu.advance(30)
        await second.configurations.launch(cfg, settings("new"))
        resumed = second.instances.watch(resume=token)
        changes = [await soon(anext(resumed)) for _ in range(4)]
        await resumed.aclose()

    got = {(c.kind, c.instance.id, c.previous) for c in changes}
    new_id = next(c.instance.id for c in changes if c.kind is sr.ChangeKind.ADDED)
    queued = sr.InstanceState.QUEUED
    assert got == {
        (sr.ChangeKind.REMOVED, before["goes"].id, queued),
        (sr.ChangeKind.CHANGED, before["stays"].id, queued),
        (sr.ChangeKind.CHANGED, before["boots"].id, queued),
        (sr.ChangeKind.ADDED, new_id, None),
    }


async def test_request_watch_yields_each_change_and_ends_when_all_run(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    cfgs = emu.configuration_ids
    launched = [await client.configurations.launch(c, settings(f"r-{c}")) for c in cfgs]
    seen: list[tuple[str, sr.InstanceState]] = []

    async def consume() -> None:
        async for req in client.instance_requests.watch(launched, timeout=30):
            seen.append((req.id, req.state))

    consumer = asyncio.create_task(consume())
    await until(lambda: len(seen) == len(cfgs))
    assert {s for _, s in seen} == {sr.InstanceState.QUEUED}
    await emu.advance(30)
    await soon(consumer)
    running = [rid for rid, s in seen if s is sr.InstanceState.RUNNING]
    assert sorted(running) == sorted(r.id for r in launched)


async def test_bad_arguments_are_refused_before_any_call(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    emu.stats.reset()
    with pytest.raises(sr.InvalidArgumentError):
        await client.instances.wait_for_state("")
    with pytest.raises(sr.InvalidArgumentError):
        await client.instances.wait_for_state("i", timeout=0)
    with pytest.raises(sr.InvalidArgumentError):
        client.instances.watch(resume="not-a-token")
    with pytest.raises(sr.InvalidArgumentTypeError):
        client.instances.watch("cfg-1")  # type: ignore[arg-type]
    with pytest.raises(sr.InvalidArgumentError, match="None"):
        client.instances.watch([])
    assert emu.stats.total == 0


async def test_abandoned_request_watch_leaves_the_poller(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    request = await client.configurations.launch(emu.configuration_ids[0], settings("a"))
    async for _req in client.instance_requests.watch([request]):
        break
    gc.collect()
    await until(lambda: not client._poller.active)


async def test_closing_a_watch_ends_a_consumer_waiting_on_it(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    watch = client.instances.watch()
    changes: list[sr.InstanceChange] = []

    async def consume() -> None:
        async for change in watch:
            changes.append(change)

    consumer = asyncio.create_task(consume())
    await until(lambda: client._poller.stats.ticks >= 2)
    await watch.aclose()
    await soon(consumer)
    assert changes == []
    await until(lambda: not client._poller.active)


async def test_a_configuration_list_that_fails_is_left_to_the_next_tick(emu: Emulator) -> None:
    # The poller must not sit in a retry sleep of the client's policy: the next tick is
    # its retry, for every waiter at once.
    retrying = sr.RetryPolicy.for_testing(attempts=4)
    async with emu.client(retry=retrying, poll=FAST) as client:
        cfg = emu.configuration_ids[0]
        await client.configurations.launch(cfg, settings("a"))
        (instance,) = await client.instances.list()
        emu.faults.script(LIST_CFG, [Fault.HTTP_503])
        waiter = asyncio.create_task(
            client.instances.wait_for_state(instance.id, configuration_id=cfg)
        )
        await until(lambda: emu.faults.pending(LIST_CFG) == 0)
        await emu.advance(30)
        assert (await soon(waiter)).state is sr.InstanceState.RUNNING
        assert client._poller.stats.errors == 1
