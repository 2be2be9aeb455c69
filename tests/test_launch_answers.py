"""Launch answers: where the request id comes from, and launches accepted without one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aioresponses import aioresponses
from conftest import API, API_KEY, LocalServer, total_calls

import streamrun_async as sr

LAUNCH = f"{API}/configurations/cfg-1/instances"
REQUEST = {"id": "req-1", "state": "QUEUED", "configurationId": "cfg-1", "instanceIds": ["i-1"]}
INSTANCE = {"id": "inst-1", "state": "QUEUED", "configurationId": "cfg-1", "name": "cam-1"}
TWO = [sr.InstanceSettings(name="cam-1"), sr.InstanceSettings(name="cam-2")]

# (status, Location or None, body: JSON, text, or None)
NAMED: list[tuple[str, int, str | None, Any]] = [
    ("location-path", 201, "/api/v1/instance-requests/req-1", None),
    ("location-absolute", 202, "https://streamrun.com/api/v1/instance-requests/req-1", None),
    ("location-relative", 201, "instance-requests/req-1", None),
    ("location-no-prefix-slash", 200, "/instance-requests/req-1/", None),
    ("location-with-query", 201, "/api/v1/instance-requests/req-1?from=launch#x", None),
    ("location-text-ok", 200, "/api/v1/instance-requests/req-1", "OK"),
    ("location-with-message", 202, "/api/v1/instance-requests/req-1", {"message": "queued"}),
    ("location-and-instance", 201, "/api/v1/instance-requests/req-1", INSTANCE),
    ("see-other", 303, "/api/v1/instance-requests/req-1", None),
    ("see-other-elsewhere", 303, "https://elsewhere.example/instance-requests/req-1", None),
    ("body-request", 201, None, REQUEST),
    ("body-envelope", 202, None, {"instanceRequest": REQUEST}),
    ("body-request-id", 202, None, {"requestId": "req-1"}),
    ("body-instance", 201, None, {**INSTANCE, "requestId": "req-1"}),
    ("body-instance-envelope", 201, None, {"instance": {**INSTANCE, "requestId": "req-1"}}),
    (
        "body-instances",
        201,
        None,
        {"instances": [{**INSTANCE, "requestId": "req-1"}, {"id": "i-2", "requestId": "req-1"}]},
    ),
]


def mock_launch(mock_api: aioresponses, status: int, location: str | None, body: Any) -> None:
    headers = {"Location": location} if location else None
    if body is None or isinstance(body, str):
        mock_api.post(LAUNCH, status=status, headers=headers, body=body or "")
    else:
        mock_api.post(LAUNCH, status=status, headers=headers, payload=body)


@pytest.mark.parametrize(
    ("status", "location", "body"), [pytest.param(*r[1:], id=r[0]) for r in NAMED]
)
async def test_the_request_id_is_read_from_location_or_body(
    client: sr.StreamrunClient,
    mock_api: aioresponses,
    status: int,
    location: str | None,
    body: Any,
) -> None:
    mock_launch(mock_api, status, location, body)
    request = await client.configurations.launch("cfg-1", TWO)
    assert isinstance(request, sr.InstanceRequest)
    # Never the instance's id, whatever the body holds.
    assert request.id == "req-1"
    assert total_calls(mock_api) == 1


async def test_a_request_body_is_decoded_whole(
    client: sr.StreamrunClient, mock_api: aioresponses
) -> None:
    mock_launch(mock_api, 201, "/api/v1/instance-requests/req-1", REQUEST)
    request = await client.configurations.launch("cfg-1")
    assert isinstance(request, sr.InstanceRequest)
    assert request.instance_ids == ("i-1",)
    assert request.raw == REQUEST


async def test_location_wins_over_a_body_naming_another_request(
    client: sr.StreamrunClient, mock_api: aioresponses
) -> None:
    mock_launch(mock_api, 201, "/api/v1/instance-requests/req-9", REQUEST)
    request = await client.configurations.launch("cfg-1", TWO)
    assert request.id == "req-9"
    assert isinstance(request, sr.InstanceRequest)
    assert (request.configuration_id, request.number_of_instances) == ("cfg-1", 2)


ACCEPTED: list[tuple[str, int, str | None, Any]] = [
    ("empty-201", 201, None, None),
    ("empty-202", 202, None, None),
    ("text-accepted", 202, None, "Accepted"),
    ("message", 201, None, {"message": "launch accepted"}),
    ("instance-without-request-id", 201, None, INSTANCE),
    ("instance-with-state-object", 201, None, {"id": "inst-1", "state": {"elements": []}}),
    ("instance-envelope", 201, None, {"instance": INSTANCE}),
    ("instances-of-unknown-request", 201, None, {"instances": [INSTANCE]}),
    ("location-elsewhere", 201, "/api/v1/instances/inst-1", None),
    ("see-other-without-request", 303, "/api/v1/configurations/cfg-1/instances", None),
]


@pytest.mark.parametrize(
    ("status", "location", "body"), [pytest.param(*r[1:], id=r[0]) for r in ACCEPTED]
)
async def test_an_accepted_launch_naming_no_request_is_not_a_failure(
    client: sr.StreamrunClient,
    mock_api: aioresponses,
    status: int,
    location: str | None,
    body: Any,
) -> None:
    mock_launch(mock_api, status, location, body)
    accepted = await client.configurations.launch("cfg-1", TWO)
    assert isinstance(accepted, sr.AcceptedLaunch)
    assert accepted.configuration_id == "cfg-1"
    assert accepted.names == ("cam-1", "cam-2")
    assert accepted.number_of_instances == 2
    assert (accepted.status, accepted.location) == (status, location)
    assert accepted.id is None
    # Accepted once: no second POST that could start (and bill) the instances twice.
    assert total_calls(mock_api) == 1


async def test_a_default_launch_accepted_without_request_counts_one_instance(
    client: sr.StreamrunClient, mock_api: aioresponses
) -> None:
    mock_launch(mock_api, 202, None, None)
    accepted = await client.configurations.launch("cfg-1")
    assert isinstance(accepted, sr.AcceptedLaunch)
    assert (accepted.names, accepted.number_of_instances) == ((), 1)


async def test_an_accepted_launch_cannot_be_waited_on_as_a_request(
    client: sr.StreamrunClient, mock_api: aioresponses
) -> None:
    mock_launch(mock_api, 202, None, None)
    accepted = await client.configurations.launch("cfg-1")
    with pytest.raises(sr.InvalidArgumentError, match="by name"):
        await client.instance_requests.wait_until_running(accepted)  # type: ignore[arg-type]
    assert total_calls(mock_api) == 1


async def test_a_see_other_on_a_real_server_is_read_and_never_followed(
    local_server: Callable[..., Awaitable[LocalServer]],
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            return web.Response(
                status=303, headers={"Location": "/api/v1/instance-requests/req-303"}
            )
        return web.json_response({"id": "followed", "state": "RUNNING"})

    server = await local_server(handler)
    async with sr.StreamrunClient(API_KEY, base_url=server.url) as c:
        request = await c.configurations.launch("cfg-1")
    assert request.id == "req-303"
    assert server.requests == [("POST", "/api/v1/configurations/cfg-1/instances")]


async def test_a_redirect_elsewhere_is_still_an_error(
    client: sr.StreamrunClient, mock_api: aioresponses
) -> None:
    # Only a launch reads 303 as its answer; a list answered 303 is not a list.
    mock_api.get(f"{API}/instances", status=303, headers={"Location": "/api/v1/x"})
    with pytest.raises(sr.APIStatusError) as info:
        await client.instances.list()
    assert info.value.status == 303
