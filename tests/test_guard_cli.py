"""``streamrun leases`` and ``streamrun reap``: the store from a shell, and reaping for cron."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

import streamrun_async as sr
from streamrun_async.cli._app import cli
from streamrun_async.cli._guard import parse_duration
from streamrun_async.guard import Lease
from streamrun_async.testing import Emulator


def lease(name: str, *, owner: str = "golive-bot", ttl: float | None = 600.0) -> Lease:
    now = time.time()
    return Lease(
        id=uuid.uuid4().hex,
        owner=owner,
        host="h",
        pid=1,
        configuration_id="cfg-1",
        name=name,
        created_at=now,
        expires_at=None if ttl is None else now + ttl,
    )


def seed(path: Path, *leases: Lease) -> None:
    async def put() -> None:
        store = sr.SQLiteLeaseStore(path)
        await store.put(list(leases))
        await store.aclose()

    asyncio.run(put())


def read(path: Path) -> list[Lease]:
    async def get() -> list[Lease]:
        store = sr.SQLiteLeaseStore(path)
        found = await store.leases()
        await store.aclose()
        return found

    return asyncio.run(get())


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env={"STREAMRUN_API_KEY": ""})
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("10m", 600.0), ("2h", 7200.0), ("1d", 86400.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_leases_list_reads_the_store_without_a_key(tmp_path: Path) -> None:
    path = tmp_path / "leases.sqlite3"
    seed(path, lease("cam-1"), lease("cam-2", owner="other", ttl=None))
    code, out, _ = run("leases", "list", "--store", str(path), "--json")
    assert code == 0
    assert {(item["owner"], item["name"]) for item in json.loads(out)} == {
        ("golive-bot", "cam-1"),
        ("other", "cam-2"),
    }
    code, out, _ = run("leases", "list", "--store", str(path), "--owner", "other")
    assert code == 0
    assert "cam-2" in out
    assert "never" in out
    assert "cam-1" not in out


def test_leases_extend_and_release(tmp_path: Path) -> None:
    path = tmp_path / "leases.sqlite3"
    held = lease("cam-1")
    seed(path, held)
    code, _, err = run("leases", "extend", "cam-1", "--by", "30m", "--store", str(path))
    assert code == 0, err
    [extended] = read(path)
    assert extended.expires_at == pytest.approx((held.expires_at or 0) + 1800)
    code, _, err = run("leases", "release", "cam-1", "--store", str(path), "-o", "ids")
    assert code == 0, err
    assert read(path) == []


def test_leases_errors_are_one_line_and_typed_exits(tmp_path: Path) -> None:
    path = tmp_path / "leases.sqlite3"
    seed(path, lease("cam-1"))
    code, _, err = run("leases", "release", "cam-9", "--store", str(path))
    assert code == 1
    assert "no lease named 'cam-9'" in err
    code, _, err = run("leases", "list", "--owner", "golive-bto", "--store", str(path))
    assert code == 2
    assert "golive-bot" in err
    code, _, err = run("leases", "extend", "cam-1", "--by", "soon", "--store", str(path))
    assert code == 2
    corrupt = tmp_path / "corrupt.sqlite3"
    corrupt.write_bytes(b"garbage" * 300)
    code, _, err = run("leases", "list", "--store", str(corrupt))
    assert code == 1
    assert "corrupt.sqlite3" in err


async def test_reap_dry_run_says_what_it_would_stop_and_stops_nothing(tmp_path: Path) -> None:
    path = tmp_path / "leases.sqlite3"
    async with Emulator(boot_time=0.1, configurations=1) as emu:
        guard = sr.Guard("golive-bot", store=sr.SQLiteLeaseStore(path), reap_interval=3600)
        async with emu.client(guard=guard) as client:
            await client.configurations.launch(
                emu.configuration_ids[0], [sr.InstanceSettings(name="cam-1")], ttl=0.05
            )
        await asyncio.sleep(0.1)  # past the deadline (real clock: the CLI is another process)
        env = {**os.environ, "STREAMRUN_API_KEY": emu.api_key, "STREAMRUN_BASE_URL": emu.url}
        cron = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "streamrun_async.cli", "reap", "--dry-run", "--json", "--store", str(path)),
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        out, _ = await cron.communicate()
        assert cron.returncode == 0
        report = json.loads(out)
        assert report["dry_run"] is True
        assert [item["name"] for item in report["to_stop"]] == ["cam-1"]
        assert emu.state.count() == 1
        assert emu.stats.count("DELETE /instances/{instanceId}") == 0
        store = sr.SQLiteLeaseStore(path)
        assert len(await store.leases()) == 1
        await store.aclose()


async def _streamrun(emu: Emulator, *args: str) -> tuple[int, bytes, bytes]:
    env = {**os.environ, "STREAMRUN_API_KEY": emu.api_key, "STREAMRUN_BASE_URL": emu.url}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "streamrun_async.cli", *args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out, err


async def test_streamrun_launch_with_an_owner_writes_its_lease_before_launching(
    tmp_path: Path,
) -> None:
    path = tmp_path / "leases.sqlite3"
    async with Emulator(boot_time=0.1, configurations=1) as emu:
        cfg = emu.configuration_ids[0]
        code, _, err = await _streamrun(
            emu, "launch", cfg, "--name", "cam-1", "--owner", "studio-a", "--ttl", "2h",
            "--store", str(path), "--json",
        )  # fmt: skip
        assert code == 0, err
        [found] = await asyncio.to_thread(read, path)  # read() runs a loop of its own
        assert (found.owner, found.name, found.configuration_id) == ("studio-a", "cam-1", cfg)
        assert found.expires_at is not None
        assert 7190 < found.expires_at - found.created_at <= 7200
        assert found.instance_id == emu.state.instances[0].id
        assert emu.state.count() == 1


async def test_streamrun_launch_ttl_needs_an_owner_and_sends_nothing(tmp_path: Path) -> None:
    async with Emulator(boot_time=0.1, configurations=1) as emu:
        code, out, err = await _streamrun(
            emu, "launch", emu.configuration_ids[0], "--name", "cam-1", "--ttl", "2h"
        )
        assert code == 2
        assert b"--ttl needs --owner" in err
        assert out == b""
        assert emu.stats.total == 0
