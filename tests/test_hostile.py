"""Misbehaving servers over the real wire, and a client that lives long.

tests/test_http.py and tests/test_retry.py cover each answer's mapping one at a time
(mostly through aioresponses); here real sockets misbehave as proxies and broken servers
do, memory is measured while they do, and one client makes 10,000 calls through faults.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import gzip
import itertools
import os
import time
import tracemalloc
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from conftest import API_KEY, LocalServer, RawServer

import streamrun_async as sr
from streamrun_async.testing import Emulator, Fault

NO_RETRY = sr.RetryPolicy.disabled()
Call = Callable[[sr.StreamrunClient], Awaitable[Any]]
GET: Call = lambda c: c.instances.list()  # noqa: E731
POST: Call = lambda c: c.configurations.launch("cfg-1")  # noqa: E731

NGINX_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


def http(status: str, headers: dict[str, str], body: bytes) -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return f"HTTP/1.1 {status}\r\n{head}\r\n".encode() + body


def answering(raw: bytes, *, hang_up: bool = True) -> Any:
    async def behaviour(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(raw)
        await writer.drain()
        if not hang_up:
            await asyncio.sleep(5)

    return behaviour


JSON = {"Content-Type": "application/json"}
MISBEHAVIOURS = [
    pytest.param(
        http("200 OK", {**JSON, "Content-Length": "100"}, b'[{"id": "inst-1", "st'),
        sr.APIConnectionError,
        id="shorter-than-content-length",
    ),
    pytest.param(
        http("200 OK", {**JSON, "Transfer-Encoding": "chunked"}, b'5\r\n[{"id\r\n'),
        sr.APIConnectionError,
        id="chunked-cut-off",
    ),
    pytest.param(
        http("200 OK", {**JSON, "Content-Length": "14"}, b'[{"id": "inst-'),
        sr.ResponseDecodeError,
        id="json-cut-in-half",
    ),
    pytest.param(
        http("200 OK", {**JSON, "Content-Length": "9", "Content-Encoding": "gzip"}, b"not gzip!"),
        sr.APIConnectionError,
        id="lying-content-encoding",
    ),
    pytest.param(
        http("200 OK", {"Content-Type": "text/html", "Content-Length": "15"}, b"<p>welcome</p>\n"),
        sr.ResponseDecodeError,
        id="html-with-200",
    ),
    pytest.param(
        http(
            "502 Bad Gateway",
            {"Content-Type": "text/html", "Content-Length": str(len(NGINX_502))},
            NGINX_502,
        ),
        sr.ServerError,
        id="nginx-502-page",
    ),
    pytest.param(
        http("200 OK", {**JSON, "Content-Length": "6"}, b"\xff\xfe[\x00]\x00"),
        sr.ResponseDecodeError,
        id="not-utf8",
    ),
]


@pytest.mark.parametrize(("raw", "error"), MISBEHAVIOURS)
@pytest.mark.parametrize(("call", "post"), [(GET, False), (POST, True)], ids=["GET", "POST"])
async def test_misbehaving_answers_are_typed_errors(
    raw_server: Callable[..., Awaitable[RawServer]],
    raw: bytes,
    error: type[sr.APIError],
    call: Call,
    post: bool,
) -> None:
    server = await raw_server(answering(raw))
    events: list[sr.RetryEvent] = []
    policy = sr.RetryPolicy.for_testing(attempts=3, on_retry=events.append)
    if post and error is sr.ResponseDecodeError:
        # A 2xx to a launch is the server's word that it accepted it, whatever the body:
        # an accepted launch naming no request, sent once.
        async with sr.StreamrunClient(API_KEY, base_url=server.url, retry=policy) as client:
            accepted = await call(client)
        assert isinstance(accepted, sr.AcceptedLaunch)
        assert (events, server.requests) == ([], 1)
        return
    async with sr.StreamrunClient(API_KEY, base_url=server.url, retry=policy) as client:
        with pytest.raises(error) as info:
            await call(client)
    assert API_KEY not in str(info.value)
    if isinstance(info.value, sr.ServerError):
        assert "502 Bad Gateway" in str(info.value)
        assert "<html>" in info.value.body
    # A launch is never sent twice after an answer that may have followed the server's
    # action; a read is retried when its failure may pass.
    if post:
        assert info.value.outcome_unknown is True
        assert events == []
        assert server.requests == 1
    elif error is not sr.ResponseDecodeError:
        assert len(events) == 2


async def test_a_proxy_error_page_then_the_answer(
    local_server: Callable[..., Awaitable[LocalServer]],
) -> None:
    answers = iter([502, 502, 200])

    async def flaky(request: web.Request) -> web.StreamResponse:
        status = next(answers)
        if status == 502:
            return web.Response(status=502, body=NGINX_502, content_type="text/html")
        return web.json_response([{"id": "inst-1", "state": "RUNNING", "color": "blue"}])

    server = await local_server(flaky)
    async with sr.StreamrunClient(
        API_KEY, base_url=server.url, retry=sr.RetryPolicy.for_testing()
    ) as client:
        (instance,) = await client.instances.list()
    assert instance.id == "inst-1"
    assert instance.raw["color"] == "blue"
    assert len(server.requests) == 3


async def test_the_content_type_is_not_trusted_either_way(
    local_server: Callable[..., Awaitable[LocalServer]],
) -> None:
    """JSON labelled text/html is read as JSON; HTML labelled JSON is a decode error."""
    bodies = iter(
        [
            (b'[{"id": "d-1", "name": "Twitch"}]', "text/html"),
            (b"<html>hi</html>", "application/json"),
        ]
    )

    async def handler(request: web.Request) -> web.StreamResponse:
        body, content_type = next(bodies)
        return web.Response(body=body, content_type=content_type)

    server = await local_server(handler)
    async with sr.StreamrunClient(API_KEY, base_url=server.url, retry=NO_RETRY) as client:
        assert [d.id for d in await client.destinations.list()] == ["d-1"]
        with pytest.raises(sr.ResponseDecodeError, match="not JSON"):
            await client.destinations.list()


# --- bodies far larger than any answer -------------------------------------------------------

CAP = 1 << 20  # 1 MiB


@functools.cache
def gzip_bomb() -> bytes:
    return gzip.compress(b" " * (100 << 20), 9)


@pytest.fixture
async def huge_server(
    local_server: Callable[..., Awaitable[LocalServer]],
) -> LocalServer:
    """/api/v1/instances streams 64 MiB of JSON whitespace; /api/v1/destinations sends a
    100 KB gzip body that inflates to 100 MiB."""
    bomb = gzip_bomb()
    block = b" " * (1 << 16)

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path.endswith("destinations"):
            headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
            return web.Response(body=bomb, headers=headers)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for _ in range(1024):  # 64 MiB, stopped early when the client hangs up
                await response.write(block)
        except (ConnectionError, RuntimeError):
            pass
        return response

    return await local_server(handler)


@pytest.mark.parametrize("path", ["instances", "destinations"], ids=["stream", "gzip-bomb"])
async def test_a_huge_body_stops_at_the_cap_with_bounded_memory(
    huge_server: LocalServer, path: str
) -> None:
    async with sr.StreamrunClient(
        API_KEY, base_url=huge_server.url, retry=NO_RETRY, max_response_bytes=CAP
    ) as client:
        call = client.instances.list() if path == "instances" else client.destinations.list()
        tracemalloc.start()
        try:
            with pytest.raises(sr.ResponseDecodeError, match="1048576 byte cap") as info:
                await call
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert info.value.status == 200
    # The cap plus a few buffers: nowhere near the 64 or 100 MiB sent.
    assert peak < 12 * CAP, f"peak {peak / CAP:.1f} MiB"


# --- a server that trickles ------------------------------------------------------------------


async def trickle_forever(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
    writer.write(b"Transfer-Encoding: chunked\r\n\r\n1\r\n[\r\n")
    while True:
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b"1\r\n \r\n")


async def test_a_trickling_server_is_bounded_by_the_timeouts(
    raw_server: Callable[..., Awaitable[RawServer]],
) -> None:
    """Bytes keep coming, so no read ever times out: the attempt's total timeout cuts each
    attempt, and the policy's budget cuts the whole call."""
    server = await raw_server(trickle_forever)
    events: list[sr.RetryEvent] = []
    policy = sr.RetryPolicy(attempts=10, timeout=0.8, testing=True, on_retry=events.append)
    started = time.monotonic()
    async with sr.StreamrunClient(
        API_KEY, base_url=server.url, retry=policy, timeout=0.25
    ) as client:
        with pytest.raises(sr.APITimeoutError):
            await client.instances.list()
    elapsed = time.monotonic() - started
    assert elapsed < 0.8 + 0.5
    assert 2 <= server.requests <= 4
    assert all(isinstance(e.cause, sr.APITimeoutError) for e in events)


