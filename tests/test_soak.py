"""The chaos soak: a whole show's life against an emulator that fails on purpose.

500 instances over 50 configurations (``--soak-size N`` for more or fewer) are launched
with ``launch_many``, watched to RUNNING, re-configured, half restarted, set live and
stopped, while the emulator answers 5% of calls 500, 5% 503, 3% 429 with ``Retry-After``,
drops 2% of connections after acting, and delays some. Nothing may be launched twice,
nothing lost, nothing left running or billed, nothing leaked. It runs once against the
default dialect and once against lists that show accepted launches 3 s late (so a lost
answer cannot be settled by one list). The run's numbers are printed at the end of the
pytest session.
"""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import pytest
from _launch_support import run_with_clock
from conftest import SOAK_REPORTS

import streamrun_async as sr
from streamrun_async.testing import Emulator, Fault

T = TypeVar("T")

SEED = 20240607
PER_CONFIG = 10
BOOT = 5.0
BOOT_JITTER = 5.0
SHOW_SECONDS = 600.0
FAULT_RATES = {
    Fault.HTTP_500: 0.05,
    Fault.HTTP_503: 0.05,
    Fault.HTTP_429: 0.03,
    Fault.DROP_AFTER: 0.02,
    Fault.LATENCY: 0.05,
}
FAST_POLL = sr.PollPolicy(min_interval=0.002, max_interval=0.02, requests_per_second=10_000)
PATCH = {"switch-1": {"input": "inputstream-1"}}
# Real seconds between the two lists that must agree a lost launch is absent: with the
# clock moving 5 s every 2 ms, far longer than the lagging dialect's 3 s of list lag.
SETTLE = 0.05


async def bounded(calls: list[Callable[[], Awaitable[T]]], limit: int = 16) -> list[T]:
    """Run the calls at most ``limit`` at a time, as a careful user would."""
    slots = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with slots:
            return await call()

    return await asyncio.gather(*(one(call) for call in calls))


class Tally:
    """What the client saw: retries by cause, restarts whose outcome had to be checked."""

    def __init__(self) -> None:
        self.retries: Counter[str] = Counter()
        self.restart_unknown = 0
        self.restart_resent = 0

    def on_retry(self, event: sr.RetryEvent) -> None:
        cause = event.cause
        if isinstance(cause, sr.APIStatusError):
            self.retries[f"HTTP {cause.status}"] += 1
        else:
            self.retries[type(cause).__name__] += 1


async def restart_once(client: sr.StreamrunClient, instance_id: str, tally: Tally) -> None:
    """Restart an instance exactly once, as a user must: POST restart is not retried after
    an answer that may have come after the server acted, so look before sending again."""
    while True:
        try:
            await client.instances.restart(instance_id)
            return
        except sr.APIError as error:
            if not error.outcome_unknown:
                raise
            tally.restart_unknown += 1
        instance = await client.instances.get(instance_id)
        if instance.state is sr.InstanceState.STARTING:
            return  # the lost answer was a restart that happened
        assert instance.state is sr.InstanceState.RUNNING, instance
        tally.restart_resent += 1


def open_aiohttp_objects() -> list[object]:
    gc.collect()
    return [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, (aiohttp.ClientSession, aiohttp.BaseConnector)) and not obj.closed
    ]


