"""The retry matrix: which method and failure retry, how often, and how long they wait."""

from __future__ import annotations

import asyncio
import email.utils
import subprocess
import sys
import textwrap
import time
import types
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web
from aiohttp.client_reqrep import ConnectionKey
from aioresponses import aioresponses
from conftest import API, API_KEY, LocalServer, RawServer, total_calls

import streamrun_async as sr
from streamrun_async import _retrying

Call = Callable[[sr.StreamrunClient], Awaitable[Any]]


def refused() -> aiohttp.ClientConnectorError:
    key = ConnectionKey("streamrun.com", 443, True, True, None, None, None)
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connection refused"))


def client_with(
    events: list[sr.RetryEvent], attempts: int = 3, **kwargs: Any
) -> sr.StreamrunClient:
    policy = sr.RetryPolicy.for_testing(attempts=attempts, on_retry=events.append)
    return sr.StreamrunClient(API_KEY, retry=policy, **kwargs)


# (name, method, url, call, success answer)
IDEMPOTENT: list[tuple[str, str, str, Call, dict[str, Any]]] = [
    (
        "GET",
        "GET",
        f"{API}/instances/inst-1",
        lambda c: c.instances.get("inst-1"),
        {"payload": {"id": "inst-1", "state": "RUNNING"}},
    ),
    (
        "PUT",
        "PUT",
        f"{API}/configurations/cfg-1/instances",
        lambda c: c.configurations.set_outputs("cfg-1", sr.Outputs.LIVE),
        {"status": 204},
    ),
    (
        "PATCH",
        "PATCH",
        f"{API}/instances/inst-1/overrides",
        lambda c: c.instances.update_overrides("inst-1", {"switch-1": {"input": "x"}}),
        {"payload": {"switch-1": {"input": "x"}}},
    ),
    (
        "DELETE",
        "DELETE",
        f"{API}/instances/inst-1",
        lambda c: c.instances.stop("inst-1"),
        {"status": 204},
    ),
]
POSTS: list[tuple[str, str, str, Call, dict[str, Any]]] = [
    (
        "launch",
        "POST",
        f"{API}/configurations/cfg-1/instances",
        lambda c: c.configurations.launch("cfg-1"),
        {"status": 201, "headers": {"Location": "/api/v1/instance-requests/req-1"}},
    ),
    (
        "launch-list",
        "POST",
        f"{API}/configurations/cfg-1/instances",
        lambda c: c.configurations.launch("cfg-1", [sr.InstanceSettings(name="cam-1")]),
        {"status": 201, "headers": {"Location": "/api/v1/instance-requests/req-1"}},
    ),
    (
        "restart",
        "POST",
        f"{API}/instances/inst-1/restart",
        lambda c: c.instances.restart("inst-1"),
        {"status": 202},
    ),
]


def failure(name: str) -> dict[str, Any]:
    """aioresponses arguments for one kind of failure (built fresh: exceptions are reused)."""
    if name == "refused":
        return {"exception": refused()}
    if name == "disconnected":
        return {"exception": aiohttp.ServerDisconnectedError()}
    if name == "reset":
        return {"exception": aiohttp.ClientOSError(104, "Connection reset by peer")}
    if name == "payload":
        return {"exception": aiohttp.ClientPayloadError("Response payload is not completed")}
    if name == "timeout":
        return {"timeout": True}
    return {"status": int(name), "body": '{"error": {"message": "try later"}}'}


IDEMPOTENT_RETRIED = [
    *("refused", "disconnected", "reset", "timeout"),
    *("408", "429", "500", "502", "503", "504"),
]


def rows(table: list[tuple[str, str, str, Call, dict[str, Any]]]) -> list[Any]:
    return [pytest.param(*row[1:], id=row[0]) for row in table]


