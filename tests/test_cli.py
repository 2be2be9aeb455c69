"""The ``streamrun`` CLI through click's runner, against an emulator on loopback, and in
real processes (the script, Ctrl-C, the emulator command, the demo)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from _cli_support import (
    LAUNCH_ROUTE,
    EmulatorThread,
    Spawned,
    api_error,
    as_json,
    emu,
    launch,
    make_emulator,
    ok,
    retries_without_sleeping,
    spawn,
    streamrun,
    usage_error,
)
from click.testing import CliRunner, Result

from streamrun_async.cli._app import cli, parse_assignments
from streamrun_async.testing import Fault

# The fixtures shared by the CLI tests, used by name (listed so that linters see the use).
__all__ = ["emu", "make_emulator", "retries_without_sleeping", "spawn", "streamrun"]


# -- the command tree ---------------------------------------------------------------


def test_help_lists_every_command() -> None:
    runner = CliRunner()
    top = ok(runner.invoke(cli, ["--help"])).stdout
    for command in (
        "configurations",
        "launch",
        "requests",
        "instances",
        "overrides",
        "outputs",
        "destinations",
        "watch",
        "emulator",
        "demo",
    ):
        assert command in top
    for group, subcommands in {
        "configurations": ["list", "get"],
        "requests": ["get", "wait"],
        "instances": ["list", "get", "stop", "stop-all", "restart"],
        "overrides": ["get", "set"],
        "outputs": ["live", "offline"],
        "destinations": ["list"],
    }.items():
        assert sorted(cli.commands[group].commands) == sorted(subcommands)  # type: ignore[attr-defined]
    for option in ("--api-key", "--base-url", "--json", "STREAMRUN_API_KEY"):
        assert option in top


def test_version() -> None:
    result = ok(CliRunner().invoke(cli, ["--version"]))
    assert result.stdout.startswith("streamrun, version ")


def test_unknown_command_and_option_are_usage_errors() -> None:
    usage_error(CliRunner().invoke(cli, ["nope"]), "No such command")
    usage_error(CliRunner().invoke(cli, ["instances", "list", "--nope"]), "No such option")


# -- configurations and destinations --------------------------------------------------


def test_configurations_list_table_and_json(
    streamrun: Callable[..., Result], emu: EmulatorThread
) -> None:
    table = ok(streamrun("configurations", "list")).stdout
    assert "Morning Show" in table
    assert emu.configs[0] in table
    assert "htmloverlay-1" in table
    items = as_json(streamrun("--json", "configurations", "list"))
    assert [c["id"] for c in items] == list(emu.configs)
    assert items[0]["name"] == "Morning Show"
    assert {"id", "title", "type"} <= set(items[0]["elements"][0])
    # --json also works after the command.
    assert as_json(streamrun("configurations", "list", "--json")) == items


def test_configurations_get(streamrun: Callable[..., Result], emu: EmulatorThread) -> None:
    shown = ok(streamrun("configurations", "get", emu.configs[1])).stdout
    assert "Esports Finals" in shown
    assert "outputstream-2" in shown
    cfg = as_json(streamrun("--json", "configurations", "get", emu.configs[1]))
    assert cfg["id"] == emu.configs[1]
    assert "raw" not in cfg


def test_configurations_get_unknown_is_one_error_line(streamrun: Callable[..., Result]) -> None:
    api_error(streamrun("configurations", "get", "cfg-nope"), "404", "cfg-nope")
    api_error(streamrun("--json", "configurations", "get", "cfg-nope"), "404")


def test_destinations_list(streamrun: Callable[..., Result], emu: EmulatorThread) -> None:
    assert "Twitch main channel" in ok(streamrun("destinations", "list")).stdout
    items = as_json(streamrun("--json", "destinations", "list"))
    assert [d["id"] for d in items] == list(emu.emu.destination_ids)
    assert items[0]["platform"] == "twitch"


# -- launch ---------------------------------------------------------------------------


def test_launch_count_overrides_destination_wait_json(
    streamrun: Callable[..., Result], emu: EmulatorThread
) -> None:
    cfg = emu.configs[0]
    destination = emu.emu.destination_ids[0]
    out = as_json(
        streamrun(
            "--json",
            "launch",
            cfg,
            "--count",
            "2",
            "--override",
            "htmloverlay-1.url=https://overlay.example/a",
            "--override",
            "switch-1.input=inputstream-1",
            "--destination",
            destination,
            "--wait",
            "--timeout",
            "10",
        )
    )
    assert out["ok"] is True
    assert out["configuration_id"] == cfg
    assert len(out["launched"]) == 2
    assert {item["state"] for item in out["launched"]} == {"RUNNING"}
    assert all(item["instance_id"] and item["request_id"] for item in out["launched"])
    state = emu.state
    assert state.count("RUNNING", configuration_id=cfg) == 2
    for inst in state.instances:
        assert inst.overrides == {
            "htmloverlay-1": {"url": "https://overlay.example/a"},
            "switch-1": {"input": "inputstream-1"},
            "outputstream-1": {"destinations": [destination]},
        }
    assert sorted(i.name or "" for i in state.instances) == sorted(
        item["name"] for item in out["launched"]
    )


def test_launch_names_without_wait_then_again_launches_nothing(
    streamrun: Callable[..., Result], emu: EmulatorThread
) -> None:
    cfg = emu.configs[0]
    first = ok(streamrun("launch", cfg, "--name", "cam-1", "--name", "cam-2"))
    assert "cam-1" in first.stdout
    assert "cam-2" in first.stdout
    assert "streamrun requests wait ireq-" in first.stderr
    again = as_json(streamrun("--json", "launch", cfg, "--name", "cam-1"))
    # The name exists already: reported, not launched a second time.
    assert [(i["name"], i["existing"]) for i in again["launched"]] == [("cam-1", True)]
    assert emu.state.count() == 2
    assert emu.sync(lambda: emu.emu.stats.count(LAUNCH_ROUTE)) == 1


def test_launch_default_is_one_named_instance(
    streamrun: Callable[..., Result], emu: EmulatorThread
) -> None:
    out = as_json(streamrun("--json", "launch", emu.configs[2]))
    assert len(out["launched"]) == 1
    assert out["launched"][0]["name"].startswith("cli-")
    assert out["launched"][0]["instance_id"] == emu.state.instances[0].id


def test_launch_survives_a_lost_answer_exactly_once(
    streamrun: Callable[..., Result], emu: EmulatorThread
) -> None:
    emu.sync(lambda: emu.emu.faults.script(LAUNCH_ROUTE, [Fault.DROP_AFTER]))
    out = as_json(streamrun("--json", "launch", emu.configs[0], "--count", "3", "--wait"))
    assert out["ok"] is True
    assert out["reconciliations"] == 1
    assert emu.state.count("RUNNING") == 3


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--count", "2", "--name", "a"], "either --count or --name"),
        (["--name", "a", "--name", "a"], "must be different"),
        (["--override", "no-dot"], "ELEMENT.KEY=VALUE"),
        (["--override", "htmloverlay-1.url"], "ELEMENT.KEY=VALUE"),
        (["--count", "0"], "--count"),
        (["--timeout", "0"], "--timeout"),
    ],
)
def test_launch_usage_errors(
    streamrun: Callable[..., Result], emu: EmulatorThread, args: list[str], needle: str
) -> None:
    usage_error(streamrun("launch", emu.configs[0], *args), needle)
    assert emu.state.count() == 0


def test_launch_api_errors_exit_1(streamrun: Callable[..., Result], emu: EmulatorThread) -> None:
    api_error(streamrun("launch", "cfg-nope"), "404", "not launched")
    api_error(
        streamrun("launch", emu.configs[0], "--override", "nothere-1.x=1"),
        "400",
        "nothere-1",
    )
    assert emu.state.count() == 0


def test_launch_wait_timeout_reports_and_exits_1(
    make_emulator: Callable[..., EmulatorThread],
) -> None:
    slow = make_emulator(boot_time=60)
    env = {"STREAMRUN_API_KEY": slow.api_key, "STREAMRUN_BASE_URL": slow.url}
    result = CliRunner().invoke(
        cli,
        ["--poll-interval", "0.02", "launch", slow.configs[0], "--wait", "--timeout", "0.2"],
        env=env,
    )
    assert result.exit_code == 1
    assert "QUEUED" in result.stdout  # what launched is still shown
    assert "error: not every instance was RUNNING within 0.2s (--timeout)" in result.stderr
    (inst,) = slow.state.instances
    assert f"this command launched 1 instance(s) of {slow.configs[0]}: cli-1 ({inst.id})" in (
        result.stderr
    )
    assert "still QUEUED or RUNNING (RUNNING is billed per second): cli-1 QUEUED" in result.stderr
    assert f"stop just these: streamrun instances stop {inst.id}\n" in result.stderr


# -- instance requests -----------------------------------------------------------------


def test_requests_get_and_wait(streamrun: Callable[..., Result], emu: EmulatorThread) -> None:
    out = as_json(streamrun("--json", "launch", emu.configs[0], "--count", "2"))
    request_id = out["launched"][0]["request_id"]
    shown = ok(streamrun("requests", "get", request_id)).stdout
    assert request_id in shown
    waited = as_json(streamrun("--json", "requests", "wait", request_id, "--timeout", "5"))
    assert waited["id"] == request_id
    assert waited["state"] == "RUNNING"
    assert len(waited["instance_ids"]) == 2
    assert "RUNNING" in ok(streamrun("requests", "wait", request_id)).stdout


def test_requests_wait_timeout_and_unknown(
    make_emulator: Callable[..., EmulatorThread],
) -> None:
    slow = make_emulator(boot_time=60)
    env = {"STREAMRUN_API_KEY": slow.api_key, "STREAMRUN_BASE_URL": slow.url}
    runner = CliRunner()
    out = json.loads(ok(runner.invoke(cli, ["--json", "launch", slow.configs[0]], env=env)).stdout)
    request_id = out["launched"][0]["request_id"]
    base = ["--poll-interval", "0.02", "requests", "wait"]
    timed_out = runner.invoke(cli, [*base, request_id, "--timeout", "0.2"], env=env)
    api_error(timed_out, "not reached within", "QUEUED")
    api_error(runner.invoke(cli, [*base, "ireq-nope"], env=env), "ireq-nope")


# -- instances ---------------------------------------------------------------------------


def test_instances_list_get_restart(streamrun: Callable[..., Result], emu: EmulatorThread) -> None:
    a, b = launch(emu, ["a-1", "a-2"], cfg=0)
    (c,) = launch(emu, ["c-1"], cfg=1)
    listed = as_json(streamrun("--json", "instances", "list"))
    assert sorted(i["id"] for i in listed) == sorted([a, b, c])
    only = as_json(streamrun("instances", "list", "--configuration", emu.configs[1], "--json"))
    assert [i["id"] for i in only] == [c]
    assert "a-1" in ok(streamrun("instances", "list")).stdout
    got = as_json(streamrun("--json", "instances", "get", a))
    assert got["name"] == "a-1"
    assert got["state"] == "RUNNING"
    assert "a-1" in ok(streamrun("instances", "get", a)).stdout
    restarted = as_json(streamrun("--json", "instances", "restart", a))
    assert restarted["id"] == a
    assert restarted["state"] == "STARTING"
    api_error(streamrun("instances", "get", "inst-nope"), "no instance has the id or name")


def test_instances_list_empty(streamrun: Callable[..., Result]) -> None:
    result = ok(streamrun("instances", "list"))
    assert result.stdout == ""
    assert "no instances" in result.stderr
    assert as_json(streamrun("--json", "instances", "list")) == []


def test_instances_stop_reports_each(streamrun: Callable[..., Result], emu: EmulatorThread) -> None:
    a, b = launch(emu, ["s-1", "s-2"])
    assert ok(streamrun("instances", "stop", a)).stdout == f"stopped {a} (s-1)\n"
    # Already gone is what stop wants: exit 0, said on stderr.
    result = ok(streamrun("--json", "instances", "stop", b, "inst-nope", a))
    out = json.loads(result.stdout)
    assert out["stopped"] == [{"id": b, "name": "s-2"}]
    assert out["already_gone"] == ["inst-nope", a]
    assert out["failed"] == []
    assert "inst-nope: already gone, nothing to stop (no instance has this id" in result.stderr
    assert emu.state.count() == 0
    usage_error(streamrun("instances", "stop"), "Missing argument")


def test_stop_all_asks_first(streamrun: Callable[..., Result], emu: EmulatorThread) -> None:
    launch(emu, ["x-1", "x-2"], cfg=0)
    launch(emu, ["y-1"], cfg=1)
    refused = streamrun("instances", "stop-all", input="n\n")
    assert refused.exit_code == 1
    assert "Stop all 3 instance(s) of the account (3 RUNNING), and any launched" in refused.stderr
    assert refused.stdout == ""
    assert emu.state.count() == 3
    one_config = ok(
        streamrun("instances", "stop-all", "--configuration", emu.configs[1], input="y\n")
    )
    assert one_config.stdout == (
        f"asked the API to stop every instance of configuration {emu.configs[1]}; "
        "1 were listed before\n"
    )
    assert emu.state.count() == 2
    # --json keeps the prompt off stdout.
    confirmed = streamrun("--json", "instances", "stop-all", input="y\n")
    assert json.loads(ok(confirmed).stdout)["sent"] is True
    assert "Stop all 2" in confirmed.stderr
    assert emu.state.count() == 0


def test_stop_all_yes_and_nothing_to_stop(
    streamrun: Callable[..., Result], emu: EmulatorThread
) -> None:
    ids = launch(emu, ["z-1", "z-2"])
    out = as_json(streamrun("--json", "instances", "stop-all", "--yes"))
    # Honest: what was listed before the call, and what is still listed after it.
    assert out == {
        "scope": "the account",
        "sent": True,
        "listed_before": ids,
        "live_after": [],
    }
    assert emu.state.count() == 0
    nothing = ok(streamrun("instances", "stop-all"))
    assert "nothing to stop (no call sent)" in nothing.stderr
    assert as_json(streamrun("--json", "instances", "stop-all", "-y"))["sent"] is False
    assert emu.sync(lambda: emu.emu.stats.count("DELETE /instances")) == 1


# -- overrides and outputs -----------------------------------------------------------


def test_overrides_get_and_set(streamrun: Callable[..., Result], emu: EmulatorThread) -> None:
    (inst,) = launch(emu, ["o-1"])
    assert "no overrides" in ok(streamrun("overrides", "get", inst)).stderr
    merged = as_json(
        streamrun(
            "--json",
            "overrides",
            "set",
            inst,
            "switch-1.input=inputstream-1",
            "htmloverlay-1.label=123",
            "--override-json",
            "htmloverlay-1.visible=true",
        )
    )
    # Positional values are text, always; --override-json reads JSON.
    expected = {
        "switch-1": {"input": "inputstream-1"},
        "htmloverlay-1": {"label": "123", "visible": True},
    }
    assert merged == expected
    assert as_json(streamrun("--json", "overrides", "get", inst)) == expected
    table = ok(streamrun("overrides", "get", inst)).stdout
    assert "switch-1" in table
    assert "inputstream-1" in table
    usage_error(streamrun("overrides", "set", inst, "switch-1"), "ELEMENT.KEY=VALUE")
    api_error(streamrun("overrides", "set", inst, "nothere-1.x=1"), "400")


def test_outputs_live_and_offline(streamrun: Callable[..., Result], emu: EmulatorThread) -> None:
    launch(emu, ["l-1", "l-2"])
    cfg = emu.configs[0]
    assert "LIVE" in ok(streamrun("outputs", "live", cfg)).stdout
    assert {i.outputs for i in emu.state.instances} == {"LIVE"}
    out = as_json(streamrun("--json", "outputs", "offline", cfg))
    assert out == {"configuration_id": cfg, "outputs": "OFFLINE"}
    assert {i.outputs for i in emu.state.instances} == {"OFFLINE"}
    api_error(streamrun("outputs", "live", "cfg-nope"), "404")


# -- watch ---------------------------------------------------------------------------------


def test_watch_json_lines(streamrun: Callable[..., Result], emu: EmulatorThread) -> None:
    ids = launch(emu, ["w-1", "w-2"])
    result = ok(streamrun("--json", "watch", "--timeout", "0.3"))
    changes = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(c["instance"]["id"] for c in changes) == sorted(ids)
    assert {c["kind"] for c in changes} == {"ADDED"}
    assert changes[0]["instance"]["state"] == "RUNNING"


def test_watch_plain_lines_and_configuration_filter(
    streamrun: Callable[..., Result], emu: EmulatorThread
) -> None:
    launch(emu, ["p-1"], cfg=0)
    launch(emu, ["q-1"], cfg=1)
    result = ok(streamrun("watch", "--configuration", emu.configs[1], "--timeout", "0.3"))
    assert "ADDED" in result.stdout
    assert "q-1" in result.stdout
    assert "p-1" not in result.stdout
    assert "stopped watching after 1 change(s)" in result.stderr


def _watch_failed(result: Result, *needles: str) -> str:
    """Exit 1 with one ``error:`` line on stderr naming ``needles``; no traceback, no key."""
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0]
    assert "stopped watching" not in result.stderr
    assert "Traceback" not in result.output
    return errors[0]


@pytest.mark.parametrize("output", ["plain", "json"])
def test_watch_of_an_unreachable_server_fails_within_its_timeout(
    closed_port_url: str, output: str
) -> None:
    key = "sk-watch-secret-0123456789"
    args = ["--poll-interval", "0.02", "--api-key", key, "--base-url", closed_port_url]
    args += ["--json"] if output == "json" else []
    # --timeout is far shorter than PollPolicy.give_up_after (120 s): it used to end quietly.
    result = CliRunner().invoke(cli, [*args, "watch", "--timeout", "0.3"])
    _watch_failed(result, "could not connect", "--base-url")
    assert result.stdout == ""
    assert key not in result.output


def test_watch_with_a_wrong_key_fails_at_once(
    make_emulator: Callable[..., EmulatorThread],
) -> None:
    emu = make_emulator()
    key = "sk-wrong-but-secret-0123456789"
    env = {"STREAMRUN_API_KEY": key, "STREAMRUN_BASE_URL": emu.url}
    # A 401 is permanent: the watch ends with it long before its (generous) timeout.
    result = CliRunner().invoke(
        cli, ["--poll-interval", "0.02", "watch", "--timeout", "60"], env=env
    )
    _watch_failed(result, "401", "--api-key")
    assert result.stdout == ""
    assert key not in result.output


def test_watch_whose_polls_start_failing_ends_with_the_poll_error(
    streamrun: Callable[..., Result], emu: EmulatorThread
) -> None:
    ids = launch(emu, ["d-1"])

    def break_lists() -> None:
        # The first list answers; every later one is garbled, as from a dying server.
        emu.emu.faults.script("GET /instances", [None])
        emu.emu.faults.set_rate(Fault.MALFORMED_JSON, 1.0, route="GET /instances")

    emu.sync(break_lists)
    result = streamrun("--json", "watch", "--timeout", "0.5")
    _watch_failed(result)
    # What it saw before the failures is on stdout, the error on stderr.
    assert [json.loads(line)["instance"]["id"] for line in result.stdout.splitlines()] == ids
    assert emu.api_key not in result.output


# -- global options and errors ---------------------------------------------------------------


def test_missing_key_is_a_usage_error(emu: EmulatorThread) -> None:
    result = CliRunner().invoke(
        cli,
        ["--base-url", emu.url, "configurations", "list"],
        env={"STREAMRUN_API_KEY": None},
    )
    usage_error(result, "no API key")


def test_wrong_key_is_an_api_error_with_a_hint(streamrun: Callable[..., Result]) -> None:
    api_error(streamrun("--api-key", "sk-wrong", "configurations", "list"), "401", "--api-key")


def test_plain_http_to_a_remote_host_is_refused(streamrun: Callable[..., Result]) -> None:
    usage_error(
        streamrun("--base-url", "http://streamrun.example", "configurations", "list"),
        "plain http",
    )


def test_unreachable_base_url(streamrun: Callable[..., Result]) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = streamrun("--base-url", f"http://127.0.0.1:{port}", "configurations", "list")
    api_error(result, "could not connect", "--base-url")


def test_server_errors_are_retried_quietly(
    streamrun: Callable[..., Result], emu: EmulatorThread
) -> None:
    emu.sync(lambda: emu.emu.faults.script("GET /configurations", [Fault.HTTP_503]))
    assert len(as_json(streamrun("--json", "configurations", "list"))) == 4


def test_the_key_is_never_printed(streamrun: Callable[..., Result], emu: EmulatorThread) -> None:
    (inst,) = launch(emu, ["k-1"])
    results = [
        streamrun("configurations", "list"),
        streamrun("--json", "instances", "get", inst),
        streamrun("launch", emu.configs[0], "--wait"),
        streamrun("instances", "get", "inst-nope"),
        streamrun("--api-key", emu.api_key + "x", "instances", "list"),
        streamrun("--api-key", emu.api_key, "--help"),
        streamrun("--api-key", emu.api_key, "instances", "stop-all", input="n\n"),
    ]
    for result in results:
        assert emu.api_key not in result.output


def test_parse_assignments() -> None:
    assert parse_assignments(
        ["htmloverlay-1.url=https://x/?a=b", "a-1.n=3", "a-1.list=[1]", 'a-1.s="3"', "a-1.e="]
    ) == {
        "htmloverlay-1": {"url": "https://x/?a=b"},
        "a-1": {"n": "3", "list": "[1]", "s": '"3"', "e": ""},
    }
    assert parse_assignments(
        ["a-1.n=3", "a-1.list=[1]", 'a-1.s="3"', "a-1.o={}"], as_json=True
    ) == {"a-1": {"n": 3, "list": [1], "s": "3", "o": {}}}


# -- processes: the script, Ctrl-C, the emulator command, the demo ------------------------


def test_core_package_imports_neither_click_nor_rich() -> None:
    code = (
        "import sys, streamrun_async, streamrun_async.testing; "
        "bad = [m for m in ('click', 'rich') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


def test_missing_cli_extra_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['rich'] = None; "
        "from streamrun_async.cli import main; main(['--help'])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert "pip install 'streamrun-async[cli]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_emulator_command_serves_until_ctrl_c(spawn: Callable[..., Spawned]) -> None:
    server = spawn(["--json", "emulator", "--port", "0", "--boot-time", "0"], interruptible=True)
    info = json.loads(server.line())
    assert info["url"].startswith("http://127.0.0.1:")
    env = {"STREAMRUN_API_KEY": info["api_key"], "STREAMRUN_BASE_URL": info["url"]}
    listed = CliRunner().invoke(cli, ["--json", "configurations", "list"], env=env)
    assert [c["id"] for c in as_json(listed)] == info["configuration_ids"]
    _, stderr = server.finish(interrupt=True)
    assert server.process.returncode == 0
    assert "emulator stopped" in stderr
    assert "Traceback" not in stderr


def test_ctrl_c_during_watch_says_what_it_left(
    emu: EmulatorThread, spawn: Callable[..., Spawned]
) -> None:
    launch(emu, ["c-1", "c-2"])
    watching = spawn(
        ["--poll-interval", "0.02", "--json", "watch"],
        env={"STREAMRUN_API_KEY": emu.api_key, "STREAMRUN_BASE_URL": emu.url},
        interruptible=True,
    )
    lines = [watching.line(), watching.line()]  # both ADDED: it is watching
    rest, stderr = watching.finish(interrupt=True)
    assert watching.process.returncode == 130
    assert len([json.loads(line) for line in lines + rest.splitlines()]) == 2
    assert "interrupted: stopped watching; the 2 instance(s) seen keep running" in stderr
    assert "Traceback" not in stderr
    assert emu.state.count() == 2


def test_ctrl_c_during_launch_wait_says_what_keeps_running(
    make_emulator: Callable[..., EmulatorThread], spawn: Callable[..., Spawned]
) -> None:
    slow = make_emulator(boot_time=60)
    launching = spawn(
        ["launch", slow.configs[0], "--name", "cam-1", "--name", "cam-2", "--wait"],
        env={"STREAMRUN_API_KEY": slow.api_key, "STREAMRUN_BASE_URL": slow.url},
        interruptible=True,
    )
    deadline = time.monotonic() + 20
    while slow.state.count() < 2 and launching.process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)  # until the launch has happened: then it is waiting
    stdout, stderr = launching.finish(interrupt=True)
    assert launching.process.returncode == 130, stderr
    assert stdout == ""
    ids = {inst.name: inst.id for inst in slow.state.instances}
    assert (
        f"interrupted: this command launched 2 instance(s) of {slow.configs[0]}: "
        f"cam-1 ({ids['cam-1']}), cam-2 ({ids['cam-2']})"
    ) in stderr
    assert "still QUEUED or RUNNING (RUNNING is billed per second): cam-1 QUEUED, cam-2 QUEUED" in (
        stderr
    )
    assert f"stop just these: streamrun instances stop {ids['cam-1']} {ids['cam-2']}\n" in stderr
    assert "stop-all" not in stderr  # never the command that stops the whole account
    assert "Traceback" not in stderr
    assert slow.state.count("QUEUED") == 2  # Ctrl-C stops the command, not the instances


def test_demo_in_process_with_faults_is_exactly_once() -> None:
    # Instant boots: the faults (scripted lost answers, 503, 429) are the whole story.
    result = CliRunner().invoke(
        cli, ["--json", "demo", "--instances", "8", "--faults", "--boot-time", "0"]
    )
    out = as_json(result)
    assert out["exactly_once"] is True
    assert out["ok"] is True
    assert out["stopped"] is True
    assert out["planned"] == out["instances_live"] == 8
    assert out["reconciliations"] == 2
    assert out["retries"] >= 2
    assert out["faults_injected"]["drop_after"] == 2
    assert {row["state"] for row in out["instances"]} == {"RUNNING"}
    assert "Exactly once: yes" in result.stderr  # the human story goes to stderr


def test_demo_subprocess_prints_the_final_table(spawn: Callable[..., Spawned]) -> None:
    started = time.monotonic()
    demo = spawn(["demo", "--instances", "6"])
    stdout, stderr = demo.finish(timeout=60)
    assert demo.process.returncode == 0, stderr
    assert time.monotonic() - started < 20
    assert "What launched" in stdout
    assert "API calls" in stdout
    rows = [line for line in stdout.splitlines() if " inst-" in line and line.endswith("RUNNING")]
    assert len(rows) == 6
    assert not {"│", "─", "┃", "━"} & set(stdout)  # piped: plain aligned text, no box drawing
    assert "6/6 instance(s) RUNNING" in stdout
    assert "Exactly once: yes" in stdout
    assert "Stopped everything: 0 instance(s) left" in stdout
    assert "\x1b[" not in stdout  # not a terminal: no colours, no cursor tricks
