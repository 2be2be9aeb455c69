"""The transport: statuses to errors, decoding failures, security, sessions, size caps."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import traceback
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aioresponses import aioresponses
from conftest import API, API_KEY, LocalServer, RawServer, total_calls

import streamrun_async as sr
from streamrun_async import _http

NO_RETRY = sr.RetryPolicy.disabled()
INSTANCE = {"id": "inst-1", "state": "RUNNING"}


@pytest.fixture
async def plain() -> Any:
    """A client that never retries, so one mocked answer is one outcome."""
    async with sr.StreamrunClient(API_KEY, retry=NO_RETRY) as c:
        yield c


# --- statuses to errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, {"error": {"message": "bad field"}}, sr.BadRequestError),
        # Slots are a launch's concern: a GET saying so is an ordinary 400.
        (400, "You have 0 instance slots available", sr.BadRequestError),
        (401, {"error": {"message": "bad key"}}, sr.AuthenticationError),
        (403, {"error": {"message": "forbidden"}}, sr.PermissionDeniedError),
        (404, {"error": {"message": "no such instance"}}, sr.NotFoundError),
        (409, {"error": {"message": "busy"}}, sr.ConflictError),
        (429, {"error": {"message": "slow down"}}, sr.RateLimitError),
        (500, {"error": {"message": "boom"}}, sr.ServerError),
        (501, {"error": {"message": "nope"}}, sr.ServerError),
        (502, "<html>bad gateway</html>", sr.ServerError),
        (503, {"error": {"message": "maintenance"}}, sr.ServerError),
        (504, "", sr.ServerError),
        (418, {"error": {"message": "teapot"}}, sr.APIStatusError),
        (422, {"message": "unprocessable"}, sr.APIStatusError),
    ],
)
async def test_status_maps_to_its_exception(
    plain: sr.StreamrunClient,
    mock_api: aioresponses,
    status: int,
    body: Any,
    expected: type[sr.APIStatusError],
) -> None:
    text = body if isinstance(body, str) else json.dumps(body)
    mock_api.get(
        f"{API}/instances/inst-1",
        status=status,
        body=text,
        headers={"X-Request-Id": "rid-123"},
    )
    with pytest.raises(sr.APIStatusError) as info:
        await plain.instances.get("inst-1")
    error = info.value
    assert type(error) is expected
    assert isinstance(error, sr.APIError)
    assert isinstance(error, sr.StreamrunError)
    assert error.status == status
    assert error.method == "GET"
    assert error.url == "/api/v1/instances/inst-1"
    assert error.request_id == "rid-123"
    assert error.body == (body if text else "")
    assert error.outcome_unknown is False
    assert str(status) in str(error)
    if isinstance(body, dict):
        inner = body.get("error", body)
        assert inner["message"] in str(error)
    elif text:
        assert text in str(error)
    assert total_calls(mock_api) == 1


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, "0 instance slots"),
        (400, "You have 0 instance slots available"),
        (400, {"error": {"message": "No available slots right now"}}),
        (400, {"message": "No free instance slot"}),
        (402, "Maximum number of instances reached"),
        (403, {"error": {"message": "maximum number of instances reached for your plan"}}),
        (409, "No free instance slot"),
        (409, {"error": "no capacity in this region"}),
    ],
)
async def test_a_launch_refused_for_want_of_slots_is_no_capacity(
    plain: sr.StreamrunClient, mock_api: aioresponses, status: int, body: Any
) -> None:
    text = body if isinstance(body, str) else json.dumps(body)
    mock_api.post(f"{API}/configurations/cfg-1/instances", status=status, body=text)
    with pytest.raises(sr.NoCapacityError) as info:
        await plain.configurations.launch("cfg-1")
    assert isinstance(info.value, sr.BadRequestError)
    assert info.value.status == status
    # A refusal means the server did not act: the outcome is known.
    assert info.value.outcome_unknown is False
    assert total_calls(mock_api) == 1


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, "instanceSettings[0].name must be a string", sr.BadRequestError),
        (403, "this key may not launch", sr.PermissionDeniedError),
        (409, "the configuration is open in the editor", sr.ConflictError),
        (422, "0 instance slots", sr.APIStatusError),
        (429, "slow down: 0 slots for requests", sr.RateLimitError),
    ],
)
async def test_other_launch_refusals_are_not_no_capacity(
    plain: sr.StreamrunClient,
    mock_api: aioresponses,
    status: int,
    body: str,
    expected: type[sr.APIStatusError],
) -> None:
    mock_api.post(f"{API}/configurations/cfg-1/instances", status=status, body=body)
    with pytest.raises(sr.APIStatusError) as info:
        await plain.configurations.launch("cfg-1")
    assert type(info.value) is expected


async def test_instance_slots_only_count_on_launches(
    plain: sr.StreamrunClient, mock_api: aioresponses
) -> None:
    mock_api.get(f"{API}/instances", status=409, body="0 instance slots")
    with pytest.raises(sr.ConflictError) as info:
        await plain.instances.list()
    assert not isinstance(info.value, sr.NoCapacityError)


async def test_rate_limit_error_carries_retry_after(
    plain: sr.StreamrunClient, mock_api: aioresponses
) -> None:
    mock_api.get(f"{API}/instances", status=429, headers={"Retry-After": "7"})
    with pytest.raises(sr.RateLimitError) as info:
        await plain.instances.list()
    assert info.value.retry_after == 7.0
    assert info.value.body == ""
    assert "(empty body)" in str(info.value)


async def test_error_without_request_id(plain: sr.StreamrunClient, mock_api: aioresponses) -> None:
    mock_api.get(f"{API}/instances", status=404, payload={"error": {"message": "gone"}})
    with pytest.raises(sr.NotFoundError) as info:
        await plain.instances.list()
    assert info.value.request_id is None
    assert info.value.retry_after is None
    assert info.value.body == {"error": {"message": "gone"}}


# --- decoding failures -------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201])
async def test_non_json_success_is_a_decode_error_with_the_body(
    plain: sr.StreamrunClient, mock_api: aioresponses, status: int
) -> None:
    mock_api.get(f"{API}/instances", status=status, body="<html>hello</html>")
    with pytest.raises(sr.ResponseDecodeError) as info:
        await plain.instances.list()
    error = info.value
    assert error.body == "<html>hello</html>"
    assert error.status == status
    assert error.method == "GET"
    assert error.url == "/api/v1/instances"
    assert error.outcome_unknown is False
    assert "not JSON" in str(error)


async def test_non_json_launch_answer_is_still_an_accepted_launch(
    plain: sr.StreamrunClient, mock_api: aioresponses
) -> None:
    # A 2xx says the launch was accepted: a body that is not JSON cannot undo that.
    mock_api.post(f"{API}/configurations/cfg-1/instances", status=201, body="{oops")
    accepted = await plain.configurations.launch("cfg-1")
    assert isinstance(accepted, sr.AcceptedLaunch)
    assert accepted.raw == "{oops"
    assert total_calls(mock_api) == 1


Fetch = Callable[[sr.StreamrunClient], Awaitable[Any]]

# Answers no tolerant reader can use; odd fields and odd items are read (test_tolerant_decode).
WRONG_SHAPES: list[tuple[str, str, Fetch, Any]] = [
    ("list-of-object", "/instances", lambda c: c.instances.list(), {"id": "inst-1"}),
    ("list-two-keys", "/instances", lambda c: c.instances.list(), {"a": [], "b": []}),
    ("list-string", "/destinations", lambda c: c.destinations.list(), "nope"),
    ("object-is-list", "/instances/i", lambda c: c.instances.get("i"), [INSTANCE]),
    ("object-empty", "/instances/i", lambda c: c.instances.get("i"), {}),
    ("id-not-str", "/instances/i", lambda c: c.instances.get("i"), {"id": 5, "state": "RUNNING"}),
    (
        "overrides-list",
        "/instances/i/overrides",
        lambda c: c.instances.get_overrides("i"),
        [{"htmloverlay-1": {}}],
    ),
]


@pytest.mark.parametrize(
    ("path", "fetch", "payload"),
    [pytest.param(*row[1:], id=row[0]) for row in WRONG_SHAPES],
)
async def test_wrong_shape_is_a_decode_error_with_the_body(
    plain: sr.StreamrunClient, mock_api: aioresponses, path: str, fetch: Fetch, payload: Any
) -> None:
    body = "" if payload is None else json.dumps(payload)
    mock_api.get(API + path, status=200, body=body)
    with pytest.raises(sr.ResponseDecodeError) as info:
        await fetch(plain)
    assert info.value.body == payload
    assert info.value.status == 200
    assert info.value.url == "/api/v1" + path


# Deeper than any parser recursion limit, and under aioresponses' 64 KiB body limit.
DEEP = "[" * 20_000 + "]" * 20_000


@pytest.mark.parametrize("status", [400, 500])
async def test_absurdly_nested_error_body_is_still_a_typed_error(
    plain: sr.StreamrunClient, mock_api: aioresponses, status: int
) -> None:
    mock_api.get(f"{API}/instances", status=status, body=DEEP)
    with pytest.raises(sr.APIStatusError) as info:
        await plain.instances.list()
    assert info.value.status == status


@pytest.mark.parametrize("loads", [json.loads, None], ids=["stdlib-json", "default"])
async def test_absurdly_nested_success_body_is_a_decode_error(
    plain: sr.StreamrunClient,
    mock_api: aioresponses,
    monkeypatch: pytest.MonkeyPatch,
    loads: Any,
) -> None:
    if loads is not None:  # orjson is optional: the stdlib parser must be safe too
        monkeypatch.setattr(_http, "json_loads", loads)
    mock_api.get(f"{API}/instances", body=DEEP)
    with pytest.raises(sr.ResponseDecodeError):
        await plain.instances.list()


# --- the key never leaks -----------------------------------------------------------------------


def leaks(text: str) -> bool:
    return API_KEY in text


def assert_no_key(error: BaseException) -> None:
    assert not leaks(str(error))
    assert not leaks(repr(error))
    assert not leaks("".join(traceback.format_exception(error)))
    for value in vars(error).values():
        assert not leaks(json.dumps(value, default=repr))


async def test_repr_of_client_and_namespaces_hides_the_key() -> None:
    async with sr.StreamrunClient(API_KEY) as c:
        for text in (repr(c), str(c), repr(c.instances), repr(c.configurations), repr(c.retry)):
            assert not leaks(text)
            assert "Bearer" not in text
    assert not leaks(repr(c))


ESCAPED_KEY = API_KEY.replace("/", "\\/")
ECHOES = [
    ("plain", 401, json.dumps({"error": {"message": f"invalid key {API_KEY}"}})),
    ("bearer-text", 403, f"Authorization: Bearer {API_KEY} is not allowed"),
    ("json-escaped", 401, '{"error": {"message": "invalid key ' + ESCAPED_KEY + '"}}'),
    ("unicode-escaped", 400, '{"error": "' + "".join(f"\\u{ord(ch):04x}" for ch in API_KEY) + '"}'),
    ("server-error", 500, json.dumps({"detail": f"crash with {API_KEY}"})),
]


@pytest.mark.parametrize(("status", "body"), [pytest.param(*e[1:], id=e[0]) for e in ECHOES])
async def test_error_bodies_echoing_the_key_are_redacted(
    plain: sr.StreamrunClient, mock_api: aioresponses, status: int, body: str
) -> None:
    mock_api.get(f"{API}/instances", status=status, body=body)
    with pytest.raises(sr.APIStatusError) as info:
        await plain.instances.list()
    assert info.value.status == status
    assert_no_key(info.value)
    assert "[REDACTED]" in json.dumps(info.value.body) + str(info.value)


async def test_non_json_success_echoing_the_key_is_redacted(
    plain: sr.StreamrunClient, mock_api: aioresponses
) -> None:
    mock_api.get(f"{API}/instances", status=200, body=f"<p>hello {API_KEY}</p>")
    with pytest.raises(sr.ResponseDecodeError) as info:
        await plain.instances.list()
    assert_no_key(info.value)
    assert "[REDACTED]" in info.value.body


async def test_connection_and_timeout_errors_hide_the_key(
    mock_api: aioresponses, closed_port_url: str
) -> None:
    mock_api.get(f"{API}/instances", exception=aiohttp.ServerDisconnectedError())
    mock_api.get(f"{API}/destinations", timeout=True)
    async with sr.StreamrunClient(API_KEY, retry=NO_RETRY) as c:
        with pytest.raises(sr.APIConnectionError) as dropped:
            await c.instances.list()
        with pytest.raises(sr.APITimeoutError) as timed_out:
            await c.destinations.list()
    assert_no_key(dropped.value)
    assert_no_key(timed_out.value)


async def test_refused_connection_hides_the_key(
    mock_api: aioresponses, closed_port_url: str
) -> None:
    mock_api.stop()
    async with sr.StreamrunClient(API_KEY, base_url=closed_port_url, retry=NO_RETRY) as c:
        with pytest.raises(sr.APIConnectionError) as info:
            await c.instances.list()
    assert info.value.outcome_unknown is False
    assert_no_key(info.value)


async def test_debug_logs_never_carry_the_key(
    caplog: pytest.LogCaptureFixture, mock_api: aioresponses
) -> None:
    caplog.set_level(logging.DEBUG, logger="streamrun_async")
    mock_api.get(f"{API}/instances", status=500, body=f"oops {API_KEY}")
    mock_api.get(f"{API}/instances", status=429, headers={"Retry-After": "1"})
    mock_api.get(f"{API}/instances", payload=[], headers={"X-Request-Id": "rid-9"})
    mock_api.get(f"{API}/destinations", status=401, body=f"bad key {API_KEY}")
    async with sr.StreamrunClient(API_KEY, retry=sr.RetryPolicy.for_testing()) as c:
        assert await c.instances.list() == []
        with pytest.raises(sr.AuthenticationError):
            await c.destinations.list()
    records = [r for r in caplog.records if r.name.startswith("streamrun_async")]
    assert records
    for record in records:
        text = record.getMessage() + repr(record.args) + repr(record.__dict__)
        assert not leaks(text)
        assert "Bearer" not in text
    messages = [r.getMessage() for r in records]
    # Method, path, status, attempt and request id are logged at DEBUG.
    assert any(
        "GET /api/v1/instances -> 200" in m and "attempt 3" in m and "rid-9" in m for m in messages
    )
    assert any("GET /api/v1/destinations -> 401" in m for m in messages)


# --- plain HTTP is refused ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url",
    [
        "http://streamrun.com",
        "http://10.0.0.1:8080",
        "http://0.0.0.0",
        "http://localhost.evil.example",
        "http://127.0.0.1.nip.io",
    ],
)
def test_plain_http_to_a_remote_host_is_refused(base_url: str) -> None:
    with pytest.raises(sr.InsecureTransportError) as info:
        sr.StreamrunClient(API_KEY, base_url=base_url)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, sr.InvalidArgumentError)
    assert "allow_insecure" in str(info.value)
    assert not leaks(str(info.value))


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:8080",
        "http://127.3.2.1",
        "http://localhost:9000",
        "http://LOCALHOST",
        "http://[::1]:8080",
        "https://streamrun.com",
        "https://10.0.0.1",
    ],
)
async def test_loopback_and_https_are_allowed(mock_api: aioresponses, base_url: str) -> None:
    async with sr.StreamrunClient(API_KEY, base_url=base_url, retry=NO_RETRY) as c:
        mock_api.get(f"{c.base_url}/api/v1/destinations", payload=[])
        assert await c.destinations.list() == []


async def test_allow_insecure_allows_plain_http(mock_api: aioresponses) -> None:
    mock_api.get("http://streamrun.internal/api/v1/destinations", payload=[])
    async with sr.StreamrunClient(
        API_KEY, base_url="http://streamrun.internal", allow_insecure=True
    ) as c:
        assert await c.destinations.list() == []


# --- redirects are not followed ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "call"),
    [
        (302, lambda c: c.instances.get("inst-1")),
        (301, lambda c: c.instances.list()),
        (307, lambda c: c.instances.restart("inst-1")),
        (308, lambda c: c.configurations.launch("cfg-1")),
    ],
)
async def test_redirect_is_an_error_and_never_followed(
    local_server: Callable[..., Awaitable[LocalServer]], status: int, call: Fetch
) -> None:
    other = await local_server()

    async def redirect(request: web.Request) -> web.StreamResponse:
        return web.Response(
            status=status, headers={"Location": f"{other.url}/api/v1/instances/inst-1"}
        )

    origin = await local_server(redirect)
    async with sr.StreamrunClient(API_KEY, base_url=origin.url, retry=NO_RETRY) as c:
        with pytest.raises(sr.APIStatusError) as info:
            await call(c)
    assert type(info.value) is sr.APIStatusError
    assert info.value.status == status
    assert len(origin.requests) == 1
    assert other.requests == []


# --- ids are quoted as one path segment ------------------------------------------------------

ODD_IDS = [
    "a/b",
    "...",
    ".x",
    "?x",
    "#y",
    "a b",
    "ünïcødé",
    "%2F",
    "%2E%2E",
    "a/../../instances",
    "\\",
]


@pytest.fixture
async def echo_server(local_server: Callable[..., Awaitable[LocalServer]]) -> LocalServer:
    """Routes that answer with the name of the route and the id they matched."""

    def make(route: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            seen = {"id": request.match_info["id"], "state": "RUNNING", "route": route}
            if route == "overrides":
                return web.json_response({"seen": {"id": request.match_info["id"]}})
            if route == "configuration":
                return web.json_response({"id": request.match_info["id"], "name": route})
            return web.json_response(seen)

        return handler

    async def other(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": {"message": "wrong route"}}, status=418)

    def routes(app: web.Application) -> None:
        app.router.add_get("/api/v1/instances/{id}", make("instance"))
        app.router.add_get("/api/v1/instances/{id}/overrides", make("overrides"))
        app.router.add_get("/api/v1/configurations/{id}", make("configuration"))
        app.router.add_get("/api/v1/instance-requests/{id}", make("request"))

    return await local_server(other, routes)


@pytest.mark.parametrize("odd_id", ODD_IDS)
async def test_ids_are_one_path_segment_on_a_real_server(
    echo_server: LocalServer, odd_id: str
) -> None:
    async with sr.StreamrunClient(API_KEY, base_url=echo_server.url, retry=NO_RETRY) as c:
        instance = await c.instances.get(odd_id)
        assert instance.id == odd_id
        assert instance.raw["route"] == "instance"
        assert await c.instances.get_overrides(odd_id) == {"seen": {"id": odd_id}}
        assert (await c.configurations.get(odd_id)).id == odd_id
        request = await c.instance_requests.get(odd_id)
        assert (request.id, request.raw["route"]) == (odd_id, "request")
    # Every request reached the route it meant, with the id in one segment.
    assert len(echo_server.requests) == 4
    for _, raw_path in echo_server.requests:
        assert "?" not in raw_path
        assert "#" not in raw_path
        # aiohttp.web leaves dot segments alone; proxies and other servers resolve them.
        assert not {".", ".."} & set(raw_path.split("/"))


IdCall = Callable[[sr.StreamrunClient, Any], Awaitable[Any]]
ID_CALLS: list[tuple[str, IdCall]] = [
    ("configurations.get", lambda c, i: c.configurations.get(i)),
    ("configurations.launch", lambda c, i: c.configurations.launch(i)),
    ("configurations.list_instances", lambda c, i: c.configurations.list_instances(i)),
    ("configurations.set_outputs", lambda c, i: c.configurations.set_outputs(i, "LIVE")),
    ("configurations.stop_instances", lambda c, i: c.configurations.stop_instances(i)),
    ("instance_requests.get", lambda c, i: c.instance_requests.get(i)),
    ("instances.get", lambda c, i: c.instances.get(i)),
    ("instances.stop", lambda c, i: c.instances.stop(i)),
    ("instances.restart", lambda c, i: c.instances.restart(i)),
    ("instances.get_overrides", lambda c, i: c.instances.get_overrides(i)),
    ("instances.update_overrides", lambda c, i: c.instances.update_overrides(i, {})),
    ("instances.wait_for_state", lambda c, i: c.instances.wait_for_state(i, timeout=1)),
    (
        "instance_requests.wait_until_running",
        lambda c, i: c.instance_requests.wait_until_running(i, timeout=1),
    ),
]


@pytest.mark.parametrize("call", [pytest.param(c, id=n) for n, c in ID_CALLS])
@pytest.mark.parametrize(
    ("bad_id", "error"),
    [
        ("", sr.InvalidArgumentError),
        # Dot segments: proxies normalise even %2E%2E, so DELETE /instances/.. would
        # become DELETE /instances (stop everything).
        (".", sr.InvalidArgumentError),
        ("..", sr.InvalidArgumentError),
        (None, sr.InvalidArgumentTypeError),
        (42, sr.InvalidArgumentTypeError),
        (b"inst-1", sr.InvalidArgumentTypeError),
        (["inst-1"], sr.InvalidArgumentTypeError),
    ],
)
async def test_bad_ids_are_refused_before_any_request(
    plain: sr.StreamrunClient,
    mock_api: aioresponses,
    call: IdCall,
    bad_id: Any,
    error: type[Exception],
) -> None:
    with pytest.raises(error) as info:
        await call(plain, bad_id)
    assert isinstance(info.value, sr.StreamrunError)
    assert isinstance(info.value, ValueError if error is sr.InvalidArgumentError else TypeError)
    assert total_calls(mock_api) == 0


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        "htmloverlay-1",
        None,
        {"htmloverlay-1": "https://x"},
        {"htmloverlay-1": ["url"]},
        {"": {"url": "x"}},
        {1: {"url": "x"}},
        {"htmloverlay-1": {"tags": {"a", "b"}}},
        {"htmloverlay-1": {"opacity": float("nan")}},
        {"htmloverlay-1": {"opacity": float("inf")}},
        {"htmloverlay-1": {"when": object()}},
    ],
    ids=[
        "list",
        "str",
        "none",
        "str-settings",
        "list-settings",
        "empty-element",
        "int-element",
        "set",
        "nan",
        "inf",
        "object",
    ],
)
async def test_bad_overrides_are_refused_before_sending(
    plain: sr.StreamrunClient, mock_api: aioresponses, overrides: Any
) -> None:
    with pytest.raises(sr.StreamrunError) as info:
        await plain.instances.update_overrides("inst-1", overrides)
    assert isinstance(info.value, (ValueError, TypeError))
    with pytest.raises(sr.StreamrunError):
        sr.InstanceSettings(name="cam-1", overrides=overrides)
    assert total_calls(mock_api) == 0


async def test_overrides_are_copied_when_checked(
    plain: sr.StreamrunClient, mock_api: aioresponses
) -> None:
    url = f"{API}/instances/inst-1/overrides"
    mock_api.patch(url, payload={})
    mine = {"htmloverlay-1": {"url": "https://x"}}
    settings = sr.InstanceSettings(name="cam-1", overrides=mine)
    mine["htmloverlay-1"]["url"] = "https://changed"
    assert settings.overrides == {"htmloverlay-1": {"url": "https://x"}}


# --- session ownership -------------------------------------------------------------------------


async def test_callers_session_is_used_and_left_open(
    local_server: Callable[..., Awaitable[LocalServer]],
) -> None:
    seen: list[str | None] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("X-Session"))
        return web.json_response([])

    server = await local_server(handler)
    async with aiohttp.ClientSession(headers={"X-Session": "mine"}) as session:
        async with sr.StreamrunClient(API_KEY, base_url=server.url, session=session) as c:
            assert await c.destinations.list() == []
        assert c.closed
        assert not session.closed
        async with session.get(f"{server.url}/still-usable") as resp:
            assert resp.status == 200
    assert seen == ["mine", "mine"]


async def test_callers_session_settings_do_not_change_error_mapping(
    local_server: Callable[..., Awaitable[LocalServer]],
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": {"message": "no such instance"}}, status=404)

    server = await local_server(handler)
    events: list[sr.RetryEvent] = []
    policy = sr.RetryPolicy.for_testing(on_retry=events.append)
    async with (
        aiohttp.ClientSession(raise_for_status=True) as session,
        sr.StreamrunClient(API_KEY, base_url=server.url, session=session, retry=policy) as c,
    ):
        with pytest.raises(sr.NotFoundError) as info:
            await c.instances.get("inst-1")
    assert "no such instance" in str(info.value)
    assert len(server.requests) == 1
    assert events == []


async def test_own_session_is_closed_by_async_with(mock_api: aioresponses) -> None:
    mock_api.get(f"{API}/destinations", payload=[])
    async with sr.StreamrunClient(API_KEY) as c:
        await c.destinations.list()
        session = c._transport._session
        assert session is not None
        assert not session.closed
    assert session.closed
    assert c.closed


async def test_closed_client_refuses_calls(mock_api: aioresponses) -> None:
    c = sr.StreamrunClient(API_KEY)
    await c.aclose()
    await c.aclose()  # closing twice is harmless
    assert "closed" in repr(c)
    with pytest.raises(sr.ClientClosedError) as info:
        await c.instances.list()
    assert isinstance(info.value, RuntimeError)
    with pytest.raises(sr.ClientClosedError):
        await c.configurations.launch("cfg-1")
    assert total_calls(mock_api) == 0


async def test_closed_callers_session_is_a_clear_error(mock_api: aioresponses) -> None:
    session = aiohttp.ClientSession()
    await session.close()
    async with sr.StreamrunClient(API_KEY, session=session) as c:
        with pytest.raises(sr.ClientClosedError, match="session"):
            await c.instances.list()
    assert total_calls(mock_api) == 0


async def test_no_unclosed_session_warnings(
    local_server: Callable[..., Awaitable[LocalServer]],
) -> None:
    server = await local_server()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            async with sr.StreamrunClient(API_KEY, base_url=server.url) as c:
                await c.destinations.list()
            unused = sr.StreamrunClient(API_KEY, base_url=server.url)
            await unused.aclose()
        del c, unused
        await asyncio.sleep(0)
        gc.collect()
    assert [str(w.message) for w in caught if "nclosed" in str(w.message)] == []


def test_client_made_outside_a_loop_makes_no_session() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        c = sr.StreamrunClient(API_KEY)
        assert c._transport._session is None
        del c
        gc.collect()
    assert caught == []


# --- response size cap -------------------------------------------------------------------------

CAP = 1000


def sized_server(size: int, *, chunked: bool, status: int = 200) -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        body = b"[" + b" " * (size - 2) + b"]"
        if not chunked:
            return web.Response(body=body, status=status, content_type="application/json")
        resp = web.StreamResponse(status=status, headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for start in range(0, len(body), 100):
            await resp.write(body[start : start + 100])
        await resp.write_eof()
        return resp

    return handler


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("status", [200, 500])
async def test_oversize_response_is_a_decode_error(
    local_server: Callable[..., Awaitable[LocalServer]], chunked: bool, status: int
) -> None:
    server = await local_server(sized_server(CAP * 5, chunked=chunked, status=status))
    async with sr.StreamrunClient(
        API_KEY, base_url=server.url, retry=NO_RETRY, max_response_bytes=CAP
    ) as c:
        with pytest.raises(sr.ResponseDecodeError, match="1000 byte cap") as info:
            await c.destinations.list()
        assert info.value.status == status
        assert info.value.outcome_unknown is False
        with pytest.raises(sr.ResponseDecodeError) as launch:
            await c.configurations.launch("cfg-1")
        assert launch.value.outcome_unknown is True


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_response_at_the_cap_is_read(
    local_server: Callable[..., Awaitable[LocalServer]], chunked: bool
) -> None:
    server = await local_server(sized_server(CAP, chunked=chunked))
    async with sr.StreamrunClient(
        API_KEY, base_url=server.url, retry=NO_RETRY, max_response_bytes=CAP
    ) as c:
        assert await c.destinations.list() == []


async def test_endless_chunked_stream_stops_at_the_cap(
    raw_server: Callable[..., Awaitable[RawServer]],
) -> None:
    async def behaviour(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Streams far more than the cap without ever ending the body.
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        writer.write(b"Transfer-Encoding: chunked\r\n\r\n")
        for _ in range(50):
            writer.write(b"64\r\n" + b" " * 100 + b"\r\n")
            await writer.drain()
        await asyncio.sleep(5)

    server = await raw_server(behaviour)
    async with sr.StreamrunClient(
        API_KEY, base_url=server.url, retry=NO_RETRY, max_response_bytes=CAP, timeout=3
    ) as c:
        with pytest.raises(sr.ResponseDecodeError, match="cap"):
            await c.destinations.list()


async def test_request_headers_on_the_wire(
    local_server: Callable[..., Awaitable[LocalServer]],
) -> None:
    seen: list[tuple[Any, str]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append((request.headers.copy(), await request.text()))
        return web.json_response({"x": {"url": "y"}})

    server = await local_server(handler)
    async with sr.StreamrunClient(API_KEY, base_url=server.url, retry=NO_RETRY) as c:
        await c.instances.update_overrides("i", {"x": {"url": "y"}})
    ((headers, body),) = seen
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    assert headers["Content-Type"] == "application/json"
    assert headers["Accept"] == "application/json"
    assert headers["User-Agent"] == f"streamrun-async/{sr.__version__}"
    assert json.loads(body) == {"x": {"url": "y"}}