@pytest.mark.parametrize("kind", IDEMPOTENT_RETRIED)
@pytest.mark.parametrize(("method", "url", "call", "ok"), rows(IDEMPOTENT))
async def test_idempotent_calls_retry_then_succeed(
    mock_api: aioresponses, method: str, url: str, call: Call, ok: dict[str, Any], kind: str
) -> None:
    mock_api.add(url, method, **failure(kind))
    mock_api.add(url, method, **failure(kind))
    mock_api.add(url, method, **ok)
    events: list[sr.RetryEvent] = []
    async with client_with(events, attempts=3) as c:
        await call(c)
    assert total_calls(mock_api) == 3
    assert [e.attempt for e in events] == [1, 2]
    assert all(e.method == method for e in events)
    assert all(e.url.startswith("/api/v1/") for e in events)
    assert all(isinstance(e.cause, sr.APIError) for e in events)


@pytest.mark.parametrize("kind", IDEMPOTENT_RETRIED)
@pytest.mark.parametrize(("method", "url", "call", "ok"), rows(IDEMPOTENT))
async def test_idempotent_calls_stop_after_attempts(
    mock_api: aioresponses, method: str, url: str, call: Call, ok: dict[str, Any], kind: str
) -> None:
    for _ in range(4):
        mock_api.add(url, method, **failure(kind))
    events: list[sr.RetryEvent] = []
    async with client_with(events, attempts=3) as c:
        with pytest.raises(sr.APIError) as info:
            await call(c)
    assert total_calls(mock_api) == 3
    assert len(events) == 2
    error = info.value
    assert error.method == method
    if kind.isdigit():
        assert isinstance(error, sr.APIStatusError)
        assert error.status == int(kind)
    else:
        assert isinstance(error, sr.APIConnectionError)
        assert isinstance(error, sr.APITimeoutError) == (kind == "timeout")
    # Idempotent calls are safe to repeat: the outcome is never called unknown.
    assert "outcome is unknown" not in str(error)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 422, 501])
@pytest.mark.parametrize(("method", "url", "call", "ok"), rows(IDEMPOTENT))
async def test_other_statuses_are_not_retried(
    mock_api: aioresponses, method: str, url: str, call: Call, ok: dict[str, Any], status: int
) -> None:
    mock_api.add(url, method, status=status, repeat=True)
    events: list[sr.RetryEvent] = []
    async with client_with(events) as c:
        with pytest.raises(sr.APIStatusError) as info:
            await call(c)
    assert info.value.status == status
    assert total_calls(mock_api) == 1
    assert events == []


async def test_decode_errors_are_not_retried(mock_api: aioresponses) -> None:
    mock_api.get(f"{API}/instances", body="<html>", repeat=True)
    events: list[sr.RetryEvent] = []
    async with client_with(events) as c:
        with pytest.raises(sr.ResponseDecodeError):
            await c.instances.list()
    assert total_calls(mock_api) == 1


@pytest.mark.parametrize("kind", ["refused", "429", "503"])
@pytest.mark.parametrize(("method", "url", "call", "ok"), rows(POSTS))
async def test_post_retries_only_when_the_server_did_not_act(
    mock_api: aioresponses, method: str, url: str, call: Call, ok: dict[str, Any], kind: str
) -> None:
    mock_api.add(url, method, **failure(kind))
    mock_api.add(url, method, **failure(kind))
    mock_api.add(url, method, **ok)
    events: list[sr.RetryEvent] = []
    async with client_with(events, attempts=3) as c:
        await call(c)
    assert total_calls(mock_api) == 3
    assert [e.attempt for e in events] == [1, 2]
    assert all(e.cause.outcome_unknown is False for e in events)


@pytest.mark.parametrize("kind", ["refused", "429", "503"])
async def test_post_retries_stop_after_attempts(mock_api: aioresponses, kind: str) -> None:
    url = f"{API}/configurations/cfg-1/instances"
    for _ in range(5):
        mock_api.post(url, **failure(kind))
    events: list[sr.RetryEvent] = []
    async with client_with(events, attempts=4) as c:
        with pytest.raises(sr.APIError) as info:
            await c.configurations.launch("cfg-1")
    assert total_calls(mock_api) == 4
    assert info.value.outcome_unknown is False


