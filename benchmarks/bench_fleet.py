"""3. Fleet watch: one shared poller against a naive per-resource poller; and the CPU of
one poll of an unchanged 10,000-instance list against a raw GET + ``json.loads`` of it.

The emulator (own process, real clock, unlimited capacity) gets a fleet: ``requests``
launches of 10 instances each, spread over ``configurations`` configurations, booting in
``boot_time`` plus up to ``boot_jitter`` seconds. Then, with the emulator's counters
reset, one of two watchers waits for every instance to be RUNNING and every request to
be RUNNING:

- SDK: one client, ``instances.wait_for_state(id, RUNNING, configuration_id=...)`` per
  instance and ``instance_requests.wait_until_running(request)`` per request, all fed by
  the client's shared poller at a fixed interval (``PollPolicy(min_interval=I,
  max_interval=I)``) and its default budget of 5 calls per second, which it spends on
  asking unproven requests themselves (request confirmation: the request resource is
  the authority; the list settles a request only when it shows all of its instances
  RUNNING).
- naive: what boto3 waiters do, one task per waiter: GET the resource, check, sleep ``I``
  (``client.instances.get`` / ``client.instance_requests.get`` of a plain client).

Measured from one run to the next, alternating: API calls per detected change (all
calls the emulator answered / changes detected), and detection latency: the moment a
waiter returns minus the moment the emulator scheduled the transition (an instance's
boot end; a request's last instance's boot end). Both processes read the same monotonic
clock. A change still undetected at the run's deadline counts with its latency at the
deadline (a lower bound), and is reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

import streamrun_async as sr
from streamrun_async.watch import ManualClock

from ._emulator import EmulatorProcess
from ._harness import Outcome, Row, Settings, alternate_async, median, percentile, ratio
from ._server import serve_static

NAME = "3 fleet watch"
PER_REQUEST = 10
API_KEY = "bench-key"
CALLS_TARGET = 0.01  # at least 100 times fewer calls
LATENCY_TARGET = 1.0  # equal or better


@dataclass(frozen=True)
class Fleet:
    instances: int
    configurations: int
    boot_time: float
    boot_jitter: float
    interval: float
    requests_per_second: float
    grace: float  # seconds after the last scheduled transition before a run gives up

    @property
    def requests(self) -> int:
        return self.instances // PER_REQUEST


FULL = Fleet(10_000, 500, 6.0, 6.0, 1.0, 5.0, 20.0)
QUICK = Fleet(500, 25, 1.0, 1.0, 0.25, 20.0, 3.0)
POLL_CPU_TARGET = 1.3
POLL_INSTANCES = 10_000


@dataclass
class RunResult:
    calls: int
    by_route: dict[str, int]
    instance_latency: list[float] = field(default_factory=list)
    request_latency: list[float] = field(default_factory=list)
    undetected: int = 0
    early: int = 0  # transitions scheduled before the watch started (not measured)
    never_ran: int = 0  # instances or requests not RUNNING at the end (not measured)
    errors: int = 0  # waiters that failed otherwise than by reaching their deadline
    launch_seconds: float = 0.0

    @property
    def latency(self) -> list[float]:
        return self.instance_latency + self.request_latency

    @property
    def changes(self) -> int:
        return len(self.latency)


Detected = dict[str, float]
Watcher = Callable[[list[sr.InstanceRequest], Detected, float], Awaitable[int]]
"""Waits for the requests and their instances; returns how many waiters failed."""


def _failures(results: list[object]) -> int:
    """Waiters that raised something else than their deadline passing."""
    deadline = (TimeoutError, sr.WaitTimeoutError, asyncio.CancelledError)
    return sum(isinstance(r, BaseException) and not isinstance(r, deadline) for r in results)


async def _launch(
    client: sr.StreamrunClient, cfg_ids: tuple[str, ...], fleet: Fleet, tag: str
) -> list[sr.InstanceRequest]:
    slots = asyncio.Semaphore(32)

    async def one(number: int) -> sr.InstanceRequest:
        settings = [sr.InstanceSettings(name=f"{tag}-{number}-{k}") for k in range(PER_REQUEST)]
        async with slots:
            launched = await client.configurations.launch(
                cfg_ids[number % fleet.configurations], settings
            )
        assert isinstance(launched, sr.InstanceRequest)  # the emulator names its requests
        return launched

    return list(await asyncio.gather(*(one(n) for n in range(fleet.requests))))


def _sdk_watcher(url: str, key: str, fleet: Fleet) -> Watcher:
    policy = sr.PollPolicy(
        min_interval=fleet.interval,
        max_interval=fleet.interval,
        requests_per_second=fleet.requests_per_second,
    )

    async def watch(requests: list[sr.InstanceRequest], seen: Detected, timeout: float) -> int:
        async with sr.StreamrunClient(key, base_url=url, poll=policy) as client:

            async def instance(instance_id: str, configuration_id: str | None) -> None:
                await client.instances.wait_for_state(
                    instance_id, configuration_id=configuration_id, timeout=timeout
                )
                seen[instance_id] = time.monotonic()

            async def request(item: sr.InstanceRequest) -> None:
                await client.instance_requests.wait_until_running(item, timeout=timeout)
                seen[item.id] = time.monotonic()

            waiters = [request(r) for r in requests]
            waiters += [instance(i, r.configuration_id) for r in requests for i in r.instance_ids]
            return _failures(await asyncio.gather(*waiters, return_exceptions=True))

    return watch


def _naive_watcher(url: str, key: str, fleet: Fleet) -> Watcher:
    interval = fleet.interval

    async def watch(requests: list[sr.InstanceRequest], seen: Detected, timeout: float) -> int:
        async with sr.StreamrunClient(key, base_url=url) as client:

            async def poll(
                key: str, get: Callable[[str], Awaitable[sr.Instance | sr.InstanceRequest]]
            ) -> None:
                # A sleep-and-retry loop is exactly the naive waiter being measured.
                while (await get(key)).state is not sr.InstanceState.RUNNING:  # noqa: ASYNC110
                    await asyncio.sleep(interval)
                seen[key] = time.monotonic()

            waiters = [poll(r.id, client.instance_requests.get) for r in requests]
            waiters += [poll(i, client.instances.get) for r in requests for i in r.instance_ids]
            tasks = [asyncio.ensure_future(w) for w in waiters]
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await asyncio.wait(tasks)
            for task in tasks:
                task.cancel()
            return _failures(await asyncio.gather(*tasks, return_exceptions=True))

    return watch


async def _one_run(emu: EmulatorProcess, fleet: Fleet, watcher: Watcher, tag: str) -> RunResult:
    async with sr.StreamrunClient(emu.api_key, base_url=emu.url) as setup:
        started = time.monotonic()
        requests = await _launch(setup, emu.configuration_ids, fleet, tag)
        launched = time.monotonic() - started
        emu.reset()
        watch_start = time.monotonic()
        deadline = started + fleet.boot_time + fleet.boot_jitter + fleet.grace
        seen: Detected = {}
        errors = await watcher(requests, seen, deadline - time.monotonic())
        ended = time.monotonic()
        counts = emu.counts()
        schedule = emu.schedule([r.id for r in requests])
        await setup.instances.stop_all()
    result = RunResult(sum(counts.values()), counts, launch_seconds=launched, errors=errors)

    def record(key: str, scheduled: float | None, into: list[float]) -> None:
        if scheduled is None:
            result.never_ran += 1
            return
        if scheduled < watch_start:
            result.early += 1
            return
        if key not in seen:
            result.undetected += 1
        into.append(seen.get(key, ended) - scheduled)

    for request_id, (instance_ids, since) in schedule.items():
        for instance_id in instance_ids:
            record(instance_id, since.get(instance_id), result.instance_latency)
        done = len(since) == len(instance_ids)
        record(request_id, max(since.values()) if done else None, result.request_latency)
    return result


async def _measure(
    emu: EmulatorProcess, fleet: Fleet, settings: Settings
) -> dict[str, list[RunResult]]:
    watchers = {
        "sdk": _sdk_watcher(emu.url, emu.api_key, fleet),
        "naive": _naive_watcher(emu.url, emu.api_key, fleet),
    }
    warmup, runs = settings.pick((1, 5), (0, 1))
    results: dict[str, list[RunResult]] = {name: [] for name in watchers}
    for round_no in range(warmup + runs):
        order = list(watchers) if round_no % 2 == 0 else list(reversed(watchers))
        for name in order:
            result = await _one_run(emu, fleet, watchers[name], f"{name}{round_no}")
            if round_no >= warmup:
                results[name].append(result)
    return results


def _fmt_seconds(value: float) -> str:
    return f"{value:.2f} s"


def _latency(runs: list[RunResult], q: float, kind: str = "latency") -> float:
    """The median over runs of each run's ``q``-th percentile latency of ``kind``."""
    return median([percentile(getattr(r, kind), q) for r in runs])


