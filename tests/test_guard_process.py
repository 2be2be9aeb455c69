"""Leases outlive their process: a bot launches with a 3 s ttl and is SIGKILLed; cron's
``streamrun reap`` (another process), or a new guarded client of the same owner, stops the
instance, and the emulator bills no more than ttl + reap interval + one tick of RUNNING.

These run on the real clock (a real process has no virtual one), so each takes seconds.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from _redis_server import RedisServer, redis_server  # noqa: F401 - a fixture

import streamrun_async as sr
from streamrun_async.testing import Emulator

TTL = 3.0
REAP_INTERVAL = 1.0

BOT = """
import asyncio, sys
import streamrun_async as sr

async def main(store_location, owner, cfg, ttl):
    if store_location.startswith("redis://"):
        store = sr.RedisLeaseStore(store_location)
    else:
        store = sr.SQLiteLeaseStore(store_location)
    guard = sr.Guard(owner, store=store, reap_interval=3600)
    async with sr.StreamrunClient(guard=guard) as client:
        request = await client.configurations.launch(
            cfg, [sr.InstanceSettings(name="stream-1")], ttl=float(ttl)
        )
        print("launched", request.id, flush=True)
        await asyncio.sleep(3600)  # the bot hangs here until it is killed

asyncio.run(main(*sys.argv[1:]))
"""


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(boot_time=0.2, configurations=1) as emulator:
        yield emulator


@pytest.fixture(params=["sqlite", "redis"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "leases.sqlite3")
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


def env_for(emu: Emulator) -> dict[str, str]:
    return {**os.environ, "STREAMRUN_API_KEY": emu.api_key, "STREAMRUN_BASE_URL": emu.url}


async def launch_and_kill(emu: Emulator, store_location: str, owner: str) -> None:
    """Run the bot until its launch is answered, then SIGKILL it (no cleanup can run)."""
    bot = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        BOT,
        store_location,
        owner,
        emu.configuration_ids[0],
        str(TTL),
        stdout=asyncio.subprocess.PIPE,
        env=env_for(emu),
    )
    assert bot.stdout is not None
    async with asyncio.timeout(30):
        line = await bot.stdout.readline()
    assert line.startswith(b"launched "), line
    bot.send_signal(signal.SIGKILL)
    assert await bot.wait() == -signal.SIGKILL
    assert emu.state.count() == 1


def store_of(location: str) -> sr.LeaseStore:
    if location.startswith("redis://"):
        return sr.RedisLeaseStore(location)
    return sr.SQLiteLeaseStore(location)


async def test_streamrun_reap_from_cron_stops_what_a_killed_bot_left(
    emu: Emulator, store_location: str
) -> None:
    owner = f"bot-{uuid.uuid4().hex[:8]}"
    await launch_and_kill(emu, store_location, owner)
    # cron: `streamrun reap --owner X` every REAP_INTERVAL seconds, each run its own process.
    runs: list[tuple[float, int, bytes]] = []
    async with asyncio.timeout(30):
        while emu.state.count():
            started = time.monotonic()
            cron = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "streamrun_async.cli",
                "reap",
                "--owner",
                owner,
                "--store",
                store_location,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env_for(emu),
            )
            out, _ = await cron.communicate()
            runs.append((time.monotonic() - started, cron.returncode or 0, out))
            await asyncio.sleep(max(0.0, REAP_INTERVAL - (time.monotonic() - started)))
    last_duration, last_code, last_out = runs[-1]
    assert last_code == 0, last_out.decode()
    assert b"stopped" in last_out
    assert all(code == 0 for _, code, _ in runs)
    [stop] = emu.state.stopped
    assert stop.reason == "api"
    # The run that stopped it took last_duration (process start, list, stop, confirm).
    billed = emu.billing.seconds[stop.id]
    assert billed <= TTL + REAP_INTERVAL + last_duration
    store = store_of(store_location)
    assert await store.leases(owner) == []
    await store.aclose()


async def test_a_new_guarded_client_of_the_owner_stops_what_a_killed_bot_left(
    emu: Emulator, store_location: str
) -> None:
    owner = f"bot-{uuid.uuid4().hex[:8]}"
    await launch_and_kill(emu, store_location, owner)
    events: list[object] = []
    guard = sr.Guard(owner, store=store_of(store_location), reap_interval=REAP_INTERVAL)
    async with emu.client(guard=guard, hooks=[events.append]):
        # Its start-up sweep finds the lease unexpired; its loop stops it once expired.
        async with asyncio.timeout(30):
            while emu.state.count():
                await asyncio.sleep(0.05)
    [stop] = emu.state.stopped
    assert [type(event) for event in events if isinstance(event, sr.LeaseReaped)] == [
        sr.LeaseReaped
    ]
    # One tick: the round's own list, stop and confirming list, well under a second here.
    assert emu.billing.seconds[stop.id] <= TTL + REAP_INTERVAL + 0.5


async def test_reap_of_an_unknown_owner_is_a_usage_error(emu: Emulator, tmp_path: Path) -> None:
    location = str(tmp_path / "leases.sqlite3")
    store = sr.SQLiteLeaseStore(location)
    await store.add_owner("golive-bot")
    await store.aclose()
    cron = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "streamrun_async.cli",
        "reap",
        "--owner",
        "golive-bto",
        "--store",
        location,
        stderr=asyncio.subprocess.PIPE,
        env=env_for(emu),
    )
    _, err = await cron.communicate()
    assert cron.returncode == 2
    assert b"golive-bto" in err
    assert b"golive-bot" in err  # the owners it does know
    assert emu.stats.total == 0
