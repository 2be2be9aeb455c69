"""Guarded clients against the emulator on its virtual clock, with SQLite and a real Redis.

The guard's wall clock is the emulator's virtual clock plus a fixed epoch, so a 30 s
lease expires exactly when the emulator has run 30 s, and nothing sleeps for seconds.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from _redis_server import RedisServer, redis_server  # noqa: F401 - a fixture

import streamrun_async as sr
from streamrun_async.testing import Emulator

T0 = 1_800_000_000.0
LAUNCH = "POST /configurations/{configurationId}/instances"


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(clock="virtual", boot_time=4, configurations=2) as emulator:
        yield emulator


@pytest.fixture(params=["sqlite", "redis"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], sr.LeaseStore]:
    """A factory of store objects that all open the same store (as separate processes do)."""
    if request.param == "sqlite":
        return lambda: sr.SQLiteLeaseStore(tmp_path / "leases.sqlite3")
    server: RedisServer = request.getfixturevalue("redis_server")
    prefix = f"t-{uuid.uuid4().hex}"
    return lambda: sr.RedisLeaseStore(server.url, prefix=prefix)


class Harness:
    """Guarded clients of one emulator, their events, on the emulator's clock."""

    def __init__(self, emu: Emulator, make_store: Callable[[], sr.LeaseStore]) -> None:
        self.emu = emu
        self.make_store = make_store
        self.events: list[Any] = []
        self._arrived = asyncio.Event()

    def _collect(self, event: Any) -> None:
        self.events.append(event)
        self._arrived.set()

    async def until(self, kind: type, count: int = 1) -> list[Any]:
        """Wait (no polling: woken by each event the hooks get) for ``count`` events of a kind."""
        while len(self.of(kind)) < count:
            self._arrived.clear()
            await self._arrived.wait()
        return self.of(kind)

    def clock(self) -> float:
        return T0 + self.emu.now()

    def guard(self, owner: str = "bot", **kwargs: Any) -> sr.Guard:
        kwargs.setdefault("reap_interval", 3600)  # rounds are driven by hand unless asked
        return sr.Guard(owner, store=self.make_store(), clock=self.clock, **kwargs)

    def client(self, guard: sr.Guard | None = None, **kwargs: Any) -> sr.StreamrunClient:
        return self.emu.client(
            guard=guard if guard is not None else self.guard(),
            retry=sr.RetryPolicy.for_testing(),
            hooks=[self._collect],
            **kwargs,
        )

    def of(self, kind: type) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]

    @property
    def cfg(self) -> str:
        return self.emu.configuration_ids[0]

    @property
    def launches(self) -> int:
        return self.emu.stats.count(LAUNCH)


@pytest.fixture
def h(emu: Emulator, make_store: Callable[[], sr.LeaseStore]) -> Harness:
    return Harness(emu, make_store)


async def until_rounds(guard: sr.Guard, count: int) -> None:
    """Wait until the guard's loop has run ``count`` rounds, woken by each round's end.

    A round ends by re-reading the owner's leases from the store; wrapping that read lets the
    test wait on an event (the loop's own sleep is real time, so no clock can be advanced).
    """
    ended = asyncio.Event()
    read = guard.store.leases

    async def leases(*args: Any, **kwargs: Any) -> Any:
        try:
            return await read(*args, **kwargs)
        finally:
            ended.set()

    guard.store.leases = leases  # type: ignore[method-assign]
    try:
        while guard.stats.rounds < count:
            ended.clear()
            await ended.wait()
    finally:
        del guard.store.leases


def cam(name: str = "cam-1", **kwargs: Any) -> list[sr.InstanceSettings]:
    return [sr.InstanceSettings(name=name, **kwargs)]


# -- leases and the reaper --------------------------------------------------------------------


