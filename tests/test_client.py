"""Every endpoint: method, path, headers, body sent, and the model decoded."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aioresponses import aioresponses
from conftest import API, API_KEY, calls, sent_json, total_calls

import streamrun_async as sr

CONFIG = {
    "id": "cfg-1",
    "name": "Main show",
    "elements": [{"id": "htmloverlay-1", "title": "Overlay", "type": "htmloverlay", "z": 3}],
    "createdAt": "2026-01-02T03:04:05+00:00",
    "futureField": {"nested": True},
}
INSTANCE = {
    "id": "inst-1",
    "state": "RUNNING",
    "configurationId": "cfg-1",
    "name": "cam-1",
    "requestId": "req-1",
    "outputs": "LIVE",
    "createdAt": "2026-01-02T03:04:05Z",
    "overrides": {"htmloverlay-1": {"url": "https://x"}},
    "region": "eu-west",
}
REQUEST = {
    "id": "req-1",
    "state": "QUEUED",
    "configurationId": "cfg-1",
    "instanceIds": ["inst-1", "inst-2"],
    "numberOfInstances": 2,
    "priority": "high",
}
DESTINATION = {"id": "dst-1", "name": "Twitch", "platform": "twitch", "ingest": "rtmp://x"}
OVERRIDES = {"htmloverlay-1": {"url": "https://y"}, "switch-1": {"input": "inputstream-2"}}

Call = Callable[[sr.StreamrunClient], Awaitable[Any]]


def assert_headers(kwargs: dict[str, Any], *, json_body: bool) -> None:
    headers = kwargs["headers"]
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    assert headers["Accept"] == "application/json"
    assert headers["User-Agent"].startswith("streamrun-async/")
    if json_body:
        assert headers["Content-Type"] == "application/json"
    else:
        assert "Content-Type" not in headers
        assert kwargs.get("data") is None
    # A redirect could carry the key elsewhere: never followed.
    assert kwargs["allow_redirects"] is False


# (call, method, url, response payload, JSON body expected)
ENDPOINTS: list[tuple[str, Call, str, str, Any, Any]] = [
    ("configurations.list", lambda c: c.configurations.list(), "GET", "/configurations", [], None),
    (
        "configurations.get",
        lambda c: c.configurations.get("cfg-1"),
        "GET",
        "/configurations/cfg-1",
        CONFIG,
        None,
    ),
    (
        "configurations.launch",
        lambda c: c.configurations.launch("cfg-1"),
        "POST",
        "/configurations/cfg-1/instances",
        REQUEST,
        None,
    ),
    (
        "configurations.launch(list)",
        lambda c: c.configurations.launch(
            "cfg-1",
            [
                sr.InstanceSettings(
                    name="cam-1", overrides={"htmloverlay-1": {"url": "https://x"}}
                ),
                sr.InstanceSettings(
                    name="cam-2", overrides={"outputstream-1": {"destinations": ["d1"]}}
                ),
            ],
        ),
        "POST",
        "/configurations/cfg-1/instances",
        REQUEST,
        {
            "numberOfInstances": 2,
            "instanceSettings": [
                {"name": "cam-1", "overrides": {"htmloverlay-1": {"url": "https://x"}}},
                {"name": "cam-2", "overrides": {"outputstream-1": {"destinations": ["d1"]}}},
            ],
        },
    ),
    (
        "configurations.list_instances",
        lambda c: c.configurations.list_instances("cfg-1"),
        "GET",
        "/configurations/cfg-1/instances",
        [],
        None,
    ),
    (
        "configurations.set_outputs",
        lambda c: c.configurations.set_outputs("cfg-1", sr.Outputs.LIVE),
        "PUT",
        "/configurations/cfg-1/instances",
        None,
        {"outputs": "LIVE"},
    ),
    (
        "configurations.stop_instances",
        lambda c: c.configurations.stop_instances("cfg-1"),
        "DELETE",
        "/configurations/cfg-1/instances",
        None,
        None,
    ),
    (
        "instance_requests.get",
        lambda c: c.instance_requests.get("req-1"),
        "GET",
        "/instance-requests/req-1",
        REQUEST,
        None,
    ),
    ("instances.list", lambda c: c.instances.list(), "GET", "/instances", [], None),
    ("instances.stop_all", lambda c: c.instances.stop_all(), "DELETE", "/instances", None, None),
    (
        "instances.get",
        lambda c: c.instances.get("inst-1"),
        "GET",
        "/instances/inst-1",
        INSTANCE,
        None,
    ),
    (
        "instances.stop",
        lambda c: c.instances.stop("inst-1"),
        "DELETE",
        "/instances/inst-1",
        None,
        None,
    ),
    (
        "instances.restart",
        lambda c: c.instances.restart("inst-1"),
        "POST",
        "/instances/inst-1/restart",
        None,
        None,
    ),
    (
        "instances.get_overrides",
        lambda c: c.instances.get_overrides("inst-1"),
        "GET",
        "/instances/inst-1/overrides",
        OVERRIDES,
        None,
    ),
    (
        "instances.update_overrides",
        lambda c: c.instances.update_overrides("inst-1", {"htmloverlay-1": {"url": "https://y"}}),
        "PATCH",
        "/instances/inst-1/overrides",
        OVERRIDES,
        {"htmloverlay-1": {"url": "https://y"}},
    ),
    ("destinations.list", lambda c: c.destinations.list(), "GET", "/destinations", [], None),
]


def test_the_table_covers_all_fifteen_endpoints() -> None:
    routes = {
        (method, path.replace("cfg-1", "{c}").replace("inst-1", "{i}"))
        for _, _, method, path, _, _ in ENDPOINTS
    }
    assert len(routes) == 15


@pytest.mark.parametrize(
    ("call", "method", "path", "payload", "body"),
    [pytest.param(*row[1:], id=row[0]) for row in ENDPOINTS],
)
async def test_endpoint_sends_method_path_headers_and_body(
    client: sr.StreamrunClient,
    mock_api: aioresponses,
    call: Call,
    method: str,
    path: str,
    payload: Any,
    body: Any,
) -> None:
    url = API + path
    headers = {"Location": "/api/v1/instance-requests/req-1"} if method == "POST" else None
    if payload is None:
        mock_api.add(url, method, status=204, headers=headers)
    else:
        mock_api.add(url, method, payload=payload, headers=headers)

    await call(client)

    assert total_calls(mock_api) == 1
    (sent,) = calls(mock_api, method, url)
    assert_headers(sent, json_body=body is not None)
    assert sent_json(sent) == body


# --- decoded models ---------------------------------------------------------------------


@pytest.mark.parametrize("payload", [[CONFIG], {"configurations": [CONFIG]}], ids=["bare", "env"])
async def test_configurations_list_decodes(
    client: sr.StreamrunClient, mock_api: aioresponses, payload: Any
) -> None:
    mock_api.get(f"{API}/configurations", payload=payload)
    (config,) = await client.configurations.list()
    assert isinstance(config, sr.Configuration)
    assert config.id == "cfg-1"
    assert config.name == "Main show"
    assert config.created_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    (element,) = config.elements
    assert element == sr.Element(id="htmloverlay-1", title="Overlay", type="htmloverlay")
    assert element.raw["z"] == 3
    assert config.raw == CONFIG
    assert config.raw["futureField"] == {"nested": True}


@pytest.mark.parametrize("payload", [CONFIG, {"configuration": CONFIG}], ids=["bare", "env"])
async def test_configurations_get_decodes(
    client: sr.StreamrunClient, mock_api: aioresponses, payload: Any
) -> None:
    mock_api.get(f"{API}/configurations/cfg-1", payload=payload)
    config = await client.configurations.get("cfg-1")
    assert config.id == "cfg-1"
    assert config.elements[0].id == "htmloverlay-1"
    assert config.raw == CONFIG


async def test_configuration_optional_fields_default_to_none(
    client: sr.StreamrunClient, mock_api: aioresponses
) -> None:
    mock_api.get(f"{API}/configurations/cfg-2", payload={"id": "cfg-2"})
    config = await client.configurations.get("cfg-2")
    assert config == sr.Configuration(id="cfg-2")
    assert config.name is None
    assert config.created_at is None
    assert config.elements == ()


@pytest.mark.parametrize(
    "payload",
    [[INSTANCE], {"instances": [INSTANCE]}, {"instances": [INSTANCE], "total": 1}],
    ids=["bare", "env", "env+extra"],
)
async def test_instances_list_decodes(
    client: sr.StreamrunClient, mock_api: aioresponses, payload: Any
) -> None:
    mock_api.get(f"{API}/instances", payload=payload)
    (instance,) = await client.instances.list()
    assert isinstance(instance, sr.Instance)
    assert instance.id == "inst-1"
    assert instance.state is sr.InstanceState.RUNNING
    assert instance.configuration_id == "cfg-1"
    assert instance.name == "cam-1"
    assert instance.request_id == "req-1"
    assert instance.outputs is sr.Outputs.LIVE
    assert instance.created_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert instance.overrides == {"htmloverlay-1": {"url": "https://x"}}
    assert instance.raw["region"] == "eu-west"


@pytest.mark.parametrize("payload", [[INSTANCE], {"instances": [INSTANCE]}], ids=["bare", "env"])
async def test_configuration_list_instances_decodes(
    client: sr.StreamrunClient, mock_api: aioresponses, payload: Any
) -> None:
    mock_api.get(f"{API}/configurations/cfg-1/instances", payload=payload)
    (instance,) = await client.configurations.list_instances("cfg-1")
    assert instance.id == "inst-1"
    assert instance.raw == INSTANCE


async def test_empty_lists_decode(client: sr.StreamrunClient, mock_api: aioresponses) -> None:
    mock_api.get(f"{API}/instances", payload={"instances": []})
    mock_api.get(f"{API}/destinations", payload=[])
    assert await client.instances.list() == []
    assert await client.destinations.list() == []


@pytest.mark.parametrize("payload", [INSTANCE, {"instance": INSTANCE}], ids=["bare", "env"])
async def test_instances_get_decodes(
    client: sr.StreamrunClient, mock_api: aioresponses, payload: Any
) -> None:
    mock_api.get(f"{API}/instances/inst-1", payload=payload)
    instance = await client.instances.get("inst-1")
    assert instance.id == "inst-1"
    assert instance.state is sr.InstanceState.RUNNING
    assert instance.raw == INSTANCE


async def test_unknown_state_is_kept_readable_and_stable(
    client: sr.StreamrunClient, mock_api: aioresponses
) -> None:
    hibernating = {"id": "inst-9", "state": "HIBERNATING"}
    mock_api.get(f"{API}/instances", payload=[hibernating, {**hibernating, "id": "inst-10"}])
    first, second = await client.instances.list()
    assert first.state.is_unknown
    assert str(first.state) == "HIBERNATING"
    assert first.state == "HIBERNATING"
    assert first.state is second.state
    assert first.state is sr.InstanceState("HIBERNATING")
    assert first.state is not sr.InstanceState.RUNNING
    assert first.outputs is None
    assert first.name is None


@pytest.mark.parametrize("payload", [REQUEST, {"instanceRequest": REQUEST}], ids=["bare", "env"])
async def test_instance_requests_get_decodes(
    client: sr.StreamrunClient, mock_api: aioresponses, payload: Any
) -> None:
    mock_api.get(f"{API}/instance-requests/req-1", payload=payload)
    request = await client.instance_requests.get("req-1")
    assert isinstance(request, sr.InstanceRequest)
    assert request.id == "req-1"
    assert request.state is sr.InstanceState.QUEUED
    assert request.configuration_id == "cfg-1"
    assert request.instance_ids == ("inst-1", "inst-2")
    assert request.number_of_instances == 2
    assert request.raw["priority"] == "high"


@pytest.mark.parametrize(
    "payload", [[DESTINATION], {"destinations": [DESTINATION]}], ids=["bare", "env"]
)
async def test_destinations_list_decodes(
    client: sr.StreamrunClient, mock_api: aioresponses, payload: Any
) -> None:
    mock_api.get(f"{API}/destinations", payload=payload)
    (destination,) = await client.destinations.list()
    assert destination == sr.Destination(id="dst-1", name="Twitch", platform="twitch")
    assert destination.raw["ingest"] == "rtmp://x"


@pytest.mark.parametrize("payload", [OVERRIDES, {"overrides": OVERRIDES}], ids=["bare", "env"])
async def test_get_overrides_decodes(
    client: sr.StreamrunClient, mock_api: aioresponses, payload: Any
) -> None:
    mock_api.get(f"{API}/instances/inst-1/overrides", payload=payload)
    assert await client.instances.get_overrides("inst-1") == OVERRIDES


@pytest.mark.parametrize("payload", [OVERRIDES, {"overrides": OVERRIDES}], ids=["bare", "env"])
async def test_update_overrides_returns_updated(
    client: sr.StreamrunClient, mock_api: aioresponses, payload: Any
) -> None:
    url = f"{API}/instances/inst-1/overrides"
    mock_api.patch(url, payload=payload)
    mine = {"htmloverlay-1": {"url": "https://y"}}
    assert await client.instances.update_overrides("inst-1", mine) == OVERRIDES
    assert sent_json(calls(mock_api, "PATCH", url)[0]) == mine


async def test_empty_overrides_decode(client: sr.StreamrunClient, mock_api: aioresponses) -> None:
    mock_api.get(f"{API}/instances/inst-1/overrides", payload={})
    assert await client.instances.get_overrides("inst-1") == {}


@pytest.mark.parametrize("outputs", [sr.Outputs.OFFLINE, "OFFLINE"])
async def test_set_outputs_offline(
    client: sr.StreamrunClient, mock_api: aioresponses, outputs: Any
) -> None:
    url = f"{API}/configurations/cfg-1/instances"
    mock_api.put(url, status=200, payload={"ok": True})
    assert await client.configurations.set_outputs("cfg-1", outputs) is None
    assert sent_json(calls(mock_api, "PUT", url)[0]) == {"outputs": "OFFLINE"}


@pytest.mark.parametrize("outputs", ["ON", "", None, 1])
async def test_set_outputs_refuses_other_values(
    client: sr.StreamrunClient, mock_api: aioresponses, outputs: Any
) -> None:
    with pytest.raises(sr.InvalidArgumentError):
        await client.configurations.set_outputs("cfg-1", outputs)
    assert total_calls(mock_api) == 0


@pytest.mark.parametrize("status", [200, 204])
async def test_stop_returns_none_with_or_without_body(
    client: sr.StreamrunClient, mock_api: aioresponses, status: int
) -> None:
    payload = {"stopped": True} if status == 200 else None
    mock_api.delete(f"{API}/instances/inst-1", status=status, payload=payload)
    mock_api.delete(f"{API}/instances", status=status, payload=payload)
    mock_api.delete(f"{API}/configurations/cfg-1/instances", status=status, payload=payload)
    assert await client.instances.stop("inst-1") is None
    assert await client.instances.stop_all() is None
    assert await client.configurations.stop_instances("cfg-1") is None


async def test_restart_decodes_the_instance_when_answered(
    client: sr.StreamrunClient, mock_api: aioresponses
) -> None:
    url = f"{API}/instances/inst-1/restart"
    mock_api.post(url, payload={"instance": {**INSTANCE, "state": "QUEUED"}})
    mock_api.post(url, status=202)
    restarted = await client.instances.restart("inst-1")
    assert restarted is not None
    assert restarted.state is sr.InstanceState.QUEUED
    assert await client.instances.restart("inst-1") is None


# --- launch: where the request id comes from ----------------------------------------------

LAUNCH = f"{API}/configurations/cfg-1/instances"


async def test_launch_default_sends_no_body_and_reads_location(
    client: sr.StreamrunClient, mock_api: aioresponses
) -> None:
    mock_api.post(LAUNCH, status=201, headers={"Location": "/api/v1/instance-requests/req-7"})
    request = await client.configurations.launch("cfg-1")
    assert request == sr.InstanceRequest(id="req-7", configuration_id="cfg-1")
    assert request.state is sr.InstanceState.QUEUED
    (sent,) = calls(mock_api, "POST", LAUNCH)
    assert sent["data"] is None
    assert "Content-Type" not in sent["headers"]


async def test_launch_reads_an_absolute_location_with_query(
    client: sr.StreamrunClient, mock_api: aioresponses
) -> None:
    location = "https://streamrun.com/api/v1/instance-requests/req%2F8?ref=1"
    mock_api.post(LAUNCH, status=202, headers={"Location": location})
    request = await client.configurations.launch("cfg-1")
    assert request.id == "req/8"


@pytest.mark.parametrize("payload", [REQUEST, {"instanceRequest": REQUEST}], ids=["bare", "env"])
async def test_launch_reads_the_id_from_the_body(
    client: sr.StreamrunClient, mock_api: aioresponses, payload: Any
) -> None:
    mock_api.post(LAUNCH, status=201, payload=payload)
    request = await client.configurations.launch("cfg-1")
    assert request.id == "req-1"
    assert request.instance_ids == ("inst-1", "inst-2")
    assert request.raw == REQUEST


async def test_launch_with_location_and_matching_body_keeps_the_body(
    client: sr.StreamrunClient, mock_api: aioresponses
) -> None:
    mock_api.post(
        LAUNCH, status=201, payload=REQUEST, headers={"Location": "/api/v1/instance-requests/req-1"}
    )
    request = await client.configurations.launch("cfg-1")
    assert request.id == "req-1"
    assert request.number_of_instances == 2


async def test_launch_with_location_and_a_body_without_id_uses_location(
    client: sr.StreamrunClient, mock_api: aioresponses
) -> None:
    # The launch was accepted: a body that is only a message must not turn it into an error.
    mock_api.post(
        LAUNCH,
        status=202,
        payload={"message": "accepted"},
        headers={"Location": "/api/v1/instance-requests/req-5"},
    )
    request = await client.configurations.launch("cfg-1")
    assert request.id == "req-5"
    assert request.configuration_id == "cfg-1"


@pytest.mark.parametrize(
    ("headers", "payload"),
    [
        (None, None),
        (None, {"message": "accepted"}),
        ({"Location": "/api/v1/instances"}, None),
        ({"Location": "/api/v1/instance-requests/"}, None),
    ],
    ids=["nothing", "body-without-id", "other-location", "location-without-id"],
)
async def test_launch_without_any_request_id_is_accepted_not_failed(
    client: sr.StreamrunClient, mock_api: aioresponses, headers: Any, payload: Any
) -> None:
    mock_api.post(LAUNCH, status=201, headers=headers, payload=payload)
    names = [sr.InstanceSettings(name="cam-1"), sr.InstanceSettings(name="cam-2")]
    accepted = await client.configurations.launch("cfg-1", names)
    assert accepted == sr.AcceptedLaunch(
        configuration_id="cfg-1",
        names=("cam-1", "cam-2"),
        number_of_instances=2,
        status=201,
        location=None if headers is None else headers["Location"],
    )
    assert accepted.id is None
    assert accepted.raw == payload
    # Accepted: neither retried nor reported failed.
    assert total_calls(mock_api) == 1


@pytest.mark.parametrize(
    "instances",
    [
        [],
        "cam-1",
        {"name": "cam-1"},
        [{"name": "cam-1", "overrides": {}}],
        [sr.InstanceSettings(name="a"), sr.InstanceSettings(name="a")],
        sr.InstanceSettings(name="a"),
    ],
    ids=["empty", "str", "dict", "dict-item", "duplicate-names", "bare-settings"],
)
async def test_launch_refuses_bad_instances_before_sending(
    client: sr.StreamrunClient, mock_api: aioresponses, instances: Any
) -> None:
    with pytest.raises(sr.StreamrunError) as info:
        await client.configurations.launch("cfg-1", instances)
    assert isinstance(info.value, (ValueError, TypeError))
    assert total_calls(mock_api) == 0


# --- the client itself ----------------------------------------------------------------------


async def test_api_key_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, mock_api: aioresponses
) -> None:
    monkeypatch.setenv("STREAMRUN_API_KEY", "env-key-123")
    mock_api.get(f"{API}/destinations", payload=[])
    async with sr.StreamrunClient(api_key=None) as c:
        await c.destinations.list()
    (sent,) = calls(mock_api, "GET", f"{API}/destinations")
    assert sent["headers"]["Authorization"] == "Bearer env-key-123"


async def test_explicit_key_wins_over_the_environment(
    monkeypatch: pytest.MonkeyPatch, mock_api: aioresponses
) -> None:
    monkeypatch.setenv("STREAMRUN_API_KEY", "env-key-123")
    mock_api.get(f"{API}/destinations", payload=[])
    async with sr.StreamrunClient(api_key=API_KEY) as c:
        await c.destinations.list()
    (sent,) = calls(mock_api, "GET", f"{API}/destinations")
    assert sent["headers"]["Authorization"] == f"Bearer {API_KEY}"


@pytest.mark.parametrize("env", [None, ""])
def test_missing_api_key(monkeypatch: pytest.MonkeyPatch, env: str | None) -> None:
    if env is None:
        monkeypatch.delenv("STREAMRUN_API_KEY", raising=False)
    else:
        monkeypatch.setenv("STREAMRUN_API_KEY", env)
    with pytest.raises(sr.MissingAPIKeyError, match="STREAMRUN_API_KEY") as info:
        sr.StreamrunClient()
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, sr.StreamrunError)


@pytest.mark.parametrize(
    ("key", "error"),
    [
        ("", sr.InvalidArgumentError),
        (" sk-padded ", sr.InvalidArgumentError),
        ("sk-line\n", sr.InvalidArgumentError),
        (b"sk-bytes", sr.InvalidArgumentTypeError),
        (12345, sr.InvalidArgumentTypeError),
    ],
)
def test_bad_api_key_is_refused_without_quoting_it(key: Any, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        sr.StreamrunClient(api_key=key)
    if isinstance(key, str) and key.strip():
        assert key.strip() not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"timeout": 0}, sr.InvalidArgumentError),
        ({"timeout": -1.0}, sr.InvalidArgumentError),
        ({"timeout": "30"}, sr.InvalidArgumentTypeError),
        ({"retry": {"attempts": 3}}, sr.InvalidArgumentTypeError),
        ({"session": object()}, sr.InvalidArgumentTypeError),
        ({"max_response_bytes": 0}, sr.InvalidArgumentError),
        ({"base_url": "ftp://streamrun.com"}, sr.InvalidArgumentError),
        ({"base_url": "https://user:pw@streamrun.com"}, sr.InvalidArgumentError),
        ({"base_url": "https://streamrun.com?x=1"}, sr.InvalidArgumentError),
        ({"base_url": 42}, sr.InvalidArgumentTypeError),
    ],
)
def test_bad_client_arguments(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        sr.StreamrunClient(api_key=API_KEY, **kwargs)


async def test_base_url_with_trailing_slash_and_prefix(mock_api: aioresponses) -> None:
    mock_api.get("https://proxy.example/streamrun/api/v1/destinations", payload=[])
    async with sr.StreamrunClient(API_KEY, base_url="https://proxy.example/streamrun/") as c:
        assert c.base_url == "https://proxy.example/streamrun"
        assert await c.destinations.list() == []


def test_defaults() -> None:
    c = sr.StreamrunClient(API_KEY)
    assert c.base_url == sr.DEFAULT_BASE_URL == "https://streamrun.com"
    assert c.retry == sr.RetryPolicy()
    assert c.closed is False
    assert c.instances is c.instances  # namespaces are built once
