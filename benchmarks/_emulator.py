"""The emulator in its own process, driven by JSON lines over the child's stdin/stdout.

The benchmark's client and the emulator must not share an event loop, so the emulator
runs in a child process (``python -m benchmarks._emulator '<options JSON>'``) and answers
a few commands: its request counts, resetting them, and when each instance became
RUNNING (the scheduled time, on the machine's monotonic clock, which both processes
read).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

__all__ = ["EmulatorProcess", "Schedule"]

Schedule = dict[str, tuple[list[str], dict[str, float]]]
"""request id -> (its instance ids, instance id -> monotonic time it became RUNNING)."""


def _schedule(emu: Any, request_ids: list[str]) -> Schedule:
    """When the instances of ``request_ids`` became RUNNING, on ``time.monotonic()``.

    The emulator's real clock is the child loop's ``time()`` (``time.monotonic``) minus
    its start; an instance RUNNING since ``t`` has been billed ``now - t`` seconds.
    """
    state, billing = emu.state, emu.billing
    origin = time.monotonic() - emu.now()
    now = state.now
    running = {i.id for i in state.instances if i.state == "RUNNING"}
    wanted = set(request_ids)
    schedule: Schedule = {}
    for request in state.requests:
        if request.id in wanted:
            since = {
                iid: origin + now - billing.seconds[iid]
                for iid in request.instance_ids
                if iid in running
            }
            schedule[request.id] = (list(request.instance_ids), since)
    return schedule


async def _serve(options: dict[str, Any]) -> None:
    from streamrun_async.testing import ROUTES, Emulator

    async with Emulator(**options) as emu:
        commands: dict[str, Callable[..., Any]] = {
            "counts": lambda: {r: n for r in ROUTES if (n := emu.stats.count(r))},
            "reset": emu.stats.reset,
            "schedule": lambda ids: _schedule(emu, ids),
        }
        hello = {"url": emu.url, "api_key": emu.api_key, "configs": emu.configuration_ids}
        print(json.dumps(hello), flush=True)
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            command, args = json.loads(line)
            print(json.dumps(commands[command](*args)), flush=True)


class EmulatorProcess:
    """``with EmulatorProcess(configurations=100, boot_time=2) as emu:`` then ``emu.url``.

    Keyword arguments (JSON values) go to ``streamrun_async.testing.Emulator``, real clock.
    """

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._process: subprocess.Popen[str] | None = None
        self.url = ""
        self.api_key = ""
        self.configuration_ids: tuple[str, ...] = ()

    def __enter__(self) -> Self:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._emulator", json.dumps(self._options)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self._process.wait()
            raise RuntimeError(f"the emulator process failed ({self._process.returncode})")
        hello = json.loads(line)
        self.url, self.api_key = hello["url"], hello["api_key"]
        self.configuration_ids = tuple(hello["configs"])
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None
        process.stdin.close()  # end of commands: the child closes the emulator and exits
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _call(self, command: str, *args: Any) -> Any:
        process = self._process
        assert process is not None
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(json.dumps([command, args]) + "\n")
        process.stdin.flush()
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the emulator process ended unexpectedly")
        return json.loads(line)

    def counts(self) -> dict[str, int]:
        """Requests answered per route since the last reset."""
        result: dict[str, int] = self._call("counts")
        return result

    def reset(self) -> None:
        """Start counting requests from zero."""
        self._call("reset")

    def schedule(self, request_ids: list[str]) -> Schedule:
        """For each request: its instances and when each became RUNNING (monotonic)."""
        result: Schedule = self._call("schedule", request_ids)
        return result


if __name__ == "__main__":
    asyncio.run(_serve(json.loads(sys.argv[1])))