async def test_ttl_30_is_reaped_at_30s_and_the_stop_confirmed(h: Harness) -> None:
    guard = h.guard()
    async with h.client(guard) as client:
        request = await client.configurations.launch(h.cfg, cam(), ttl=30)
        [held] = await client.leases.list()
        assert held.expires_at == T0 + 30
        assert held.request_id == request.id
        assert (held.owner, held.name, held.configuration_id) == ("bot", "cam-1", h.cfg)
        await h.emu.advance(29.9)
        assert (await guard.reap()).stopped == ()
        assert h.emu.state.count() == 1
        await h.emu.advance(0.1)
        report = await guard.reap()
        assert [lease.id for lease in report.stopped] == [held.id]
        [stop] = h.emu.state.stopped
        assert (stop.reason, stop.at) == ("api", 30.0)
        assert [e.instance_id for e in h.of(sr.LeaseReaped)] == [stop.id]
        assert await client.leases.list() == []


async def test_extend_moves_the_deadline(h: Harness) -> None:
    guard = h.guard()
    async with h.client(guard) as client:
        await client.configurations.launch(h.cfg, cam(), ttl=30)
        await h.emu.advance(20)
        extended = await client.leases.extend("cam-1", by=timedelta(seconds=30))
        assert extended.expires_at == T0 + 60
        await h.emu.advance(10)
        assert (await guard.reap()).stopped == ()
        await h.emu.advance(30)
        assert len((await guard.reap()).stopped) == 1
        assert [s.at for s in h.emu.state.stopped] == [60.0]


async def test_release_keeps_the_instance_running(h: Harness) -> None:
    guard = h.guard()
    async with h.client(guard) as client:
        await client.configurations.launch(h.cfg, cam(), ttl=30)
        released = await client.leases.release("cam-1")
        assert released.name == "cam-1"
        await h.emu.advance(300)
        assert await guard.reap() == sr.ReapReport()
        assert h.emu.state.count("RUNNING") == 1
        assert await client.leases.list() == []
        with pytest.raises(sr.LeaseNotFoundError):
            await client.leases.release("cam-1")


async def test_per_instance_ttl_overrides_the_launch_and_the_default(h: Harness) -> None:
    guard = h.guard(default_ttl=600)
    async with h.client(guard) as client:
        settings = [
            sr.InstanceSettings(name="short", ttl=10),
            sr.InstanceSettings(name="launch-ttl"),
        ]
        await client.configurations.launch(h.cfg, settings, ttl=20)
        await client.configurations.launch(h.emu.configuration_ids[1], cam("default"))
        deadlines = {lease.name: lease.expires_at for lease in await client.leases.list()}
        assert deadlines == {"short": T0 + 10, "launch-ttl": T0 + 20, "default": T0 + 600}
        await h.emu.advance(10)
        assert [lease.name for lease in (await guard.reap()).stopped] == ["short"]


async def test_the_loop_reaps_on_its_own_with_one_list_per_round(h: Harness) -> None:
    guard = h.guard(reap_interval=0.02)
    async with h.client(guard) as client:
        await client.configurations.launch(h.cfg, cam(), ttl=30)
        await h.emu.advance(30)
        async with asyncio.timeout(5):
            await h.until(sr.LeaseReaped)
        assert h.emu.state.count() == 0
        assert [s.at for s in h.emu.state.stopped] == [30.0]
        # Each round lists once; only a round that stopped something lists again, to confirm.
        assert guard.stats.lists <= guard.stats.rounds + 1


async def test_no_leases_no_list_calls(h: Harness) -> None:
    guard = h.guard(reap_interval=0.01)
    async with h.client(guard):
        async with asyncio.timeout(5):
            await until_rounds(guard, 5)
    assert h.emu.stats.count("GET /instances") == 0


async def test_while_something_is_watched_the_reaper_lists_only_to_confirm(h: Harness) -> None:
    guard = h.guard()  # reap_interval 3600 s: only the poller's snapshots can wake it
    poll = sr.PollPolicy(min_interval=0.01, max_interval=0.02, requests_per_second=200)
    async with h.client(guard, poll=poll) as client:
        await client.configurations.launch(h.cfg, cam(), ttl=30)
        lists_before = guard.stats.lists
        async with client.instances.watch() as watch:
            consumer = asyncio.create_task(anext(watch))  # the poller runs from here on
            await asyncio.sleep(0.05)
            await h.emu.advance(30)
            async with asyncio.timeout(5):
                await h.until(sr.LeaseReaped)
            assert h.emu.state.count() == 0
            consumer.cancel()
        assert [s.at for s in h.emu.state.stopped] == [30.0]
        # At most the confirming list: a poller snapshot taken after the stop may confirm it
        # first, and then the reaper lists nothing at all (timing decides which).
        assert guard.stats.lists - lists_before <= 1


