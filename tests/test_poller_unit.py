"""The shared poller against fake fetch functions, on a manual clock: every timing rule
is checked at exact virtual times, with no sleeping and no polling of counters."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import pytest

import streamrun_async as sr
from streamrun_async.watch import (
    ManualClock,
    Pacer,
    Poller,
    PollPolicy,
    wait_for_instance,
    wait_for_request,
)

T = TypeVar("T")
S = sr.InstanceState
POLICY = PollPolicy(
    min_interval=1,
    max_interval=4,
    growth=2,
    requests_per_second=5,
    absence_grace=3,
    give_up_after=30,
)
RUNNING = S.RUNNING


class FakeApi:
    """Instances (as the JSON a server sends) and requests the test mutates; it records
    every call with the manual clock's time."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.instances: dict[str, dict[str, Any]] = {}
        self.requests: dict[str, sr.InstanceRequest] = {}
        self.lists: list[tuple[float, str | None]] = []
        self.gets: list[tuple[float, str]] = []
        self.list_error: BaseException | None = None
        self.get_error: BaseException | None = None
        self.hold_gets: asyncio.Event | None = None
        self.where: dict[str, str | None] = {}

    async def list_instances(self, configuration_id: str | None) -> list[Any]:
        self.lists.append((self.clock.now(), configuration_id))
        await asyncio.sleep(0)
        if self.list_error is not None:
            raise self.list_error
        # Fresh dicts each time, as a parser makes them.
        return [
            dict(i)
            for i in self.instances.values()
            if configuration_id is None or self.where.get(i["id"]) == configuration_id
        ]

    async def get_request(self, request_id: str) -> sr.InstanceRequest:
        self.gets.append((self.clock.now(), request_id))
        if self.hold_gets is not None:
            await self.hold_gets.wait()
        await asyncio.sleep(0)
        if self.get_error is not None:
            raise self.get_error
        if request_id not in self.requests:
            raise sr.NotFoundError("gone", method="GET", url="/x", status=404)
        return self.requests[request_id]

    def put(
        self,
        iid: str,
        state: str = "QUEUED",
        cfg: str | None = "c1",
        req: str | None = None,
        listed_in: str | None = None,
    ) -> None:
        """An instance; ``cfg=None`` leaves configurationId out (listed in ``listed_in``)."""
        self.where[iid] = cfg or listed_in
        item: dict[str, Any] = {"id": iid, "state": state, "name": iid}
        if cfg is not None:
            item["configurationId"] = cfg
        if req is not None:
            item["requestId"] = req
        self.instances[iid] = item

    def request(self, rid: str, state: S = S.QUEUED, count: int | None = None) -> None:
        self.requests[rid] = sr.InstanceRequest(
            id=rid, state=state, number_of_instances=count, configuration_id="c1"
        )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=100.0)


@pytest.fixture
def api(clock: ManualClock) -> FakeApi:
    return FakeApi(clock)


def make_poller(api: FakeApi, clock: ManualClock, policy: PollPolicy = POLICY) -> Poller:
    # rng 0.5: the jitter factor is exactly 1, so intervals are exact.
    pacer = Pacer(policy, rng=lambda: 0.5)
    return Poller(policy, api.list_instances, api.get_request, clock=clock, pacer=pacer)


STARTED: list[asyncio.Task[Any]] = []


@pytest.fixture
async def poller(api: FakeApi, clock: ManualClock) -> AsyncIterator[Poller]:
    STARTED.clear()
    poller = make_poller(api, clock)
    yield poller
    await poller.close()
    # Waits a test left running end with ClientClosedError: collect them.
    await asyncio.gather(*STARTED, return_exceptions=True)
    STARTED.clear()