# --- redirects to another host ---------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_to_another_host_never_carries_the_key(
    local_server: Callable[..., Awaitable[LocalServer]], status: int
) -> None:
    other = await local_server()
    # Another host name for the same loopback: origins differ by host, not only by port.
    elsewhere = other.url.replace("127.0.0.1", "localhost")

    async def redirect(request: web.Request) -> web.StreamResponse:
        location = f"{elsewhere}/api/v1/instances?stolen=1"
        return web.Response(status=status, headers={"Location": location})

    origin = await local_server(redirect)
    async with sr.StreamrunClient(
        API_KEY, base_url=origin.url, retry=sr.RetryPolicy.for_testing()
    ) as client:
        for call in (GET, POST):
            if call is POST and status == 303:
                # A launch's 303 is its answer, read and never followed: this one names
                # no instance request.
                accepted = await call(client)
                assert isinstance(accepted, sr.AcceptedLaunch)
                assert accepted.location == f"{elsewhere}/api/v1/instances?stolen=1"
                continue
            with pytest.raises(sr.APIStatusError) as info:
                await call(client)
            assert info.value.status == status
            assert API_KEY not in repr(vars(info.value))
    assert other.requests == []
    assert len(origin.requests) == 2  # a 3xx is not retried either


# --- long life -------------------------------------------------------------------------------

