"""The API key never leaves the Authorization header of an HTTPS (or loopback) request.

Each test gathers everything a user or their tooling could see (DEBUG logs of every
logger, reprs, exception messages, whole exception chains and tracebacks, printed output)
and searches it for the key in every spelling an echo could take. tests/test_http.py
checks the transport's redaction answer by answer; these run whole sessions.
"""

from __future__ import annotations

import io
import logging
import re
import ssl
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import trustme
from aiohttp import web
from conftest import API_KEY, RawServer

import streamrun_async as sr
from streamrun_async.testing import Emulator, Fault

WRONG_KEY = "sk-test-WR0NG/other+key"  # a key the server refuses is a secret too
LAUNCH = "POST /configurations/{configurationId}/instances"
NO_RETRY = sr.RetryPolicy.disabled()
PACKAGE = Path(sr.__file__).parent


def spellings(key: str) -> list[str]:
    """The key as it could appear in text: raw, JSON-escaped, URL-quoted, and the part
    after the first dash (a prefix-stripping logger would still leak that)."""
    return [key, key.replace("/", "\\/"), quote(key, safe=""), key.split("-", 1)[1]]


def leaked(text: str) -> list[str]:
    return [form for key in (API_KEY, WRONG_KEY) for form in spellings(key) if form in text]


