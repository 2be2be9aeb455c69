"""Waiting and watching through the shared poller, against the emulator on its virtual
clock, across the emulator's dialects.

Two kinds of time: the emulator's virtual clock (boots, lags) moves only by
``emu.advance``; the poller runs on the loop's clock with millisecond intervals, or, where
its own timing matters (grace, give-up), on a manual clock moved together with the
emulator's. Tests wait for events (a list answered, a wait ended), never for counters.
"""

from __future__ import annotations

import asyncio
import gc
import math
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import pytest

import streamrun_async as sr
from streamrun_async import _converter
from streamrun_async.testing import Dialect, Emulator
from streamrun_async.watch import ManualClock, Poller

T = TypeVar("T")
S = sr.InstanceState
FAST = sr.PollPolicy(
    min_interval=0.002, max_interval=0.01, requests_per_second=5_000, absence_grace=0.02
)
LIST_ALL = "GET /instances"
LIST_CFG = "GET /configurations/{configurationId}/instances"
GET_REQUEST = "GET /instance-requests/{requestId}"
GET_INSTANCE = "GET /instances/{instanceId}"
# The poller's own timing on the emulator's time: ticks a second apart, default grace.
SECONDS = sr.PollPolicy(min_interval=1, max_interval=1, requests_per_second=50)


async def soon(awaitable: Awaitable[T], seconds: float = 10.0) -> T:
    """Await with a generous bound: a hang fails the test instead of stalling the suite."""
    return await asyncio.wait_for(awaitable, seconds)


async def lists(poller: Poller, count: int = 1) -> None:
    """Return once the poller has answered ``count`` more lists (its public listener hook)."""
    done = asyncio.get_running_loop().create_future()
    seen = 0

    def listener(*_: Any) -> None:
        nonlocal seen
        seen += 1
        if seen >= count and not done.done():
            done.set_result(None)

    remove = poller.add_snapshot_listener(listener)
    try:
        await soon(done)
    finally:
        remove()


class Together:
    """The emulator's virtual clock and the poller's manual clock, moved as one."""

    def __init__(self, emu: Emulator, client: sr.StreamrunClient) -> None:
        self.emu = emu
        self.poller = client._poller
        self.clock = ManualClock()
        self.poller.clock = self.clock

    async def advance(self, seconds: float) -> None:
        """Move both clocks a second at a time, each second's list answered (or the
        poller's task over: nobody waits any more)."""
        for _ in range(int(seconds)):
            running = self.poller._task
            listed = asyncio.ensure_future(lists(self.poller))
            await self.emu.advance(1)
            await self.clock.advance(1)
            if running is not None:
                await soon(asyncio.wait({listed, running}, return_when=asyncio.FIRST_COMPLETED))
            listed.cancel()


def settings(*names: str) -> list[sr.InstanceSettings]:
    return [sr.InstanceSettings(name=n) for n in names]


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(clock="virtual", boot_time=30, configurations=3) as emulator:
        yield emulator


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[sr.StreamrunClient]:
    async with emu.client(retry=sr.RetryPolicy.for_testing(), poll=FAST) as c:
        yield c


def request_of(launched: Any) -> sr.InstanceRequest | str:
    """What ``launch`` returned, as a waiter takes it (an accepted launch has an id only)."""
    if isinstance(launched, sr.InstanceRequest):
        return launched
    return str(launched.request_id)


# -- every dialect ----------------------------------------------------------------------------


