"""The emulator's HTTP surface through raw aiohttp requests: no SDK in between."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest
from conftest import RawApi

from streamrun_async.testing import ROUTES, ConfigurationSeed, DestinationSeed, Emulator

LAUNCH = "POST /configurations/{configurationId}/instances"
# Raw shapes of the emulator as it was before dialects; tests/test_dialects_emulator.py
# covers the other dialects, the default among them.
pytestmark = pytest.mark.streamrun_emulator(dialect="classic")


def is_timestamp(text: str) -> bool:
    return text.endswith("Z") and datetime.fromisoformat(text).utcoffset() is not None


# -- reading the account ----------------------------------------------------------


async def test_configurations_list_and_get(raw_api: RawApi) -> None:
    answer = await raw_api("GET", "/configurations")
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("application/json")
    configurations = answer.json
    assert [c["id"] for c in configurations] == list(raw_api.emulator.configuration_ids)
    assert len(configurations) == 4
    first = configurations[0]
    assert set(first) == {"id", "name", "elements", "createdAt"}
    assert {"id": "htmloverlay-1", "title": "HTML overlay 1", "type": "htmloverlay"} in first[
        "elements"
    ]
    assert is_timestamp(first["createdAt"])
    one = await raw_api("GET", f"/configurations/{first['id']}")
    assert one.json == first


async def test_destinations(raw_api: RawApi) -> None:
    answer = await raw_api("GET", "/destinations")
    assert answer.status == 200
    assert {d["platform"] for d in answer.json} == {"twitch", "youtube", "kick", "rtmp"}
    assert all(set(d) == {"id", "name", "platform"} for d in answer.json)


async def test_own_seeds_and_generated_configurations() -> None:
    seeds = [ConfigurationSeed("Solo", ("inputstream-1", "outputstream-1"), id="cfg-solo")]
    async with Emulator(
        configurations=seeds, destinations=[DestinationSeed("Mine", "rtmp", id="dst-1")]
    ) as emu:
        assert emu.configuration_ids == ("cfg-solo",)
        assert emu.destination_ids == ("dst-1",)
    async with Emulator(configurations=500) as emu:
        assert len(set(emu.configuration_ids)) == 500


def test_seed_validation() -> None:
    with pytest.raises(ValueError, match="not of the form"):
        ConfigurationSeed("Bad", ("overlay",))
    with pytest.raises(ValueError, match="repeats"):
        ConfigurationSeed("Bad", ("switch-1", "switch-1"))
    with pytest.raises(ValueError, match="duplicate seed id"):
        Emulator(configurations=[ConfigurationSeed("A", id="x"), ConfigurationSeed("B", id="x")])


# -- launching ----------------------------------------------------------------------


async def test_default_launch(raw_api: RawApi) -> None:
    cfg = raw_api.emulator.configuration_ids[0]
    answer = await raw_api("POST", f"/configurations/{cfg}/instances")
    assert answer.status == 201
    request = answer.json
    assert set(request) == {
        "id",
        "configurationId",
        "state",
        "instanceIds",
        "numberOfInstances",
        "createdAt",
    }
    assert request["state"] == "QUEUED"
    assert request["configurationId"] == cfg
    assert request["numberOfInstances"] == len(request["instanceIds"]) == 1
    assert answer.headers["Location"] == f"/api/v1/instance-requests/{request['id']}"
    followed = await raw_api("GET", answer.headers["Location"].removeprefix("/api/v1"))
    assert followed.json == request
    instance = (await raw_api("GET", f"/instances/{request['instanceIds'][0]}")).json
    assert instance == {
        "id": request["instanceIds"][0],
        "configurationId": cfg,
        "name": None,
        "state": "QUEUED",
        "requestId": request["id"],
        "outputs": "OFFLINE",
        "createdAt": instance["createdAt"],
        "overrides": {},
    }
    assert is_timestamp(instance["createdAt"])


async def test_launch_with_settings(raw_api: RawApi) -> None:
    overrides = {"htmloverlay-1": {"url": "https://example.com/a"}, "switch-1": {"input": "x"}}
    request = await raw_api.launch("cam-1", "cam-2", overrides=overrides)
    assert request["numberOfInstances"] == 2
    cfg = raw_api.emulator.configuration_ids[0]
    listed = (await raw_api("GET", f"/configurations/{cfg}/instances")).json
    assert [i["name"] for i in listed] == ["cam-1", "cam-2"]
    assert [i["id"] for i in listed] == request["instanceIds"]
    assert all(i["overrides"] == overrides for i in listed)
    other = raw_api.emulator.configuration_ids[1]
    assert (await raw_api("GET", f"/configurations/{other}/instances")).json == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[]", "body must be a JSON object, got an array"),
        ("null", "body must be a JSON object, got null"),
        ('{"numberOfInstances": 1}', "missing required key 'instanceSettings'"),
        ('{"instanceSettings": []}', "missing required key 'numberOfInstances'"),
        (
            '{"numberOfInstances": 1, "instanceSettings": [{"name": "a"}], "extra": 1}',
            "body: unknown key 'extra' (allowed: instanceSettings, numberOfInstances)",
        ),
        (
            '{"numberOfInstances": "1", "instanceSettings": [{"name": "a"}]}',
            'numberOfInstances must be an integer of at least 1, got "1"',
        ),
        (
            '{"numberOfInstances": true, "instanceSettings": [{"name": "a"}]}',
            "numberOfInstances must be an integer of at least 1, got true",
        ),
        (
            '{"numberOfInstances": 1.0, "instanceSettings": [{"name": "a"}]}',
            "got 1.0",
        ),
        ('{"numberOfInstances": 0, "instanceSettings": []}', "at least 1, got 0"),
        ('{"numberOfInstances": 1, "instanceSettings": {}}', "must be an array, got an object"),
        (
            '{"numberOfInstances": 2, "instanceSettings": [{"name": "a"}]}',
            "numberOfInstances is 2 but instanceSettings has 1 entries",
        ),
        ('{"numberOfInstances": 1, "instanceSettings": ["a"]}', "[0] must be a JSON object"),
        ('{"numberOfInstances": 1, "instanceSettings": [{}]}', "[0]: missing required key 'name'"),
        (
            '{"numberOfInstances": 1, "instanceSettings": [{"name": "a", "tags": []}]}',
            "instanceSettings[0]: unknown key 'tags' (allowed: name, overrides)",
        ),
        (
            '{"numberOfInstances": 1, "instanceSettings": [{"name": ""}]}',
            'instanceSettings[0].name must be a non-empty string, got ""',
        ),
        ('{"numberOfInstances": 1, "instanceSettings": [{"name": "  "}]}', "non-empty string"),
        ('{"numberOfInstances": 1, "instanceSettings": [{"name": null}]}', "got null"),
        (
            '{"numberOfInstances": 1, "instanceSettings": [{"name": "a", "overrides": []}]}',
            "instanceSettings[0].overrides must be a JSON object, got an array",
        ),
        (
            '{"numberOfInstances": 2, "instanceSettings": [{"name": "a"},'
            ' {"name": "b", "overrides": {"nope-1": {}}}]}',
            "instanceSettings[1].overrides: 'nope-1' is not an element of configuration",
        ),
        (
            '{"numberOfInstances": 1, "instanceSettings":'
            ' [{"name": "a", "overrides": {"switch-1": "input-2"}}]}',
            'instanceSettings[0].overrides["switch-1"] must be an object of settings, got a string',
        ),
    ],
)
async def test_launch_body_is_validated_strictly(raw_api: RawApi, body: str, message: str) -> None:
    cfg = raw_api.emulator.configuration_ids[0]
    answer = await raw_api(
        "POST", f"/configurations/{cfg}/instances", data=body, headers={"Content-Type": "x/y"}
    )
    assert answer.status == 400
    code, text = answer.error
    assert code == "invalid_request"
    assert message in text
    assert raw_api.emulator.state.instances == ()


@pytest.mark.parametrize("body", [b"{", b"nope", b"\xff\xfe", b" "])
async def test_invalid_json_is_400(raw_api: RawApi, body: bytes) -> None:
    cfg = raw_api.emulator.configuration_ids[0]
    answer = await raw_api("POST", f"/configurations/{cfg}/instances", data=body)
    assert answer.status == 400
    assert answer.error[0] == "invalid_json"


async def test_unknown_configuration_is_404_before_the_body(raw_api: RawApi) -> None:
    answer = await raw_api("POST", "/configurations/cfg-nope/instances", data=b"{")
    assert answer.status == 404
    assert answer.error == ("not_found", "configuration 'cfg-nope' not found")


# -- outputs, overrides, stop, restart ------------------------------------------------


async def test_set_outputs(raw_api: RawApi) -> None:
    request = await raw_api.launch("a", "b")
    other = await raw_api.launch(cfg=raw_api.emulator.configuration_ids[1])
    cfg = raw_api.emulator.configuration_ids[0]
    answer = await raw_api("PUT", f"/configurations/{cfg}/instances", json={"outputs": "LIVE"})
    assert answer.status == 204
    assert answer.body == b""
    state = raw_api.emulator.state
    assert [state.instance(i).outputs for i in request["instanceIds"]] == ["LIVE", "LIVE"]
    assert state.instance(other["instanceIds"][0]).outputs == "OFFLINE"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "a JSON body is required"),
        (b'{"outputs": "live"}', 'outputs must be "LIVE" or "OFFLINE", got "live"'),
        (b'{"outputs": "LIVE", "x": 1}', "unknown key 'x'"),
        (b"{}", "missing required key 'outputs'"),
        (b'"LIVE"', "body must be a JSON object, got a string"),
    ],
)
async def test_set_outputs_body_is_validated(raw_api: RawApi, body: bytes, message: str) -> None:
    cfg = raw_api.emulator.configuration_ids[0]
    answer = await raw_api("PUT", f"/configurations/{cfg}/instances", data=body)
    assert answer.status == 400
    assert message in answer.error[1]


async def test_overrides_get_and_merge(raw_api: RawApi) -> None:
    request = await raw_api.launch(
        "a", overrides={"htmloverlay-1": {"url": "u1", "opacity": 1}, "switch-1": {}}
    )
    path = f"/instances/{request['instanceIds'][0]}/overrides"
    assert (await raw_api("GET", path)).json == {
        "htmloverlay-1": {"url": "u1", "opacity": 1},
        "switch-1": {},
    }
    patch = {"htmloverlay-1": {"url": "u2"}, "outputstream-1": {"outputs": "LIVE"}}
    answer = await raw_api("PATCH", path, json=patch)
    merged = {
        "htmloverlay-1": {"url": "u2", "opacity": 1},
        "switch-1": {},
        "outputstream-1": {"outputs": "LIVE"},
    }
    assert answer.status == 200
    assert answer.json == merged
    assert (await raw_api("GET", path)).json == merged


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "a JSON body is required"),
        (b"[]", "body must be a JSON object"),
        (b'{"ghost-1": {}}', "body: 'ghost-1' is not an element of configuration"),
        (b'{"switch-1": 3}', 'body["switch-1"] must be an object of settings, got a number'),
    ],
)
async def test_overrides_patch_is_validated(raw_api: RawApi, body: bytes, message: str) -> None:
    request = await raw_api.launch()
    answer = await raw_api("PATCH", f"/instances/{request['instanceIds'][0]}/overrides", data=body)
    assert answer.status == 400
    assert message in answer.error[1]


async def test_stop_one_by_configuration_and_all(raw_api: RawApi) -> None:
    first, second = raw_api.emulator.configuration_ids[:2]
    a = await raw_api.launch("a1", "a2", cfg=first)
    b = await raw_api.launch("b1", cfg=second)
    one = a["instanceIds"][0]
    assert (await raw_api("DELETE", f"/instances/{one}")).status == 204
    assert (await raw_api("GET", f"/instances/{one}")).status == 404
    assert (await raw_api("DELETE", f"/instances/{one}")).status == 404
    assert (await raw_api("DELETE", f"/configurations/{first}/instances")).status == 204
    listed = (await raw_api("GET", "/instances")).json
    assert [i["id"] for i in listed] == b["instanceIds"]
    assert (await raw_api("DELETE", "/instances")).status == 204
    assert (await raw_api("GET", "/instances")).json == []
    # The requests stay, naming the instances they launched.
    assert (await raw_api("GET", f"/instance-requests/{a['id']}")).json["instanceIds"] == a[
        "instanceIds"
    ]


async def test_restart_answers_the_instance_starting(raw_api: RawApi) -> None:
    request = await raw_api.launch()
    instance_id = request["instanceIds"][0]
    answer = await raw_api("POST", f"/instances/{instance_id}/restart")
    assert answer.status == 409
    assert answer.error[0] == "conflict"
    await raw_api.emulator.advance(2)
    answer = await raw_api("POST", f"/instances/{instance_id}/restart")
    assert answer.status == 200
    assert answer.json["id"] == instance_id
    assert answer.json["state"] == "STARTING"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/configurations/cfg-x"),
        ("GET", "/configurations/cfg-x/instances"),
        ("PUT", "/configurations/cfg-x/instances"),
        ("DELETE", "/configurations/cfg-x/instances"),
        ("POST", "/configurations/cfg-x/instances"),
        ("GET", "/instance-requests/ireq-x"),
        ("GET", "/instances/inst-x"),
        ("DELETE", "/instances/inst-x"),
        ("POST", "/instances/inst-x/restart"),
        ("GET", "/instances/inst-x/overrides"),
        ("PATCH", "/instances/inst-x/overrides"),
    ],
)
async def test_unknown_ids_are_404(raw_api: RawApi, method: str, path: str) -> None:
    answer = await raw_api(method, path, json={"outputs": "LIVE"} if method == "PUT" else None)
    assert answer.status == 404
    assert answer.error[0] == "not_found"


# -- the protocol around the endpoints ------------------------------------------------


async def test_auth(raw_api: RawApi) -> None:
    url = f"{raw_api.emulator.url}/api/v1/instances"
    async with raw_api.session.get(url) as response:
        assert response.status == 401
        body = await response.json()
        assert body == {
            "error": {
                "code": "unauthorized",
                "message": "missing 'Authorization: Bearer <API key>'",
            }
        }
    answer = await raw_api("GET", "/instances", key="sr_wrong")
    assert answer.status == 401
    assert answer.error == ("unauthorized", "invalid API key")
    # Auth comes first: a stranger learns nothing about paths or ids.
    assert (await raw_api("GET", "/nowhere", key="sr_wrong")).status == 401
    assert (await raw_api("GET", "/instances/inst-x", key="sr_wrong")).status == 401


async def test_api_key_default_is_random_and_can_be_given() -> None:
    assert Emulator().api_key != Emulator().api_key
    assert Emulator(api_key="k").api_key == "k"


async def test_wrong_method_and_unknown_path(raw_api: RawApi) -> None:
    answer = await raw_api("PATCH", "/instances")
    assert answer.status == 405
    assert answer.headers["Allow"] == "DELETE,GET"
    assert answer.error == (
        "method_not_allowed",
        "Method Not Allowed: PATCH /api/v1/instances (allowed: DELETE,GET)",
    )
    answer = await raw_api("GET", "/nowhere")
    assert answer.status == 404
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.error == ("not_found", "Not Found: GET /api/v1/nowhere")
    assert (await raw_api("GET", "/instances/")).status == 404


async def test_every_answer_has_a_unique_request_id(raw_api: RawApi) -> None:
    answers = [
        await raw_api("GET", "/instances"),
        await raw_api("GET", "/instances/inst-x"),
        await raw_api("DELETE", "/instances"),
        await raw_api("PATCH", "/instances"),
        await raw_api("GET", "/instances", key="bad"),
    ]
    ids = [a.headers["X-Request-Id"] for a in answers]
    assert all(re.fullmatch(r"req_[0-9a-f]{16}", i) for i in ids)
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        # Would be "GET /instances" (200) if the dots were resolved.
        ("GET", "/configurations/%2E%2E/instances", "configuration '..' not found"),
        ("GET", "/configurations/../instances", "configuration '..' not found"),
        # Would be a restart of "x" if the slash split the segment.
        ("GET", "/instances/x%2Frestart", "instance 'x/restart' not found"),
        ("GET", "/instances/a%2F..%2F..%2Fdestinations", "instance 'a/../../destinations'"),
        ("GET", "/instance-requests/%3Fq%3D1%23f", "instance request '?q=1#f' not found"),
    ],
)
async def test_path_ids_are_single_segments(
    raw_api: RawApi, method: str, path: str, message: str
) -> None:
    answer = await raw_api(method, path)
    assert answer.status == 404
    assert answer.error[0] == "not_found"
    assert message in answer.error[1]


@pytest.mark.streamrun_emulator(dialect="wrapped")
async def test_envelopes(raw_api: RawApi) -> None:
    emu = raw_api.emulator
    cfg = emu.configuration_ids[0]
    request = (await raw_api.launch("a"))["instanceRequest"]
    instance_id = request["instanceIds"][0]
    wrapped = {
        "/configurations": "configurations",
        f"/configurations/{cfg}": "configuration",
        f"/configurations/{cfg}/instances": "instances",
        f"/instance-requests/{request['id']}": "instanceRequest",
        "/instances": "instances",
        f"/instances/{instance_id}": "instance",
        f"/instances/{instance_id}/overrides": "overrides",
        "/destinations": "destinations",
    }
    for path, key in wrapped.items():
        body = (await raw_api("GET", path)).json
        assert list(body) == [key], path
    patched = await raw_api("PATCH", f"/instances/{instance_id}/overrides", json={"switch-1": {}})
    assert patched.json == {"overrides": {"switch-1": {}}}
    await emu.advance(2)
    restarted = await raw_api("POST", f"/instances/{instance_id}/restart")
    assert restarted.json["instance"]["state"] == "STARTING"
    assert (await raw_api("GET", "/nowhere")).json["error"]["code"] == "not_found"


async def test_every_route_is_counted_under_its_name(raw_api: RawApi) -> None:
    emu = raw_api.emulator
    cfg = emu.configuration_ids[0]
    request = await raw_api.launch()
    await emu.advance(2)
    iid = request["instanceIds"][0]
    calls: list[tuple[str, str, Any]] = [
        ("GET", "/configurations", None),
        ("GET", f"/configurations/{cfg}", None),
        ("GET", f"/configurations/{cfg}/instances", None),
        ("PUT", f"/configurations/{cfg}/instances", {"outputs": "LIVE"}),
        ("GET", f"/instance-requests/{request['id']}", None),
        ("GET", "/instances", None),
        ("GET", f"/instances/{iid}", None),
        ("GET", f"/instances/{iid}/overrides", None),
        ("PATCH", f"/instances/{iid}/overrides", {}),
        ("POST", f"/instances/{iid}/restart", None),
        ("GET", "/destinations", None),
        ("DELETE", f"/instances/{iid}", None),
        ("DELETE", f"/configurations/{cfg}/instances", None),
        ("DELETE", "/instances", None),
    ]
    for method, path, body in calls:
        assert (await raw_api(method, path, json=body)).status < 300, path
    assert all(emu.stats.count(route) == 1 for route in ROUTES)
    assert emu.stats.count(LAUNCH, status=201) == 1
    assert emu.stats.total == len(ROUTES)