async def test_a_new_guarded_client_of_the_owner_sweeps_what_an_earlier_run_left(
    h: Harness,
) -> None:
    async with h.client() as client:
        await client.configurations.launch(h.cfg, cam(), ttl=30)
    # The first run ended (its loop is gone) and its lease stays in the store.
    await h.emu.advance(45)
    assert h.emu.state.count() == 1
    async with h.client(h.guard()):
        assert [s.at for s in h.emu.state.stopped] == [45.0]
    # Another owner's start sweeps nothing of this owner's.
    async with h.client() as client:
        await client.configurations.launch(h.cfg, cam("mine"), ttl=5)
    await h.emu.advance(10)
    async with h.client(h.guard("other-bot")):
        assert h.emu.state.count() == 1


async def test_a_stop_that_fails_is_an_error_event_and_retried_next_round(h: Harness) -> None:
    from streamrun_async.testing import Fault

    guard = h.guard()
    async with h.client(guard) as client:
        await client.configurations.launch(h.cfg, cam(), ttl=30)
        await h.emu.advance(30)
        h.emu.faults.script("DELETE /instances/{instanceId}", [Fault.HTTP_503] * 10)
        failed = await guard.reap()
        assert [f.reason for f in failed.failed] == ["stop_failed"]
        assert [e.reason for e in h.of(sr.ReapFailed)] == ["stop_failed"]
        assert h.emu.state.count() == 1
        assert len(await client.leases.list()) == 1
        h.emu.faults.clear()
        assert len((await guard.reap()).stopped) == 1
        assert h.emu.state.count() == 0


async def test_a_lost_launch_answer_keeps_the_lease_and_the_reaper_finds_it_by_name(
    h: Harness,
) -> None:
    from streamrun_async.testing import Fault

    guard = h.guard()
    async with h.client(guard) as client:
        h.emu.faults.script(LAUNCH, [Fault.DROP_AFTER])
        with pytest.raises(sr.APIError) as caught:
            await client.configurations.launch(h.cfg, cam(), ttl=30)
        assert caught.value.outcome_unknown
        [held] = await client.leases.list()
        assert held.request_id is None
        assert held.instance_id is None
        await h.emu.advance(30)
        assert len((await guard.reap()).stopped) == 1
        assert h.emu.state.count() == 0


async def test_a_launch_that_certainly_failed_takes_its_lease_back(h: Harness) -> None:
    async with h.client() as client:
        with pytest.raises(sr.NotFoundError):
            await client.configurations.launch("cfg-missing", cam(), ttl=30)
        assert await client.leases.list() == []


# -- bad input and store faults: typed errors, nothing sent -------------------------------------


async def test_bad_ttls_are_refused_before_any_request(h: Harness) -> None:
    async with h.client() as client:
        for ttl in (0, -1, timedelta(0)):
            with pytest.raises(sr.InvalidArgumentError):
                await client.configurations.launch(h.cfg, cam(), ttl=ttl)
        with pytest.raises(sr.InvalidArgumentTypeError):
            await client.configurations.launch(h.cfg, cam(), ttl="30")  # type: ignore[arg-type]
    assert h.launches == 0
    store = h.make_store()
    assert await store.leases() == []
    await store.aclose()


async def test_a_ttl_without_a_guard_is_refused(emu: Emulator) -> None:
    async with emu.client() as client:
        with pytest.raises(sr.InvalidArgumentError, match="guard"):
            await client.configurations.launch(emu.configuration_ids[0], ttl=30)
        with pytest.raises(sr.InvalidArgumentError, match="guard"):
            await client.configurations.launch(emu.configuration_ids[0], cam(ttl=30))
        with pytest.raises(sr.InvalidArgumentError, match="guard"):
            client.spend()
    assert emu.stats.total == 0


