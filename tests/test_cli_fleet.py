"""``streamrun apply`` / ``streamrun diff``: plans, exit codes, bad files, real processes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from _cli_support import (
    EmulatorThread,
    Spawned,
    emu,
    make_emulator,
    ok,
    retries_without_sleeping,
    spawn,
    streamrun,
    usage_error,
)
from click.testing import Result

from streamrun_async.testing import ROUTES

__all__ = ["emu", "make_emulator", "retries_without_sleeping", "spawn", "streamrun"]

EXAMPLE = str(Path(__file__).resolve().parent.parent / "examples" / "fleet.toml")
NOTHING, CHANGES = 0, 3


def writes(emu: EmulatorThread) -> int:
    return emu.sync(lambda: sum(emu.emu.stats.count(r) for r in ROUTES if not r.startswith("GET")))


def test_diff_then_apply_then_apply_again(
    streamrun: Callable[..., Result], emu: EmulatorThread
) -> None:
    diff = streamrun("diff", "-f", EXAMPLE)
    assert diff.exit_code == CHANGES, diff.output
    rows = [line.split()[0] for line in diff.stdout.splitlines()[1:]]
    assert rows == ["launch", "launch", "set", "launch"]
    assert "3 to launch, 0 to update, 1 to set outputs, 0 to stop" in diff.stderr
    assert "$0.00 now, $1.17 after, at $0.39/instance-hour" in diff.stderr
    assert "ttl is read and checked, but enforced only with --guard" in diff.stderr
    assert writes(emu) == 0
    dry = streamrun("apply", "-f", EXAMPLE, "--dry-run", "--hourly-rate", "1")
    assert dry.exit_code == CHANGES
    assert "$3.00 after, at $1.00/instance-hour" in dry.stderr
    assert writes(emu) == 0

    applied = streamrun("apply", "-f", EXAMPLE, "--wait", "--timeout", "10")
    assert applied.exit_code == CHANGES, applied.output
    assert emu.state.count("RUNNING") == 3
    done = applied.stdout.splitlines()
    assert done[0].split() == ["DONE", "CONFIGURATION", "NAME", "INSTANCE", "DETAIL"]
    assert len(done) == 5

    again = streamrun("apply", "-f", EXAMPLE)
    assert again.exit_code == NOTHING, again.output
    assert again.stdout == ""
    assert f"nothing to change: the account already runs {EXAMPLE}" in again.stderr
    assert ok(streamrun("diff", "-f", EXAMPLE)).stdout.split().count("keep") == 3


def test_prune_json_and_ids(
    streamrun: Callable[..., Result], emu: EmulatorThread, tmp_path: Path
) -> None:
    assert streamrun("apply", "-f", EXAMPLE).exit_code == CHANGES
    smaller = tmp_path / "fleet.toml"
    text = Path(EXAMPLE).read_text()
    smaller.write_text(text[: text.index('[[configurations]]\nname = "Lo-fi Radio"')])
    radio = {i.id for i in emu.state.instances if i.name == "studio-a/radio-1"}
    plan = json.loads(streamrun("diff", "-f", str(smaller), "--prune", "--json").stdout)
    assert [(a["action"], a["name"]) for a in plan["actions"] if a["action"] != "KEEP"] == [
        ("STOP", "studio-a/radio-1")
    ]
    assert plan["cost_per_hour_after"] == 0.78
    ids = streamrun("diff", "-f", str(smaller), "--prune", "-o", "ids")
    assert ids.exit_code == CHANGES
    assert set(ids.stdout.split()) == radio
    # Without --prune the undeclared instance stays, and the summary says so.
    kept = streamrun("apply", "-f", str(smaller))
    assert kept.exit_code == NOTHING
    assert "1 owned instance(s) not declared stay (--prune stops them)" in kept.stderr
    pruned = streamrun("apply", "-f", str(smaller), "--prune", "--json")
    assert pruned.exit_code == CHANGES
    assert [a["action"] for a in json.loads(pruned.stdout)["done"]] == ["STOP"]
    assert {i.name for i in emu.state.instances} == {"studio-a/cam-1", "studio-a/cam-2"}


def test_bad_files_are_usage_errors_before_any_request(
    streamrun: Callable[..., Result], emu: EmulatorThread, tmp_path: Path
) -> None:
    bad = tmp_path / "fleet.toml"
    bad.write_text('owner = "o"\n\n[[configurations]]\nid = "c"\ncolour = "red"\n')
    for command in ("apply", "diff"):
        result = streamrun(command, "-f", str(bad))
        usage_error(result, f"{bad}:5: configurations[0].colour: unknown key")
    usage_error(streamrun("apply", "-f", str(tmp_path / "none.toml")), "none.toml")
    assert emu.sync(lambda: emu.emu.stats.total) == 0


def test_a_failed_change_exits_1(
    streamrun: Callable[..., Result], emu: EmulatorThread, tmp_path: Path
) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(
        f'owner = "o"\n[[configurations]]\nid = "{emu.configs[0]}"\n'
        '[[configurations.instances]]\nname = "a"\noverrides = { "nothere-1" = { x = 1 } }\n'
    )
    result = streamrun("apply", "-f", str(path))
    assert result.exit_code == 1
    assert "error: launch a: " in result.stderr
    assert "nothere-1" in result.stderr


def test_the_example_applies_in_a_real_process(
    emu: EmulatorThread, spawn: Callable[..., Spawned]
) -> None:
    env = {"STREAMRUN_API_KEY": emu.api_key, "STREAMRUN_BASE_URL": emu.url}
    first = spawn(["apply", "-f", EXAMPLE], env=env)
    _, stderr = first.finish()
    assert first.process.returncode == CHANGES, stderr
    assert emu.state.count() == 3
    second = spawn(["apply", "-f", EXAMPLE], env=env)
    stdout, stderr = second.finish()
    assert second.process.returncode == NOTHING, stderr
    assert "nothing to change" in stderr
    assert stdout == ""
    assert emu.state.count() == 3


def test_apply_guard_writes_leases_for_ttls(
    streamrun: Callable[..., Result], emu: EmulatorThread, tmp_path: Path
) -> None:
    import asyncio

    import streamrun_async as sr

    env = {"XDG_STATE_HOME": str(tmp_path)}
    unguarded = streamrun("diff", "-f", EXAMPLE, env=env)
    assert "enforced only with --guard" in unguarded.stderr
    result = streamrun("apply", "-f", EXAMPLE, "--guard", env=env)
    assert result.exit_code == CHANGES, result.output
    assert "`streamrun reap --owner studio-a` from cron" in result.stderr
    store = sr.SQLiteLeaseStore(tmp_path / "streamrun" / "leases.sqlite3")
    leases = asyncio.run(store.leases("studio-a"))
    assert sorted(lease.name or "" for lease in leases) == [
        "studio-a/cam-1",
        "studio-a/cam-2",
        "studio-a/radio-1",
    ]
    assert [lease.name for lease in leases if lease.expires_at is not None] == ["studio-a/cam-1"]


def test_ctrl_c_during_apply_says_what_it_launched(
    make_emulator: Callable[..., EmulatorThread], spawn: Callable[..., Spawned]
) -> None:
    import time

    slow = make_emulator(boot_time=60)
    applying = spawn(
        ["--poll-interval", "0.02", "apply", "-f", EXAMPLE, "--wait"],
        env={"STREAMRUN_API_KEY": slow.api_key, "STREAMRUN_BASE_URL": slow.url},
        interruptible=True,
    )
    deadline = time.monotonic() + 20
    while slow.state.count() < 3 and applying.process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)  # until the launches happened: then it is waiting
    _, stderr = applying.finish(interrupt=True)
    assert applying.process.returncode == 130, stderr
    ids = {i.name: i.id for i in slow.state.instances}
    morning, radio = slow.configs[0], slow.configs[2]
    assert (
        f"this command launched 2 instance(s) of {morning}: "
        f"studio-a/cam-1 ({ids['studio-a/cam-1']}), studio-a/cam-2 ({ids['studio-a/cam-2']})"
    ) in stderr
    assert f"this command launched 1 instance(s) of {radio}" in stderr
    stops = [line for line in stderr.splitlines() if line.startswith("stop just these:")]
    assert sorted(word for line in stops for word in line.split()[6:]) == sorted(ids.values())
    assert f"`streamrun diff -f {EXAMPLE}` shows what is left to do" in stderr
    assert "Traceback" not in stderr
    assert slow.state.count("QUEUED") == 3