def _details(label: str, runs: list[RunResult]) -> str:
    routes: dict[str, list[int]] = {}
    for result in runs:
        for route, n in result.by_route.items():
            routes.setdefault(route, []).append(n)
    by_route = ", ".join(f"{k}: {median(v):,.0f}" for k, v in sorted(routes.items()))
    calls = median([r.calls for r in runs])
    return (
        f"Fleet watch, {label} (medians of {len(runs)} runs): {calls:,.0f} calls ({by_route}); "
        f"latency of instances p50 {_latency(runs, 50, 'instance_latency'):.2f} s / p95 "
        f"{_latency(runs, 95, 'instance_latency'):.2f} s, of requests p50 "
        f"{_latency(runs, 50, 'request_latency'):.2f} s / p95 "
        f"{_latency(runs, 95, 'request_latency'):.2f} s; changes measured "
        f"{median([r.changes for r in runs]):,.0f}, undetected at the deadline "
        f"{sum(r.undetected for r in runs)}, scheduled before the watch began "
        f"{sum(r.early for r in runs)}, never RUNNING {sum(r.never_ran for r in runs)}, "
        f"failed waiters {sum(r.errors for r in runs)}; launching the fleet took "
        f"{median([r.launch_seconds for r in runs]):.1f} s."
    )


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _poll_cpu(base_url: str, settings: Settings) -> dict[str, list[float]]:
    """CPU seconds of one poll of the unchanged list (a watch of the account keeps the
    poller listing), against one raw GET + ``json.loads`` of the same body."""
    polls = settings.pick(20, 5)
    headers = {"Authorization": f"Bearer {API_KEY}", "Accept": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        sr.StreamrunClient(API_KEY, base_url=base_url) as client,
    ):
        poller = client._poller
        clock = ManualClock()
        poller.clock = clock  # ticks exactly when the benchmark moves this clock
        watch = client.instances.watch()
        first = asyncio.ensure_future(anext(watch))

        async def one_poll() -> float:
            listed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            remove = poller.add_snapshot_listener(lambda *_: _resolve(listed))
            started = time.process_time()
            await clock.advance(poller.policy.max_interval)
            await listed
            spent = time.process_time() - started
            remove()
            return spent / polls

        async def sdk() -> float:
            return sum([await one_poll() for _ in range(polls)])

        async def raw() -> float:
            spent = 0.0
            for _ in range(polls):
                started = time.process_time()
                async with session.get(f"{base_url}/api/v1/instances", headers=headers) as r:
                    json.loads(await r.read())
                spent += time.process_time() - started
            return spent / polls

        await first  # the first poll built the store
        while watch._buffer.pending:
            await anext(watch)
        results = await alternate_async({"sdk": sdk, "raw": raw}, runs=settings.runs)
        await watch.aclose()
    return results


