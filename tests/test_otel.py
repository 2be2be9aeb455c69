"""OpenTelemetry: operation spans, HTTP child spans, retries, poll ticks and their links."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from aiohttp import web
from conftest import API_KEY, LocalServer
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import streamrun_async as sr
from streamrun_async.contrib.otel import instrument
from streamrun_async.testing import Emulator, Fault

FAST = sr.PollPolicy(min_interval=0.002, max_interval=0.01, requests_per_second=5_000)


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.clear()


class OpenSpans(SpanProcessor):
    """The spans started and not yet ended; ``until`` wakes on each start or end, never on a
    timer. Added after the exporter's processor: a span it sees end is already exported."""

    def __init__(self) -> None:
        self.spans: dict[int, Span] = {}
        self._changed = asyncio.Event()

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        self.spans[span.get_span_context().span_id] = span
        self._changed.set()

    def on_end(self, span: ReadableSpan) -> None:
        context = span.get_span_context()
        if context is not None:
            self.spans.pop(context.span_id, None)
        self._changed.set()

    def kinds(self) -> set[SpanKind]:
        return {span.kind for span in self.spans.values()}

    async def until(self, predicate: Callable[[], bool], seconds: float = 5.0) -> None:
        """Return once ``predicate()`` holds; TimeoutError after ``seconds``."""
        async with asyncio.timeout(seconds):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
def open_spans() -> OpenSpans:
    return OpenSpans()


@pytest.fixture
def provider(exporter: InMemorySpanExporter, open_spans: OpenSpans) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.add_span_processor(open_spans)
    return provider


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(clock="virtual", api_key=API_KEY, boot_time=5, configurations=2) as e:
        yield e