async def test_wait_until_running_in_every_dialect(dialect: Dialect) -> None:
    async with (
        Emulator(clock="virtual", boot_time=30, configurations=2, dialect=dialect) as emu,
        emu.client(retry=sr.RetryPolicy.for_testing(), poll=SECONDS) as client,
    ):
        clocks = Together(emu, client)
        cfg = emu.configuration_ids[0]
        launched = await client.configurations.launch(cfg, settings("a", "b"))
        if isinstance(launched, sr.AcceptedLaunch):
            # No request named: follow the instances themselves, once listed.
            await clocks.advance(4)
            waits = [
                client.instances.wait_for_state(i.id, configuration_id=cfg, timeout=120)
                for i in await client.configurations.list_instances(cfg)
            ]
            waiter: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*waits))
        else:
            waiter = asyncio.ensure_future(
                client.instance_requests.wait_until_running(launched, timeout=120)
            )
        await clocks.advance(2)
        assert not waiter.done() or dialect.request_state == "leads"
        await clocks.advance(40)
        done = await soon(waiter)
        states = [i.state for i in done] if isinstance(done, list) else [done.state]
        assert set(states) == {S.RUNNING}
        running = {i.id for i in emu.state.instances if i.state == "RUNNING"}
        assert len(running) == 2


async def test_instance_waits_and_watches_in_every_dialect(dialect: Dialect) -> None:
    async with (
        Emulator(clock="virtual", boot_time=10, configurations=2, dialect=dialect) as emu,
        emu.client(retry=sr.RetryPolicy.for_testing(), poll=SECONDS) as client,
    ):
        clocks = Together(emu, client)
        cfg, other = emu.configuration_ids
        watch = client.instances.watch([cfg])
        await client.configurations.launch(cfg, settings("x"))
        await client.configurations.launch(other, settings("y"))
        await clocks.advance(5)  # lagging lists show it after 3 s; the grace covers that
        added = await soon(anext(watch))
        assert added.kind is sr.ChangeKind.ADDED
        mine = added.instance.id
        waiter = asyncio.ensure_future(
            client.instances.wait_for_state(mine, configuration_id=cfg, timeout=120)
        )
        await clocks.advance(15)
        assert (await soon(waiter)).state is S.RUNNING
        await client.instances.stop(mine)
        await clocks.advance(12)
        kinds = []
        while watch._buffer.pending:
            kinds.append((await anext(watch)).kind)
        assert kinds[-1] is sr.ChangeKind.REMOVED or dialect.stopped_linger
        assert sr.ChangeKind.ADDED not in kinds  # the other configuration's never shows
        await watch.aclose()


@pytest.mark.parametrize("preset", ["paginated_link", "paginated_field", "paginated_cursor"])
async def test_lists_of_many_pages_are_read_whole(preset: str) -> None:
    async with (
        Emulator(clock="virtual", boot_time=5, configurations=1, dialect=preset) as emu,
        emu.client(retry=sr.RetryPolicy.for_testing(), poll=FAST) as client,
    ):
        names = [f"n{n}" for n in range(7)]
        await client.configurations.launch(emu.configuration_ids[0], settings(*names))
        async with client.instances.watch() as watch:
            added = [await soon(anext(watch)) for _ in names]
            waits = [client.instances.wait_for_state(c.instance.id) for c in added]
            await emu.advance(5)
            assert {i.state for i in await soon(asyncio.gather(*waits))} == {S.RUNNING}
            await lists(client._poller, 3)
            kinds = {c.kind for c in watch._buffer.pending.values()}
        assert {c.kind for c in added} == {sr.ChangeKind.ADDED}
        assert sr.ChangeKind.REMOVED not in kinds