def start(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    task = asyncio.ensure_future(coro)
    STARTED.append(task)
    return task


def wait_instance(poller: Poller, iid: str, **options: Any) -> asyncio.Task[sr.Instance]:
    options.setdefault("timeout", 600)
    state = options.pop("state", RUNNING)
    return start(wait_for_instance(poller, iid, state, **options))


def wait_request(
    poller: Poller, request: str | sr.InstanceRequest, **options: Any
) -> asyncio.Task[sr.InstanceRequest]:
    options.setdefault("timeout", 600)
    return start(wait_for_request(poller, request, **options))


def over(task: asyncio.Task[T]) -> asyncio.Task[T]:
    """The task, which must have ended by now (awaiting a pending one would hang)."""
    assert task.done(), "still waiting"
    return task


def list_times(api: FakeApi) -> list[float]:
    return [when - 100 for when, _ in api.lists]


# -- pacing ---------------------------------------------------------------------------------


async def test_min_interval_is_a_floor_whoever_asks(
    api: FakeApi, clock: ManualClock, poller: Poller
) -> None:
    api.put("i0")
    first = wait_instance(poller, "i0")
    await clock.advance(0)
    assert list_times(api) == [0]
    # Twenty new waiters arrive within the interval: none of them brings a list forward.
    for n in range(20):
        api.put(f"n{n}")
        wait_instance(poller, f"n{n}")
        await clock.advance(0.04)
    assert list_times(api) == [0]
    await clock.advance(0.2)
    assert list_times(api) == [0, 1.0]
    first.cancel()


async def test_a_waiter_answered_by_a_fresh_snapshot_makes_no_call(
    api: FakeApi, clock: ManualClock, poller: Poller
) -> None:
    api.put("a", "RUNNING")
    api.put("b", "QUEUED")
    keep = wait_instance(poller, "b")
    await clock.advance(0)
    await clock.advance(0.5)
    done = await wait_for_instance(poller, "a", RUNNING, timeout=10)
    assert done.id == "a"
    assert len(api.lists) == 1
    keep.cancel()


async def test_intervals_grow_while_quiet_and_snap_back_after_a_change(
    api: FakeApi, clock: ManualClock, poller: Poller
) -> None:
    api.put("i1")
    waiter = wait_instance(poller, "i1")
    await clock.advance(16)
    assert list_times(api) == [0, 1, 3, 7, 11, 15]  # x2 per quiet tick, capped at 4
    api.put("i1", "STARTING")
    await clock.advance(4)
    await clock.advance(1)
    assert list_times(api)[-2:] == [19, 20]  # the change brought the next one in
    api.put("i1", "RUNNING")
    await clock.advance(2)
    assert (await over(waiter)).state is RUNNING


async def test_retry_after_holds_back_every_call_of_the_poller(
    api: FakeApi, clock: ManualClock, poller: Poller
) -> None:
    api.put("i1")
    api.request("r1")
    api.list_error = sr.RateLimitError(
        "slow down", method="GET", url="/", status=429, retry_after=5
    )
    waiters = [wait_instance(poller, "i1"), wait_request(poller, "r1")]
    await clock.advance(0)
    api.list_error = None
    for n in range(10):  # new waiters during the Retry-After window
        wait_instance(poller, f"x{n}")
        await clock.advance(0.4)
    assert list_times(api) == [0]
    assert api.gets == []
    await clock.advance(1)
    assert list_times(api) == [0, 5]
    for w in waiters:
        w.cancel()


async def test_request_gets_stay_within_the_budget_oldest_first_and_a_failed_list_sends_none(
    api: FakeApi, clock: ManualClock, poller: Poller
) -> None:
    for n in range(40):
        api.request(f"r{n:02}", count=1)
    api.list_error = sr.ServerError("down", method="GET", url="/", status=503)
    waiters = [wait_request(poller, f"r{n:02}") for n in range(40)]
    await clock.advance(0)
    assert api.gets == []  # a failed list sends no request GETs
    api.list_error = None
    await clock.advance(2)
    # Budget: 5 calls per second, one list each tick: 4 GETs a tick, in registration order.
    per_tick: dict[float, list[str]] = {}
    for when, rid in api.gets:
        per_tick.setdefault(when - 100, []).append(rid)
    assert [len(v) for v in per_tick.values()] == [4]
    assert per_tick[2.0] == ["r00", "r01", "r02", "r03"]
    await clock.advance(60)
    assert len(api.gets) >= 40
    assert len(api.gets) + len(api.lists) <= 5 * 62 + 5
    for w in waiters:
        w.cancel()


async def test_slow_request_gets_never_hold_back_an_instance_waiter(
    api: FakeApi, clock: ManualClock, poller: Poller
) -> None:
    api.hold_gets = asyncio.Event()  # every GET hangs until released
    for n in range(300):
        api.request(f"r{n}")
    requests = [wait_request(poller, f"r{n}") for n in range(300)]
    api.put("i1")
    instance = wait_instance(poller, "i1")
    await clock.advance(0)
    api.put("i1", "RUNNING")
    await clock.advance(1)
    assert instance.done()
    assert instance.result().state is RUNNING
    assert list_times(api) == [0, 1]  # ticks kept their time
    api.hold_gets.set()
    for r in requests:
        r.cancel()


async def test_two_thousand_request_waiters_by_id_all_finish(
    api: FakeApi, clock: ManualClock
) -> None:
    policy = PollPolicy(min_interval=1, max_interval=1, requests_per_second=100)
    poller = make_poller(api, clock, policy)
    for n in range(2000):
        api.request(f"r{n}", RUNNING, count=1)
    waiters = [wait_request(poller, f"r{n}") for n in range(2000)]
    await clock.advance(25)
    assert all(w.done() for w in waiters)
    assert {w.result().state for w in waiters} == {RUNNING}
    assert len(api.gets) == 2000
    assert not poller.active


# -- requests: the server is the authority --------------------------------------------------


async def test_a_request_the_server_reports_running_ahead_of_its_instances_is_seen(
    api: FakeApi, clock: ManualClock, poller: Poller
) -> None:
    api.request("r1", count=2)
    api.put("a", req="r1")
    api.put("b", req="r1")
    waiter = wait_request(poller, api.requests["r1"])
    await clock.advance(3)
    assert not waiter.done()
    api.request("r1", RUNNING, count=2)  # the instances still list QUEUED
    await clock.advance(8)
    assert (await over(waiter)).state is RUNNING


async def test_the_list_proves_running_only_with_the_count_known(
    api: FakeApi, clock: ManualClock, poller: Poller
) -> None:
    # Count unknown, one of three listed RUNNING: not RUNNING until the server says so.
    api.request("r1", count=None)
    api.put("a", "RUNNING", req="r1")
    api.put("b", req="r1")
    api.put("c", req="r1")
    waiter = wait_request(poller, "r1")
    await clock.advance(10)
    assert not waiter.done()
    api.request("r1", RUNNING, count=None)
    await clock.advance(5)
    assert (await over(waiter)).state is RUNNING


async def test_a_request_proven_by_the_list_costs_no_get(
    api: FakeApi, clock: ManualClock, poller: Poller
) -> None:
    known = sr.InstanceRequest(id="r1", number_of_instances=2, configuration_id="c1")
    api.request("r1", count=2)
    api.put("a", req="r1")
    api.put("b", req="r1")
    waiter = wait_request(poller, known)
    await clock.advance(0.5)
    api.put("a", "RUNNING", req="r1")
    api.put("b", "RUNNING", req="r1")
    await clock.advance(0.5)
    done = await over(waiter)
    assert done.state is RUNNING
    assert done.instance_ids == ("a", "b")
    assert api.gets == []


async def test_a_wait_on_a_request_already_running_keeps_nothing(poller: Poller) -> None:
    running = sr.InstanceRequest(id="r1", state=RUNNING, number_of_instances=1)
    for _ in range(100):
        assert await wait_for_request(poller, running, timeout=5) is running
    assert len(poller.tracker) == 0
    assert not poller.active


@pytest.mark.parametrize("state", [S.FAILED, S.ERROR, S.STOPPED, S("CANCELLED")])
async def test_a_terminal_request_ends_its_wait_at_once(
    api: FakeApi, clock: ManualClock, poller: Poller, state: S
) -> None:
    api.request("r1", count=1)
    waiter = wait_request(poller, "r1")
    await clock.advance(0)
    api.request("r1", state, count=1)
    await clock.advance(2)
    with pytest.raises(sr.WaiterError, match=str(state)) as info:
        await over(waiter)
    assert info.value.last_seen.state is state


async def test_failure_states_end_a_request_wait(
    api: FakeApi, clock: ManualClock, poller: Poller
) -> None:
    api.request("r1", S.PREVIEW, count=1)
    with pytest.raises(sr.WaiterError, match="PREVIEW"):
        await asyncio.gather(wait_request(poller, "r1", failure={S.PREVIEW}), clock.advance(1))


async def test_a_request_404_right_after_launch_is_asked_again(
    api: FakeApi, clock: ManualClock, poller: Poller
) -> None:
    waiter = wait_request(poller, "r1")
    await clock.advance(2)  # 404s within the grace
    assert not waiter.done()
    assert len(api.gets) >= 1
    api.request("r1", RUNNING, count=1)
    await clock.advance(4)  # the next tick, the interval having grown while nothing changed
    assert (await over(waiter)).state is RUNNING


async def test_a_request_404_after_the_grace_does_not_exist(
    api: FakeApi, clock: ManualClock, poller: Poller
) -> None:
    waiter = wait_request(poller, "nope")
    await clock.advance(6)
    with pytest.raises(sr.WaiterError, match="does not exist") as info:
        await over(waiter)
    assert isinstance(info.value.__cause__, sr.NotFoundError)


async def test_every_instance_of_a_request_stopped_ends_its_wait(
    api: FakeApi, clock: ManualClock, poller: Poller
) -> None:
    api.request("r1", count=1)
    api.put("a", req="r1")
    waiter = wait_request(poller, api.requests["r1"])
    await clock.advance(1)
    del api.instances["a"]  # stopped; the server keeps the request QUEUED forever
    await clock.advance(10)
    with pytest.raises(sr.WaiterError, match="every instance"):
        await over(waiter)


# -- instances ------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["FAILED", "ERROR", "STOPPED", "STOPPING", "terminated"])
async def test_a_terminal_instance_ends_a_wait_for_running_at_once(
    api: FakeApi, clock: ManualClock, poller: Poller, state: str
) -> None:
    api.put("i1")
    waiter = wait_instance(poller, "i1")
    await clock.advance(0)
    api.put("i1", state)
    await clock.advance(1)
    with pytest.raises(sr.WaiterError, match=state):
        await over(waiter)


async def test_an_instance_not_listed_yet_is_not_reported_missing_within_the_grace(
    api: FakeApi, clock: ManualClock, poller: Poller
) -> None:
    waiter = wait_instance(poller, "late")
    await clock.advance(2)  # three lists without it, over 2 s
    assert not waiter.done()
    api.put("late", "RUNNING")
    await clock.advance(2)
    assert (await over(waiter)).state is RUNNING


async def test_an_instance_that_never_appears_does_not_exist_after_the_grace(
    api: FakeApi, clock: ManualClock, poller: Poller
) -> None:
    waiter = wait_instance(poller, "ghost", configuration_id="c1")
    await clock.advance(4)
    with pytest.raises(sr.WaiterError, match="ghost does not exist in c1"):
        await over(waiter)


async def test_one_list_missing_an_instance_is_not_a_disappearance(
    api: FakeApi, clock: ManualClock, poller: Poller
) -> None:
    api.put("i1")
    waiter = wait_instance(poller, "i1")
    await clock.advance(0)
    saved = api.instances.pop("i1")
    await clock.advance(1)  # one list without it
    api.instances["i1"] = {**saved, "state": "RUNNING"}
    await clock.advance(1)
    assert (await over(waiter)).state is RUNNING


async def test_a_stopped_instance_disappears_after_the_grace_with_its_last_state(
    api: FakeApi, clock: ManualClock, poller: Poller
) -> None:
    api.put("i1")
    waiter = wait_instance(poller, "i1")
    await clock.advance(0)
    del api.instances["i1"]
    await clock.advance(3)
    assert not waiter.done()
    await clock.advance(4)
    with pytest.raises(sr.WaiterError, match="disappeared") as info:
        await over(waiter)
    assert info.value.last_seen.state == "QUEUED"


async def test_an_instance_waiter_judges_only_its_own_configuration(
    api: FakeApi, clock: ManualClock, poller: Poller
) -> None:
    api.put("i1", "RUNNING", cfg="c2")
    # Alone, it lists c1 only; with an account-wide watch beside it, the account. Either
    # way the instance of c2 is not the one it waits for.
    alone = wait_instance(poller, "i1", configuration_id="c1")
    await clock.advance(4)
    with pytest.raises(sr.WaiterError, match="does not exist in c1"):
        await over(alone)
    watch = sr.InstanceWatch(poller)
    consumer = start(anext(watch))
    beside = wait_instance(poller, "i1", configuration_id="c1")
    await clock.advance(5)
    with pytest.raises(sr.WaiterError, match="does not exist in c1"):
        await over(beside)
    assert None in {scope for _, scope in api.lists}
    await over(consumer)
    await watch.aclose()


async def test_deadlines_fire_at_their_time_with_the_last_state(
    api: FakeApi, clock: ManualClock, poller: Poller
) -> None:
    api.put("i1")
    waiters = [wait_instance(poller, "i1", timeout=5 + n) for n in range(3)]
    await clock.advance(4.9)
    assert not any(w.done() for w in waiters)
    await clock.advance(0.1)
    assert [w.done() for w in waiters] == [True, False, False]
    with pytest.raises(sr.WaitTimeoutError, match="last state seen: QUEUED") as info:
        await waiters[0]
    assert info.value.last_seen.state == "QUEUED"
    assert info.value.__cause__ is None
    await clock.advance(2)
    assert all(w.done() for w in waiters)


async def test_thousands_of_waiters_keep_one_timer(
    api: FakeApi, clock: ManualClock, poller: Poller
) -> None:
    for n in range(1000):
        api.put(f"i{n}")
    waiters = [wait_instance(poller, f"i{n}", timeout=50 + n % 7) for n in range(1000)]
    await clock.advance(0)
    pending = [t for t in clock._timers if not t[2].cancelled]
    assert len(pending) <= 2  # the earliest deadline, and the next tick
    for w in waiters:
        w.cancel()


# -- honest failures ------------------------------------------------------------------------


async def test_a_timeout_while_polls_fail_carries_the_last_poll_error(
    api: FakeApi, clock: ManualClock, poller: Poller
) -> None:
    api.list_error = sr.APIConnectionError("connection refused", method="GET", url="/")
    waiter = wait_instance(poller, "i1", timeout=10)
    await clock.advance(10)
    with pytest.raises(sr.WaitTimeoutError, match="polls were failing") as info:
        await over(waiter)
    assert info.value.__cause__ is api.list_error


async def test_after_give_up_after_of_failed_polls_waits_and_watches_end_with_the_error(
    api: FakeApi, clock: ManualClock, poller: Poller
) -> None:
    api.list_error = sr.ServerError("bad gateway", method="GET", url="/", status=502)
    waiter = wait_instance(poller, "i1", timeout=600)
    watch = sr.InstanceWatch(poller)
    consumer = start(anext(watch))
    await clock.advance(29)
    assert not waiter.done()
    assert not consumer.done()
    await clock.advance(5)
    with pytest.raises(sr.ServerError):
        await over(waiter)
    with pytest.raises(sr.ServerError):
        await over(consumer)


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_a_permanent_list_error_ends_everything_at_once(
    api: FakeApi, clock: ManualClock, poller: Poller, status: int
) -> None:
    api.list_error = sr.APIStatusError("no", method="GET", url="/", status=status)
    waiter = wait_instance(poller, "i1")
    await clock.advance(0)
    with pytest.raises(sr.APIStatusError):
        await over(waiter)
    assert not poller.active


# -- watches --------------------------------------------------------------------------------


async def test_a_slow_consumer_sees_changes_coalesced_per_instance(
    api: FakeApi, clock: ManualClock, poller: Poller
) -> None:
    api.put("keep")
    api.put("gone")
    watch = sr.InstanceWatch(poller)
    first = start(anext(watch))
    await clock.advance(0)
    assert (await over(first)).instance.id == "keep"  # gone's ADDED waits in the buffer
    # While nobody reads: keep moves through three states, gone goes, new comes and goes,
    # late comes and changes.
    for state in ("STARTING", "RUNNING", "PREVIEW"):
        api.put("keep", state)
        await clock.advance(1)
    del api.instances["gone"]
    api.put("new")
    await clock.advance(1)
    del api.instances["new"]
    api.put("late")
    await clock.advance(1)
    api.put("late", "RUNNING")
    await clock.advance(6)  # past the absence grace of gone and new
    pending = watch._buffer.pending
    got = {(c.instance.id, c.kind, c.instance.state, c.previous) for c in pending.values()}
    # Bounded by instances, not changes: one entry each, and none for what came and went.
    assert got == {
        ("keep", sr.ChangeKind.CHANGED, "PREVIEW", "QUEUED"),
        ("late", sr.ChangeKind.ADDED, "RUNNING", None),
    }
    await watch.aclose()


async def test_aclose_from_another_task_wakes_a_consumer_of_either_watch(
    api: FakeApi, clock: ManualClock, poller: Poller
) -> None:
    api.request("r1")
    requests = sr.RequestWatch(poller, ["r1"], timeout=600)
    instances = sr.InstanceWatch(poller)

    async def drain(watch: Any) -> list[Any]:
        return [item async for item in watch]

    consumers = [start(drain(requests)), start(drain(instances))]
    await clock.advance(2)
    await requests.aclose()
    await instances.aclose()
    await clock.advance(0)
    assert all(c.done() for c in consumers)
    assert [r.state for r in consumers[0].result()] == ["QUEUED"]
    assert not poller.active


async def test_a_request_watch_times_out_with_the_cause_and_last_states(
    api: FakeApi, clock: ManualClock, poller: Poller
) -> None:
    api.request("r1")
    watch = sr.RequestWatch(poller, ["r1", "r2"], timeout=5)
    items = start(anext(watch))
    await clock.advance(1)
    assert (await over(items)).state == "QUEUED"
    api.list_error = sr.APIConnectionError("refused", method="GET", url="/")
    later = start(anext(watch))
    await clock.advance(5)
    with pytest.raises(sr.WaitTimeoutError, match="2 instance request") as info:
        await over(later)
    assert isinstance(info.value.__cause__, sr.APIConnectionError)
    assert [r and r.state for r in info.value.last_seen] == ["QUEUED", None]


async def test_a_configuration_watch_matches_instances_through_their_request(
    api: FakeApi, clock: ManualClock, poller: Poller
) -> None:
    # Instances without configurationId, listed account-wide (a waiter by request id needs
    # the whole account); the request, once fetched, says it is of c1.
    api.request("r1", count=1)
    api.put("mine", cfg=None, req="r1", listed_in="c1")
    api.put("other", cfg=None, req="r2", listed_in="c2")
    waiter = wait_request(poller, "r1")
    watch = sr.InstanceWatch(poller, ["c1", "c9"])
    first = start(anext(watch))
    await clock.advance(1)
    change = await over(first)
    assert (change.kind, change.instance.id) == (sr.ChangeKind.ADDED, "mine")
    assert api.lists[0][1] is None
    await clock.advance(3)
    assert not watch._buffer.pending  # "other" is not of c1 or c9
    waiter.cancel()
    await watch.aclose()


async def test_reading_the_token_twice_costs_nothing_and_resumes(
    api: FakeApi, clock: ManualClock, poller: Poller
) -> None:
    api.put("i1")
    watch = sr.InstanceWatch(poller)
    first = start(anext(watch))
    await clock.advance(0)
    assert (await over(first)).kind is sr.ChangeKind.ADDED
    token = watch.token
    assert watch.token is token  # cached until the next change
    await watch.aclose()
    del api.instances["i1"]
    api.put("i2", "RUNNING")
    resumed = sr.InstanceWatch(poller, resume=token)
    first = start(anext(resumed))
    await clock.advance(1)
    assert ((await over(first)).kind, first.result().instance.id) == (sr.ChangeKind.ADDED, "i2")
    second = start(anext(resumed))
    await clock.advance(3)  # gone only after the absence grace
    assert ((await over(second)).kind, second.result().instance.id) == (
        sr.ChangeKind.REMOVED,
        "i1",
    )
    await resumed.aclose()


async def test_an_abandoned_watch_leaves_the_poller(
    api: FakeApi, clock: ManualClock, poller: Poller
) -> None:
    api.put("i1")
    watch = sr.InstanceWatch(poller)
    first = start(anext(watch))
    await clock.advance(0)
    await over(first)
    del watch, first
    gc.collect()
    await clock.advance(0)
    assert not poller.active


# -- listeners, lifecycle ---------------------------------------------------------------------


async def test_snapshot_listeners_see_every_list_with_its_scope(
    api: FakeApi, clock: ManualClock, poller: Poller
) -> None:
    api.put("i1", cfg="c1")
    seen: list[tuple[list[str], float, frozenset[str] | None]] = []

    def listener(snapshot: Any, taken: float, covered: frozenset[str] | None) -> None:
        seen.append((sorted(snapshot), taken, covered))

    def broken(snapshot: Any, taken: float, covered: Any) -> None:
        raise RuntimeError("a bug in someone's listener")

    remove = poller.add_snapshot_listener(listener)
    poller.add_snapshot_listener(broken)
    waiter = wait_instance(poller, "i1", configuration_id="c1")
    await clock.advance(1)
    assert seen == [(["i1"], 100.0, frozenset({"c1"})), (["i1"], 101.0, frozenset({"c1"}))]
    remove()
    await clock.advance(2)
    assert len(seen) == 2
    assert not waiter.done()  # the broken listener changed nothing
    waiter.cancel()


async def test_cancelled_waiters_withdraw_and_the_poller_stops(
    api: FakeApi, clock: ManualClock, poller: Poller
) -> None:
    api.put("i1")
    waiters = [wait_instance(poller, "i1"), wait_request(poller, "r1")]
    await clock.advance(1)
    for w in waiters:
        w.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    await clock.advance(0)
    assert not poller.active
    assert len(poller.tracker) == 0


async def test_close_ends_waiters_and_refuses_new_ones(
    api: FakeApi, clock: ManualClock, poller: Poller
) -> None:
    api.put("i1")
    waiter = wait_instance(poller, "i1")
    await clock.advance(0)
    await poller.close()
    with pytest.raises(sr.ClientClosedError):
        await over(waiter)
    with pytest.raises(sr.ClientClosedError):
        await wait_for_instance(poller, "i1", RUNNING, timeout=1)


async def test_bad_wait_arguments_are_refused_before_anything_runs(poller: Poller) -> None:
    with pytest.raises(sr.InvalidArgumentError):
        _ = wait_for_instance(poller, "i1", RUNNING, timeout=0)
    with pytest.raises(sr.InvalidArgumentTypeError):
        _ = wait_for_instance(poller, "i1", RUNNING, timeout="5")  # type: ignore[arg-type]
    with pytest.raises(sr.InvalidArgumentError):
        _ = wait_for_instance(poller, "i1", ["RUNNING"], timeout=5)  # type: ignore[list-item]
    with pytest.raises(sr.InvalidArgumentError):
        sr.RequestWatch(poller, ["r1"], timeout=-1)
    assert not poller.active


async def test_ended_waits_do_not_pile_up_in_the_deadline_heap(
    api: FakeApi, clock: ManualClock, poller: Poller
) -> None:
    watch = sr.InstanceWatch(poller)  # keeps the poller alive throughout
    consumer = start(anext(watch))
    for round_no in range(10):
        api.put(f"i{round_no}")
        waiters = [wait_instance(poller, f"i{round_no}", timeout=3600) for _ in range(100)]
        await clock.advance(1)
        api.put(f"i{round_no}", "RUNNING")
        await clock.advance(POLICY.max_interval)
        assert all(w.done() for w in waiters)
    # A thousand ended waits with an hour to their deadlines: not all of them are kept.
    assert len(poller._deadlines) <= 2 * 100 + 64
    consumer.cancel()
    await watch.aclose()


FAST_REAL = PollPolicy(min_interval=0.001, max_interval=0.002, requests_per_second=10_000)


def test_the_poller_follows_its_client_into_a_new_loop_once_the_first_ended() -> None:
    api = FakeApi(ManualClock())
    poller = Poller(FAST_REAL, api.list_instances, api.get_request)
    api.put("i1")
    first = asyncio.new_event_loop()

    left: list[asyncio.Future[sr.Instance]] = []

    async def leave_a_wait_running() -> None:
        left.append(asyncio.ensure_future(wait_for_instance(poller, "i1", RUNNING, timeout=60)))
        await asyncio.sleep(0.01)  # the poller ticks in this loop

    first.run_until_complete(leave_a_wait_running())
    first.close()  # its tasks never ran to their end

    async def wait_again() -> sr.Instance:
        api.put("i2", "RUNNING")
        return await wait_for_instance(poller, "i2", RUNNING, timeout=5)

    assert asyncio.run(wait_again()).state is RUNNING


def test_waits_from_a_second_running_loop_are_refused() -> None:
    import threading

    api = FakeApi(ManualClock())
    poller = Poller(FAST_REAL, api.list_instances, api.get_request)
    api.put("i1")
    started, release = threading.Event(), threading.Event()

    async def hold() -> None:
        waiting = asyncio.ensure_future(wait_for_instance(poller, "i1", RUNNING, timeout=60))
        await asyncio.sleep(0.01)
        started.set()
        await asyncio.get_running_loop().run_in_executor(None, release.wait)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)

    thread = threading.Thread(target=asyncio.run, args=(hold(),))
    thread.start()
    try:
        assert started.wait(5)

        async def second() -> None:
            with pytest.raises(sr.EventLoopError):
                await wait_for_instance(poller, "i1", RUNNING, timeout=1)

        asyncio.run(second())
    finally:
        release.set()
        thread.join(5)


