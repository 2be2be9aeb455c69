"""The shared poller against fake fetch functions: call counts, delivery, lifecycle."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable

import pytest

import streamrun_async as sr
from streamrun_async._watch import Poller, wait_for_instance, wait_for_request

FAST = sr.PollPolicy(min_interval=0.001, max_interval=0.005, requests_per_second=10_000)


class FakeApi:
    """Instances and requests the test mutates; counts calls like a server would."""

    def __init__(self) -> None:
        self.instances: dict[str, sr.Instance] = {}
        self.requests: dict[str, sr.InstanceRequest] = {}
        self.list_calls: list[str | None] = []
        self.request_calls: list[str] = []
        self.fail_with: BaseException | None = None

    async def list_instances(self, configuration_id: str | None) -> list[sr.Instance]:
        self.list_calls.append(configuration_id)
        await asyncio.sleep(0)
        if self.fail_with is not None:
            raise self.fail_with
        return [
            i
            for i in self.instances.values()
            if configuration_id is None or i.configuration_id == configuration_id
        ]

    async def get_request(self, request_id: str) -> sr.InstanceRequest:
        self.request_calls.append(request_id)
        await asyncio.sleep(0)
        if request_id not in self.requests:
            raise sr.NotFoundError("gone", method="GET", url="/x", status=404)
        return self.requests[request_id]

    def put(
        self, iid: str, state: sr.InstanceState, cfg: str = "c1", req: str | None = None
    ) -> None:
        self.instances[iid] = sr.Instance(
            id=iid, state=state, configuration_id=cfg, request_id=req, name=iid
        )


async def poller_tasks_gone() -> bool:
    """Cancelled tasks need a few loop turns to finish: allow them, boundedly."""
    for _ in range(50):
        if not [t for t in asyncio.all_tasks() if t.get_name() == "streamrun-poller"]:
            return True
        await asyncio.sleep(0)
    return False


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def poller(api: FakeApi) -> Poller:
    return Poller(FAST, api.list_instances, api.get_request)


async def test_hundred_waiters_on_one_request_cost_one_get_per_tick(
    api: FakeApi, poller: Poller
) -> None:
    api.requests["r1"] = sr.InstanceRequest(id="r1", state=sr.InstanceState.QUEUED)
    waiters = [
        asyncio.create_task(
            wait_for_request(poller, "r1", success=sr.InstanceState.RUNNING, timeout=5)
        )
        for _ in range(100)
    ]
    while poller.stats.ticks < 5:
        await asyncio.sleep(0.001)
    api.requests["r1"] = sr.InstanceRequest(id="r1", state=sr.InstanceState.RUNNING)
    results = await asyncio.gather(*waiters)
    assert {r.state for r in results} == {sr.InstanceState.RUNNING}
    # One GET per tick at most, whatever the number of waiters.
    assert len(api.request_calls) <= poller.stats.ticks
    assert not poller.active


async def test_a_request_is_followed_through_the_instance_list_without_gets(
    api: FakeApi, poller: Poller
) -> None:
    known = sr.InstanceRequest(id="r1", state=sr.InstanceState.QUEUED, number_of_instances=2)
    api.requests["r1"] = known
    api.put("i1", sr.InstanceState.QUEUED, req="r1")
    api.put("i2", sr.InstanceState.QUEUED, req="r1")
    task = asyncio.create_task(
        wait_for_request(poller, known, success=sr.InstanceState.RUNNING, timeout=5)
    )
    while poller.stats.ticks < 10:
        await asyncio.sleep(0.001)
    assert api.request_calls == []
    api.put("i1", sr.InstanceState.RUNNING, req="r1")
    api.put("i2", sr.InstanceState.RUNNING, req="r1")
    api.requests["r1"] = sr.InstanceRequest(id="r1", state=sr.InstanceState.RUNNING)
    done = await task
    assert done.state is sr.InstanceState.RUNNING
    assert done.instance_ids == ("i1", "i2")
    # Known from the launch, QUEUED while its instances queue, RUNNING once they all run:
    # the list told all of it.
    assert api.request_calls == []


async def test_instance_waiters_use_list_calls_only(api: FakeApi, poller: Poller) -> None:
    for n in range(200):
        api.put(f"i{n}", sr.InstanceState.QUEUED, cfg=f"c{n % 7}")
    tasks = [
        asyncio.create_task(wait_for_instance(poller, f"i{n}", sr.InstanceState.RUNNING, timeout=5))
        for n in range(200)
    ]
    while poller.stats.ticks < 3:
        await asyncio.sleep(0.001)
    for n in range(200):
        api.put(f"i{n}", sr.InstanceState.RUNNING, cfg=f"c{n % 7}")
    await asyncio.gather(*tasks)
    assert api.request_calls == []
    assert set(api.list_calls) == {None}
    assert len(api.list_calls) == poller.stats.ticks


async def test_single_configuration_interest_lists_only_that_configuration(
    api: FakeApi, poller: Poller
) -> None:
    api.put("i1", sr.InstanceState.QUEUED, cfg="c9")
    task = asyncio.create_task(
        wait_for_instance(poller, "i1", sr.InstanceState.RUNNING, configuration_id="c9", timeout=5)
    )
    while poller.stats.ticks < 2:
        await asyncio.sleep(0.001)
    api.put("i1", sr.InstanceState.RUNNING, cfg="c9")
    await task
    assert set(api.list_calls) == {"c9"}


async def test_disappearing_instance_fails_at_once_with_last_state(
    api: FakeApi, poller: Poller
) -> None:
    api.put("i1", sr.InstanceState.QUEUED)
    task = asyncio.create_task(
        wait_for_instance(poller, "i1", sr.InstanceState.RUNNING, timeout=30)
    )
    while poller.stats.ticks < 2:
        await asyncio.sleep(0.001)
    del api.instances["i1"]
    with pytest.raises(sr.WaiterError) as info:
        await asyncio.wait_for(task, 2)
    assert info.value.last_seen.state is sr.InstanceState.QUEUED


async def test_timeout_carries_last_state(api: FakeApi, poller: Poller) -> None:
    api.put("i1", sr.InstanceState.QUEUED)
    with pytest.raises(sr.WaitTimeoutError) as info:
        await wait_for_instance(poller, "i1", sr.InstanceState.RUNNING, timeout=0.05)
    assert info.value.last_seen.state is sr.InstanceState.QUEUED
    assert not poller.active


async def test_permanent_error_ends_waits(api: FakeApi, poller: Poller) -> None:
    api.put("i1", sr.InstanceState.QUEUED)
    api.fail_with = sr.AuthenticationError("bad key", method="GET", url="/", status=401)
    with pytest.raises(sr.AuthenticationError):
        await wait_for_instance(poller, "i1", sr.InstanceState.RUNNING, timeout=5)


async def test_transient_errors_are_retried_within_the_deadline(
    api: FakeApi, poller: Poller
) -> None:
    api.put("i1", sr.InstanceState.RUNNING)
    api.fail_with = sr.ServerError("boom", method="GET", url="/", status=500)
    task = asyncio.create_task(wait_for_instance(poller, "i1", sr.InstanceState.RUNNING, timeout=5))
    while poller.stats.errors < 3:
        await asyncio.sleep(0.001)
    api.fail_with = None
    assert (await task).id == "i1"


async def test_cancelled_waiter_withdraws_and_stops_the_poller(
    api: FakeApi, poller: Poller
) -> None:
    api.put("i1", sr.InstanceState.QUEUED)
    task = asyncio.create_task(
        wait_for_instance(poller, "i1", sr.InstanceState.RUNNING, timeout=30)
    )
    while poller.stats.ticks < 2:
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert not poller.active
    assert await poller_tasks_gone()


async def test_watch_yields_transitions_in_order_and_resumes(api: FakeApi, poller: Poller) -> None:
    api.put("i1", sr.InstanceState.QUEUED)
    watch = sr.InstanceWatch(poller)
    first = await asyncio.wait_for(anext(watch), 2)
    assert (first.kind, first.instance.id) == (sr.ChangeKind.ADDED, "i1")
    api.put("i1", sr.InstanceState.RUNNING)
    second = await asyncio.wait_for(anext(watch), 2)
    assert (second.kind, second.previous) == (sr.ChangeKind.CHANGED, sr.InstanceState.QUEUED)
    token = watch.token
    await watch.aclose()
    await asyncio.sleep(0)
    assert not poller.active

    # While "the process was down": i1 stopped, i2 started.
    del api.instances["i1"]
    api.put("i2", sr.InstanceState.QUEUED)
    resumed = sr.InstanceWatch(poller, resume=token)
    changes = [await asyncio.wait_for(anext(resumed), 2) for _ in range(2)]
    kinds = {(c.kind, c.instance.id) for c in changes}
    assert kinds == {(sr.ChangeKind.REMOVED, "i1"), (sr.ChangeKind.ADDED, "i2")}
    await resumed.aclose()


async def test_abandoned_watch_leaves_the_poller(api: FakeApi, poller: Poller) -> None:
    api.put("i1", sr.InstanceState.QUEUED)
    async for _change in sr.InstanceWatch(poller):
        break
    gc.collect()
    await asyncio.sleep(0)
    assert not poller.active


async def test_close_ends_waiters_with_client_closed(api: FakeApi, poller: Poller) -> None:
    api.put("i1", sr.InstanceState.QUEUED)
    task = asyncio.create_task(
        wait_for_instance(poller, "i1", sr.InstanceState.RUNNING, timeout=30)
    )
    while poller.stats.ticks < 1:
        await asyncio.sleep(0.001)
    await poller.close()
    with pytest.raises(sr.ClientClosedError):
        await task


async def test_intervals_grow_while_quiet_and_snap_back_after_a_change(api: FakeApi) -> None:
    policy = sr.PollPolicy(min_interval=0.001, max_interval=0.02, growth=2.0)
    poller = Poller(policy, api.list_instances, api.get_request)
    api.put("i1", sr.InstanceState.QUEUED)
    task = asyncio.create_task(wait_for_instance(poller, "i1", sr.InstanceState.RUNNING, timeout=5))
    await until(lambda: poller._interval >= policy.max_interval)
    assert poller._interval == policy.max_interval  # bounded
    api.put("i1", sr.InstanceState.STARTING)
    ticks = poller.stats.ticks
    await until(lambda: poller.stats.ticks > ticks + 1)
    assert poller._interval < policy.max_interval
    api.put("i1", sr.InstanceState.RUNNING)
    await task


async def test_a_rate_limit_slows_the_whole_poller(api: FakeApi, poller: Poller) -> None:
    api.put("i1", sr.InstanceState.QUEUED)
    api.put("i2", sr.InstanceState.QUEUED)
    api.fail_with = sr.RateLimitError(
        "slow down", method="GET", url="/", status=429, retry_after=0.2
    )
    loop = asyncio.get_running_loop()
    waiters = [
        asyncio.create_task(wait_for_instance(poller, i, sr.InstanceState.RUNNING, timeout=5))
        for i in ("i1", "i2")
    ]
    await until(lambda: len(api.list_calls) == 1)
    limited_at = loop.time()
    api.fail_with = None
    await until(lambda: len(api.list_calls) == 2)
    # One list call for both waiters, and none before Retry-After has passed.
    assert loop.time() - limited_at >= 0.19
    api.put("i1", sr.InstanceState.RUNNING)
    api.put("i2", sr.InstanceState.RUNNING)
    await asyncio.gather(*waiters)


async def until(predicate: Callable[[], bool], seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        while not predicate():
            await asyncio.sleep(0.001)


@pytest.mark.parametrize(
    "options",
    [
        {"min_interval": 0},
        {"min_interval": 5, "max_interval": 1},
        {"growth": 0.5},
        {"requests_per_second": -1},
    ],
)
def test_poll_policy_refuses_nonsense(options: dict[str, float]) -> None:
    with pytest.raises(sr.InvalidArgumentError):
        sr.PollPolicy(**options)