@pytest.mark.parametrize("preset", ["paginated_link", "paginated_field", "paginated_cursor"])
async def test_polls_of_an_unchanged_paged_list_read_each_page_once_and_decode_nothing(
    preset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [f"n{n}" for n in range(7)]
    page_size = Dialect.presets()[preset].page_size
    assert page_size is not None
    assert page_size < len(names)
    pages = math.ceil(len(names) / page_size)
    async with (
        Emulator(clock="virtual", boot_time=5, configurations=1, dialect=preset) as emu,
        emu.client(retry=sr.RetryPolicy.for_testing(), poll=SECONDS) as client,
    ):
        clocks = Together(emu, client)
        await client.configurations.launch(emu.configuration_ids[0], settings(*names))
        await emu.advance(10)
        async with client.instances.watch() as watch:
            added = [await soon(anext(watch)) for _ in names]
            assert {c.instance.state for c in added} == {S.RUNNING}
            await clocks.advance(1)
            before = dict(client._poller.store.view)
            # Count every Instance the SDK builds from here on (the generated decoder).
            decode = _converter._decoder(sr.Instance)
            built = 0

            def counting(data: Any) -> Any:
                nonlocal built
                built += 1
                return decode(data)

            monkeypatch.setitem(_converter._DECODERS, sr.Instance, counting)
            ticks = client._poller.stats.ticks
            emu.stats.reset()
            await clocks.advance(3)
            ticks = client._poller.stats.ticks - ticks
            assert ticks >= 3
            # Every page once a tick: the first page is not read a second time.
            assert emu.stats.count(LIST_ALL) == emu.stats.total == ticks * pages
            assert built == 0
            after = client._poller.store.view
            assert len(after) == len(names)
            assert all(after[k] is model for k, model in before.items())
            assert not watch._buffer.pending


# -- what the server says is what a wait reports (issue items 1-3) ---------------------------


async def test_a_request_running_ahead_of_its_instances_ends_the_wait() -> None:
    async with (
        Emulator(clock="virtual", boot_time=30, configurations=1, dialect="request_leads") as emu,
        emu.client(retry=sr.RetryPolicy.for_testing(), poll=SECONDS) as client,
    ):
        clocks = Together(emu, client)
        request = await client.configurations.launch(emu.configuration_ids[0], settings("a"))
        assert isinstance(request, sr.InstanceRequest)
        waiter = asyncio.ensure_future(client.instance_requests.wait_until_running(request))
        await clocks.advance(3)  # the instance still boots (STARTING) for 27 s
        assert (await soon(waiter)).state is S.RUNNING
        assert {i.state for i in emu.state.instances} == {"STARTING"}


async def test_one_instance_stopped_while_queued_the_request_runs_with_the_other(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    cfg = emu.configuration_ids[0]
    request = await client.configurations.launch(cfg, settings("a", "b"))
    assert isinstance(request, sr.InstanceRequest)
    first, _ = await client.configurations.list_instances(cfg)
    waiter = asyncio.ensure_future(client.instance_requests.wait_until_running(request))
    await client.instances.stop(first.id)
    await lists(client._poller, 3)
    await emu.advance(30)
    assert (await soon(waiter)).state is S.RUNNING


async def test_a_failed_instance_ends_its_waits_at_once(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    cfg = emu.configuration_ids[0]
    request = await client.configurations.launch(cfg, settings("doomed"))
    (instance,) = await client.configurations.list_instances(cfg)
    instance_wait = asyncio.ensure_future(client.instances.wait_for_state(instance.id))
    request_wait = asyncio.ensure_future(
        client.instance_requests.wait_until_running(request_of(request))
    )
    await lists(client._poller, 2)
    emu.fail_instance(instance.id)
    with pytest.raises(sr.WaiterError, match="FAILED") as info:
        await soon(instance_wait)
    assert info.value.last_seen.state is S.FAILED
    with pytest.raises(sr.WaiterError, match="FAILED"):
        await soon(request_wait)


async def test_stopped_instances_fail_the_request_waiter(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    cfg = emu.configuration_ids[0]
    request = await client.configurations.launch(cfg, settings("gone"))
    waiter = asyncio.ensure_future(client.instance_requests.wait_until_running(request_of(request)))
    await lists(client._poller, 2)
    await client.configurations.stop_instances(cfg)
    # The request stays QUEUED forever; its instances were listed, then all stopped.
    with pytest.raises(sr.WaiterError, match="every instance") as info:
        await soon(waiter)
    assert info.value.last_seen.id == getattr(request, "id", request)


# -- eventual consistency (item 4) -------------------------------------------------------------


async def test_lagging_lists_and_requests_do_not_fail_a_wait_right_after_launch() -> None:
    async with (
        Emulator(clock="virtual", boot_time=5, configurations=1, dialect="lagging_lists") as emu,
        emu.client(retry=sr.RetryPolicy.for_testing(), poll=SECONDS) as client,
    ):
        clocks = Together(emu, client)
        launched = await client.configurations.launch(emu.configuration_ids[0], settings("a"))
        assert isinstance(launched, sr.InstanceRequest)
        # By id: the request itself answers 404 for the first 3 s, and is listed nowhere;
        # its instance is not listed for 3 s either.
        request_wait = asyncio.ensure_future(
            client.instance_requests.wait_until_running(launched.id, timeout=60)
        )
        instance_wait = asyncio.ensure_future(
            client.instances.wait_for_state(launched.instance_ids[0], timeout=60)
        )
        await clocks.advance(10)
        assert (await soon(instance_wait)).state is S.RUNNING
        assert (await soon(request_wait)).state is S.RUNNING


# -- honest failures (item 5) --------------------------------------------------------------------


async def test_a_wait_against_an_unreachable_server_times_out_with_the_cause(
    closed_port_url: str,
) -> None:
    async with sr.StreamrunClient(
        api_key="k", base_url=closed_port_url, retry=sr.RetryPolicy.for_testing(), poll=FAST
    ) as client:
        with pytest.raises(sr.WaitTimeoutError, match="polls were failing") as info:
            await soon(client.instances.wait_for_state("inst-1", timeout=0.2))
        assert isinstance(info.value.__cause__, sr.APIConnectionError)


async def test_a_watch_whose_server_died_ends_with_the_error(emu: Emulator) -> None:
    policy = sr.PollPolicy(min_interval=0.005, max_interval=0.01, give_up_after=0.1)
    async with emu.client(retry=sr.RetryPolicy.for_testing(), poll=policy) as client:
        await client.configurations.launch(emu.configuration_ids[0], settings("a"))
        watch = client.instances.watch()
        assert (await soon(anext(watch))).kind is sr.ChangeKind.ADDED
        await emu.close()
        # Nothing but failed lists for give_up_after: the watch ends with the error.
        with pytest.raises(sr.APIConnectionError):
            await soon(anext(watch))
        await emu.start()


async def test_a_permanent_error_ends_the_wait(emu: Emulator) -> None:
    async with sr.StreamrunClient(
        api_key="wrong-key", base_url=emu.url, retry=sr.RetryPolicy.for_testing(), poll=FAST
    ) as client:
        with pytest.raises(sr.AuthenticationError):
            await soon(client.instances.wait_for_state("inst-1"))


# -- sharing, budget, scope ------------------------------------------------------------------


async def test_hundred_waiters_on_one_request_share_each_call(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    request = await client.configurations.launch(emu.configuration_ids[0], settings("a"))
    emu.stats.reset()
    waiters = [
        asyncio.ensure_future(client.instance_requests.wait_until_running(request_of(request)))
        for _ in range(100)
    ]
    await lists(client._poller, 5)
    await emu.advance(30)
    results = await soon(asyncio.gather(*waiters))
    assert {r.state for r in results} == {S.RUNNING}
    stats = client._poller.stats
    # One call per tick and per due request, whatever the number of waiters.
    assert emu.stats.count(GET_REQUEST) <= stats.request_calls <= stats.ticks
    assert emu.stats.count(GET_INSTANCE) == 0


async def test_thousand_instance_waiters_across_fifty_configurations_use_list_calls_only() -> None:
    async with (
        Emulator(clock="virtual", boot_time=30, configurations=50) as emu,
        emu.client(retry=sr.RetryPolicy.for_testing(), poll=FAST) as client,
    ):
        for cfg in emu.configuration_ids:
            await client.configurations.launch(cfg, settings(*(f"{cfg}-{n}" for n in range(20))))
        listed = await client.instances.list()
        assert len(listed) == 1000
        emu.stats.reset()
        waiters = [
            asyncio.ensure_future(
                client.instances.wait_for_state(i.id, configuration_id=i.configuration_id)
            )
            for i in listed
        ]
        await lists(client._poller, 2)
        await emu.advance(30)
        results = await soon(asyncio.gather(*waiters))
        assert {r.state for r in results} == {S.RUNNING}
        assert emu.stats.count(GET_INSTANCE) == emu.stats.count(GET_REQUEST) == 0
        assert emu.stats.total == emu.stats.count(LIST_ALL)


async def test_watching_one_configuration_lists_only_it(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    cfg = emu.configuration_ids[1]
    await client.configurations.launch(cfg, settings("x"))
    emu.stats.reset()
    async with client.instances.watch([cfg]) as watch:
        added = await soon(anext(watch))
    assert added.kind is sr.ChangeKind.ADDED
    assert emu.stats.count(LIST_CFG) >= 1
    assert emu.stats.count(LIST_ALL) == 0


async def test_a_configuration_watch_without_configuration_ids_in_answers() -> None:
    async with (
        Emulator(clock="virtual", boot_time=5, configurations=2, dialect="sparse_instances") as emu,
        emu.client(retry=sr.RetryPolicy.for_testing(), poll=FAST) as client,
    ):
        cfg, other = emu.configuration_ids
        await client.configurations.launch(other, settings("not-mine"))
        await client.configurations.launch(cfg, settings("mine"))
        async with client.instances.watch([cfg]) as watch:
            added = await soon(anext(watch))
            await lists(client._poller, 3)
            assert not watch._buffer.pending
        assert added.instance.configuration_id is None
        mine = {i.id for i in emu.state.instances if i.configuration_id == cfg}
        assert {added.instance.id} == mine


async def test_transitions_arrive_once_each_in_order_per_instance() -> None:
    async with (
        Emulator(clock="virtual", boot_time=10, capacity=1, configurations=1) as emu,
        emu.client(retry=sr.RetryPolicy.for_testing(), poll=FAST) as client,
    ):
        cfg = emu.configuration_ids[0]
        watch = client.instances.watch()
        await client.configurations.launch(cfg, settings("a", "b", "c"))
        seen: list[tuple[sr.ChangeKind, str | None, S | None]] = []

        async def next_change() -> None:
            change = await soon(anext(watch))
            seen.append((change.kind, change.instance.name, change.previous))

        for _ in range(3):
            await next_change()
        ids = {i.name: i.id for i in await client.instances.list()}
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

    added, rest = seen[:3], seen[3:]
    assert sorted(added) == [(sr.ChangeKind.ADDED, n, None) for n in "abc"]
    assert rest == [
        (sr.ChangeKind.CHANGED, "a", S.QUEUED),
        (sr.ChangeKind.REMOVED, "a", S.RUNNING),
        (sr.ChangeKind.CHANGED, "b", S.QUEUED),
        (sr.ChangeKind.CHANGED, "b", S.RUNNING),
        (sr.ChangeKind.CHANGED, "b", S.STARTING),
    ]


async def test_idle_stop_is_seen_as_removed_and_fails_waiters() -> None:
    async with (
        Emulator(clock="virtual", boot_time=10, idle_timeout=300, configurations=1) as emu,
        emu.client(retry=sr.RetryPolicy.for_testing(), poll=FAST) as client,
    ):
        await client.configurations.launch(emu.configuration_ids[0], settings("idle"))
        await emu.advance(10)
        (instance,) = await client.instances.list()
        watch = client.instances.watch()
        assert (await soon(anext(watch))).kind is sr.ChangeKind.ADDED
        waiter = asyncio.ensure_future(
            client.instances.wait_for_state(instance.id, S.PREVIEW, timeout=600)
        )
        await lists(client._poller, 2)
        await emu.advance(300)
        removed = await soon(anext(watch))
        assert removed.kind is sr.ChangeKind.REMOVED
        assert removed.previous is S.RUNNING
        with pytest.raises(sr.WaiterError, match="disappeared") as info:
            await soon(waiter)
        assert info.value.last_seen.state is S.RUNNING
        await watch.aclose()


async def test_wait_timeout_carries_the_last_state(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    request = request_of(
        await client.configurations.launch(emu.configuration_ids[0], settings("slow"))
    )
    with pytest.raises(sr.WaitTimeoutError) as info:
        await client.instance_requests.wait_until_running(request, timeout=0.05)
    assert info.value.last_seen.state is S.QUEUED
    with pytest.raises(sr.WaitTimeoutError) as info:
        async for _ in client.instance_requests.watch([request], timeout=0.05):
            pass
    assert [r.state for r in info.value.last_seen] == [S.QUEUED]


async def test_cancelling_waiters_and_breaking_watches_leave_nothing_behind(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    request = await client.configurations.launch(emu.configuration_ids[0], settings("a"))
    waiter = asyncio.ensure_future(client.instance_requests.wait_until_running(request_of(request)))
    async for _change in client.instances.watch():
        break
    async for _req in client.instance_requests.watch([request_of(request)]):
        break
    await lists(client._poller, 2)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    gc.collect()
    await asyncio.sleep(0)
    assert not client._poller.active
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "streamrun-poller"]


async def test_closing_the_client_ends_waiters_clearly(emu: Emulator) -> None:
    client = emu.client(retry=sr.RetryPolicy.for_testing(), poll=FAST)
    request = await client.configurations.launch(emu.configuration_ids[0], settings("a"))
    waiter = asyncio.ensure_future(client.instance_requests.wait_until_running(request_of(request)))

    async def drain(watch: sr.InstanceWatch) -> None:
        async for _ in watch:
            pass

    watching = asyncio.ensure_future(drain(client.instances.watch()))
    await lists(client._poller, 2)
    await client.aclose()
    with pytest.raises(sr.ClientClosedError):
        await soon(waiter)
    with pytest.raises(sr.ClientClosedError):
        await soon(watching)
    with pytest.raises(sr.ClientClosedError):
        await client.instances.wait_for_state("anything")


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

    async with emu.client(retry=sr.RetryPolicy.for_testing(), poll=FAST) as second:
        await second.instances.stop(before["goes"].id)
        await emu.advance(30)
        await second.configurations.launch(cfg, settings("new"))
        resumed = second.instances.watch(resume=token)
        changes = [await soon(anext(resumed)) for _ in range(4)]
        await resumed.aclose()

    got = {(c.kind, c.instance.id, c.previous) for c in changes}
    new_id = next(c.instance.id for c in changes if c.kind is sr.ChangeKind.ADDED)
    assert got == {
        (sr.ChangeKind.REMOVED, before["goes"].id, S.QUEUED),
        (sr.ChangeKind.CHANGED, before["stays"].id, S.QUEUED),
        (sr.ChangeKind.CHANGED, before["boots"].id, S.QUEUED),
        (sr.ChangeKind.ADDED, new_id, None),
    }


async def test_request_watch_yields_each_change_and_ends_when_all_run(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    cfgs = emu.configuration_ids
    launched = [request_of(await client.configurations.launch(c, settings("r"))) for c in cfgs]
    seen: list[tuple[str, S]] = []
    async with client.instance_requests.watch(launched, timeout=30) as watch:
        for _ in cfgs:
            request = await soon(anext(watch))
            seen.append((request.id, request.state))
        assert {s for _, s in seen} == {S.QUEUED}
        await emu.advance(30)
        async for request in watch:
            seen.append((request.id, request.state))
    running = [rid for rid, s in seen if s is S.RUNNING]
    assert sorted(running) == sorted(getattr(r, "id", r) for r in launched)


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
        client.instances.watch("cfg-1")
    with pytest.raises(sr.InvalidArgumentError, match="None"):
        client.instances.watch([])
    assert emu.stats.total == 0


async def test_a_configuration_list_that_fails_is_left_to_the_next_tick(emu: Emulator) -> None:
    from streamrun_async.testing import Fault

    retrying = sr.RetryPolicy.for_testing(attempts=4)
    async with emu.client(retry=retrying, poll=FAST) as client:
        cfg = emu.configuration_ids[0]
        await client.configurations.launch(cfg, settings("a"))
        (instance,) = await client.instances.list()
        emu.faults.script(LIST_CFG, [Fault.HTTP_503])
        waiter = asyncio.ensure_future(
            client.instances.wait_for_state(instance.id, configuration_id=cfg)
        )
        await lists(client._poller, 1)
        await emu.advance(30)
        assert (await soon(waiter)).state is S.RUNNING
        assert client._poller.stats.errors == 1