async def test_an_unknown_state_is_shown_in_the_timeout_message(
    api: FakeApi, clock: ManualClock, poller: Poller
) -> None:
    api.put("i1", "HIBERNATING")
    waiter = wait_instance(poller, "i1", timeout=5)
    await clock.advance(5)
    with pytest.raises(sr.WaitTimeoutError, match="last state seen: HIBERNATING"):
        await over(waiter)


@pytest.mark.parametrize("configs", [None, ["c1"]])
async def test_a_resumed_watch_gives_missing_instances_the_grace_too(
    api: FakeApi, clock: ManualClock, poller: Poller, configs: list[str] | None
) -> None:
    token = sr.InstanceWatch(poller, configs)
    api.put("late")  # named in the token, not listed for a moment (eventual consistency)
    api.put("gone")
    first = start(anext(token))
    await clock.advance(0)
    await over(first)
    second = start(anext(token))
    await clock.advance(0)
    await over(second)
    saved = token.token
    await token.aclose()
    late = api.instances.pop("late")
    del api.instances["gone"]
    restarted = make_poller(api, clock)  # a new process: its store knows nothing yet
    resumed = sr.InstanceWatch(restarted, configs, resume=saved)
    changes: list[sr.InstanceChange] = []
    consumer = start(anext(resumed))
    await clock.advance(1)
    api.instances["late"] = {**late, "state": "RUNNING"}  # back, and moved on
    await clock.advance(4)
    changes.append(await over(consumer))
    while resumed._buffer.pending:
        changes.append(await anext(resumed))
    got = {(c.kind, c.instance.id, c.previous) for c in changes}
    assert got == {
        (sr.ChangeKind.CHANGED, "late", S.QUEUED),
        (sr.ChangeKind.REMOVED, "gone", S.QUEUED),
    }
    await resumed.aclose()
    await restarted.close()
