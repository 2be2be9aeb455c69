"""What the CLI tests share: an emulator in a thread, the CLI through CliRunner and in
processes, and assertions on exits.

CliRunner invokes commands synchronously and each command runs its own event loop, so
the emulator serves from a background thread with a loop of its own; anything that
touches its state runs in that thread too.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from click.testing import CliRunner, Result

import streamrun_async as sr
from streamrun_async.cli._app import cli
from streamrun_async.testing import Emulator, StateSnapshot

_T = TypeVar("_T")

LAUNCH_ROUTE = "POST /configurations/{configurationId}/instances"


class EmulatorThread:
    """An emulator serving from its own thread and loop, for synchronous callers."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.emu: Emulator

    def start(self) -> EmulatorThread:
        self._thread.start()

        async def start() -> Emulator:
            emu = Emulator(**self._options)  # made in its loop: the real clock binds to it
            await emu.start()
            return emu

        self.emu = self.run(start())
        return self

    def stop(self) -> None:
        self.run(self.emu.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coro`` in the emulator's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def sync(self, fn: Callable[[], _T]) -> _T:
        """Call ``fn`` in the emulator's loop (its state is not thread-safe)."""

        async def call() -> _T:
            return fn()

        return self.run(call())

    @property
    def state(self) -> StateSnapshot:
        return self.sync(lambda: self.emu.state)

    @property
    def url(self) -> str:
        return self.emu.url

    @property
    def api_key(self) -> str:
        return self.emu.api_key

    @property
    def configs(self) -> tuple[str, ...]:
        return self.emu.configuration_ids


@pytest.fixture(autouse=True)
def retries_without_sleeping(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's clients retry as usual but never sleep between attempts."""
    from streamrun_async.cli import _runtime

    client = functools.partial(sr.StreamrunClient, retry=sr.RetryPolicy.for_testing())
    monkeypatch.setattr(_runtime, "StreamrunClient", client)


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., EmulatorThread]]:
    """Factory of emulators in threads (real clock, instant boots unless told)."""
    started: list[EmulatorThread] = []

    def make(**options: Any) -> EmulatorThread:
        options = {"clock": "real", "boot_time": 0.0, "idle_timeout": None, **options}
        emulator = EmulatorThread(**options).start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.stop()


@pytest.fixture
def emu(make_emulator: Callable[..., EmulatorThread]) -> EmulatorThread:
    return make_emulator()


@pytest.fixture
def streamrun(emu: EmulatorThread) -> Callable[..., Result]:
    """``streamrun(*args, input=None, env=None)``: the CLI against ``emu``, key from env."""

    def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        full_env = {"STREAMRUN_API_KEY": emu.api_key, "STREAMRUN_BASE_URL": emu.url}
        full_env.update(env or {})
        # Polls every 20 ms, so waits end as soon as the (instant) boots do.
        return CliRunner().invoke(
            cli, ["--poll-interval", "0.02", *args], input=input, env=full_env
        )

    return invoke


def ok(result: Result) -> Result:
    """Assert exit 0 (showing what went wrong otherwise)."""
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def as_json(result: Result) -> Any:
    ok(result)
    return json.loads(result.stdout)


def api_error(result: Result, *needles: str) -> None:
    """One ``error:`` line on stderr, exit 1, nothing on stdout, no traceback."""
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0]
    assert "Traceback" not in result.output


def usage_error(result: Result, needle: str) -> None:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert needle in result.stderr


def launch(emu: EmulatorThread, names: Sequence[str], cfg: int = 0) -> list[str]:
    """Launch named instances directly in the emulator's loop; returns their ids."""

    async def go() -> list[str]:
        async with emu.emu.client() as client:
            settings = [sr.InstanceSettings(name=name) for name in names]
            await client.configurations.launch(emu.configs[cfg], settings)
        return [i.id for i in emu.emu.state.instances if i.name in names]

    return emu.run(go())


def _streamrun_command() -> list[str]:
    """The installed ``streamrun`` script when it sits beside this Python, else ``-m``."""
    script = Path(sys.executable).with_name("streamrun")
    return [str(script)] if script.exists() else [sys.executable, "-m", "streamrun_async.cli"]


# A process started in the background by a shell inherits SIGINT ignored; this puts
# Python's own Ctrl-C handling back before the CLI starts, wherever the tests run.
_INTERRUPTIBLE = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from streamrun_async.cli import main; main(sys.argv[1:])"
)


class Spawned:
    """A CLI process whose output is read by threads, so no read can hang a test."""

    def __init__(
        self, args: Sequence[str], env: dict[str, str] | None, *, interruptible: bool
    ) -> None:
        command = [sys.executable, "-c", _INTERRUPTIBLE] if interruptible else _streamrun_command()
        self.process = subprocess.Popen(
            [*command, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "COLUMNS": "200", **(env or {})},
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._pump_stdout, daemon=True),
            threading.Thread(target=self._pump_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _pump_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _pump_stderr(self) -> None:
        assert self.process.stderr is not None
        self._stderr.append(self.process.stderr.read())

    def line(self, timeout: float = 10) -> str:
        """The next line of stdout (fails the test after ``timeout`` seconds)."""
        line = self._lines.get(timeout=timeout)
        assert line is not None, f"the process ended: {self.stderr()}"
        return line

    def finish(self, *, interrupt: bool = False, timeout: float = 30) -> tuple[str, str]:
        """Ctrl-C it if asked, wait for its end; returns the rest of stdout, and stderr."""
        if interrupt:
            self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=timeout)
        self._close(timeout)
        rest: list[str] = []
        while (line := self._lines.get_nowait()) is not None:
            rest.append(line)
        return "".join(rest), self.stderr()

    def stderr(self) -> str:
        """What the process wrote on stderr (all of it once it ended)."""
        return "".join(self._stderr)

    def kill(self) -> None:
        """End the process if it still runs, and close its pipes."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._close(10)

    def _close(self, timeout: float) -> None:
        for reader in self._readers:
            reader.join(timeout=timeout)  # they end at end of file: the process is gone
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def spawn() -> Iterator[Callable[..., Spawned]]:
    """``spawn(args, env=None, interruptible=False)``: the CLI in a process, killed after."""
    started: list[Spawned] = []

    def start(
        args: Sequence[str], env: dict[str, str] | None = None, *, interruptible: bool = False
    ) -> Spawned:
        spawned = Spawned(args, env, interruptible=interruptible)
        started.append(spawned)
        return spawned

    yield start
    for spawned in started:
        spawned.kill()
