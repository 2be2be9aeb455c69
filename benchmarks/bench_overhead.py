"""1. Per-request overhead: ``client.instances.list()`` against raw aiohttp + ``json.loads``.

Both sides fetch the same 100-instance list from the same static server (its own process,
bodies pre-rendered), each through its own warmed-up session. The items are of the observed
dialect: ``state`` a string, and seven fields the SDK does not model (kept in ``raw``). The
SDK returns typed ``Instance`` models; the raw side returns dicts. Measured sequentially and
with 50 requests in flight; the time per request is compared.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

import streamrun_async as sr
from streamrun_async._converter import decode_list, json_loads

from ._harness import (
    Outcome,
    Row,
    Settings,
    alternate,
    alternate_async,
    median,
    parser_name,
    ratio,
)
from ._server import serve_static

NAME = "1 per-request overhead"
INSTANCES = 100
CONCURRENCY = 50
TARGET = 1.10
API_KEY = "bench-key"


async def _per_request(once: Callable[[], Awaitable[Any]], requests: int, in_flight: int) -> float:
    """Seconds per request: ``requests`` calls, ``in_flight`` at a time."""

    async def worker(count: int) -> None:
        for _ in range(count):
            await once()

    share, extra = divmod(requests, in_flight)
    started = time.perf_counter()
    await asyncio.gather(*(worker(share + (i < extra)) for i in range(in_flight)))
    return (time.perf_counter() - started) / requests


async def _measure(settings: Settings, base_url: str) -> dict[str, dict[str, list[float]]]:
    url = f"{base_url}/api/v1/instances"
    headers = {"Authorization": f"Bearer {API_KEY}", "Accept": "application/json"}
    async with (
        sr.StreamrunClient(API_KEY, base_url=base_url) as client,
        aiohttp.ClientSession() as session,
    ):

        async def sdk_once() -> list[sr.Instance]:
            return await client.instances.list()

        async def raw_once() -> Any:
            async with session.get(url, headers=headers) as resp:
                resp.raise_for_status()
                return json.loads(await resp.read())

        assert len(await sdk_once()) == INSTANCES
        assert len((await raw_once())["instances"]) == INSTANCES
        results = {}
        for mode, requests, in_flight in (
            ("sequential", settings.pick(400, 100), 1),
            (f"{CONCURRENCY} concurrent", settings.pick(1000, 250), CONCURRENCY),
        ):

            def bind(
                once: Callable[[], Awaitable[Any]], n: int = requests, k: int = in_flight
            ) -> Callable[[], Awaitable[float]]:
                return lambda: _per_request(once, n, k)

            results[mode] = await alternate_async(
                {"sdk": bind(sdk_once), "raw": bind(raw_once)}, runs=settings.runs
            )
        return results


def _decode_share(settings: Settings) -> tuple[float, float, float]:
    """In-process seconds to parse (stdlib, SDK's) and to decode one 100-instance body."""
    from ._fixtures import instances_body, instances_json

    body = instances_body(instances_json(INSTANCES, observed=True))
    loops = settings.pick(200, 50)
    parsed = json_loads(body)

    def per_call(function: Callable[[], object]) -> Callable[[], float]:
        def run() -> float:
            started = time.perf_counter()
            for _ in range(loops):
                function()
            return (time.perf_counter() - started) / loops

        return run

    times = alternate(
        {
            "json.loads": per_call(lambda: json.loads(body)),
            "sdk parse": per_call(lambda: json_loads(body)),
            "decode": per_call(lambda: decode_list(parsed, sr.Instance, "instances")),
        },
        runs=settings.runs,
    )
    return median(times["json.loads"]), median(times["sdk parse"]), median(times["decode"])


def run(settings: Settings) -> Outcome:
    with serve_static(INSTANCES, observed=True) as base_url:
        results = asyncio.run(_measure(settings, base_url))
    outcome = Outcome()
    for mode, times in results.items():
        sdk, raw = median(times["sdk"]), median(times["raw"])
        r = ratio(sdk, raw)
        outcome.rows.append(
            Row(
                NAME,
                f"`instances.list()` of {INSTANCES}, {mode}: ms/request",
                f"{sdk * 1e3:.3f}",
                f"{raw * 1e3:.3f} (raw aiohttp + json.loads)",
                r,
                f"≤ {TARGET:.2f}",
                r <= TARGET,
            )
        )
    loads, sdk_parse, decode = _decode_share(settings)
    outcome.notes.append(
        f"Per {INSTANCES}-instance body, in-process: json.loads {loads * 1e3:.3f} ms, the "
        f"SDK's parse ({parser_name(json_loads)}) {sdk_parse * 1e3:.3f} ms, decode to "
        f"models {decode * 1e3:.3f} ms. The SDK/raw gap per request is about "
        f"(SDK parse + decode - json.loads) = {(sdk_parse + decode - loads) * 1e3:.3f} ms."
    )
    return outcome
