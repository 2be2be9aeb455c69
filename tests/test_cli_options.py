"""Global options before or after the command, ``-o`` formats, and stdout carrying data only."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import click
import pytest
from _cli_support import (
    EmulatorThread,
    Spawned,
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

from streamrun_async.cli._app import cli

__all__ = ["emu", "make_emulator", "retries_without_sleeping", "spawn", "streamrun"]

_BOX = set("│─┃━┏┓┗┛┡┩└┘┌┐╭╮╰╯")


def bare(emu: EmulatorThread, *args: str) -> Result:
    """The CLI with no key or base URL in the environment: only the options say them."""
    env = {"STREAMRUN_API_KEY": None, "STREAMRUN_BASE_URL": None}
    return CliRunner().invoke(cli, list(args), env=env)


@pytest.mark.parametrize(
    "where",
    [
        "before",  # streamrun --api-key K --base-url U configurations list
        "after",  # streamrun configurations list --api-key K --base-url U
        "split",  # streamrun --api-key K configurations list --base-url U
    ],
)
def test_key_and_base_url_before_or_after_the_command(emu: EmulatorThread, where: str) -> None:
    key = ["--api-key", emu.api_key]
    url = ["--base-url", emu.url]
    command = ["configurations", "list", "-o", "ids"]
    args = {
        "before": [*key, *url, *command],
        "after": [*command, *key, *url],
        "split": [*key, *command, *url],
    }[where]
    result = ok(bare(emu, *args))
    assert result.stdout.split() == list(emu.configs)


def test_the_key_after_the_command_beats_the_environment(emu: EmulatorThread) -> None:
    env = {"STREAMRUN_API_KEY": "sk-wrong", "STREAMRUN_BASE_URL": emu.url}
    result = CliRunner().invoke(
        cli, ["instances", "list", "--json", "--api-key", emu.api_key], env=env
    )
    assert as_json(result) == []


def test_missing_key_error_names_options_that_work(emu: EmulatorThread) -> None:
    result = bare(emu, "configurations", "list", "--base-url", emu.url)
    usage_error(result, "pass --api-key")
    # ...and the option it names works there.
    assert ok(bare(emu, "configurations", "list", "--base-url", emu.url, "--api-key", emu.api_key))


def test_a_base_url_ending_in_api_v1_is_refused_before_any_request(emu: EmulatorThread) -> None:
    result = bare(emu, "configurations", "list", "--api-key", emu.api_key, "--base-url",
                  emu.url + "/api/v1")  # fmt: skip
    usage_error(result, "/api/v1")
    assert emu.sync(lambda: emu.emu.stats.total) == 0


def test_output_formats(streamrun: Callable[..., Result], emu: EmulatorThread) -> None:
    a, b = launch(emu, ["cam-1", "cam-2"])
    ids = ok(streamrun("instances", "list", "-o", "ids")).stdout
    assert sorted(ids.split("\n")[:-1]) == sorted([a, b])  # one per line, nothing else
    assert ok(streamrun("-o", "ids", "instances", "list")).stdout == ids
    table = ok(streamrun("instances", "list")).stdout
    assert table.splitlines()[0].split() == [
        "ID",
        "NAME",
        "CONFIGURATION",
        "STATE",
        "OUTPUTS",
        "AGE",
    ]
    wide = ok(streamrun("instances", "list", "-o", "wide")).stdout
    assert wide.splitlines()[0].split()[-2:] == ["REQUEST", "CREATED"]
    request_id = emu.state.instances[0].request_id
    assert request_id in wide
    assert request_id not in table
    as_json_output = json.loads(ok(streamrun("instances", "list", "-o", "json")).stdout)
    assert sorted(i["id"] for i in as_json_output) == sorted([a, b])
    # -o ids of one object: its id.
    assert ok(streamrun("instances", "get", "cam-1", "-o", "ids")).stdout == f"{a}\n"
    usage_error(streamrun("instances", "list", "-o", "yaml"), "'yaml' is not one of")


def test_piped_tables_are_plain_aligned_text(
    streamrun: Callable[..., Result], emu: EmulatorThread
) -> None:
    launch(emu, ["a-very-long-instance-name-" + "x" * 60])
    for args in (["instances", "list"], ["configurations", "list"], ["destinations", "list"]):
        out = ok(streamrun(*args)).stdout
        assert not _BOX & set(out), out
        assert "\x1b[" not in out
        lines = out.splitlines()
        header = lines[0]
        # Every column starts where its header does: aligned, one row per line.
        starts = [m.start() for m in re.finditer(r"(?<!\S)\S", header)]
        for line in lines[1:]:
            for start in starts:
                assert line[start - 1 : start] in ("", " ")
                assert line[start] != " "
    # Ids are never wrapped or cut, however wide the row.
    (inst,) = emu.state.instances
    row = ok(streamrun("instances", "list")).stdout.splitlines()[1]
    assert row.startswith(inst.id + " ")
    assert "x" * 60 in row


def test_details_are_key_value_lines_when_piped(
    streamrun: Callable[..., Result], emu: EmulatorThread
) -> None:
    shown = ok(streamrun("configurations", "get", emu.configs[1])).stdout
    assert not _BOX & set(shown)
    assert shown.splitlines()[0].split() == ["id", emu.configs[1]]
    assert "  ELEMENT" in shown  # the elements table, indented under its key


def test_stdout_is_data_only(streamrun: Callable[..., Result], emu: EmulatorThread) -> None:
    empty = ok(streamrun("instances", "list"))
    assert empty.stdout == ""
    assert "no instances" in empty.stderr
    launched = ok(streamrun("launch", emu.configs[0], "--name", "d-1", "-o", "ids"))
    (inst,) = emu.state.instances
    assert launched.stdout == f"{inst.id}\n"
    assert "streamrun requests wait" in launched.stderr
    again = ok(streamrun("launch", emu.configs[0], "--name", "d-1", "-o", "ids"))
    assert "already in" in again.stderr
    assert again.stdout == f"{inst.id}\n"


def test_help_shows_the_new_commands_with_examples() -> None:
    top = ok(CliRunner().invoke(cli, ["--help"])).stdout
    for command in ("probe", "apply", "diff"):
        assert re.search(rf"^  {command}\s", top, re.MULTILINE), command
    assert "streamrun apply -f fleet.toml" in top
    assert "streamrun probe" in top
    assert "-o ids | xargs streamrun instances stop" in top
    assert "apply/diff: 0 nothing to change, 3 changes made" in top
    sub = ok(CliRunner().invoke(cli, ["instances", "stop", "--help"])).stdout
    for option in ("--api-key", "--base-url", "-o, --output", "--json", "--strict"):
        assert option in sub


def test_options_after_the_command_in_a_real_process(
    emu: EmulatorThread, spawn: Callable[..., Spawned]
) -> None:
    launch(emu, ["p-1"])
    listing = spawn(
        ["instances", "list", "--api-key", emu.api_key, "--base-url", emu.url, "-o", "wide"],
        env={"STREAMRUN_API_KEY": "", "STREAMRUN_BASE_URL": ""},
    )
    stdout, stderr = listing.finish()
    assert listing.process.returncode == 0, stderr
    assert stdout.splitlines()[0].split()[-1] == "CREATED"
    assert "p-1" in stdout
    assert not _BOX & set(stdout)
    assert emu.api_key not in stdout + stderr


def _groups(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every group under ``group`` (by its path of names), nested ones too."""
    found = []
    for name, sub in group.commands.items():
        if isinstance(sub, click.Group):
            found += [(*path, name), *_groups(sub, (*path, name))]
    return found