@pytest.mark.parametrize(
    "kind", ["timeout", "disconnected", "reset", "payload", "500", "502", "504"]
)
@pytest.mark.parametrize(("method", "url", "call", "ok"), rows(POSTS))
async def test_post_is_not_retried_when_the_outcome_is_unknown(
    mock_api: aioresponses, method: str, url: str, call: Call, ok: dict[str, Any], kind: str
) -> None:
    mock_api.add(url, method, **failure(kind))
    mock_api.add(url, method, **ok)
    events: list[sr.RetryEvent] = []
    async with client_with(events, attempts=5) as c:
        with pytest.raises(sr.APIError) as info:
            await call(c)
    assert total_calls(mock_api) == 1
    assert events == []
    error = info.value
    assert error.outcome_unknown is True
    assert "outcome is unknown" in str(error)
    assert error.method == "POST"
    if kind.isdigit():
        assert isinstance(error, sr.ServerError)
    else:
        assert isinstance(error, sr.APIConnectionError)
        assert isinstance(error, sr.APITimeoutError) == (kind == "timeout")


@pytest.mark.parametrize("status", [400, 404, 408, 409, 501])
async def test_post_other_statuses_are_not_retried_and_known(
    mock_api: aioresponses, status: int
) -> None:
    mock_api.post(f"{API}/instances/inst-1/restart", status=status, repeat=True)
    events: list[sr.RetryEvent] = []
    async with client_with(events) as c:
        with pytest.raises(sr.APIStatusError) as info:
            await c.instances.restart("inst-1")
    assert total_calls(mock_api) == 1
    assert info.value.outcome_unknown is (status == 501)


async def test_disabled_policy_makes_one_attempt(mock_api: aioresponses) -> None:
    mock_api.get(f"{API}/instances", status=503, repeat=True)
    async with sr.StreamrunClient(API_KEY, retry=sr.RetryPolicy.disabled()) as c:
        with pytest.raises(sr.ServerError):
            await c.instances.list()
    assert total_calls(mock_api) == 1


# --- real connections: what aioresponses cannot fake -----------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c: c.configurations.launch("cfg-1"), id="launch"),
        pytest.param(lambda c: c.instances.list(), id="GET"),
    ],
)
async def test_nothing_listening_is_retried_even_for_post(closed_port_url: str, call: Call) -> None:
    events: list[sr.RetryEvent] = []
    async with client_with(events, attempts=3, base_url=closed_port_url) as c:
        with pytest.raises(sr.APIConnectionError) as info:
            await call(c)
    assert len(events) == 2
    assert info.value.outcome_unknown is False
    assert not isinstance(info.value, sr.APITimeoutError)
    assert "could not connect" in str(info.value)


