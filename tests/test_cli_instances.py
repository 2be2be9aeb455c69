"""Instances named by id or by name, and stopping that is idempotent."""

from __future__ import annotations

import json
from collections.abc import Callable

from _cli_support import (
    EmulatorThread,
    api_error,
    as_json,
    emu,
    launch,
    make_emulator,
    ok,
    retries_without_sleeping,
    streamrun,
)
from click.testing import Result

__all__ = ["emu", "make_emulator", "retries_without_sleeping", "streamrun"]


def test_get_restart_and_overrides_by_name(
    streamrun: Callable[..., Result], emu: EmulatorThread
) -> None:
    (cam,) = launch(emu, ["cam-1"])
    assert as_json(streamrun("instances", "get", "cam-1", "--json"))["id"] == cam
    assert as_json(streamrun("instances", "restart", "cam-1", "--json"))["id"] == cam
    merged = as_json(
        streamrun("overrides", "set", "cam-1", "switch-1.input=inputstream-2", "--json")
    )
    assert merged == {"switch-1": {"input": "inputstream-2"}}
    assert as_json(streamrun("overrides", "get", "cam-1", "--json")) == merged
    assert emu.state.instances[0].overrides == merged


def test_an_id_wins_over_a_name(streamrun: Callable[..., Result], emu: EmulatorThread) -> None:
    (first,) = launch(emu, ["cam-1"])
    # A second instance whose *name* is the first one's id.
    (second,) = launch(emu, [first], cfg=1)
    assert as_json(streamrun("instances", "get", first, "--json"))["id"] == first
    assert as_json(streamrun("instances", "get", second, "--json"))["id"] == second


def test_an_ambiguous_name_lists_the_candidates_and_touches_nothing(
    streamrun: Callable[..., Result], emu: EmulatorThread
) -> None:
    (a,) = launch(emu, ["cam-1"], cfg=0)
    (b,) = set(launch(emu, ["cam-1"], cfg=1)) - {a}
    result = streamrun("instances", "stop", "cam-1")
    api_error(result, "'cam-1' names 2 instances", a, b, emu.configs[0], emu.configs[1])
    assert "--configuration" in result.stderr
    assert emu.state.count() == 2
    # --configuration narrows the lookup to one.
    stopped = ok(streamrun("instances", "stop", "cam-1", "--configuration", emu.configs[1]))
    assert stopped.stdout == f"stopped {b} (cam-1)\n"
    assert [i.id for i in emu.state.instances] == [a]
    api_error(streamrun("instances", "get", "cam-1", "--configuration", emu.configs[2]),
              "no instance has the id or name 'cam-1'", emu.configs[2])  # fmt: skip


def test_stopping_what_is_gone_exits_0_unless_strict(
    streamrun: Callable[..., Result], emu: EmulatorThread
) -> None:
    (a,) = launch(emu, ["cam-1"])
    assert ok(streamrun("instances", "stop", "cam-1")).stdout == f"stopped {a} (cam-1)\n"
    again = ok(streamrun("instances", "stop", "cam-1"))
    assert again.stdout == ""
    assert "cam-1: already gone, nothing to stop (no instance has this id or name now)" in (
        again.stderr
    )
    strict = streamrun("instances", "stop", "cam-1", a, "--strict", "--json")
    assert strict.exit_code == 1
    assert json.loads(strict.stdout)["already_gone"] == ["cam-1", a]


def test_stop_by_ids_from_a_pipe(streamrun: Callable[..., Result], emu: EmulatorThread) -> None:
    ids = launch(emu, ["q-1", "q-2", "q-3"])
    piped = ok(streamrun("instances", "list", "--name", "q-", "-o", "ids")).stdout.split()
    assert sorted(piped) == sorted(ids)
    out = as_json(streamrun("instances", "stop", *piped, "--json"))
    assert sorted(item["id"] for item in out["stopped"]) == sorted(ids)
    assert emu.state.count() == 0


def test_list_filters(streamrun: Callable[..., Result], emu: EmulatorThread) -> None:
    launch(emu, ["f-1", "g-1"])
    assert [
        i["name"] for i in as_json(streamrun("instances", "list", "--name", "f-", "--json"))
    ] == ["f-1"]
    assert len(as_json(streamrun("instances", "list", "--state", "running", "--json"))) == 2
    assert as_json(streamrun("instances", "list", "--state", "QUEUED", "--json")) == []


def test_stop_all_says_what_it_asked_for(
    streamrun: Callable[..., Result], emu: EmulatorThread
) -> None:
    launch(emu, ["s-1", "s-2"])
    result = ok(streamrun("instances", "stop-all", "-y"))
    assert (
        result.stdout
        == "asked the API to stop every instance of the account; 2 were listed before\n"
    )
    assert "stopped 2" not in result.output  # it cannot know it stopped exactly those
    assert ok(streamrun("instances", "stop-all", "-y", "-o", "ids")).stdout == ""
    assert emu.state.count() == 0


def test_stream_keys_are_never_printed(
    streamrun: Callable[..., Result], emu: EmulatorThread
) -> None:
    (inst,) = launch(emu, ["key-1"])

    async def raw_keys() -> set[str]:
        async with emu.emu.client() as client:
            data = (await client._transport.request("GET", ["instances", inst])).data
        keys = {data["streamkey"]}
        for element in data["state"]["elements"]:
            keys.update([element["state"]["streamkey"]] if "streamkey" in element["state"] else [])
        return keys

    keys = emu.run(raw_keys())
    assert len(keys) >= 2  # the observed detail answer: top level and per input
    for args in (["instances", "get", "key-1"], ["instances", "get", inst, "--json"],
                 ["instances", "get", inst, "-o", "wide"]):  # fmt: skip
        shown = ok(streamrun(*args)).output
        assert not [key for key in keys if key in shown]
    assert "**********" in ok(streamrun("instances", "get", inst, "--json")).stdout


def test_terminal_tables_keep_ids_whole() -> None:
    from rich.console import Console

    from streamrun_async.cli._render import Rows, rich_view

    rows = Rows(("ID", "NAME", "CONFIGURATION"))
    rows.add(
        "inst-0123456789abcdef0123", "a name long enough to need folding " * 3, "cfg-0123456789"
    )
    console = Console(width=50, force_terminal=True, record=True)
    console.print(rich_view(rows))
    text = console.export_text()
    assert "inst-0123456789abcdef0123" in text
    assert "cfg-0123456789" in text
    assert "…" not in text
    assert "│" in text  # a terminal gets the drawn table


def test_an_instance_still_listed_as_ended_counts_as_gone(
    make_emulator: Callable[..., EmulatorThread],
) -> None:
    from click.testing import CliRunner

    from streamrun_async.cli._app import cli
    from streamrun_async.testing import Dialect

    lingering = make_emulator(dialect=Dialect.presets()["stops_linger"])
    (inst,) = launch(lingering, ["cam-1"])
    env = {"STREAMRUN_API_KEY": lingering.api_key, "STREAMRUN_BASE_URL": lingering.url}
    ok(CliRunner().invoke(cli, ["instances", "stop", "cam-1"], env=env))
    again = ok(CliRunner().invoke(cli, ["instances", "stop", "cam-1", "--json"], env=env))
    assert json.loads(again.stdout)["already_gone"] == ["cam-1"]
    assert "cam-1: already gone, nothing to stop (listed as STOPPING)" in again.stderr
    deletes = lingering.sync(lambda: lingering.emu.stats.count("DELETE /instances/{instanceId}"))
    assert deletes == 1
    assert inst in {i.id for i in lingering.state.stopped}
