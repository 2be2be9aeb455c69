"""Four OS processes race the same 200 names through one emulator: exactly 200 instances.

The emulator runs in this (parent) process on a real clock, its lists lagging 0.2 s behind
accepted launches and 5% of launch answers lost after the launch happened. Each worker is
a separate Python process with its own client, coordinated by file locks or by a real
redis-server on a free loopback port (the test fails, never skips, without one).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest
from _redis_server import RedisServer, redis_server  # noqa: F401 - a fixture

from streamrun_async.testing import Dialect, Emulator, Fault

WORKER = Path(__file__).with_name("_race_worker.py")
LAUNCH = "POST /configurations/{configurationId}/instances"
PROCESSES = 4
CONFIGURATIONS = 10
PER_CONFIGURATION = 20


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    lagging = attrs.evolve(Dialect.named("lagging_lists"), list_lag=0.2, detail_lag=False)
    async with Emulator(
        clock="real",
        configurations=CONFIGURATIONS,
        boot_time=0.5,
        idle_timeout=None,
        dialect=lagging,
        seed=5,
    ) as emulator:
        emulator.faults.set_rate(Fault.DROP_AFTER, 0.05, route=LAUNCH)
        yield emulator


async def race(emu: Emulator, coordinator: str) -> list[dict[str, dict[str, str]]]:
    plan = {
        cfg: [f"race-{c}-{k}" for k in range(PER_CONFIGURATION)]
        for c, cfg in enumerate(emu.configuration_ids)
    }
    env = {**os.environ, "STREAMRUN_API_KEY": emu.api_key}
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(WORKER),
            emu.url,
            coordinator,
            json.dumps(plan),
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(PROCESSES)
    ]
    async with asyncio.timeout(120):
        # All ready (imported, client made), then all go at once: a real race.
        for worker in workers:
            assert worker.stdout is not None
            assert await worker.stdout.readline() == b"ready\n"
        outputs = await asyncio.gather(*(w.communicate(b"go\n") for w in workers))
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err.decode()[-2000:]
    return [json.loads(out) for out, _ in outputs]


def check(emu: Emulator, results: list[dict[str, dict[str, str]]]) -> None:
    names = Counter(inst.name for inst in emu.state.instances)
    total = CONFIGURATIONS * PER_CONFIGURATION
    assert emu.stats.injected(Fault.DROP_AFTER) > 0
    assert len(emu.state.instances) == total, names.most_common(3)
    assert len(names) == total
    launched = Counter()
    for result in results:
        statuses = result["statuses"]
        assert set(statuses.values()) <= {"LAUNCHED", "EXISTING"}, result["reasons"]
        launched.update(name for name, status in statuses.items() if status == "LAUNCHED")
    # Every name launched by exactly one process; the others found it existing.
    assert len(launched) == total
    assert max(launched.values()) == 1


async def test_four_processes_with_file_locks_launch_each_name_once(
    emu: Emulator, tmp_path: Path
) -> None:
    results = await race(emu, f"file:{tmp_path / 'locks'}")
    check(emu, results)


async def test_four_processes_with_redis_locks_launch_each_name_once(
    emu: Emulator, request: pytest.FixtureRequest
) -> None:
    server: RedisServer = request.getfixturevalue("redis_server")
    results = await race(emu, f"redis:{server.url}")
    check(emu, results)
