"""A client that fits where it runs: base URL from the environment, proxies, a connection
limit, per-call options, event loops, and honest outcomes of retried launches."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FunctionType
from typing import Any

import pytest
from aiohttp import web
from aioresponses import aioresponses
from conftest import API, API_KEY, LocalServer, calls, total_calls

import streamrun_async as sr

Server = Callable[..., Awaitable[LocalServer]]

# --- the base URL -------------------------------------------------------------------------------


async def test_the_base_url_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, mock_api: aioresponses
) -> None:
    monkeypatch.setenv("STREAMRUN_BASE_URL", "https://proxy.example/streamrun/")
    mock_api.get("https://proxy.example/streamrun/api/v1/destinations", payload=[])
    async with sr.StreamrunClient(API_KEY) as c:
        assert c.base_url == "https://proxy.example/streamrun"
        assert await c.destinations.list() == []


async def test_an_explicit_base_url_wins_over_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STREAMRUN_BASE_URL", "https://proxy.example")
    async with sr.StreamrunClient(API_KEY, base_url="https://other.example") as c:
        assert c.base_url == "https://other.example"


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_environment_base_url_means_the_default(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("STREAMRUN_BASE_URL", value)
    assert sr.StreamrunClient(API_KEY).base_url == sr.DEFAULT_BASE_URL


def test_the_environment_base_url_is_checked_like_an_argument(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STREAMRUN_BASE_URL", "http://streamrun.example")
    with pytest.raises(sr.InsecureTransportError):
        sr.StreamrunClient(API_KEY)


@pytest.mark.parametrize(
    ("base_url", "suggested"),
    [
        ("http://127.0.0.1:8080/api/v1", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/api/v1/", "http://127.0.0.1:8080"),
        ("https://proxy.example/streamrun/api/v1", "https://proxy.example/streamrun"),
    ],
)
def test_a_base_url_ending_in_the_api_prefix_is_refused(base_url: str, suggested: str) -> None:
    with pytest.raises(sr.InvalidArgumentError, match="drop it") as info:
        sr.StreamrunClient(API_KEY, base_url=base_url)
    assert repr(suggested) in str(info.value)


def test_an_environment_base_url_ending_in_the_api_prefix_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STREAMRUN_BASE_URL", "http://127.0.0.1:8080/api/v1")
    with pytest.raises(sr.InvalidArgumentError, match=r"STREAMRUN_BASE_URL.*drop it"):
        sr.StreamrunClient(API_KEY)


def test_a_path_that_only_contains_the_prefix_is_allowed() -> None:
    c = sr.StreamrunClient(API_KEY, base_url="https://proxy.example/api/v1/streamrun")
    assert c.base_url == "https://proxy.example/api/v1/streamrun"


# --- proxies and the connection limit ---------------------------------------------------------


class Proxy:
    """A forward proxy on loopback that answers every request itself and records its head."""

    def __init__(self) -> None:
        self.heads: list[bytes] = []
        self.url = ""
        self._server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
            b"Connection: close\r\n\r\n[]"
        )
        await writer.drain()
        writer.close()

    async def __aenter__(self) -> Proxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


async def test_the_client_session_goes_through_the_proxy_of_the_environment(
    no_proxy_env: pytest.MonkeyPatch,
) -> None:
    async with Proxy() as proxy:
        no_proxy_env.setenv("HTTP_PROXY", proxy.url.replace("127.0.0.1", "user:p%40ss@127.0.0.1"))
        async with sr.StreamrunClient(
            API_KEY, base_url="http://streamrun.test", allow_insecure=True
        ) as c:
            assert await c.destinations.list() == []
            assert await c.instances.list() == []
    lines = [head.split(b"\r\n") for head in proxy.heads]
    assert [line[0] for line in lines] == [
        b"GET http://streamrun.test/api/v1/destinations HTTP/1.1",
        b"GET http://streamrun.test/api/v1/instances HTTP/1.1",
    ]
    # The proxy's own credentials, from its URL, go to the proxy.
    assert b"Proxy-Authorization: Basic dXNlcjpwQHNz" in lines[0]


async def test_https_goes_through_a_tunnel_whose_connect_carries_no_api_key(
    no_proxy_env: pytest.MonkeyPatch,
) -> None:
    async with Proxy() as proxy:
        no_proxy_env.setenv("HTTPS_PROXY", proxy.url.replace("127.0.0.1", "user:pw@127.0.0.1"))
        async with sr.StreamrunClient(
            API_KEY, base_url="https://streamrun.test", retry=sr.RetryPolicy.disabled()
        ) as c:
            # This proxy answers the CONNECT itself instead of opening a tunnel.
            with pytest.raises(sr.APIError) as info:
                await c.destinations.list()
    assert API_KEY not in str(info.value)
    (head,) = proxy.heads
    lines = head.split(b"\r\n")
    assert lines[0] == b"CONNECT streamrun.test:443 HTTP/1.1"
    assert b"Proxy-Authorization: Basic dXNlcjpwdw==" in lines
    # The bearer key travels inside the tunnel only, never to the proxy.
    assert API_KEY.encode() not in head


async def test_no_proxy_spares_the_api_host(
    no_proxy_env: pytest.MonkeyPatch, local_server: Server
) -> None:
    server = await local_server()
    async with Proxy() as proxy:
        no_proxy_env.setenv("HTTP_PROXY", proxy.url)
        no_proxy_env.setenv("NO_PROXY", "localhost,127.0.0.1")
        async with sr.StreamrunClient(API_KEY, base_url=server.url) as c:
            assert await c.destinations.list() == []
    assert proxy.heads == []
    assert server.requests == [("GET", "/api/v1/destinations")]


async def test_a_callers_session_keeps_its_own_proxy_settings(
    no_proxy_env: pytest.MonkeyPatch, local_server: Server
) -> None:
    import aiohttp

    server = await local_server()
    async with Proxy() as proxy:
        no_proxy_env.setenv("HTTP_PROXY", proxy.url)
        async with (
            aiohttp.ClientSession() as session,  # trust_env=False: no proxy
            sr.StreamrunClient(API_KEY, base_url=server.url, session=session) as c,
        ):
            assert await c.destinations.list() == []
    assert proxy.heads == []
    assert len(server.requests) == 1


@pytest.mark.parametrize(("limit", "peak"), [(2, 2), (None, 6)])
async def test_max_connections_bounds_requests_in_flight(
    local_server: Server, limit: int | None, peak: int
) -> None:
    active = seen = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal active, seen
        active += 1
        seen = max(seen, active)
        await asyncio.sleep(0.05)
        active -= 1
        return web.json_response([])

    server = await local_server(handler)
    async with sr.StreamrunClient(API_KEY, base_url=server.url, max_connections=limit) as c:
        await asyncio.gather(*(c.destinations.list() for _ in range(6)))
    assert seen == peak


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (0, sr.InvalidArgumentError),
        ("8", sr.InvalidArgumentTypeError),
        (True, sr.InvalidArgumentTypeError),
    ],
)
def test_bad_connection_limits_are_refused(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        sr.StreamrunClient(API_KEY, max_connections=value)


async def test_a_connection_limit_with_a_callers_session_is_refused() -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        with pytest.raises(sr.InvalidArgumentError, match="connector"):
            sr.StreamrunClient(API_KEY, session=session, max_connections=4)


# --- with_options ---------------------------------------------------------------------------


async def test_with_options_changes_the_retry_policy_of_a_view_only(
    client: sr.StreamrunClient, mock_api: aioresponses
) -> None:
    url = f"{API}/instances"
    mock_api.get(url, status=503, repeat=True)
    parents = client.instances  # built before the view: the view must not reuse it
    view = client.with_options(retry=sr.RetryPolicy.disabled())
    assert view.instances is not parents
    with pytest.raises(sr.ServerError):
        await view.instances.list()
    assert len(calls(mock_api, "GET", url)) == 1
    assert view.retry == sr.RetryPolicy.disabled()
    with pytest.raises(sr.ServerError):
        await client.instances.list()
    assert len(calls(mock_api, "GET", url)) == 1 + client.retry.attempts


async def test_with_options_changes_the_attempt_timeout(local_server: Server) -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.3)
        return web.json_response([])

    server = await local_server(slow)
    async with sr.StreamrunClient(API_KEY, base_url=server.url) as c:
        hasty = c.with_options(timeout=0.05, retry=sr.RetryPolicy.disabled())
        assert (hasty.timeout, c.timeout) == (0.05, 30.0)
        with pytest.raises(sr.APITimeoutError):
            await hasty.destinations.list()
        assert await c.destinations.list() == []


async def test_a_view_shares_the_session_the_poller_and_the_lifetime(
    client: sr.StreamrunClient, mock_api: aioresponses
) -> None:
    mock_api.get(f"{API}/destinations", payload=[], repeat=True)
    view = client.with_options(timeout=5)
    await client.destinations.list()
    await view.destinations.list()
    assert view._transport._session is client._transport._session
    assert view._poller is client._poller
    assert view.with_options(timeout=3)._poller is client._poller
    await view.aclose()  # a view owns nothing: the client goes on
    assert not client.closed
    assert await client.destinations.list() == []
    await client.aclose()
    assert view.closed
    with pytest.raises(sr.ClientClosedError):
        await view.destinations.list()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"retry": {"attempts": 1}}, sr.InvalidArgumentTypeError),
        ({"timeout": 0}, sr.InvalidArgumentError),
        ({"timeout": "5"}, sr.InvalidArgumentTypeError),
    ],
)
def test_with_options_checks_its_arguments(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        sr.StreamrunClient(API_KEY).with_options(**kwargs)


# --- event loops ------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: every connection closes after its answer, so no socket outlives a loop.
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        body = b"[]"
        if self.path == "/api/v1/instances":
            body = b'{"instances": [{"id": "inst-1", "state": "RUNNING"}]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def thread_server() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server in its own thread: it outlives the event loops of a test."""
    seen: list[str] = []
    handler = type("Handler", (_Handler,), {"requests": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()
    thread.join()


# A client made at import time, as a bot's module would.
MODULE_CLIENT: dict[str, sr.StreamrunClient] = {}


def test_a_client_works_again_in_a_second_asyncio_run(
    thread_server: tuple[str, list[str]],
) -> None:
    url, seen = thread_server
    client = MODULE_CLIENT.setdefault("c", sr.StreamrunClient(API_KEY, base_url=url))

    async def use() -> Any:
        return await client.destinations.list()

    async def wait() -> sr.Instance:
        return await client.instances.wait_for_state("inst-1", timeout=5)

    try:
        assert asyncio.run(use()) == []
        first = client._transport._session
        assert asyncio.run(use()) == []
        assert client._transport._session is not first
        assert first is not None
        assert first.closed
        # The shared poller follows the client into each new loop too.
        assert asyncio.run(wait()).state is sr.InstanceState.RUNNING
        assert asyncio.run(wait()).state is sr.InstanceState.RUNNING
    finally:
        asyncio.run(client.aclose())
        MODULE_CLIENT.clear()
    assert seen[:2] == ["/api/v1/destinations"] * 2
    assert set(seen[2:]) == {"/api/v1/instances"}


async def test_a_client_in_use_by_another_running_loop_is_refused(
    thread_server: tuple[str, list[str]],
) -> None:
    url, seen = thread_server
    other = asyncio.new_event_loop()
    thread = threading.Thread(target=other.run_forever, daemon=True)
    thread.start()
    client = sr.StreamrunClient(API_KEY, base_url=url)
    try:
        first = asyncio.run_coroutine_threadsafe(client.destinations.list(), other)
        assert await asyncio.wrap_future(first) == []
        with pytest.raises(sr.EventLoopError, match="another event loop") as info:
            await client.destinations.list()
        assert isinstance(info.value, sr.StreamrunError)
        assert isinstance(info.value, RuntimeError)
        assert seen == ["/api/v1/destinations"]  # nothing sent from the second loop
        # A wait from here ends at once with the same error, not at its deadline.
        with pytest.raises(sr.EventLoopError):
            await asyncio.wait_for(client.instances.wait_for_state("inst-1", timeout=30), 5)
        assert seen == ["/api/v1/destinations"]
        # Nor can it be closed from here: the session belongs to the other loop.
        with pytest.raises(sr.EventLoopError):
            await client.aclose()
        assert client.closed
    finally:
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(client.aclose(), other))
        other.call_soon_threadsafe(other.stop)
        thread.join()
        other.close()


async def test_a_callers_session_from_an_ended_loop_is_a_clear_error(
    thread_server: tuple[str, list[str]],
) -> None:
    import aiohttp

    url, seen = thread_server

    async def make() -> tuple[sr.StreamrunClient, aiohttp.ClientSession]:
        session = aiohttp.ClientSession()
        client = sr.StreamrunClient(API_KEY, base_url=url, session=session)
        await client.destinations.list()
        await session.close()
        return client, session

    holder: list[Any] = []
    thread = threading.Thread(target=lambda: holder.append(asyncio.run(make())))
    thread.start()
    thread.join()
    client, _ = holder[0]
    with pytest.raises(sr.EventLoopError, match="session passed"):
        await client.destinations.list()
    assert len(seen) == 1


# --- public names -----------------------------------------------------------------------------


def test_public_names_report_the_package_as_their_module() -> None:
    wrong = []
    for name in sr.__all__:
        value = getattr(sr, name)
        module = getattr(value, "__module__", "streamrun_async")
        if isinstance(value, (type, FunctionType)) and module != "streamrun_async":
            wrong.append(f"{name}: {module}")
    assert wrong == []
    assert repr(sr.RetryPolicy).startswith("<class 'streamrun_async.RetryPolicy'")


async def test_models_still_decode_with_the_public_module_name(
    client: sr.StreamrunClient, mock_api: aioresponses
) -> None:
    mock_api.get(f"{API}/instances/i", payload={"id": "i", "state": "running"})
    assert (await client.instances.get("i")).state is sr.InstanceState.RUNNING


# --- a launch whose re-send never happened ---------------------------------------------------


async def test_a_launch_refused_with_a_long_retry_after_keeps_the_real_error(
    mock_api: aioresponses,
) -> None:
    launch = f"{API}/configurations/cfg-1/instances"
    mock_api.post(launch, status=503, headers={"Retry-After": "5"}, body="busy")
    policy = sr.RetryPolicy(attempts=4, timeout=1.0, testing=True)
    async with sr.StreamrunClient(API_KEY, retry=policy) as c:
        with pytest.raises(sr.ServerError) as info:
            await c.configurations.launch("cfg-1")
    # 503: the server did not act, and no second POST went out to change that.
    assert info.value.status == 503
    assert info.value.outcome_unknown is False
    assert total_calls(mock_api) == 1


async def test_a_launch_that_never_connected_within_the_budget_keeps_the_real_error(
    closed_port_url: str,
) -> None:
    policy = sr.RetryPolicy(attempts=4, timeout=0.05, wait_initial=1.0, testing=True)
    async with sr.StreamrunClient(API_KEY, base_url=closed_port_url, retry=policy) as c:
        with pytest.raises(sr.APIConnectionError) as info:
            await c.configurations.launch("cfg-1")
    assert "could not connect" in str(info.value)
    assert info.value.outcome_unknown is False


async def test_a_transport_view_shares_session_secrets_and_lifetime(
    mock_api: aioresponses,
) -> None:
    mock_api.get(f"{API}/destinations", payload=[], repeat=True)
    async with sr.StreamrunClient(API_KEY) as c:
        transport = c._transport
        view = transport.with_options(retry=sr.RetryPolicy.disabled())
        assert (view.retry, view.timeout) == (sr.RetryPolicy.disabled(), transport.timeout)
        assert transport.retry == sr.RetryPolicy()
        await view.request("GET", ["destinations"])
        assert view._session is transport._session is not None
        assert view.secrets is transport.secrets
    assert view.closed