def named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def children(spans: tuple[ReadableSpan, ...], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


async def launch(c: sr.StreamrunClient, cfg: str, *names: str) -> sr.InstanceRequest:
    request = await c.configurations.launch(
        cfg, [sr.InstanceSettings(name=n) for n in names] or None
    )
    assert isinstance(request, sr.InstanceRequest)  # the emulator names its requests
    return request


async def test_an_operation_span_holds_its_http_span_named_by_route(
    emu: Emulator, exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    cfg = emu.configuration_ids[0]
    async with emu.client() as c:
        instrument(c, tracer_provider=provider)
        instrument(c, tracer_provider=provider)  # twice changes nothing
        request = await c.configurations.launch(cfg)
    spans = exporter.get_finished_spans()
    (operation,) = named(spans, "streamrun.configurations.launch")
    assert operation.attributes is not None
    assert operation.attributes["streamrun.configuration.id"] == cfg
    assert operation.attributes["streamrun.instance_request.id"] == request.id
    (http,) = children(spans, operation)
    assert http.name == "POST /configurations/{configurationId}/instances"
    assert http.kind is SpanKind.CLIENT
    assert http.attributes is not None
    assert http.attributes["http.response.status_code"] == 201
    assert http.attributes["url.template"] == "/configurations/{configurationId}/instances"
    assert http.attributes["server.address"] == "127.0.0.1"
    assert len(spans) == 2


async def test_trace_context_reaches_the_server(
    local_server: Callable[..., Awaitable[LocalServer]],
    exporter: InMemorySpanExporter,
    provider: TracerProvider,
) -> None:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("traceparent", ""))
        return web.json_response([])

    server = await local_server(handler)
    async with sr.StreamrunClient(API_KEY, base_url=server.url) as c:
        instrument(c, tracer_provider=provider)
        await c.instances.list()
    (http,) = named(exporter.get_finished_spans(), "GET /instances")
    assert http.context is not None
    (traceparent,) = seen
    assert traceparent.startswith(f"00-{http.context.trace_id:032x}-{http.context.span_id:016x}-")


async def test_retries_are_events_and_each_attempt_a_span(
    emu: Emulator, exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    emu.faults.script("GET /instances", [Fault.HTTP_503, Fault.HTTP_500])
    async with emu.client(retry=sr.RetryPolicy.for_testing()) as c:
        instrument(c, tracer_provider=provider)
        await c.instances.list()
    spans = exporter.get_finished_spans()
    (operation,) = named(spans, "streamrun.instances.list")
    retries = [e for e in operation.events if e.name == "streamrun.retry"]
    assert [e.attributes["streamrun.attempt"] for e in retries if e.attributes] == [1, 2]
    assert [e.attributes["error.type"] for e in retries if e.attributes] == [
        "ServerError",
        "ServerError",
    ]
    attempts = children(spans, operation)
    assert [s.attributes["http.response.status_code"] for s in attempts if s.attributes] == [
        503,
        500,
        200,
    ]
    assert [s.status.status_code for s in attempts] == [
        StatusCode.ERROR,
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]
    assert attempts[2].attributes is not None
    assert attempts[2].attributes["http.request.resend_count"] == 2


async def test_a_failed_operation_is_an_error_span(
    emu: Emulator, exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    async with emu.client() as c:
        instrument(c, tracer_provider=provider)
        with pytest.raises(sr.NotFoundError):
            await c.instances.get("inst-nope")
    (operation,) = named(exporter.get_finished_spans(), "streamrun.instances.get")
    assert operation.status.status_code is StatusCode.ERROR
    assert operation.attributes is not None
    assert operation.attributes["streamrun.instance.id"] == "inst-nope"
    assert operation.attributes["error.type"] == "NotFoundError"
    assert any(e.name == "exception" for e in operation.events)


async def test_poll_ticks_are_spans_of_their_own_linked_to_the_waits(
    emu: Emulator,
    exporter: InMemorySpanExporter,
    provider: TracerProvider,
    open_spans: OpenSpans,
) -> None:
    cfg = emu.configuration_ids[0]
    async with emu.client(poll=FAST) as c:
        instrument(c, tracer_provider=provider)
        first = await launch(c, cfg)
        second = await launch(c, cfg)
        waits = [
            asyncio.create_task(c.instance_requests.wait_until_running(r, timeout=60))
            for r in (first, second)
        ]
        await open_spans.until(
            lambda: len(named(exporter.get_finished_spans(), "streamrun.poll")) >= 2
        )
        await emu.advance(10)
        await asyncio.wait_for(asyncio.gather(*waits), 5)
        # The poller stops with the last wait; the calls it cancelled still end their spans.
        await open_spans.until(lambda: SpanKind.CLIENT not in open_spans.kinds())
        # Nothing left open once nobody waits: every tick span was ended and exported.
        (tracing,) = c._transport.events.hooks
        assert tracing._tick is None  # type: ignore[attr-defined]
        assert open_spans.spans == {}
    spans = exporter.get_finished_spans()
    wait_spans = named(spans, "streamrun.wait_until_running")
    assert {s.attributes["streamrun.instance_request.id"] for s in wait_spans if s.attributes} == {
        first.id,
        second.id,
    }
    assert all(
        s.attributes is not None and s.attributes["streamrun.wait.outcome"] == "succeeded"
        for s in wait_spans
    )
    wait_ids = {s.context.span_id for s in wait_spans if s.context is not None}
    ticks = named(spans, "streamrun.poll")
    assert ticks
    for tick in ticks:
        # A root of its own trace, linked to the waits it served, holding its calls.
        assert tick.parent is None
        linked = {link.context.span_id for link in tick.links}
        assert linked
        assert linked <= wait_ids
        calls = children(spans, tick)
        assert calls
        assert all(s.kind is SpanKind.CLIENT for s in calls)
    # A tick while both waited served both.
    assert any({link.context.span_id for link in t.links} == wait_ids for t in ticks)
    # A tick's request fetches may outlive it: the last ones end in a span of their own.
    ended = [t for t in ticks if t.attributes and "streamrun.poll.tick" in t.attributes]
    assert ended
    assert all(t.attributes and t.attributes["streamrun.poll.list_calls"] == 1 for t in ended)
    # No call of the poller hangs under a wait's span.
    for wait in wait_spans:
        assert children(spans, wait) == []


async def test_launch_many_is_one_span_with_its_steps(
    emu: Emulator, exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    cfg = emu.configuration_ids[0]
    async with emu.client(poll=FAST) as c:
        instrument(c, tracer_provider=provider)
        await c.launch_many({cfg: [sr.InstanceSettings(name="a"), sr.InstanceSettings(name="b")]})
    spans = exporter.get_finished_spans()
    (bulk,) = named(spans, "streamrun.launch_many")
    assert bulk.attributes is not None
    assert list(bulk.attributes["streamrun.configuration.ids"]) == [cfg]  # type: ignore[arg-type]
    assert bulk.attributes["streamrun.instances.count"] == 2
    steps = {e.name for e in bulk.events}
    assert {"streamrun.launch.submitted", "streamrun.launch.launched"} <= steps
    # Its calls are children of it (through the operations it made).
    trace_id = bulk.context.trace_id if bulk.context is not None else None
    http = [s for s in spans if s.kind is SpanKind.CLIENT]
    assert http
    assert all(s.context is not None and s.context.trace_id == trace_id for s in http)


async def test_ticks_serving_launch_many_are_linked_to_it(
    emu: Emulator,
    exporter: InMemorySpanExporter,
    provider: TracerProvider,
    open_spans: OpenSpans,
) -> None:
    cfg = emu.configuration_ids[0]
    async with emu.client(poll=FAST) as c:
        instrument(c, tracer_provider=provider)
        bulk = asyncio.create_task(
            c.launch_many({cfg: [sr.InstanceSettings(name="a")]}, wait=True, timeout=60)
        )
        await open_spans.until(lambda: bool(named(exporter.get_finished_spans(), "streamrun.poll")))
        await emu.advance(10)
        report = await asyncio.wait_for(bulk, 5)
    assert report.wait_error is None
    spans = exporter.get_finished_spans()
    (launch_span,) = named(spans, "streamrun.launch_many")
    assert launch_span.context is not None
    ticks = named(spans, "streamrun.poll")
    assert ticks
    for tick in ticks:
        assert [link.context.span_id for link in tick.links] == [launch_span.context.span_id]


async def test_a_client_not_instrumented_makes_no_spans(
    emu: Emulator, exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    async with emu.client() as traced, emu.client() as plain:
        instrument(traced, tracer_provider=provider)
        await plain.instances.list()
        assert exporter.get_finished_spans() == ()
        await traced.with_options(timeout=5).instances.list()
    assert {s.name for s in exporter.get_finished_spans()} == {
        "streamrun.instances.list",
        "GET /instances",
    }


def test_instrument_refuses_what_is_not_a_client() -> None:
    with pytest.raises(sr.InvalidArgumentTypeError):
        instrument(object())  # type: ignore[arg-type]


def test_the_sdk_core_does_not_import_opentelemetry() -> None:
    import subprocess
    import sys

    code = (
        "import sys, streamrun_async as sr; print(any('opentelemetry' in m for m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