def run(settings: Settings) -> Outcome:
    fleet = settings.pick(FULL, QUICK)
    with EmulatorProcess(
        configurations=fleet.configurations,
        boot_time=fleet.boot_time,
        boot_jitter=fleet.boot_jitter,
        idle_timeout=None,
    ) as emu:
        results = asyncio.run(_measure(emu, fleet, settings))
    sdk, naive = results["sdk"], results["naive"]
    with serve_static(settings.pick(POLL_INSTANCES, 2_000)) as base_url:
        cpu = asyncio.run(_poll_cpu(base_url, settings))

    def per_change(runs: list[RunResult]) -> float:
        return median([r.calls / max(1, r.changes) for r in runs])

    size = (
        f"{fleet.instances:,} instances / {fleet.configurations} configurations / "
        f"{fleet.requests:,} requests, interval {fleet.interval:g} s"
    )
    outcome = Outcome()
    calls_sdk, calls_naive = per_change(sdk), per_change(naive)
    calls_ratio = ratio(calls_sdk, calls_naive)
    outcome.rows.append(
        Row(
            NAME,
            f"API calls per detected change ({size})",
            f"{calls_sdk:.4f}",
            f"{calls_naive:.3f} (naive per-resource poller)",
            calls_ratio,
            f"≤ {CALLS_TARGET} (≥ 100x fewer)",
            calls_ratio <= CALLS_TARGET,
        )
    )
    for q in (50, 95):
        a, b = _latency(sdk, q), _latency(naive, q)
        r = ratio(a, b)
        outcome.rows.append(
            Row(
                NAME,
                f"detection latency p{q}, all changes",
                _fmt_seconds(a),
                _fmt_seconds(b),
                r,
                f"≤ {LATENCY_TARGET:g} (equal or better)",
                r <= LATENCY_TARGET,
            )
        )
    poll_sdk, poll_raw = median(cpu["sdk"]), median(cpu["raw"])
    poll_ratio = ratio(poll_sdk, poll_raw)
    outcome.rows.append(
        Row(
            NAME,
            f"CPU of one poll of an unchanged {settings.pick(POLL_INSTANCES, 2_000):,}-instance "
            "list, ms",
            f"{poll_sdk * 1000:.1f}",
            f"{poll_raw * 1000:.1f} (raw aiohttp GET + json.loads)",
            poll_ratio,
            f"≤ {POLL_CPU_TARGET:g}",
            poll_ratio <= POLL_CPU_TARGET,
        )
    )
    for label, runs in (("SDK", sdk), ("naive", naive)):
        outcome.notes.append(_details(label, runs))
    outcome.notes.append(
        f"Fleet watch setup: {size}; boot {fleet.boot_time:g} s + up to "
        f"{fleet.boot_jitter:g} s jitter; SDK PollPolicy(min_interval={fleet.interval:g}, "
        f"max_interval={fleet.interval:g}, requests_per_second={fleet.requests_per_second:g})."
    )
    return outcome
