"""``streamrun probe``: shapes without values, against every emulator dialect."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from _cli_support import (
    EmulatorThread,
    Spawned,
    emu,
    make_emulator,
    ok,
    retries_without_sleeping,
    spawn,
    streamrun,
)
from click.testing import CliRunner, Result

import streamrun_async as sr
from streamrun_async.cli._app import cli
from streamrun_async.cli._probe import Probe, call_report, describe
from streamrun_async.testing import ROUTES, Dialect

__all__ = ["emu", "make_emulator", "retries_without_sleeping", "spawn", "streamrun"]

# Words of these fields are shown (states are what a bug report needs); nothing else is.
_ENUM_FIELDS = {"state", "status", "outputs", "platform", "type"}
_PROBED = ("configurations", "destinations", "instances")


def _leaves(value: Any, field: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a JSON value, with the field it sits in; keys that are ids too."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not str(key).isalpha():  # htmloverlay-1 is a value; createdAt a field name
                yield field, str(key)
            yield from _leaves(item, str(key))
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item, field)
    elif isinstance(value, str):
        yield field, value
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and value > 1000:
        yield field, str(value)  # epoch timestamps


def server_values(emu: EmulatorThread, request_id: str) -> set[str]:
    """The values the server answers the probe's calls with (what must never be printed)."""

    async def fetch() -> list[Any]:
        async with emu.emu.client() as client:
            transport = client._transport
            bodies = [(await transport.request("GET", [path])).data for path in _PROBED]
            configurations = await client.configurations.list()
            instances = await client.instances.list()
            for path, listed in (("configurations", configurations), ("instances", instances)):
                if listed:
                    bodies.append((await transport.request("GET", [path, listed[0].id])).data)
            try:
                request = await transport.request("GET", ["instance-requests", request_id])
            except sr.NotFoundError:
                return bodies  # the dialect shows it later: the probe saw a 404 too
            return [*bodies, request.data]

    values = {emu.api_key, request_id}
    for body in emu.run(fetch()):
        for field, text in _leaves(body):
            # Enum words are shown on purpose; short words (true, rtmp) are not values.
            if field not in _ENUM_FIELDS and len(text) >= 6:
                values.add(text)
    return values


def _launch_distinctive(emu: EmulatorThread) -> str:
    """Two instances with names and URLs that must not leak; returns the request id."""

    async def go() -> str:
        async with emu.emu.client() as client:
            request = await client.configurations.launch(
                emu.configs[0],
                [
                    sr.InstanceSettings(
                        name=f"secret-name-{n}",
                        overrides={"htmloverlay-1": {"url": f"https://leak.example/{n}?t=zz"}},
                    )
                    for n in (1, 2)
                ],
            )
            if request.id is not None:
                return request.id
            # The answer named no request (launch_unnamed): the instances may name it.
            listed = await client.configurations.list_instances(emu.configs[0])
            return next((i.request_id for i in listed if i.request_id), "ireq-unnamed")

    return emu.run(go())


def test_no_value_from_the_server_is_printed_in_any_dialect(
    make_emulator: Callable[..., EmulatorThread], dialect: Dialect
) -> None:
    emulator = make_emulator(dialect=dialect)
    request_id = _launch_distinctive(emulator)
    env = {"STREAMRUN_API_KEY": emulator.api_key, "STREAMRUN_BASE_URL": emulator.url}
    text = ok(CliRunner().invoke(cli, ["probe", "--request", request_id], env=env))
    as_json = ok(CliRunner().invoke(cli, ["probe", "--json", "--request", request_id], env=env))
    report = json.loads(as_json.stdout)
    assert [call["call"] for call in report["calls"]][:3] == [
        "GET /api/v1/configurations",
        "GET /api/v1/configurations/{configurationId}",
        "GET /api/v1/destinations",
    ]
    assert report["calls"][-1]["call"] == "GET /api/v1/instance-requests/{requestId}"
    printed = text.output + as_json.output
    leaked = sorted(value for value in server_values(emulator, request_id) if value in printed)
    assert leaked == []
    assert "secret-name" not in printed
    assert "leak.example" not in printed
    # Only reads: the probe launched, stopped and changed nothing.
    stats = emulator.sync(lambda: emulator.emu.stats)
    used = {route.split()[0] for route in ROUTES if stats.count(route)}
    assert used == {"GET", "POST"}
    assert stats.count("POST /configurations/{configurationId}/instances") == 1  # ours, above