CALLS = 10_000
BATCH = 50
WINDOW = (CALLS - 1_000) // BATCH - 1


def open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except FileNotFoundError:  # pragma: no cover - not Linux
        return 0


async def test_ten_thousand_calls_through_faults_leave_nothing_behind() -> None:
    async with Emulator(clock="virtual", configurations=2, seed=11) as emu:
        cfg = emu.configuration_ids[0]
        async with emu.client(retry=NO_RETRY) as setup:
            await setup.configurations.launch(cfg, [sr.InstanceSettings(name="cam")])
        (instance,) = emu.state.instances
        for fault, rate in [
            (Fault.HTTP_500, 0.02),
            (Fault.HTTP_503, 0.02),
            (Fault.HTTP_429, 0.01),
            (Fault.DROP_AFTER, 0.01),
            (Fault.MALFORMED_JSON, 0.01),
            (Fault.HTML_ERROR, 0.01),
        ]:
            emu.faults.set_rate(fault, rate)
        emu.faults.retry_after = 0
        kinds: list[Call] = [
            lambda c: c.instances.list(),
            lambda c: c.instances.get(instance.id),
            lambda c: c.instances.get("inst-missing"),
            lambda c: c.configurations.list(),
            lambda c: c.configurations.list_instances(cfg),
            lambda c: c.instances.get_overrides(instance.id),
            lambda c: c.instances.update_overrides(instance.id, {"switch-1": {"input": "x"}}),
            lambda c: c.configurations.set_outputs(cfg, "LIVE"),
            lambda c: c.destinations.list(),
            lambda c: c.instance_requests.get(instance.request_id or ""),
        ]
        outcomes: Counter[str] = Counter()
        queue = itertools.cycle(kinds)

        async def one(client: sr.StreamrunClient, call: Call) -> None:
            try:
                await call(client)
                outcomes["ok"] += 1
            except sr.APIError as error:
                outcomes[type(error).__name__] += 1

        policy = sr.RetryPolicy.for_testing(attempts=3)
        async with emu.client(retry=policy) as client:
            baseline: tuple[int, int, int] | None = None
            for batch in range(CALLS // BATCH):
                await asyncio.gather(*(one(client, next(queue)) for _ in range(BATCH)))
                if batch == 19:  # after 1,000 calls: pools and caches are warm
                    await asyncio.sleep(0.01)
                    gc.collect()
                    baseline = (len(asyncio.all_tasks()), open_fds(), len(gc.get_objects()))
                if batch == WINDOW:  # memory is traced over the last 1,000 calls (it is slow)
                    gc.collect()
                    tracemalloc.start()
            await asyncio.sleep(0.01)
            gc.collect()
            tasks, fds, objects = len(asyncio.all_tasks()), open_fds(), len(gc.get_objects())
        # Closed: what the connections held is gone; anything still traced is a leak.
        await asyncio.sleep(0.01)
        gc.collect()
        grown, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert baseline is not None
    assert sum(outcomes.values()) == CALLS
    assert outcomes["NotFoundError"] >= CALLS // len(kinds)  # the missing instance, each time
    assert emu.stats.injected() > 300
    assert tasks <= baseline[0]
    assert fds <= baseline[1] + 5
    assert objects <= baseline[2] + 2_000
    print(f"traced from the last 1,000 calls: {grown / 1024:.0f} KiB")
    assert grown < 256 << 10, f"{grown / 1024:.0f} KiB still held from the last 1,000 calls"
