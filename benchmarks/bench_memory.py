"""4. Memory per active waiter: 10,000 ``instances.wait_for_state`` tasks on one poller.

The static server (own process) lists 10,000 QUEUED instances, so every waiter stays
blocked. With tracemalloc running, the benchmark starts one task per instance, lets them
register, then waits for the poller's first list to reach them (a probe waiter for an
instance that does not exist fails on that very delivery, so its failure marks the
moment every waiter has its snapshot). The traced memory delta divided by the number
of waiters is the cost of a waiter: its task and coroutine frames, its future, deadline
timer and registration, and the last state seen that it keeps.

Baseline, in alternation: the same number of bare tasks, each awaiting one shared future
(``async def bare(): await future``) — the floor of any waiter that is an asyncio task.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import linecache
import os
import tracemalloc
from collections.abc import Callable, Coroutine
from typing import Any

import streamrun_async as sr

from ._fixtures import instance_json
from ._harness import Outcome, Row, Settings, median
from ._server import serve_static

NAME = "4 memory per waiter"
TARGET_BYTES = 2048
API_KEY = "bench-key"
SDK_DIR = os.path.dirname(sr.__file__)

_Starter = Callable[[int], Coroutine[Any, Any, tuple[float, float, dict[str, int]]]]


def _traced() -> int:
    return tracemalloc.get_traced_memory()[0]


def _by_place(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot) -> dict[str, int]:
    """Bytes allocated between the snapshots, by where: SDK, asyncio, or elsewhere."""
    places: dict[str, int] = {}
    for stat in after.compare_to(before, "filename"):
        name = stat.traceback[0].filename
        if name.startswith(SDK_DIR):
            key = "streamrun_async/" + os.path.basename(name)
        elif f"{os.sep}asyncio{os.sep}" in name:
            key = "asyncio"
        elif name == __file__:
            key = "task + coroutine (created here)"
        else:
            key = "other"
        places[key] = places.get(key, 0) + stat.size_diff
    return places


async def _sdk_waiters(base_url: str, count: int) -> tuple[float, float, dict[str, int]]:
    """Bytes per waiter once registered, and once the first poll has reached them."""
    policy = sr.PollPolicy(min_interval=3600, max_interval=3600)
    async with sr.StreamrunClient(API_KEY, base_url=base_url, poll=policy) as client:
        await client.instances.list()  # warm the session and connection up
        ids = [instance_json(i)["id"] for i in range(count)]
        gc.collect()
        start = _traced()
        before = tracemalloc.take_snapshot()
        tasks = [
            asyncio.create_task(client.instances.wait_for_state(iid, timeout=3600)) for iid in ids
        ]
        probe = asyncio.create_task(client.instances.wait_for_state("inst-absent", timeout=60))
        for _ in range(3):
            await asyncio.sleep(0)
        registered = _traced() - start
        with contextlib.suppress(sr.WaiterError):
            await probe
        gc.collect()
        with_list = _traced() - start
        places = _by_place(before, tracemalloc.take_snapshot())
        # The poller keeps its last list (10,000 Instances) for the waiters' error reports:
        # one copy, held as well for a single waiter, so it is not a per-waiter cost.
        client._poller.last_instances = {}
        gc.collect()
        polled = _traced() - start
        shared_list = with_list - polled
        assert not any(task.done() for task in tasks), "a waiter ended early"
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    places["the poller's last list (shared)"] = shared_list
    return registered / count, polled / count, places


async def _bare_tasks(count: int) -> tuple[float, float, dict[str, int]]:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def bare() -> None:
        await future

    gc.collect()
    start = _traced()
    tasks = [asyncio.create_task(bare()) for _ in range(count)]
    for _ in range(3):
        await asyncio.sleep(0)
    per_task = (_traced() - start) / count
    future.set_result(None)
    await asyncio.gather(*tasks)
    return per_task, per_task, {}


async def _measure(base_url: str, count: int, settings: Settings) -> dict[str, Any]:
    variants: dict[str, _Starter] = {
        "sdk": lambda n: _sdk_waiters(base_url, n),
        "bare": _bare_tasks,
    }
    values: dict[str, list[tuple[float, float, dict[str, int]]]] = {k: [] for k in variants}
    warmup = 1
    for round_no in range(warmup + settings.pick(5, 2)):
        order = list(variants) if round_no % 2 == 0 else list(reversed(variants))
        for name in order:
            result = await variants[name](count if round_no >= warmup else 200)
            if round_no >= warmup:
                values[name].append(result)
    return values


def run(settings: Settings) -> Outcome:
    count = settings.pick(10_000, 2_000)
    linecache.clearcache()
    with serve_static(count) as base_url:
        tracemalloc.start(1)
        try:
            values = asyncio.run(_measure(base_url, count, settings))
        finally:
            tracemalloc.stop()
    registered = median([v[0] for v in values["sdk"]])
    polled = median([v[1] for v in values["sdk"]])
    bare = median([v[0] for v in values["bare"]])
    outcome = Outcome()
    outcome.rows.append(
        Row(
            NAME,
            f"bytes per `wait_for_state` waiter, {count:,} waiting, after the first poll",
            f"{polled:,.0f} B",
            f"{bare:,.0f} B (bare asyncio task on a future)",
            polled / bare,
            f"< {TARGET_BYTES:,} B",
            polled < TARGET_BYTES,
        )
    )
    places = values["sdk"][len(values["sdk"]) // 2][2]
    shown = ", ".join(
        f"{k} {v / count:,.0f} B" for k, v in sorted(places.items(), key=lambda kv: -kv[1])
    )
    share = bare / polled * 100
    outcome.notes.append(
        f"Memory per waiter: {registered:,.0f} B once registered, {polled:,.0f} B after the "
        f"first poll (each waiter keeps only the last state seen; the poller's last list of "
        f"{count:,} instances, shared by all waiters, is shown apart below). The bare task "
        f"+ coroutine "
        f"floor is {bare:,.0f} B = {share:.0f}% of a waiter: the task "
        f"{'dominates' if share >= 50 else 'does not dominate'}. By allocation site, per "
        f"waiter: {shown}."
    )
    return outcome
