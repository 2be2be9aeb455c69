"""The poller's clock: the event loop's by default, a manual one for tests.

Everything the poller times (intervals, the budget, Retry-After, grace, deadlines) reads
``now()`` and schedules through ``call_at``, so tests move time by hand instead of
sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from typing import Protocol

__all__ = ["Clock", "LoopClock", "ManualClock", "Timer"]


class Timer(Protocol):
    """A scheduled callback that can be cancelled."""

    def cancel(self) -> None:
        """Do not run the callback."""


class Clock(Protocol):
    """Seconds on a monotonic scale, and callbacks at given times on it."""

    def now(self) -> float:
        """The current time."""
        ...

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` (in the event loop) once ``now() >= when``."""
        ...


class LoopClock:
    """The running event loop's clock."""

    def now(self) -> float:
        """``loop.time()`` of the running loop."""
        return asyncio.get_running_loop().time()

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """``loop.call_at``."""
        return asyncio.get_running_loop().call_at(when, callback)


class _ManualTimer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that moves only when told: ``await clock.advance(2.5)``.

    ``advance`` runs every callback that falls due, in time order, and lets the event
    loop run between them, so a poller sleeping on this clock ticks as if that much time
    had passed.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._timers: list[tuple[float, int, _ManualTimer]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        """The current (manual) time."""
        return self._now

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """Schedule ``callback`` for when the clock reaches ``when``."""
        timer = _ManualTimer(when, callback)
        heapq.heappush(self._timers, (when, next(self._seq), timer))
        return timer

    async def advance(self, seconds: float) -> None:
        """Move forward by ``seconds``, firing what falls due on the way."""
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        target = self._now + seconds
        await _turns()
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            self._now = max(self._now, when)
            if not timer.cancelled:
                timer.callback()
                await _turns()
        self._now = target
        await _turns()


async def _turns() -> None:
    # Loop turns enough for a woken task to run through in-memory awaits to its next wait.
    for _ in range(20):
        await asyncio.sleep(0)
