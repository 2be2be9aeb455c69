"""5. Bulk launch: ``client.launch_many(plan, wait=True)`` against the emulator over HTTP.

A plan of 1,000 instances over 100 configurations (10 each, names unique) is launched
and waited for on the emulator (own process, real clock, ``capacity`` servers,
``boot_time`` seconds to boot, no jitter). Its theoretical minimum is the time for every
instance to be RUNNING had all launches landed at once at the start: with capacity for
all, one boot time (the emulator never frees a server while its instance lives, so it
cannot run more instances than it has servers). The wall time is compared with it;
API calls per instance come from the emulator's counters. The same launch through a
``FileCoordinator`` (a file lock per name, as processes of one host share) is compared
with the launch without one.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import time

import streamrun_async as sr

from ._emulator import EmulatorProcess
from ._harness import Outcome, Row, Settings, median

NAME = "5 bulk launch"


def _plan(
    cfg_ids: tuple[str, ...], per_config: int, tag: str
) -> dict[str, list[sr.InstanceSettings]]:
    return {
        cfg: [sr.InstanceSettings(name=f"{tag}-{c}-{k}") for k in range(per_config)]
        for c, cfg in enumerate(cfg_ids)
    }


async def _measure(
    emu: EmulatorProcess,
    per_config: int,
    policy: sr.PollPolicy,
    rounds: int,
    coordinator: sr.Coordinator | None = None,
) -> list[tuple[float, int, dict[str, int]]]:
    results = []
    for round_no in range(rounds):
        plan = _plan(emu.configuration_ids, per_config, f"b{round_no}")
        emu.reset()
        async with sr.StreamrunClient(
            emu.api_key, base_url=emu.url, poll=policy, coordinator=coordinator
        ) as client:
            started = time.perf_counter()
            report = await client.launch_many(plan, wait=True, timeout=120)
            wall = time.perf_counter() - started
            counts = emu.counts()
            if not report.ok:
                raise RuntimeError(f"launch_many did not succeed: {report}")
            assert all(i.state is sr.InstanceState.RUNNING for i in report.launched.values())
            await client.instances.stop_all()
        results.append((wall, sum(counts.values()), counts))
    return results


async def _measure_locked(
    emu: EmulatorProcess, per_config: int, policy: sr.PollPolicy, rounds: int, locks: str
) -> list[tuple[float, int, dict[str, int]]]:
    coordinator = sr.FileCoordinator(locks)
    try:
        return await _measure(emu, per_config, policy, rounds, coordinator)
    finally:
        await coordinator.aclose()


def run(settings: Settings) -> Outcome:
    configurations, per_config = settings.pick((100, 10), (20, 10))
    instances = configurations * per_config
    boot_time = settings.pick(3.0, 1.0)
    policy = sr.PollPolicy(min_interval=0.25, max_interval=1.0, requests_per_second=50)
    capacity = instances
    minimum = math.ceil(instances / capacity) * boot_time
    warmup, runs = settings.pick((1, 5), (0, 1))
    with EmulatorProcess(
        configurations=configurations,
        capacity=capacity,
        boot_time=boot_time,
        idle_timeout=None,
    ) as emu:
        measured = asyncio.run(_measure(emu, per_config, policy, warmup + runs))[warmup:]
        with tempfile.TemporaryDirectory() as locks:
            locked = asyncio.run(_measure_locked(emu, per_config, policy, warmup + runs, locks))
            locked = locked[warmup:]
    wall = median([m[0] for m in measured])
    locked_wall = median([m[0] for m in locked])
    calls = median([m[1] for m in measured])
    outcome = Outcome()
    outcome.rows.append(
        Row(
            NAME,
            f"`launch_many(wait=True)`, {instances:,} instances / {configurations} "
            "configurations: wall time",
            f"{wall:.2f} s",
            f"{minimum:.2f} s (theoretical minimum)",
            wall / minimum,
        )
    )
    outcome.rows.append(Row(NAME, "API calls per instance", f"{calls / instances:.3f}", "—", None))
    outcome.rows.append(
        Row(
            NAME,
            "the same with `FileCoordinator` (a file lock per name): wall time",
            f"{locked_wall:.2f} s",
            f"{wall:.2f} s (without a coordinator)",
            locked_wall / wall,
        )
    )
    routes = measured[len(measured) // 2][2]
    outcome.notes.append(
        f"Bulk launch: capacity {capacity:,}, boot {boot_time:g} s, no jitter; "
        f"PollPolicy(min_interval={policy.min_interval:g}, max_interval="
        f"{policy.max_interval:g}, requests_per_second={policy.requests_per_second:g}); "
        f"calls by route (one run): "
        + ", ".join(f"{route}: {n}" for route, n in sorted(routes.items()))
        + "."
    )
    return outcome
