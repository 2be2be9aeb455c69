"""4. Memory: per active waiter, at 10,000 ``instances.wait_for_state`` tasks on one poller,
and the poller's store against the parsed list it holds.

The static server (own process) lists 10,000 QUEUED instances, so every waiter stays
blocked. With tracemalloc running, the benchmark starts one task per instance and lets the
poller's first list reach them (its snapshot listener says when): what is held then, per
waiter, is the cost of a waiter (its task and coroutine frames, its future, its
subscription, its entries in the poller's index and deadline heap). The
instances are in the poller's store, shared by every waiter: the store of the same list
is measured apart (and compared with the same body parsed and kept) and taken off.

Baseline, in alternation: the same number of bare tasks, each awaiting one shared future
(``async def bare(): await future``) — the floor of any waiter that is an asyncio task.
"""

from __future__ import annotations

import asyncio
import gc
import linecache
import os
import tracemalloc
from collections.abc import Callable, Coroutine
from typing import Any

import streamrun_async as sr
from streamrun_async._converter import decode_list, json_loads, list_items
from streamrun_async.watch import Store

from ._fixtures import instance_json, instances_body, instances_json
from ._harness import Outcome, Row, Settings, median
from ._server import serve_static

NAME = "4 memory per waiter"
TARGET_BYTES = 1200
API_KEY = "bench-key"
SDK_DIR = os.path.dirname(sr.__file__)

Measured = tuple[float, float, dict[str, int]]
_Starter = Callable[[int], Coroutine[Any, Any, Measured]]


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _traced() -> int:
    return tracemalloc.get_traced_memory()[0]


def _by_place(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot) -> dict[str, int]:
    """Bytes allocated between the snapshots, by where."""
    places: dict[str, int] = {}
    for stat in after.compare_to(before, "filename"):
        name = stat.traceback[0].filename
        if name.startswith(SDK_DIR):
            key = "streamrun_async/" + os.path.relpath(name, SDK_DIR)
        elif f"{os.sep}asyncio{os.sep}" in name:
            key = "asyncio"
        elif name == __file__:
            key = "task + coroutine (created here)"
        else:
            key = "other"
        places[key] = places.get(key, 0) + stat.size_diff
    return places


async def _sdk_waiters(base_url: str, count: int) -> Measured:
    """Bytes per waiter once the first poll reached them: the memory the whole run holds
    then, less the poller's store (measured apart, it is shared by every waiter)."""
    policy = sr.PollPolicy(min_interval=3600, max_interval=3600)
    async with sr.StreamrunClient(API_KEY, base_url=base_url, poll=policy) as client:
        await client.instances.list()  # warm the session and connection up
        poller = client._poller
        first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        remove = poller.add_snapshot_listener(lambda *_: _resolve(first))
        ids = [instance_json(i)["id"] for i in range(count)]
        gc.collect()
        start = _traced()
        before = tracemalloc.take_snapshot()
        tasks = [
            asyncio.create_task(client.instances.wait_for_state(iid, timeout=3600)) for iid in ids
        ]
        await first
        remove()
        for _ in range(3):
            await asyncio.sleep(0)
        gc.collect()
        held = _traced() - start
        places = _by_place(before, tracemalloc.take_snapshot())
        listed = len(poller.store)
        assert not any(task.done() for task in tasks), "a waiter ended early"
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    store = _store_bytes(listed)
    return (held - store) / count, store / listed, places


def _store_bytes(count: int) -> float:
    """Bytes a store holds for the list of ``count`` instances (parsed JSON included)."""
    body = instances_body(instances_json(count))
    store = Store(lambda items: decode_list(items, sr.Instance, "instances"), grace=3)
    gc.collect()
    start = _traced()
    store.update({None: list_items(json_loads(body), sr.Instance, "instances")}, 0.0)
    gc.collect()
    size = _traced() - start
    del store
    return size


async def _bare_tasks(count: int) -> Measured:
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
    return per_task, 0.0, {}


def _parsed_list_bytes(count: int) -> float:
    """Bytes per instance of the same body, parsed (by the SDK's parser) and kept."""
    body = instances_body(instances_json(count))
    gc.collect()
    start = _traced()
    parsed = json_loads(body)
    size = _traced() - start
    del parsed
    return size / count


async def _measure(base_url: str, count: int, settings: Settings) -> dict[str, list[Measured]]:
    variants: dict[str, _Starter] = {
        "sdk": lambda n: _sdk_waiters(base_url, n),
        "bare": _bare_tasks,
    }
    values: dict[str, list[Measured]] = {k: [] for k in variants}
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
            parsed = _parsed_list_bytes(count)
        finally:
            tracemalloc.stop()
    waiter = median([v[0] for v in values["sdk"]])
    store = median([v[1] for v in values["sdk"]])
    bare = median([v[0] for v in values["bare"]])
    own = store - parsed
    outcome = Outcome()
    outcome.rows.append(
        Row(
            NAME,
            f"bytes per `wait_for_state` waiter, {count:,} waiting, after the first poll",
            f"{waiter:,.0f} B",
            f"{bare:,.0f} B (bare asyncio task on a future)",
            waiter / bare,
            f"≤ {TARGET_BYTES:,} B",
            waiter <= TARGET_BYTES,
        )
    )
    outcome.rows.append(
        Row(
            NAME,
            f"the poller's store of {count:,} instances beyond the parsed JSON it keeps, "
            "per instance",
            f"{own:,.0f} B",
            f"{parsed:,.0f} B (the same list, parsed)",
            own / parsed,
            "≤ 1 (no more than the parsed list)",
            own <= parsed,
        )
    )
    places = values["sdk"][len(values["sdk"]) // 2][2]
    shown = ", ".join(
        f"{k} {v / count:,.0f} B"
        for k, v in sorted(places.items(), key=lambda kv: -kv[1])
        if abs(v) >= count
    )
    outcome.notes.append(
        f"Memory per waiter: {waiter:,.0f} B once the first poll reached {count:,} waiters, "
        f"less the poller's store (shared by all); the bare task + coroutine floor is "
        f"{bare:,.0f} B. Held by allocation site, per waiter, store included: {shown}. The "
        f"store holds {store:,.0f} B per instance in all: the parsed JSON of each instance "
        f"(kept as the model's `raw`; {parsed:,.0f} B for the same body parsed alone) plus "
        f"{own:,.0f} B of models and indexes."
    )
    return outcome
