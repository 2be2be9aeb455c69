"""What the launch_many tests share: routes, a fast poll policy, an emulator on a virtual
clock with a client of it, and that clock moved while a call runs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import streamrun_async as sr
from streamrun_async.testing import Emulator

__all__ = ["FAST", "LAUNCH", "LIST_CFG", "SETTLE", "emulated", "fast_client", "run_with_clock"]

T = TypeVar("T")
FAST = sr.PollPolicy(min_interval=0.002, max_interval=0.01, requests_per_second=10_000)
LAUNCH = "POST /configurations/{configurationId}/instances"
LIST_CFG = "GET /configurations/{configurationId}/instances"
# Real seconds between the two lists that must agree a name is absent; the virtual clock
# moves 5 s every 2 ms under run_with_clock, so this is minutes of emulator time.
SETTLE = 0.01


def emulated(**options: Any) -> Emulator:
    """An emulator on a virtual clock with 5 s boots and no idle stops, unless ``options``
    say otherwise."""
    return Emulator(**{"clock": "virtual", "boot_time": 5, "idle_timeout": None, **options})


def fast_client(emu: Emulator, attempts: int = 4) -> sr.StreamrunClient:
    """A client of ``emu`` that retries without sleeping and polls every few ms."""
    return emu.client(retry=sr.RetryPolicy.for_testing(attempts=attempts), poll=FAST)


async def run_with_clock(
    emu: Emulator, work: Awaitable[T], step: float = 5.0, limit: float = 60.0
) -> T:
    """Drive the virtual clock forward while ``work`` runs, as time passes in production;
    ``limit`` real seconds at most (then the work is cancelled and TimeoutError raised)."""
    task = asyncio.ensure_future(work)
    try:
        async with asyncio.timeout(limit):
            while not task.done():
                await asyncio.sleep(0.002)
                await emu.advance(step)
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return task.result()