@pytest.mark.soak
@pytest.mark.parametrize("dialect", ["observed", "lagging_lists"])
async def test_chaos_soak(soak_size: int, dialect: str) -> None:
    configurations = max(1, soak_size // PER_CONFIG)
    size = configurations * PER_CONFIG
    tally = Tally()
    tasks_before = asyncio.all_tasks()
    aiohttp_before = open_aiohttp_objects()
    started = time.perf_counter()
    limit = 60.0 + size / 5  # a hang fails the test instead of the CI job

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with Emulator(
            clock="virtual",
            configurations=configurations,
            boot_time=BOOT,
            boot_jitter=BOOT_JITTER,
            # Idle stops are the service's right (tests/test_watch.py covers reporting them);
            # here every instance must live until the show stops it.
            idle_timeout=None,
            seed=SEED,
            dialect=dialect,
        ) as emu:
            for fault, rate in FAULT_RATES.items():
                emu.faults.set_rate(fault, rate)
            emu.faults.latency = 0.0005  # real seconds: jitter without a slow suite
            emu.faults.latency_jitter = 0.002
            emu.faults.retry_after = 0  # the header is sent; waiting on it is not the point
            retry = sr.RetryPolicy.for_testing(attempts=8, on_retry=tally.on_retry)
            client = emu.client(retry=retry, poll=FAST_POLL)
            async with client:
                report, t_running, restarted = await asyncio.wait_for(
                    the_show(emu, client, tally, limit), limit
                )
                before_stop = emu.state
                # Everything stopped, configuration by configuration.
                await bounded(
                    [
                        (lambda cfg=cfg: client.configurations.stop_instances(cfg))
                        for cfg in emu.configuration_ids
                    ]
                )
                t_end = emu.now()
                billing = emu.billing
                after = emu.state
                await emu.advance(3600)  # nothing is billed once stopped
                billing_later = emu.billing
            stats = emu.stats
        await asyncio.sleep(0)
        leaked_tasks = asyncio.all_tasks() - tasks_before
        leaked_aiohttp = [o for o in open_aiohttp_objects() if o not in aiohttp_before]
    elapsed = time.perf_counter() - started

    planned = {f"{cfg}-{n}" for cfg in emu.configuration_ids for n in range(PER_CONFIG)}
    names = Counter(i.name for i in before_stop.instances)
    ids = {i.id for i in before_stop.instances}

    # Exactly once: every planned name launched once, none lost, none twice.
    assert report.ok, (report.failed, report.unknown, report.wait_error)
    assert set(report.launched) == planned
    assert max(names.values()) == 1, names.most_common(3)
    assert set(names) == planned
    assert len(billing.seconds) == size, "an instance was created that the plan did not ask for"
    assert set(billing.seconds) == ids
    # Before the stop: all RUNNING, live, overrides merged, restarts done once.
    assert {i.state for i in before_stop.instances} == {"RUNNING"}
    assert {i.outputs for i in before_stop.instances} == {"LIVE"}
    for inst in before_stop.instances:
        assert inst.overrides["switch-1"] == PATCH["switch-1"]
        assert inst.overrides["htmloverlay-1"] == {"url": f"https://example.test/{inst.name}"}
    # The emulator ends empty, every instance stopped by the API.
    assert after.instances == ()
    assert Counter(s.reason for s in after.stopped) == {"api": size}
    # Billing matches the run: each instance billed from its RUNNING (at the latest when the
    # launch returned) to the stop, less one boot for each restarted instance.
    created = {i.id: i.created_at for i in before_stop.instances}
    for inst in before_stop.instances:
        billed = billing.seconds[inst.id]
        reboot = BOOT if inst.id in restarted else 0.0
        assert billed <= t_end - created[inst.id] - BOOT - reboot + 1e-6
        low = t_end - t_running - (BOOT + BOOT_JITTER if inst.id in restarted else 0.0)
        assert billed >= low - 1e-6
    assert billing_later.total == pytest.approx(billing.total)
    # Faults were really injected, and survived.
    for fault in FAULT_RATES:
        assert stats.injected(fault) > 0, fault
    assert sum(tally.retries.values()) > 0
    assert report.reconciliations >= 1
    # Nothing leaked.
    assert not leaked_tasks, leaked_tasks
    assert not leaked_aiohttp, leaked_aiohttp
    assert client.closed
    resource_warnings = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert not resource_warnings, [str(w.message) for w in resource_warnings]

    SOAK_REPORTS.append(
        soak_table(
            dialect=dialect,
            size=size,
            configurations=configurations,
            stats=stats,
            tally=tally,
            report=report,
            billed=billing.total,
            cost=billing.cost(),
            elapsed=elapsed,
        )
    )


async def the_show(
    emu: Emulator, client: sr.StreamrunClient, tally: Tally, limit: float
) -> tuple[sr.LaunchReport, float, set[str]]:
    """Launch, watch, patch, restart half, set live; return the report, the emulator time
    by which every instance was RUNNING, and the ids restarted."""
    plan = {
        cfg: [
            sr.InstanceSettings(
                name=f"{cfg}-{n}",
                overrides={"htmloverlay-1": {"url": f"https://example.test/{cfg}-{n}"}},
            )
            for n in range(PER_CONFIG)
        ]
        for cfg in emu.configuration_ids
    }
    # Launched and watched to RUNNING while time passes.
    report = await run_with_clock(
        emu,
        client.launch_many(
            plan, concurrency=8, max_per_request=5, wait=True, timeout=limit, settle=SETTLE
        ),
        limit=limit,
    )
    t_running = emu.now()
    launched = sorted(report.launched.values(), key=lambda item: item.name)
    assert all(item.instance_id for item in launched)
    assert {item.state for item in launched} == {sr.InstanceState.RUNNING}
    ids = [item.instance_id or "" for item in launched]

    # Overrides patched on all (PATCH merges, so a retried patch changes nothing more).
    patched = await bounded(
        [(lambda i=i: client.instances.update_overrides(i, PATCH)) for i in ids]
    )
    assert all(result["switch-1"] == PATCH["switch-1"] for result in patched)

    # Half restarted, each exactly once, then watched back to RUNNING.
    half = launched[::2]
    await bounded([(lambda i=i: restart_once(client, i.instance_id or "", tally)) for i in half])
    await run_with_clock(
        emu,
        asyncio.gather(
            *(
                client.instances.wait_for_state(
                    i.instance_id or "", configuration_id=i.configuration_id, timeout=limit
                )
                for i in half
            )
        ),
        limit=limit,
    )

    # Outputs live, configuration by configuration; then the show runs.
    await bounded(
        [(lambda cfg=cfg: client.configurations.set_outputs(cfg, "LIVE")) for cfg in plan]
    )
    await emu.advance(SHOW_SECONDS)
    return report, t_running, {i.instance_id or "" for i in half}


def soak_table(
    *,
    dialect: str,
    size: int,
    configurations: int,
    stats: Any,
    tally: Tally,
    report: sr.LaunchReport,
    billed: float,
    cost: float,
    elapsed: float,
) -> str:
    rows: list[tuple[str, str]] = [
        ("dialect", dialect),
        ("instances / configurations", f"{size} / {configurations}"),
        ("requests sent (seen by the emulator)", str(stats.total)),
    ]
    for fault in FAULT_RATES:
        rows.append((f"faults injected: {fault.value}", str(stats.injected(fault))))
    rows.append(("retries (RetryPolicy.on_retry)", str(sum(tally.retries.values()))))
    for cause, count in sorted(tally.retries.items()):
        rows.append((f"  retries after {cause}", str(count)))
    rows += [
        ("launch POSTs", str(report.launch_calls)),
        ("reconciliations (LaunchReport)", str(report.reconciliations)),
        ("restarts with unknown outcome, checked", str(tally.restart_unknown)),
        ("  of which re-sent (had not happened)", str(tally.restart_resent)),
        ("duplicates / lost / left running", "0 / 0 / 0"),
        ("billed seconds (cost at $0.39/h)", f"{billed:.0f} (${cost:.2f})"),
        ("wall time", f"{elapsed:.1f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"| {'what':<{width}} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {name:<{width}} | {value} |" for name, value in rows]
    return "\n".join(lines)