def chain(error: BaseException | None) -> Iterator[BaseException]:
    """The error, its causes and contexts, each once."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def exposure(error: BaseException) -> str:
    """All an error shows: message, repr, traceback, and for the whole chain the reprs of
    the exceptions, their args and their attributes (what error trackers serialise)."""
    parts = [str(error), repr(error), "".join(traceback.format_exception(error))]
    for link in chain(error):
        parts += [repr(link), repr(link.args), *(repr(v) for v in vars(link).values())]
        parts += getattr(link, "__notes__", [])
    return "\n".join(parts)


class Seen:
    """Everything captured during a test, searched at the end."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.parts: list[str] = []
        self.errors: list[BaseException] = []

    def add(self, *values: object) -> None:
        self.parts += [v if isinstance(v, str) else repr(v) for v in values]

    async def expect(self, call: Awaitable[Any], error: type[BaseException]) -> BaseException:
        """Await ``call``; it must raise ``error``, which is recorded with its traceback."""
        try:
            await call
        except error as exc:
            self.parts.append(traceback.format_exc())
            self.parts.append(exposure(exc))
            self.errors.append(exc)
            return exc
        raise AssertionError(f"expected {error.__name__}")

    def text(self, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> str:
        out = capsys.readouterr()
        logged = [r.getMessage() + repr(r.args) + repr(r.__dict__) for r in caplog.records]
        return "\n".join([self.stream.getvalue(), out.out, out.err, *logged, *self.parts])


@pytest.fixture
def seen(caplog: pytest.LogCaptureFixture) -> Iterator[Seen]:
    """Every logger at DEBUG into caplog and into a StringIO handler on the root logger."""
    record = Seen()
    handler = logging.StreamHandler(record.stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    caplog.set_level(logging.DEBUG)
    for name in ("streamrun_async", "aiohttp", "aiohttp.client", "aiohttp.server", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=name)
    try:
        yield record
    finally:
        root.removeHandler(handler)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(clock="virtual", api_key=API_KEY, boot_time=5, configurations=2) as e:
        yield e


async def test_a_session_through_every_fault_never_shows_the_key(
    emu: Emulator,
    seen: Seen,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = emu.configuration_ids[0]
    async with emu.client(retry=NO_RETRY, timeout=0.25) as client:
        seen.add(client, client.instances, client.configurations, client.retry, emu)
        # Every kind of injected failure, one call each.
        emu.faults.script(
            None,
            [
                Fault.HTTP_500,
                Fault.HTTP_502,
                Fault.HTTP_503,
                Fault.HTTP_429,
                Fault.HTML_ERROR,
                Fault.MALFORMED_JSON,
            ],
        )
        for expected in (sr.ServerError,) * 3 + (sr.RateLimitError, sr.ServerError):
            await seen.expect(client.instances.list(), expected)
        await seen.expect(client.instances.list(), sr.ResponseDecodeError)
        # aiohttp itself resends an idempotent request once after a drop: drop both.
        emu.faults.script("GET /instances", [Fault.DROP_BEFORE] * 2)
        emu.faults.script(LAUNCH, [Fault.DROP_AFTER])
        await seen.expect(client.instances.list(), sr.APIConnectionError)
        await seen.expect(client.configurations.launch(cfg), sr.APIConnectionError)
        # A slow answer past the attempt's timeout.
        emu.faults.latency = 0.4
        emu.faults.script(None, [Fault.LATENCY])
        await seen.expect(client.destinations.list(), sr.APITimeoutError)
        # What the emulator refuses: unknown ids, bad bodies, wrong states.
        await seen.expect(client.instances.get("inst-nope"), sr.NotFoundError)
        request = await client.configurations.launch(cfg, [sr.InstanceSettings(name="cam")])
        seen.add(request)
        queued = (await client.configurations.list_instances(cfg))[0]
        seen.add(queued, queued.raw)
        bad = {"nosuch-1": {"x": 1}}
        await seen.expect(client.instances.update_overrides(queued.id, bad), sr.BadRequestError)
        await seen.expect(client.instances.restart(queued.id), sr.ConflictError)
        # A waiter whose instance disappears, and one that times out.
        waiter = client.instances.wait_for_state(queued.id, timeout=30)
        await client.instances.stop(queued.id)
        await seen.expect(waiter, sr.WaiterError)
        await seen.expect(
            client.instance_requests.wait_until_running("ireq-x", timeout=0.05), sr.WaitError
        )
        # launch_many failing and with an unknown outcome: the report and its errors.
        emu.faults.script(LAUNCH, [Fault.DROP_AFTER, Fault.HTTP_500])
        # (launch_many tries three lists before it calls the outcome unknown)
        emu.faults.script(
            "GET /configurations/{configurationId}/instances", [None, *[Fault.HTTP_500] * 3]
        )
        report = await client.launch_many({cfg: [sr.InstanceSettings(name="a")]}, settle=0.01)
        seen.add(report, report.failed, report.unknown)
        with pytest.raises(ExceptionGroup) as group:
            report.raise_for_failures()
        seen.add(exposure(group.value))
        print(report, *seen.errors)  # what a user printing errors would show
    # A client with a wrong key: the emulator's refusal must not quote it either.
    async with sr.StreamrunClient(WRONG_KEY, base_url=emu.url, retry=NO_RETRY) as wrong:
        seen.add(wrong)
        refused = await seen.expect(wrong.instances.list(), sr.AuthenticationError)
        assert isinstance(refused, sr.AuthenticationError)
        seen.add(refused.body)

    text = seen.text(caplog, capsys)
    assert "GET /api/v1/instances -> 500" in text  # the logs were captured
    assert "Traceback" in text
    assert len(seen.errors) >= 15
    assert leaked(text) == []


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(b"HTTP/1.1 2xx garbage\r\nContent-Length: 2\r\n\r\n[]", id="bad-status-line"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nBad Header\r\nContent-Length: 2\r\n\r\n[]", id="bad-header"
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n[]\r\n0\r\n\r\n",
            id="bad-chunk",
        ),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n[", id="truncated"),
        pytest.param(b"\x00\xff garbage, not HTTP at all\r\n\r\n", id="not-http"),
    ],
)
async def test_an_exception_chain_never_holds_the_key(
    raw_server: Callable[..., Awaitable[RawServer]],
    answer: bytes,
    seen: Seen,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """aiohttp's ClientResponseError keeps the request's headers (the key among them) in
    ``request_info``: chained under the SDK's error, any error tracker would store it."""

    async def behaviour(reader: Any, writer: Any) -> None:
        writer.write(answer)
        await writer.drain()

    server = await raw_server(behaviour)
    async with sr.StreamrunClient(API_KEY, base_url=server.url, retry=NO_RETRY) as client:
        error = await seen.expect(client.instances.list(), sr.APIError)
    assert isinstance(error, sr.APIConnectionError | sr.ResponseDecodeError)
    assert leaked(seen.text(caplog, capsys)) == []
    # Nothing reachable from the error keeps the request's headers.
    for link in chain(error):
        assert not hasattr(link, "request_info"), type(link)


# --- TLS: verified, and the only way around it is the caller's own session ----------------


@pytest.fixture(scope="module")
def tls() -> Any:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_context)
    return ca, server_context


@pytest.fixture
async def https_server(tls: Any) -> AsyncIterator[tuple[str, list[str]]]:
    """An HTTPS server on loopback with a certificate from a CA nobody trusts."""
    _, server_context = tls
    requests: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        requests.append(request.headers.get("Authorization", ""))
        return web.json_response([])

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context).start()
    port = runner.addresses[0][1]
    try:
        yield f"https://127.0.0.1:{port}", requests
    finally:
        await runner.cleanup()


async def test_tls_certificates_are_verified(https_server: tuple[str, list[str]], tls: Any) -> None:
    url, requests = https_server
    async with sr.StreamrunClient(API_KEY, base_url=url, retry=NO_RETRY) as client:
        with pytest.raises(sr.APIConnectionError) as info:
            await client.destinations.list()
    assert "could not connect" in str(info.value)
    assert info.value.outcome_unknown is False
    assert isinstance(info.value.__cause__, aiohttp.ClientConnectorCertificateError)
    assert requests == [], "the key went to a server whose certificate failed"
    assert leaked(exposure(info.value)) == []
    # Trusting another CA takes the caller's own session: explicit, never a flag of ours.
    ca, _ = tls
    context = ssl.create_default_context()
    ca.configure_trust(context)
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session,
        sr.StreamrunClient(API_KEY, base_url=url, session=session, retry=NO_RETRY) as client,
    ):
        assert await client.destinations.list() == []
    assert requests == [f"Bearer {API_KEY}"]


