"""``launch``: input refused before any request, stable names, honest timeouts."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from _cli_support import (
    LAUNCH_ROUTE,
    EmulatorThread,
    Spawned,
    as_json,
    emu,
    make_emulator,
    ok,
    retries_without_sleeping,
    spawn,
    streamrun,
    usage_error,
)
from click.testing import Result

import streamrun_async as sr
from streamrun_async.cli._leftovers import left_behind

__all__ = ["emu", "make_emulator", "retries_without_sleeping", "spawn", "streamrun"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--name", ""], "a name must be non-empty"),
        (["--name", "  "], "a name must be non-empty"),
        (["--name", " cam-1"], "without leading or trailing spaces"),
        (["--prefix", ""], "a name must be non-empty"),
        (["--override", "=x"], "ELEMENT.KEY=VALUE"),
        (["--override", ".url=x"], "is not an element id"),
        (["--override", "htmloverlay-1.=x"], "is not a setting name"),
        (["--override", "html overlay-1.url=x"], "is not an element id"),
        (["--override", "htmloverlay-1.a.b=x"], "one level only"),
        (["--override-json", "outputstream-1.destinations=[a,b]"], "is not JSON"),
        (["--override-json", "htmloverlay-1.visible="], "is not JSON"),
        (["--override", "switch-1.input=a", "--override", "switch-1.input=b"], "given twice"),
        (["--override", "switch-1.input=a", "--override-json", 'switch-1.input="b"'], "twice"),
        (["--override-json", 'outputstream-1.destinations=["d"]', "--destination", "d"], "twice"),
    ],
)
def test_bad_input_is_a_usage_error_before_any_request(
    streamrun: Callable[..., Result], emu: EmulatorThread, args: list[str], needle: str
) -> None:
    result = streamrun("launch", emu.configs[0], *args)
    usage_error(result, needle)
    assert "Traceback" not in result.output
    assert emu.sync(lambda: emu.emu.stats.total) == 0


def test_override_is_text_and_override_json_is_json(
    streamrun: Callable[..., Result], emu: EmulatorThread
) -> None:
    ok(
        streamrun(
            "launch",
            emu.configs[0],
            "--name",
            "o-1",
            "--override",
            "htmloverlay-1.url=[a,b]",  # the malformed list of the issue: text, as written
            "--override",
            "switch-1.input=123",
            "--override-json",
            'outputstream-1.destinations=["d-1","d-2"]',
            "--override-json",
            "htmloverlay-1.visible=true",
        )
    )
    (inst,) = emu.state.instances
    assert inst.overrides == {
        "htmloverlay-1": {"url": "[a,b]", "visible": True},
        "switch-1": {"input": "123"},
        "outputstream-1": {"destinations": ["d-1", "d-2"]},
    }


def test_count_rerun_launches_only_what_is_missing(
    streamrun: Callable[..., Result], emu: EmulatorThread
) -> None:
    cfg = emu.configs[0]
    first = as_json(streamrun("launch", cfg, "--count", "2", "--json"))
    assert sorted(i["name"] for i in first["launched"]) == ["cli-1", "cli-2"]
    again = as_json(streamrun("launch", cfg, "--count", "2", "--json"))
    assert {i["existing"] for i in again["launched"]} == {True}
    more = as_json(streamrun("launch", cfg, "--count", "3", "--json"))
    assert [i["name"] for i in more["launched"] if not i["existing"]] == ["cli-3"]
    assert emu.state.count(configuration_id=cfg) == 3
    assert emu.sync(lambda: emu.emu.stats.count(LAUNCH_ROUTE)) == 2
    # Another prefix is another set of names; a lone launch is PREFIX-1.
    ok(streamrun("launch", cfg, "--prefix", "stage"))
    assert sorted(i.name or "" for i in emu.state.instances) == [
        "cli-1",
        "cli-2",
        "cli-3",
        "stage-1",
    ]


def test_timeout_in_a_real_process_names_what_bills_and_how_to_stop_it(
    make_emulator: Callable[..., EmulatorThread], spawn: Callable[..., Spawned]
) -> None:
    slow = make_emulator(boot_time=60)
    env = {"STREAMRUN_API_KEY": slow.api_key, "STREAMRUN_BASE_URL": slow.url}
    launching = spawn(
        ["--poll-interval", "0.02", "launch", slow.configs[0], "--count", "2", "--wait",
         "--timeout", "0.3"],
        env=env,
    )  # fmt: skip
    stdout, stderr = launching.finish()
    assert launching.process.returncode == 1
    ids = sorted(i.id for i in slow.state.instances)
    assert len(ids) == 2
    assert "within 0.3s (--timeout)" in stderr
    assert not re.search(r"\d\.\d{2,}", stderr)  # durations are rounded
    assert "cli-1 QUEUED, cli-2 QUEUED" in stderr
    (stop_line,) = [line for line in stderr.splitlines() if line.startswith("stop just these:")]
    assert sorted(stop_line.split()[6:]) == ids
    assert stop_line.split()[3:6] == ["streamrun", "instances", "stop"]
    # The printed command stops exactly those.
    stopping = spawn(stop_line.split()[4:], env=env)
    _, stop_err = stopping.finish()
    assert stopping.process.returncode == 0, stop_err
    assert slow.state.count() == 0
    assert "QUEUED" in stdout


def test_left_behind_names_ids_states_and_lagging_lists() -> None:
    report = sr.LaunchReport()
    for name in ("a", "b", "c", "old"):
        status = sr.LaunchStatus.EXISTING if name == "old" else sr.LaunchStatus.LAUNCHED
        report.items[name] = sr.LaunchItem(name, "cfg-1", existing=name == "old", status=status)
    listed = [
        sr.Instance(id="i-a0", state=sr.InstanceState.STOPPED, name="a"),  # an earlier "a"
        sr.Instance(id="i-a", state=sr.InstanceState.RUNNING, name="a"),
        sr.Instance(id="i-b", state=sr.InstanceState.STOPPED, name="b"),
        sr.Instance(id="i-old", state=sr.InstanceState.RUNNING, name="old"),
    ]
    assert left_behind("cfg-1", report, listed) == [
        "this command launched 3 instance(s) of cfg-1: a (i-a), b (i-b), c (id not yet known)",
        "still QUEUED or RUNNING (RUNNING is billed per second): a RUNNING",
        "stop just these: streamrun instances stop i-a",
        "not listed yet (lists can lag behind a launch): c; check `streamrun instances list "
        "--configuration cfg-1`, then `streamrun instances stop --configuration cfg-1 NAME...`",
    ]
    assert left_behind("cfg-1", sr.LaunchReport(), None) == ["nothing was launched"]


def test_an_existing_name_with_other_overrides_is_updated_not_relaunched(
    streamrun: Callable[..., Result], emu: EmulatorThread
) -> None:
    # The CLI behaves as both bot examples: on_existing="update".
    cfg = emu.configs[0]
    ok(streamrun("launch", cfg, "--name", "k-1", "--override", "htmloverlay-1.url=https://a"))
    again = ok(
        streamrun("launch", cfg, "--name", "k-1", "--override", "htmloverlay-1.url=https://b")
    )
    assert f"already in {cfg}, overrides updated: k-1" in again.stderr
    assert len(emu.state.instances) == 1
    assert emu.state.instances[0].overrides == {"htmloverlay-1": {"url": "https://b"}}
    same = ok(
        streamrun("launch", cfg, "--name", "k-1", "--override", "htmloverlay-1.url=https://b")
    )
    assert f"already in {cfg}, not launched again: k-1" in same.stderr
    assert emu.sync(lambda: emu.emu.stats.count("PATCH /instances/{instanceId}/overrides")) == 1