def test_bad_guard_arguments_are_typed_errors(tmp_path: Path) -> None:
    store = sr.SQLiteLeaseStore(tmp_path / "l.sqlite3")
    with pytest.raises(sr.InvalidArgumentError):
        sr.Guard("", store=store)
    with pytest.raises(sr.InvalidArgumentError):
        sr.Guard("bot", store=store, default_ttl=-3)
    with pytest.raises(sr.InvalidArgumentError):
        sr.Guard("bot", store=store, reap_interval=0)
    with pytest.raises(sr.InvalidArgumentTypeError):
        sr.Guard("bot", store="leases.sqlite3")  # type: ignore[arg-type]
    with pytest.raises(sr.InvalidArgumentTypeError):
        sr.StreamrunClient(api_key="k", guard=object())  # type: ignore[arg-type]


async def test_a_corrupt_store_fails_the_start_naming_the_file(
    emu: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "leases.sqlite3"
    path.write_bytes(b"\x00garbage" * 512)
    guard = sr.Guard("bot", store=sr.SQLiteLeaseStore(path))
    client = emu.client(guard=guard)
    with pytest.raises(sr.LeaseStoreCorruptError, match=r"leases\.sqlite3"):
        await client.__aenter__()
    with pytest.raises(sr.LeaseStoreCorruptError):
        await client.configurations.launch(emu.configuration_ids[0], cam())
    await client.aclose()
    assert emu.stats.total == 0


async def test_a_locked_store_refuses_the_launch(
    emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamrun_async.guard import _stores

    monkeypatch.setattr(_stores, "_LOCK_TIMEOUT", 0.05)
    path = tmp_path / "leases.sqlite3"
    async with emu.client(guard=sr.Guard("bot", store=sr.SQLiteLeaseStore(path))) as client:
        locker = sqlite3.connect(path, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(sr.LeaseStoreError, match="locked") as caught:
                await client.configurations.launch(emu.configuration_ids[0], cam(), ttl=30)
            assert str(path) in str(caught.value)
        finally:
            locker.close()
    assert emu.stats.count(LAUNCH) == 0


async def test_an_unreachable_redis_refuses_the_launch(emu: Emulator) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    guard = sr.Guard("bot", store=sr.RedisLeaseStore(f"redis://127.0.0.1:{port}/0"))
    client = emu.client(guard=guard)
    with pytest.raises(sr.LeaseStoreError):
        await client.configurations.launch(emu.configuration_ids[0], cam(), ttl=30)
    await client.aclose()
    assert emu.stats.count(LAUNCH) == 0


# -- budgets --------------------------------------------------------------------------------


async def test_max_running_refuses_with_zero_posts(h: Harness) -> None:
    guard = h.guard(budget=sr.Budget(max_running=2))
    async with h.client(guard) as client:
        await client.configurations.launch(h.cfg, cam("a"))
        with pytest.raises(sr.BudgetExceededError) as caught:
            await client.configurations.launch(h.cfg, cam("b") + cam("c"))
        assert caught.value.limit == "max_running"
        assert h.launches == 1
        await client.configurations.launch(h.cfg, cam("b"))
        assert h.launches == 2


async def test_max_spend_refuses_what_the_ttl_could_cost_with_zero_posts(h: Harness) -> None:
    # 1 per second, 100 to spend: a 60 s lease commits 60, so a second one cannot fit.
    guard = h.guard(budget=sr.Budget(hourly_rate=3600, max_spend=100))
    async with h.client(guard) as client:
        await client.configurations.launch(h.cfg, cam("a"), ttl=60)
        with pytest.raises(sr.BudgetExceededError) as caught:
            await client.configurations.launch(h.cfg, cam("b"), ttl=60)
        assert caught.value.limit == "max_spend"
        assert h.launches == 1
        assert [lease.name for lease in await client.leases.list()] == ["a"]


async def test_warn_then_stop_on_breach_newest_first(h: Harness) -> None:
    budget = sr.Budget(hourly_rate=3600, max_spend=60, warn_at=0.5, on_breach="stop")
    guard = h.guard(budget=budget)
    async with h.client(guard) as client:
        await client.configurations.launch(h.cfg, cam("old"))
        await h.emu.advance(1)
        await client.configurations.launch(h.emu.configuration_ids[1], cam("new"))
        for _ in range(40):
            await h.emu.advance(1)
            await guard.reap()  # one observation per second
            await asyncio.sleep(0.01)  # the breach's stopping task
            if not await client.leases.list():
                break
        assert h.of(sr.BudgetWarning)
        [breach] = h.of(sr.BudgetBreached)
        assert breach.spent >= 60
        assert h.emu.state.count() == 0
        stopped = [s.id for s in h.emu.state.stopped]
        assert stopped == list(breach.stopping)
        assert len(stopped) == 2
        # Refused from now on, before any POST.
        with pytest.raises(sr.BudgetExceededError):
            await client.configurations.launch(h.cfg, cam("more"))
        assert h.launches == 2


async def test_refuse_on_breach_stops_nothing(h: Harness) -> None:
    guard = h.guard(budget=sr.Budget(hourly_rate=3600, max_spend=10))
    async with h.client(guard) as client:
        await client.configurations.launch(h.cfg, cam())
        for _ in range(20):
            await h.emu.advance(1)
            await guard.reap()
        [breach] = h.of(sr.BudgetBreached)
        assert breach.stopping == ()
        assert h.emu.state.count("RUNNING") == 1


async def test_the_meter_matches_the_billing_within_one_tick(h: Harness) -> None:
    tick = 2.0
    guard = h.guard()
    async with h.client(guard) as client:
        first = await client.configurations.launch(h.cfg, cam("a"))
        await h.emu.advance(1.3)
        await client.configurations.launch(h.emu.configuration_ids[1], cam("b"))
        for step in range(30):
            await h.emu.advance(tick)
            if step == 12:
                await client.instances.stop(first.instance_ids[0])
            await guard.reap()
        spend = client.spend()
        state = h.emu.state
        config_of = {i.id: i.configuration_id for i in state.instances}
        config_of |= {stop.id: stop.configuration_id for stop in state.stopped}
        by_config: dict[str, float] = {}
        for instance_id, seconds in h.emu.billing.seconds.items():
            cfg = config_of[instance_id]
            by_config[cfg] = by_config.get(cfg, 0.0) + seconds
        assert len(by_config) == 2
        for cfg, seconds in by_config.items():
            assert abs(spend.seconds_by_configuration[cfg] - seconds) <= tick
        assert spend.cost == pytest.approx(sr.Budget().cost(spend.seconds))


# -- deadline means stop ------------------------------------------------------------------------


async def test_stop_unfinished_leaves_nothing_queued_or_starting(emu: Emulator) -> None:
    small = Emulator(clock="virtual", boot_time=4, capacity=1)
    async with small, small.client(retry=sr.RetryPolicy.for_testing()) as client:
        cfg = small.configuration_ids[0]
        running = await client.configurations.launch(cfg, cam("runs"))
        await small.advance(5)
        queued = await client.configurations.launch(cfg, cam("waits") + cam("waits-2"))
        assert small.state.count("QUEUED") == 2
        report = await sr.stop_unfinished(client, [running, queued])
        assert sorted(report.stopped) == sorted(queued.instance_ids)
        assert report.kept == running.instance_ids
        assert small.state.count("QUEUED") == 0
        assert small.state.count() == 1
        await small.advance(60)
        assert small.state.count("RUNNING") == 1  # nothing queued started later


async def test_concurrent_launches_are_counted_one_after_another(h: Harness) -> None:
    guard = h.guard(budget=sr.Budget(max_running=2))
    async with h.client(guard) as client:
        results = await asyncio.gather(
            *(client.configurations.launch(h.cfg, cam(f"cam-{n}")) for n in range(3)),
            return_exceptions=True,
        )
        refused = [r for r in results if isinstance(r, sr.BudgetExceededError)]
        assert len(refused) == 1
        assert h.launches == 2
        assert len(await client.leases.list()) == 2


def test_a_client_used_again_in_a_new_event_loop_guards_again(
    make_store: Callable[[], sr.LeaseStore],
) -> None:
    emu = Emulator(clock="virtual", boot_time=1)
    guard = sr.Guard("bot", store=make_store(), reap_interval=3600, clock=lambda: T0 + emu.now())
    clients: list[sr.StreamrunClient] = []

    async def first_run() -> None:
        await emu.start()
        clients.append(emu.client(guard=guard, retry=sr.RetryPolicy.for_testing()))
        await clients[0].configurations.launch(emu.configuration_ids[0], cam(), ttl=30)
        await emu.close()

    async def second_run() -> None:
        await emu.start()
        await emu.advance(31)
        # The first loop is gone, and its reaper task with it: this launch starts it again,
        # and its first sweep stops the lease that expired in between.
        [client] = clients
        await client.configurations.launch(emu.configuration_ids[0], cam("cam-2"), ttl=30)
        assert [s.at for s in emu.state.stopped] == [31.0]
        assert [lease.name for lease in await client.leases.list()] == ["cam-2"]
        await client.aclose()
        await emu.close()

    asyncio.run(first_run())
    asyncio.run(second_run())


async def test_launch_many_writes_a_lease_per_name_and_they_are_reaped(h: Harness) -> None:
    guard = h.guard(budget=sr.Budget(max_running=5))
    async with h.client(guard) as client:
        plan = {
            h.cfg: [sr.InstanceSettings(name=f"cam-{n}") for n in range(3)],
            h.emu.configuration_ids[1]: [sr.InstanceSettings(name="long", ttl=120)],
        }
        report = await client.launch_many(plan, ttl=30, settle=0.01)
        assert report.ok
        deadlines = {lease.name: lease.expires_at for lease in await client.leases.list()}
        assert deadlines == {"cam-0": T0 + 30, "cam-1": T0 + 30, "cam-2": T0 + 30, "long": T0 + 120}
        posts = h.launches
        refused = await client.launch_many({h.cfg: cam("a") + cam("b")}, settle=0.01)
        assert set(refused.failed) == {"a", "b"}
        assert all(isinstance(e, sr.BudgetExceededError) for e in refused.failed.values())
        assert h.launches == posts
        await h.emu.advance(30)
        assert sorted(lease.name or "" for lease in (await guard.reap()).stopped) == [
            "cam-0",
            "cam-1",
            "cam-2",
        ]
        assert h.emu.state.count() == 1


async def test_a_store_failing_after_the_post_keeps_the_launch_and_says_so(
    emu: Emulator, tmp_path: Path
) -> None:
    class FailsSecondWrite(sr.SQLiteLeaseStore):
        writes = 0

        async def put(self, leases: Sequence[sr.Lease]) -> None:
            self.writes += 1
            if self.writes == 2:
                raise sr.LeaseStoreError("disk full", path=self.location)
            await super().put(leases)

    events: list[Any] = []
    store = FailsSecondWrite(tmp_path / "leases.sqlite3")
    guard = sr.Guard("bot", store=store, reap_interval=3600, clock=lambda: T0 + emu.now())
    async with emu.client(guard=guard, hooks=[events.append]) as client:
        request = await client.configurations.launch(emu.configuration_ids[0], cam(), ttl=30)
        assert request.id  # the launch happened: its answer is not lost to the store
        [failed] = [e for e in events if isinstance(e, sr.LeaseWriteFailed)]
        assert "disk full" in failed.error
        [held] = await client.leases.list()
        assert held.request_id is None  # the lease by name stays, and still expires
        await emu.advance(30)
        assert len((await guard.reap()).stopped) == 1


async def test_a_list_of_another_configuration_never_ends_a_lease(h: Harness) -> None:
    guard = h.guard(reap_interval=0.05)
    poll = sr.PollPolicy(min_interval=0.01, max_interval=0.02, requests_per_second=200)
    other = h.emu.configuration_ids[1]
    async with h.client(guard, poll=poll) as client:
        await client.configurations.launch(h.cfg, cam(), ttl=30)
        await client.configurations.launch(other, cam("watched"))
        await guard.reap()  # an account-wide list has shown both: absence would now count
        assert all(lease.seen_at is not None for lease in await client.leases.list())
        async with client.instances.watch([other]) as watch:
            consumer = asyncio.create_task(anext(watch))
            async with asyncio.timeout(5):
                await until_rounds(guard, 5)
            # The poller lists only the watched configuration: cfg's lease is not "gone".
            assert {lease.name for lease in await client.leases.list()} == {"cam-1", "watched"}
            await h.emu.advance(30)
            async with asyncio.timeout(5):
                await h.until(sr.LeaseReaped)
            assert h.emu.state.count(configuration_id=h.cfg) == 0
            consumer.cancel()
        assert h.emu.state.count(configuration_id=other) == 1
        assert h.of(sr.LeaseEnded) == []


async def test_the_api_down_at_start_does_not_keep_the_bot_from_starting(h: Harness) -> None:
    from streamrun_async.testing import Fault

    async with h.client() as client:
        await client.configurations.launch(h.cfg, cam(), ttl=30)
    await h.emu.advance(31)
    h.emu.faults.script("GET /instances", [Fault.HTTP_503] * 4)
    guard = h.guard()
    async with h.client(guard) as client:  # the sweep's list fails: logged, not raised
        assert h.emu.state.count() == 1
        assert len((await guard.reap()).stopped) == 1


async def test_wait_until_running_on_timeout_stop_leaves_nothing_queued() -> None:
    small = Emulator(clock="virtual", boot_time=4, capacity=2)
    poll = sr.PollPolicy(min_interval=0.01, max_interval=0.02, requests_per_second=200)
    async with small, small.client(retry=sr.RetryPolicy.for_testing(), poll=poll) as client:
        cfg = small.configuration_ids[0]
        first = await client.configurations.launch(cfg, cam("runs"))
        await small.advance(5)
        # One server left: one of these boots and runs, the other waits in the queue.
        second = await client.configurations.launch(cfg, cam("a") + cam("b"))
        await small.advance(5)
        assert small.state.count("QUEUED") == 1
        with pytest.raises(sr.WaitTimeoutError) as caught:
            await client.instance_requests.wait_until_running(
                second, timeout=0.1, on_timeout="stop"
            )
        assert any("stopped 1 unfinished" in note for note in caught.value.__notes__)
        assert small.state.count("QUEUED") == 0
        assert small.state.count("RUNNING") == 2  # RUNNING by the deadline: kept
        await small.advance(60)
        assert small.state.count() == 2  # nothing queued started later
        with pytest.raises(sr.InvalidArgumentError):
            client.instance_requests.wait_until_running(first, on_timeout="cancel")  # type: ignore[arg-type]


async def test_on_timeout_stop_that_cannot_be_confirmed_is_the_error_raised() -> None:
    from streamrun_async.testing import Fault

    small = Emulator(clock="virtual", boot_time=4, capacity=1)
    async with small, small.client(retry=sr.RetryPolicy.disabled()) as client:
        cfg = small.configuration_ids[0]
        await client.configurations.launch(cfg, cam("runs"))
        await small.advance(5)
        queued = await client.configurations.launch(cfg, cam("waits"))
        small.faults.script("DELETE /instances/{instanceId}", [Fault.HTTP_503] * 10)
        with pytest.raises(sr.StopNotConfirmedError) as caught:
            await client.instance_requests.wait_until_running(
                queued, timeout=0.05, on_timeout="stop"
            )
        assert isinstance(caught.value.__cause__, sr.WaitTimeoutError)
        assert caught.value.instance_ids == queued.instance_ids
        assert small.state.count("QUEUED") == 1


async def test_launch_many_on_timeout_stop_leaves_nothing_queued() -> None:
    small = Emulator(clock="virtual", boot_time=0, capacity=2)
    poll = sr.PollPolicy(min_interval=0.01, max_interval=0.02, requests_per_second=200)
    async with small, small.client(retry=sr.RetryPolicy.for_testing(), poll=poll) as client:
        plan = {
            small.configuration_ids[0]: [sr.InstanceSettings(name=f"cam-{n}") for n in range(4)]
        }
        with pytest.raises(sr.InvalidArgumentError):
            await client.launch_many(plan, on_timeout="never")  # type: ignore[arg-type]
        assert small.stats.total == 0
        report = await client.launch_many(
            plan, wait=True, timeout=0.5, settle=0.01, on_timeout="stop", max_per_request=1
        )
        assert isinstance(report.wait_error, sr.WaitTimeoutError)
        assert small.state.count("QUEUED") == 0
        assert small.state.count("RUNNING") == 2
        assert len(report.rolled_back) == 2
        assert len(report.by_status(sr.LaunchStatus.RUNNING)) == 2
        await small.advance(60)
        assert small.state.count() == 2  # nothing queued started later