@pytest.mark.parametrize(
    ("preset", "call", "note"),
    [
        ("paginated_link", "GET /api/v1/configurations", "paginated by Link header"),
        ("paginated_field", "GET /api/v1/configurations", "pagination field 'next'"),
        ("paginated_cursor", "GET /api/v1/configurations", "pagination field 'nextCursor'"),
        ("lowercase_epoch", "GET /api/v1/instances", "'running' is not upper case"),
        ("lowercase_epoch", "GET /api/v1/instances", "integer(epoch-seconds), not ISO 8601"),
        ("epoch_ms_keyed", "GET /api/v1/instances", "epoch-milliseconds"),
        ("rfc1123_bare", "GET /api/v1/instances", "a bare array, not {'instances': [...]}"),
        ("rfc1123_bare", "GET /api/v1/destinations", "platform: absent"),
        ("observed", "GET /api/v1/instances/{instanceId}", "state"),
    ],
)
def test_differences_are_named(
    make_emulator: Callable[..., EmulatorThread], preset: str, call: str, note: str
) -> None:
    emulator = make_emulator(dialect=Dialect.presets()[preset])
    _launch_distinctive(emulator)
    env = {"STREAMRUN_API_KEY": emulator.api_key, "STREAMRUN_BASE_URL": emulator.url}
    report = json.loads(ok(CliRunner().invoke(cli, ["probe", "--json"], env=env)).stdout)
    (found,) = [c for c in report["calls"] if c["call"] == call]
    if preset == "observed":
        # The observed detail: state as an object holding each input's stream key.
        assert found["fields"]["state"] == ["object"]
        assert found["fields"]["state.elements[].state.streamkey"] == ["string"]
        assert found["differences"] == []
    else:
        assert any(note in difference for difference in found["differences"]), found


def test_the_default_dialect_matches_what_the_sdk_expects(
    streamrun: Callable[..., Result], emu: EmulatorThread
) -> None:
    _launch_distinctive(emu)
    text = ok(streamrun("probe")).stdout
    assert text.count("as the SDK expects") == 5
    assert text.rstrip().endswith("0 difference(s) in 5 call(s)")
    assert "status 200, content type application/json" in text
    assert "    state                string(RUNNING)" in text


def test_an_empty_account_makes_no_detail_call(streamrun: Callable[..., Result]) -> None:
    report = json.loads(ok(streamrun("probe", "--json")).stdout)
    calls = [c["call"] for c in report["calls"]]
    assert "GET /api/v1/instances/{instanceId}" not in calls
    assert report["calls"][calls.index("GET /api/v1/instances")]["items"] == 0


def test_a_missing_request_is_reported_not_fatal(streamrun: Callable[..., Result]) -> None:
    report = json.loads(ok(streamrun("probe", "--json", "--request", "ireq-nope")).stdout)
    last = report["calls"][-1]
    assert last["status"] == 404
    assert last["differences"] == ["answered 404 (NotFoundError)"]


def test_shapes_of_odd_answers() -> None:
    probe = Probe("instances", ["instances"], "Instance", "instances", True)
    odd = call_report(
        probe,
        status=200,
        content_type="text/json",
        link_values=['<https://api.example/x?page=2>; rel="next"'],
        data={
            "instances": [
                {"id": 7, "state": "HIBERNATING", "extra": {"inst-123": True}},
                {"id": "a", "state": {"state": "RUNNING"}, "name": None},
            ],
            "total": 2,
        },
    )
    assert odd["links"] == ["next (absolute)"]
    assert odd["envelope_keys"] == ["instances", "total"]
    notes = odd["differences"]
    assert "content type text/json (the SDK parses the body as JSON anyway)" in notes
    assert "1 item(s) without a string id" in notes
    assert "state: 'HIBERNATING' is a state this SDK does not know (kept)" in notes
    assert "not modelled by the SDK (kept in .raw): extra" in notes
    assert "the SDK drops 1 of 2 item(s) (no usable id)" in notes
    assert "configurationId: absent (the SDK leaves it unset)" in notes
    assert "name: absent in 1 of 2 item(s)" in notes
    # The key that is an id is masked, the link target never shown.
    assert "extra.<key>" in odd["fields"]
    assert "api.example" not in json.dumps(odd)
    assert describe({"a": [1, 2.5, "x"]}) == {
        "a": {"array"},
        "a[]": {"integer", "number", "string"},
    }
    empty = call_report(probe, status=204, content_type=None, link_values=(), data=None)
    assert "answered 204 where 200 is usual" in empty["differences"]
    assert any("the body is null" in note for note in empty["differences"])


def test_probe_in_a_real_process(emu: EmulatorThread, spawn: Callable[..., Spawned]) -> None:
    request_id = _launch_distinctive(emu)
    probing = spawn(
        ["probe", "--request", request_id],
        env={"STREAMRUN_API_KEY": emu.api_key, "STREAMRUN_BASE_URL": emu.url},
    )
    stdout, stderr = probing.finish()
    assert probing.process.returncode == 0, stderr
    assert stdout.startswith("streamrun probe: read-only calls")
    assert "GET /api/v1/instance-requests/{requestId}" in stdout
    leaked = [value for value in server_values(emu, request_id) if value in stdout + stderr]
    assert leaked == []