TLS_SWITCHES = re.compile(
    r"ssl\s*=\s*False|verify_ssl|verify\s*=\s*False|CERT_NONE|check_hostname"
    r"|_create_unverified_context|ssl\s*=|PYTHONHTTPSVERIFY|insecure_skip"
    r"|trust_env\s*=\s*True",
    re.IGNORECASE,
)


def test_no_switch_turns_tls_verification_off() -> None:
    """The package never passes ``ssl=`` to aiohttp nor builds an unverified context: TLS is
    aiohttp's default (verified against the system CAs). ``allow_insecure`` is the one
    opt-out of HTTPS, it is explicit, and it is tested to be needed (tests/test_http.py)."""
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 20
    hits = [
        f"{path.relative_to(PACKAGE)}:{n}: {line.strip()}"
        for path in sources
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if TLS_SWITCHES.search(line)
    ]
    assert hits == []


def test_plain_http_needs_loopback_or_an_explicit_opt_in() -> None:
    with pytest.raises(sr.InsecureTransportError) as info:
        sr.StreamrunClient(API_KEY, base_url="http://api.streamrun.example")
    assert leaked(exposure(info.value)) == []
    client = sr.StreamrunClient(API_KEY, base_url="http://api.example", allow_insecure=True)
    assert leaked(repr(client) + repr(vars(client))) == []


async def test_a_success_answer_echoing_the_key_is_redacted_in_decode_errors(
    local_server: Callable[..., Awaitable[Any]],
) -> None:
    async def echo(request: web.Request) -> web.StreamResponse:
        # A 200 of the wrong shape that quotes the caller's header back.
        return web.json_response({"unexpected": request.headers["Authorization"]})

    server = await local_server(echo)
    async with sr.StreamrunClient(
        API_KEY, base_url=server.url, retry=sr.RetryPolicy.disabled()
    ) as client:
        with pytest.raises(sr.ResponseDecodeError) as info:
            await client.instances.get("inst-1")
    error = info.value
    assert API_KEY not in repr(error.body)
    assert API_KEY not in str(error)
    assert "[REDACTED]" in repr(error.body)