@pytest.mark.parametrize("path", _groups(cli), ids=" ".join)
def test_every_group_takes_the_global_options(path: tuple[str, ...]) -> None:
    # `streamrun GROUP --api-key K --base-url U -o ids --json --help` parses at every level.
    args = [*path, "--api-key", "sk-x", "--base-url", "http://127.0.0.1:1", "-o", "ids"]
    result = ok(CliRunner().invoke(cli, [*args, "--json", "--help"]))
    for option in ("--api-key", "--base-url", "-o, --output", "--json"):
        assert option in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["instances", "{key}", "{url}", "list", "-o", "json"],
        ["configurations", "{key}", "list", "{url}", "--json"],
        ["destinations", "{url}", "-o", "json", "list", "{key}"],
    ],
    ids=["group-both", "group-key-leaf-url", "group-url-and-output"],
)
def test_global_options_between_the_group_and_the_command(
    emu: EmulatorThread, args: list[str]
) -> None:
    given = {"{key}": ["--api-key", emu.api_key], "{url}": ["--base-url", emu.url]}
    full = [word for arg in args for word in given.get(arg, [arg])]
    result = as_json(bare(emu, *full))
    assert isinstance(result, list)
    if full[0] == "configurations":
        assert [c["id"] for c in result] == list(emu.configs)


def test_the_option_closest_to_the_command_wins(emu: EmulatorThread) -> None:
    env = {"STREAMRUN_API_KEY": "sk-env-wrong", "STREAMRUN_BASE_URL": emu.url}
    args = ["instances", "--api-key", "sk-group-wrong", "list", "--api-key", emu.api_key]
    assert as_json(CliRunner().invoke(cli, [*args, "--json"], env=env)) == []
    # ...and a group's option beats the top-level one and the environment.
    args = ["--api-key", "sk-top-wrong", "instances", "--api-key", emu.api_key, "list"]
    assert as_json(CliRunner().invoke(cli, [*args, "--json"], env=env)) == []
    args = ["instances", "-o", "table", "list", "-o", "ids"]
    launched = launch(emu, ["o-1"])
    result = ok(CliRunner().invoke(cli, [*args, "--api-key", emu.api_key], env=env))
    assert result.stdout.split() == launched
