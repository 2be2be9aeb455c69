"""Shared fixtures: a mocked API (aioresponses), tiny local servers, a ready client."""

from __future__ import annotations

import asyncio
import inspect
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any
from unittest import mock

import aiohttp
import pytest
from aiohttp import web
from aioresponses import aioresponses
from aioresponses import core as aioresponses_core
from yarl import URL

import streamrun_async as sr
from streamrun_async.testing import Dialect

# Has a "/" and a "+" like real base64 keys, so JSON-escaped echoes ("\/") are tested too.
API_KEY = "sk-test-S3CR3T/key+42"
BASE = "https://streamrun.com"
API = f"{BASE}/api/v1"


class _CompatResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 builds responses without aiohttp 3.14's ``stream_writer``.

    Upstream: https://github.com/pnuckowski/aioresponses/issues/289
    """

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", mock.Mock(output_size=0))
        super().__init__(method, url, **kwargs)


@pytest.fixture
def mock_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[aioresponses]:
    """aioresponses, usable with the installed aiohttp; unmatched requests fail."""
    if "stream_writer" in inspect.signature(aiohttp.ClientResponse.__init__).parameters:
        monkeypatch.setattr(aioresponses_core, "ClientResponse", _CompatResponse)
    with aioresponses() as m:
        yield m


def calls(m: aioresponses, method: str, url: str) -> list[Any]:
    """The requests aioresponses recorded for ``method url`` (kwargs of each)."""
    return [call.kwargs for call in m.requests.get((method, URL(url)), [])]


def total_calls(m: aioresponses) -> int:
    return sum(len(v) for v in m.requests.values())


def sent_json(kwargs: dict[str, Any]) -> Any:
    data = kwargs.get("data")
    return None if data is None else json.loads(data)


@pytest.fixture
async def client() -> AsyncIterator[sr.StreamrunClient]:
    """A client of the default base URL that retries without sleeping."""
    async with sr.StreamrunClient(api_key=API_KEY, retry=sr.RetryPolicy.for_testing()) as c:
        yield c


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class LocalServer:
    """An aiohttp.web app on 127.0.0.1 that records every request; ``handler`` answers
    whatever the extra ``routes`` do not."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.handler: Handler | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self, routes: Callable[[web.Application], None] | None = None) -> str:
        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            self.requests.append((request.method, request.raw_path))
            return await handler(request)

        app = web.Application(middlewares=[record])
        if routes is not None:
            routes(app)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if self.handler is None:
            return web.json_response([])
        return await self.handler(request)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def local_server() -> AsyncIterator[Callable[..., Awaitable[LocalServer]]]:
    """Factory: ``server = await local_server(handler)``; stopped after the test."""
    servers: list[LocalServer] = []

    async def start(
        handler: Handler | None = None, routes: Callable[[web.Application], None] | None = None
    ) -> LocalServer:
        server = LocalServer()
        server.handler = handler
        servers.append(server)
        await server.start(routes)
        return server

    yield start
    for server in servers:
        await server.stop()


class RawServer:
    """A TCP server speaking raw bytes, for misbehaviour aiohttp.web will not produce."""

    def __init__(self, behaviour: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]):
        self.behaviour = behaviour
        self.connections = 0
        self.requests = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
            await self.behaviour(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[..., Awaitable[RawServer]]]:
    """Factory: ``server = await raw_server(async_behaviour(reader, writer))``."""
    servers: list[RawServer] = []

    async def start(behaviour: Callable[..., Any]) -> RawServer:
        server = RawServer(behaviour)
        servers.append(server)
        await server.start()
        return server

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL on which nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class RawAnswer:
    """What the emulator answered to a raw request."""

    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> tuple[str, str]:
        """(code, message) of a JSON error body."""
        error = self.json["error"]
        return error["code"], error["message"]


class RawApi:
    """Raw HTTP to an emulator, no SDK in between; paths are relative to /api/v1 and
    sent exactly as written (already percent-encoded)."""

    def __init__(self, session: aiohttp.ClientSession, emulator: Any) -> None:
        self.session = session
        self.emulator = emulator

    async def __call__(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        key: str | None = None,
    ) -> RawAnswer:
        url = URL(f"{self.emulator.url}/api/v1{path}", encoded=True)
        sent = {"Authorization": f"Bearer {key or self.emulator.api_key}", **(headers or {})}
        async with self.session.request(
            method, url, json=json, data=data, headers=sent, allow_redirects=False
        ) as r:
            return RawAnswer(r.status, r.headers, await r.read())

    async def launch(
        self, *names: str, cfg: str | None = None, overrides: dict[str, Any] | None = None
    ) -> Any:
        """Launch instances ``names`` (none: a default launch); the instance request."""
        body = None
        if names:
            settings = [{"name": n, "overrides": overrides or {}} for n in names]
            body = {"numberOfInstances": len(names), "instanceSettings": settings}
        cfg = cfg or self.emulator.configuration_ids[0]
        answer = await self("POST", f"/configurations/{cfg}/instances", json=body)
        assert answer.status == 201, answer.body
        return answer.json


@pytest.fixture
async def raw_api(streamrun_emulator: Any) -> AsyncIterator[RawApi]:
    """Raw requests to the ``streamrun_emulator`` fixture's emulator."""
    async with aiohttp.ClientSession() as session:
        yield RawApi(session, streamrun_emulator)


# --- dialects: the emulator's presets -------------------------------------------------------

PRESETS = Dialect.presets()


@pytest.fixture(params=list(PRESETS.values()), ids=list(PRESETS))
def dialect(request: pytest.FixtureRequest) -> Dialect:
    """Every dialect preset of the emulator in turn; test ids name it (``test_x[observed]``).
    Use it as ``Emulator(dialect=dialect)``."""
    preset: Dialect = request.param
    return preset


# --- the chaos soak's size and report (tests/test_soak.py) ------------------------------------

SOAK_REPORTS: list[str] = []
"""Tables the soak appends; printed in the terminal summary so that every run shows them."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak-size",
        type=int,
        default=500,
        help="instances the chaos soak launches (10 per configuration; default 500)",
    )


@pytest.fixture
def soak_size(request: pytest.FixtureRequest) -> int:
    size = int(request.config.getoption("--soak-size"))
    if size < 10:
        raise pytest.UsageError("--soak-size must be at least 10")
    return size


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for table in SOAK_REPORTS:
        terminalreporter.write_sep("-", "chaos soak")
        terminalreporter.write_line(table)
