"""The emulator's two clocks: virtual (moved by hand) and real (the event loop's)."""

from __future__ import annotations

import asyncio
import math
from typing import Literal, Protocol

__all__ = ["Clock", "ClockKind", "RealClock", "VirtualClock"]

ClockKind = Literal["real", "virtual"]


class Clock(Protocol):
    """Seconds since the emulator started, never decreasing."""

    def now(self) -> float:
        """Current emulator time in seconds."""
        ...


class VirtualClock:
    """A clock that only moves when told to, so tests run boot times in no time."""

    def __init__(self) -> None:
        self._now = 0.0

    def now(self) -> float:
        """Current emulator time in seconds."""
        return self._now

    def move_by(self, seconds: float) -> None:
        """Move the clock forward (by a finite number: nan or inf would leave no time)."""
        if seconds < 0:
            raise ValueError(f"cannot move time backwards ({seconds} seconds)")
        if not math.isfinite(seconds):
            raise ValueError(f"cannot move time by {seconds} seconds")
        self._now += seconds


class RealClock:
    """The running loop's monotonic clock, counted from `start()`; 0 until then."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._origin = 0.0

    def start(self) -> None:
        """Bind to the running loop and start counting from now."""
        self._loop = asyncio.get_running_loop()
        self._origin = self._loop.time()

    def now(self) -> float:
        """Current emulator time in seconds."""
        return 0.0 if self._loop is None else self._loop.time() - self._origin
