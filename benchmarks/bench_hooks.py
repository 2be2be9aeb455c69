"""7. Hook overhead: ``client.instances.list()`` with hooks against the same call without.

Every client fetches the same one-instance list (a small body, so that per-request costs
show) from the same static server, sequentially, each through its own warmed-up session.
The baseline of every row is a client without hooks. "no hooks (A/A)" is a second client
without hooks: its ratio is the noise of the measurement itself. Then one plain hook that
does nothing, one async hook that does nothing, and ``contrib.otel.instrument`` with an
SDK tracer provider that records spans and exports none.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import streamrun_async as sr
from streamrun_async._events import Emitter

from ._harness import Outcome, Row, Settings, alternate_async, median, ratio
from ._server import serve_static

NAME = "7 hook overhead"
INSTANCES = 1
API_KEY = "bench-key"
# What the no-hook path may add to a request for events: a hundredth.
GUARD_TARGET = 1.01


def _nothing(event: object) -> None:
    """A plain hook that does nothing."""


async def _nothing_async(event: object) -> None:
    """An async hook that does nothing."""


async def _per_request(once: Callable[[], Awaitable[Any]], requests: int) -> float:
    started = time.perf_counter()
    for _ in range(requests):
        await once()
    return (time.perf_counter() - started) / requests


def _tracing(client: sr.StreamrunClient) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    from streamrun_async.contrib.otel import instrument

    instrument(client, tracer_provider=TracerProvider())


async def _measure(settings: Settings, base_url: str) -> dict[str, list[float]]:
    clients = {
        "baseline": sr.StreamrunClient(API_KEY, base_url=base_url),
        "no hooks (A/A)": sr.StreamrunClient(API_KEY, base_url=base_url),
        "one plain hook": sr.StreamrunClient(API_KEY, base_url=base_url, hooks=[_nothing]),
        "one async hook": sr.StreamrunClient(API_KEY, base_url=base_url, hooks=[_nothing_async]),
        "OpenTelemetry": sr.StreamrunClient(API_KEY, base_url=base_url),
    }
    _tracing(clients["OpenTelemetry"])
    requests = settings.pick(1500, 300)
    try:
        for client in clients.values():
            for _ in range(20):
                assert len(await client.instances.list()) == INSTANCES

        def bind(client: sr.StreamrunClient) -> Callable[[], Awaitable[float]]:
            return lambda: _per_request(client.instances.list, requests)

        return await alternate_async(
            {name: bind(client) for name, client in clients.items()},
            runs=settings.pick(9, 3),
        )
    finally:
        for client in clients.values():
            await client.aclose()


def _guard_cost(settings: Settings) -> float:
    """Seconds the no-hook path of one request spends on events, as the transport runs it:
    one truth test of the empty emitter, then its result read by the attempt."""
    events = Emitter()
    loops = settings.pick(200_000, 50_000)
    started = time.perf_counter()
    for _ in range(loops):
        observed = bool(events)
        call_id = events.next_id() if observed else 0
        route = "" if not observed else str(call_id)
        if observed or route:
            raise AssertionError
    return (time.perf_counter() - started) / loops


def run(settings: Settings) -> Outcome:
    with serve_static(INSTANCES, observed=True) as base_url:
        times = asyncio.run(_measure(settings, base_url))
    outcome = Outcome()
    base = median(times.pop("baseline"))
    guard = _guard_cost(settings)
    # The claim "no hooks, no cost" measured where noise cannot hide it: what the no-hook
    # path runs for events, against the time of the request it rides on.
    outcome.rows.append(
        Row(
            NAME,
            "events code on the no-hook path: time added to a request",
            f"{guard * 1e9:.0f} ns",
            f"{base * 1e3:.3f} ms (a request)",
            ratio(base + guard, base),
            f"≤ {GUARD_TARGET:.2f}",
            ratio(base + guard, base) <= GUARD_TARGET,
        )
    )
    for name, values in times.items():
        sdk = median(values)
        outcome.rows.append(
            Row(
                NAME,
                f"`instances.list()` of {INSTANCES}, {name}: ms/request",
                f"{sdk * 1e3:.3f}",
                f"{base * 1e3:.3f} (no hooks)",
                ratio(sdk, base),
            )
        )
    outcome.notes.append(
        "Hook overhead: the A/A row (two clients without hooks) is the noise of the end-to-end "
        "rows; read the hook rows against it. An async hook costs a task per event; "
        "OpenTelemetry a span per request and per operation (recorded by the SDK, exported "
        "nowhere)."
    )
    return outcome