@pytest.fixture
async def hanging_server(local_server: Callable[..., Awaitable[LocalServer]]) -> LocalServer:
    """A server that takes the request and never answers in time."""

    async def hang(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(10)
        return web.json_response([])

    return await local_server(hang)


async def test_launch_is_not_retried_after_a_read_timeout(hanging_server: LocalServer) -> None:
    events: list[sr.RetryEvent] = []
    async with client_with(events, attempts=4, base_url=hanging_server.url, timeout=0.2) as c:
        with pytest.raises(sr.APITimeoutError) as info:
            await c.configurations.launch("cfg-1", [sr.InstanceSettings(name="cam-1")])
    assert hanging_server.requests == [("POST", "/api/v1/configurations/cfg-1/instances")]
    assert events == []
    assert info.value.outcome_unknown is True
    assert "outcome is unknown" in str(info.value)
    assert isinstance(info.value, TimeoutError)


async def test_get_is_retried_after_a_read_timeout(hanging_server: LocalServer) -> None:
    events: list[sr.RetryEvent] = []
    async with client_with(events, attempts=2, base_url=hanging_server.url, timeout=0.1) as c:
        with pytest.raises(sr.APITimeoutError):
            await c.instances.list()
    assert len(hanging_server.requests) == 2
    assert len(events) == 1


async def test_total_budget_bounds_the_whole_call(hanging_server: LocalServer) -> None:
    events: list[sr.RetryEvent] = []
    policy = sr.RetryPolicy(attempts=10, timeout=0.3, testing=True, on_retry=events.append)
    started = time.monotonic()
    async with sr.StreamrunClient(
        API_KEY, base_url=hanging_server.url, retry=policy, timeout=30
    ) as c:
        with pytest.raises(sr.APITimeoutError, match=r"0\.3s"):
            await c.instances.list()
    # The per-attempt timeout (30 s) was cut to the budget left; no retry fits after it.
    assert time.monotonic() - started < 5
    assert len(hanging_server.requests) == 1
    assert events == []


async def drop_after_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Take the request, answer nothing, hang up."""


async def half_a_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n")
    writer.write(b"Content-Length: 100\r\n\r\n" + b'{"id": "req-1"')
    await writer.drain()


async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n")
    writer.write(b"Content-Length: 100\r\n\r\n")
    for _ in range(100):
        writer.write(b" ")
        await writer.drain()
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [
        (drop_after_request, sr.APIConnectionError),
        (half_a_body, sr.APIConnectionError),
        (trickle, sr.APITimeoutError),
    ],
    ids=["dropped", "half-body", "trickle"],
)
async def test_launch_is_not_retried_once_the_request_was_sent(
    raw_server: Callable[..., Awaitable[RawServer]], behaviour: Any, error: type[Exception]
) -> None:
    server = await raw_server(behaviour)
    events: list[sr.RetryEvent] = []
    async with client_with(events, attempts=4, base_url=server.url, timeout=0.3) as c:
        with pytest.raises(error) as info:
            await c.configurations.launch("cfg-1")
    assert server.requests == 1
    assert events == []
    assert info.value.outcome_unknown is True  # type: ignore[attr-defined]
    assert "outcome is unknown" in str(info.value)


@pytest.mark.parametrize(
    "behaviour", [drop_after_request, half_a_body], ids=["dropped", "half-body"]
)
async def test_get_is_retried_after_a_dropped_connection(
    raw_server: Callable[..., Awaitable[RawServer]], behaviour: Any
) -> None:
    server = await raw_server(behaviour)
    events: list[sr.RetryEvent] = []
    async with client_with(events, attempts=3, base_url=server.url) as c:
        with pytest.raises(sr.APIConnectionError):
            await c.instances.list()
    assert len(events) == 2
    # aiohttp itself resends an idempotent request once when a server hangs up on it.
    assert server.requests in (3, 6)


# --- Retry-After ---------------------------------------------------------------------------------


async def test_retry_after_seconds_is_honoured(mock_api: aioresponses) -> None:
    url = f"{API}/instances"
    mock_api.get(url, status=429, headers={"Retry-After": "7"})
    mock_api.get(url, status=503, headers={"Retry-After": "2.5"})
    mock_api.get(url, payload=[])
    events: list[sr.RetryEvent] = []
    async with client_with(events) as c:
        assert await c.instances.list() == []
    assert [type(e.cause) for e in events] == [sr.RateLimitError, sr.ServerError]
    assert events[0].wait >= 7
    assert events[1].wait >= 2.5
    assert isinstance(events[0].cause, sr.RateLimitError)
    assert events[0].cause.retry_after == 7


async def test_retry_after_http_date_is_honoured(mock_api: aioresponses) -> None:
    url = f"{API}/configurations/cfg-1/instances"
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    mock_api.post(url, status=503, headers={"Retry-After": when})
    mock_api.post(url, status=201, headers={"Location": "/api/v1/instance-requests/r"})
    events: list[sr.RetryEvent] = []
    async with client_with(events) as c:
        assert (await c.configurations.launch("cfg-1")).id == "r"
    (event,) = events
    assert 28 <= event.wait <= 31 + 10
    assert isinstance(event.cause, sr.APIStatusError)
    assert event.cause.retry_after is not None
    assert 28 <= event.cause.retry_after <= 31


@pytest.mark.parametrize("value", ["garbage", "-5", email.utils.formatdate(0, usegmt=True)])
async def test_unusable_or_past_retry_after_falls_back_to_backoff(
    mock_api: aioresponses, value: str
) -> None:
    url = f"{API}/instances"
    mock_api.get(url, status=429, headers={"Retry-After": value})
    mock_api.get(url, payload=[])
    events: list[sr.RetryEvent] = []
    async with client_with(events) as c:
        await c.instances.list()
    (event,) = events
    policy = sr.RetryPolicy.for_testing()
    assert policy.wait_initial / 2 <= event.wait <= policy.wait_initial


@pytest.mark.parametrize(
    "value", ["3600", "61", email.utils.formatdate(time.time() + 3600, usegmt=True)]
)
async def test_retry_after_above_the_cap_fails_at_once(mock_api: aioresponses, value: str) -> None:
    url = f"{API}/instances"
    mock_api.get(url, status=429, headers={"Retry-After": value}, repeat=True)
    events: list[sr.RetryEvent] = []
    async with client_with(events, attempts=5) as c:
        with pytest.raises(sr.RateLimitError) as info:
            await c.instances.list()
    assert total_calls(mock_api) == 1
    assert events == []
    assert info.value.retry_after is not None
    assert info.value.retry_after > 60


@pytest.mark.parametrize(("retry_after", "requests"), [("4", 2), ("6", 1)])
async def test_max_retry_after_is_configurable(
    mock_api: aioresponses, retry_after: str, requests: int
) -> None:
    url = f"{API}/instances"
    mock_api.get(url, status=429, headers={"Retry-After": retry_after})
    mock_api.get(url, payload=[])
    policy = sr.RetryPolicy(max_retry_after=timedelta(seconds=5), testing=True)
    async with sr.StreamrunClient(API_KEY, retry=policy) as c:
        if requests == 1:
            with pytest.raises(sr.RateLimitError):
                await c.instances.list()
        else:
            assert await c.instances.list() == []
    assert total_calls(mock_api) == requests


async def test_retry_after_beyond_the_budget_fails_at_once(mock_api: aioresponses) -> None:
    url = f"{API}/instances"
    mock_api.get(url, status=429, headers={"Retry-After": "30"}, repeat=True)
    policy = sr.RetryPolicy(timeout=10, testing=True)
    async with sr.StreamrunClient(API_KEY, retry=policy) as c:
        with pytest.raises(sr.RateLimitError):
            await c.instances.list()
    assert total_calls(mock_api) == 1


async def test_the_wait_slept_is_the_wait_reported(
    mock_api: aioresponses, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside test mode each retry sleeps exactly the wait its on_retry event announced."""
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(seconds: float) -> None:
        slept.append(float(seconds))
        await real_sleep(0)

    monkeypatch.setattr(_retrying, "asyncio", types.SimpleNamespace(sleep=fake_sleep))
    url = f"{API}/instances"
    mock_api.get(url, status=429, headers={"Retry-After": "7"})
    mock_api.get(url, status=503, headers={"Retry-After": "3"})
    mock_api.get(url, status=500)
    mock_api.get(url, payload=[])
    events: list[sr.RetryEvent] = []
    policy = sr.RetryPolicy(attempts=4, wait_initial=0.01, wait_max=0.01, on_retry=events.append)
    async with sr.StreamrunClient(API_KEY, retry=policy) as c:
        assert await c.instances.list() == []
    assert slept == [e.wait for e in events]
    assert slept[0] >= 7
    assert slept[1] >= 3
    assert slept[2] <= 0.01


async def test_testing_mode_does_not_sleep(
    mock_api: aioresponses, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(seconds: float) -> None:
        slept.append(float(seconds))
        await real_sleep(0)

    monkeypatch.setattr(_retrying, "asyncio", types.SimpleNamespace(sleep=fake_sleep))
    mock_api.get(f"{API}/instances", status=429, headers={"Retry-After": "30"})
    mock_api.get(f"{API}/instances", payload=[])
    async with sr.StreamrunClient(API_KEY, retry=sr.RetryPolicy.for_testing()) as c:
        await c.instances.list()
    assert slept == [0]


# --- the policy itself -----------------------------------------------------------------------


def test_backoff_is_jittered_exponential_and_capped() -> None:
    policy = sr.RetryPolicy(wait_initial=0.5, wait_max=4)
    for attempt in range(1, 12):
        ceiling = min(4.0, 0.5 * 2 ** (attempt - 1))
        for _ in range(20):
            assert ceiling / 2 <= policy.backoff(attempt) <= ceiling
    assert len({policy.backoff(3) for _ in range(20)}) > 1


async def test_backoff_grows_between_attempts(mock_api: aioresponses) -> None:
    for _ in range(4):
        mock_api.get(f"{API}/instances", status=502)
    mock_api.get(f"{API}/instances", payload=[])
    events: list[sr.RetryEvent] = []
    policy = sr.RetryPolicy(
        attempts=5, wait_initial=1, wait_max=100, testing=True, on_retry=events.append
    )
    async with sr.StreamrunClient(API_KEY, retry=policy) as c:
        await c.instances.list()
    for event in events:
        ceiling = 2.0 ** (event.attempt - 1)
        assert ceiling / 2 <= event.wait <= ceiling


def test_policy_accepts_seconds_and_timedelta() -> None:
    policy = sr.RetryPolicy(
        attempts=2,
        timeout=timedelta(minutes=2),
        wait_initial=timedelta(milliseconds=250),
        wait_max=3,
        max_retry_after=timedelta(seconds=30),
    )
    assert (policy.timeout, policy.wait_initial, policy.wait_max) == (120.0, 0.25, 3.0)
    assert policy.max_retry_after == 30.0
    assert sr.RetryPolicy.disabled().attempts == 1
    testing = sr.RetryPolicy.for_testing(attempts=7)
    assert (testing.attempts, testing.testing) == (7, True)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        policy.attempts = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempts": 0},
        {"attempts": -1},
        {"attempts": 1.5},
        {"timeout": -1},
        {"wait_initial": timedelta(seconds=-1)},
        {"max_retry_after": -0.1},
    ],
)
def test_policy_refuses_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(sr.InvalidArgumentError):
        sr.RetryPolicy(**kwargs)


