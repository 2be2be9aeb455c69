"""FileCoordinator and RedisCoordinator: exclusive, released on every path, and a holder
that died blocks nobody for long (at once for file locks, after the lease for Redis)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio
from _redis_server import RedisServer, redis_server  # noqa: F401 - a fixture

import streamrun_async as sr
from streamrun_async._coordinator import _digest

KEY = ("cfg-1", "cam")
OTHER = ("cfg-1", "mic")


@pytest.fixture
def redis_url(request: pytest.FixtureRequest) -> str:
    """The URL of the module's real redis-server (``_redis_server``'s fixture)."""
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


@pytest.fixture
async def raw_redis(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture(params=["file", "redis"])
async def coordinators(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[sr.Coordinator, sr.Coordinator]]:
    """Two coordinators over the same locks, as two processes would have."""
    if request.param == "file":
        pair: tuple[sr.Coordinator, sr.Coordinator] = (
            sr.FileCoordinator(tmp_path / "locks"),
            sr.FileCoordinator(tmp_path / "locks"),
        )
    else:
        url: str = request.getfixturevalue("redis_url")
        pair = (sr.RedisCoordinator(url), sr.RedisCoordinator(url))
    yield pair
    for coordinator in pair:
        await coordinator.aclose()


async def held_elsewhere(coordinator: sr.Coordinator, key: tuple[str, str]) -> bool:
    """True when ``key`` cannot be taken within a short while (someone holds it)."""
    try:
        async with asyncio.timeout(0.15), coordinator.hold([key]):
            return False
    except TimeoutError:
        return True


async def test_a_name_is_held_by_one_at_a_time(
    coordinators: tuple[sr.Coordinator, sr.Coordinator],
) -> None:
    first, second = coordinators
    async with first.hold([KEY, OTHER]):
        assert await held_elsewhere(second, KEY)
        assert await held_elsewhere(second, OTHER)
        async with second.hold([("cfg-2", "cam")]):  # another configuration is free
            pass
    assert not await held_elsewhere(second, KEY)


async def test_released_on_error_and_on_cancel(
    coordinators: tuple[sr.Coordinator, sr.Coordinator],
) -> None:
    first, second = coordinators
    with pytest.raises(ZeroDivisionError):
        async with first.hold([KEY]):
            1 / 0  # noqa: B018
    assert not await held_elsewhere(second, KEY)

    entered = asyncio.Event()

    async def hold_forever() -> None:
        async with first.hold([KEY]):
            entered.set()
            await asyncio.Event().wait()

    holder = asyncio.create_task(hold_forever())
    await entered.wait()
    # A waiter cancelled while it waits leaves nothing behind either.
    waiter = asyncio.create_task(_enter(second, [KEY, OTHER]))
    await asyncio.sleep(0.05)
    waiter.cancel()
    holder.cancel()
    await asyncio.gather(holder, waiter, return_exceptions=True)
    assert not await held_elsewhere(second, KEY)
    assert not await held_elsewhere(first, OTHER)


async def _enter(coordinator: sr.Coordinator, keys: list[tuple[str, str]]) -> None:
    async with coordinator.hold(keys):
        await asyncio.Event().wait()


async def test_holders_of_overlapping_names_never_deadlock(
    coordinators: tuple[sr.Coordinator, sr.Coordinator],
) -> None:
    first, second = coordinators
    names = [("cfg", f"n{k}") for k in range(6)]
    order: list[str] = []
    inside: list[str] = []

    async def take(coordinator: sr.Coordinator, keys: list[tuple[str, str]], tag: str) -> None:
        async with coordinator.hold(keys):
            inside.append(tag)
            assert inside == [tag], f"{inside} hold the same names at once"
            order.append(tag)
            await asyncio.sleep(0.01)
            inside.remove(tag)

    async with asyncio.timeout(10):
        await asyncio.gather(
            *(
                take(c, names if k % 2 else list(reversed(names)), f"{k}")
                for k, c in enumerate([first, second] * 4)
            )
        )
    assert sorted(order) == [str(k) for k in range(8)]


def test_a_process_that_dies_holding_a_file_lock_frees_it(tmp_path: Path) -> None:
    directory = tmp_path / "locks"
    script = (
        "import asyncio, sys, streamrun_async as sr\n"
        "async def main():\n"
        f"    async with sr.FileCoordinator({str(directory)!r}).hold([{KEY!r}]):\n"
        "        print('held', flush=True)\n"
        "        await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"held\n"
        coordinator = sr.FileCoordinator(directory)
        assert asyncio.run(held_elsewhere(coordinator, KEY))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        assert not asyncio.run(held_elsewhere(coordinator, KEY))
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


async def test_a_dead_redis_holder_blocks_only_until_the_lease_ends(
    redis_url: str, raw_redis: redis.asyncio.Redis
) -> None:
    coordinator = sr.RedisCoordinator(redis_url, lease=0.4)
    try:
        # A holder that died: its key and token stay, with the lease it was set with.
        dead = coordinator._redis.lock(coordinator.prefix + _digest(KEY), timeout=0.4)
        assert await dead.acquire(token="dead-holder")
        assert await held_elsewhere(coordinator, KEY)
        async with asyncio.timeout(3), coordinator.hold([KEY]):
            ttl = await raw_redis.pttl(coordinator.prefix + _digest(KEY))
            assert 0 < ttl <= 400
        assert await raw_redis.keys("*") == []
    finally:
        await coordinator.aclose()


async def test_every_redis_lock_enters_the_block_with_its_whole_lease(
    redis_url: str, raw_redis: redis.asyncio.Redis
) -> None:
    # Taking "mic" waits 0.8 s for its holder, while the lease of "cam" (taken first)
    # runs. The block is budgeted against a whole lease: "cam" must not expire 0.8 s early.
    coordinator = sr.RedisCoordinator(redis_url, lease=2.0)
    blocker = sr.RedisCoordinator(redis_url, lease=30)
    try:
        async with blocker.hold([OTHER]):
            waiting = asyncio.create_task(_ttls_inside(coordinator, raw_redis, [KEY, OTHER]))
            await asyncio.sleep(0.8)
        ttls = await asyncio.wait_for(waiting, 3)
        assert all(1600 < ttl <= 2000 for ttl in ttls), ttls
    finally:
        await coordinator.aclose()
        await blocker.aclose()


async def _ttls_inside(
    coordinator: sr.RedisCoordinator, raw: redis.asyncio.Redis, keys: list[tuple[str, str]]
) -> list[int]:
    async with coordinator.hold(keys):
        return [await raw.pttl(coordinator.prefix + _digest(key)) for key in keys]


async def test_a_late_redis_holder_never_frees_the_next_holders_lock(
    redis_url: str, raw_redis: redis.asyncio.Redis
) -> None:
    slow = sr.RedisCoordinator(redis_url, lease=0.2)
    next_one = sr.RedisCoordinator(redis_url, lease=30)
    key = slow.prefix + _digest(KEY)
    taken = next_one.hold([KEY])
    try:
        async with slow.hold([KEY]):
            await asyncio.sleep(0.3)  # past the lease: the lock is gone
            async with asyncio.timeout(2):
                await taken.__aenter__()
            token = await raw_redis.get(key)
        # The slow holder's exit deleted nothing: its token no longer matches.
        assert token is not None
        assert await raw_redis.get(key) == token
        await taken.__aexit__(None, None, None)
        assert await raw_redis.get(key) is None
    finally:
        await slow.aclose()
        await next_one.aclose()


async def test_redis_coordinator_checks_its_arguments_and_hides_the_url() -> None:
    with pytest.raises(sr.InvalidArgumentError):
        sr.RedisCoordinator()
    with pytest.raises(sr.InvalidArgumentError):
        sr.RedisCoordinator("redis://h/0", lease=0)
    with pytest.raises(sr.InvalidArgumentTypeError):
        sr.FileCoordinator(3)  # type: ignore[arg-type]
    coordinator = sr.RedisCoordinator("redis://:hunter2@127.0.0.1:1/0")
    assert "hunter2" not in repr(coordinator)
    await coordinator.aclose()


async def test_an_unreachable_redis_fails_the_names_it_guards_before_any_launch() -> None:
    from streamrun_async.testing import Emulator

    coordinator = sr.RedisCoordinator("redis://127.0.0.1:1/0")
    async with Emulator(clock="virtual") as emu, emu.client(coordinator=coordinator) as client:
        cfg = emu.configuration_ids[0]
        report = await client.launch_many({cfg: [sr.InstanceSettings(name="a")]})
        assert isinstance(report.failed["a"], sr.CoordinatorError)
        assert emu.stats.total == 0
    await coordinator.aclose()