def test_happy_path_never_imports_tenacity() -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys
        from aiohttp import web
        import streamrun_async as sr

        async def main():
            unavailable = [True]

            async def handler(request):
                if request.method == "POST":
                    location = {"Location": "/api/v1/instance-requests/r"}
                    return web.json_response({}, status=201, headers=location)
                if request.method == "PATCH":
                    return web.json_response({"a": {"b": 1}})
                if request.path == "/api/v1/destinations" and unavailable:
                    unavailable.pop()
                    return web.json_response({}, status=503)
                return web.json_response([])

            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", handler)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            url = f"http://127.0.0.1:{runner.addresses[0][1]}"
            policy = sr.RetryPolicy.for_testing()
            try:
                async with sr.StreamrunClient("k", base_url=url, retry=policy) as c:
                    await c.instances.list()
                    await c.configurations.launch("cfg-1")
                    await c.instances.update_overrides("i", {"a": {"b": 1}})
                    print("tenacity" in sys.modules)
                    await c.destinations.list()  # one 503, then a retry
                    print("tenacity" in sys.modules)
            finally:
                await runner.cleanup()

        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    # Nothing on the happy path; the second line proves the check can fail.
    assert done.stdout.split() == ["False", "True"]


async def test_a_post_whose_retry_no_longer_fits_keeps_its_real_error(
    mock_api: aioresponses, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wait that overran the budget sends nothing more: the 503 (which proves the launch
    was not acted on) is raised, not a timeout claiming the outcome is unknown."""
    real_sleep = asyncio.sleep

    async def overrunning_sleep(seconds: float) -> None:
        await real_sleep(seconds + 0.6)  # a busy loop: the wait ends after the budget

    monkeypatch.setattr(_retrying, "asyncio", types.SimpleNamespace(sleep=overrunning_sleep))
    url = f"{API}/configurations/cfg-1/instances"
    mock_api.post(url, status=503, repeat=True)
    events: list[sr.RetryEvent] = []
    policy = sr.RetryPolicy(
        attempts=4, timeout=0.5, wait_initial=0.01, wait_max=0.01, on_retry=events.append
    )
    async with sr.StreamrunClient(API_KEY, retry=policy) as c:
        with pytest.raises(sr.ServerError) as info:
            await c.configurations.launch("cfg-1")
    assert total_calls(mock_api) == 1
    assert len(events) == 1
    assert info.value.status == 503
    assert info.value.outcome_unknown is False
    assert any("budget" in note for note in info.value.__notes__)
