"""Client hooks: every event kind, failing and async hooks, headers, and no secrets."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web
from aioresponses import aioresponses
from conftest import API, API_KEY, LocalServer, RawServer

import streamrun_async as sr
from streamrun_async import _events, _http
from streamrun_async.testing import Emulator, Fault

FAST = sr.PollPolicy(min_interval=0.002, max_interval=0.01, requests_per_second=5_000)
LAUNCH = "POST /configurations/{configurationId}/instances"


def of(events: list[Any], kind: type[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(clock="virtual", api_key=API_KEY, boot_time=5, configurations=2) as e:
        yield e


async def launch(c: sr.StreamrunClient, cfg: str, *names: str) -> sr.InstanceRequest:
    request = await c.configurations.launch(
        cfg, [sr.InstanceSettings(name=n) for n in names] or None
    )
    assert isinstance(request, sr.InstanceRequest)  # the emulator names its requests
    return request


class Recorder:
    """A hook keeping every event; ``until`` wakes on each new event, never on a timer."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self._new = asyncio.Event()

    def __call__(self, event: Any) -> None:
        self.events.append(event)
        self._new.set()

    async def until(self, predicate: Callable[[list[Any]], bool], seconds: float = 5.0) -> None:
        """Return once ``predicate(events)`` holds; TimeoutError after ``seconds``."""
        async with asyncio.timeout(seconds):
            while not predicate(self.events):
                self._new.clear()
                await self._new.wait()


# --- route templates -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/api/v1/instances", "/instances"),
        ("/api/v1/instances/inst-1", "/instances/{instanceId}"),
        ("/api/v1/instances/instances/overrides", "/instances/{instanceId}/overrides"),
        ("/api/v1/configurations/c%2F1/instances", "/configurations/{configurationId}/instances"),
        ("/api/v1/instance-requests/r-1", "/instance-requests/{requestId}"),
        ("/proxy/api/v1/instances/i/restart", "/instances/{instanceId}/restart"),
    ],
)
def test_route_templates_name_ids_by_position(path: str, route: str) -> None:
    assert _events.route_of_path(path) == route


# --- requests and retries ------------------------------------------------------------------


async def test_request_events_carry_the_route_template_status_and_attempt(
    mock_api: aioresponses,
) -> None:
    mock_api.get(f"{API}/instances/inst-1", payload={"id": "inst-1", "state": "RUNNING"})
    events: list[Any] = []
    async with sr.StreamrunClient(API_KEY, hooks=[events.append]) as c:
        await c.instances.get("inst-1")
    started, finished = events
    assert isinstance(started, sr.RequestStarted)
    assert (started.method, started.route, started.attempt) == (
        "GET",
        "/instances/{instanceId}",
        1,
    )
    assert isinstance(finished, sr.RequestFinished)
    assert finished.call_id == started.call_id
    assert (finished.status, finished.error, finished.outcome_unknown) == (200, None, False)
    assert finished.duration >= 0


async def test_a_retried_call_reports_each_attempt_and_the_retry_between(
    mock_api: aioresponses,
) -> None:
    url = f"{API}/instances"
    mock_api.get(url, status=503, headers={"Retry-After": "2"})
    mock_api.get(url, payload=[])
    events: list[Any] = []
    policy = sr.RetryPolicy.for_testing()
    async with sr.StreamrunClient(API_KEY, retry=policy, hooks=[events.append]) as c:
        await c.instances.list()
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "RequestStarted",
        "RequestFinished",
        "RetryScheduled",
        "RequestStarted",
        "RequestFinished",
    ]
    first, retry, second = events[1], events[2], events[4]
    assert (first.status, first.error, first.attempt) == (503, "ServerError", 1)
    assert (retry.route, retry.attempt) == ("/instances", 1)
    assert retry.wait >= 2
    assert isinstance(retry.cause, sr.ServerError)
    assert (second.status, second.error, second.attempt) == (200, None, 2)
    assert len({e.call_id for e in events}) == 1
    # RetryEvent, what on_retry has always received, is the same class.
    assert sr.RetryEvent is sr.RetryScheduled


async def test_a_launch_lost_on_the_wire_finishes_with_outcome_unknown(
    raw_server: Callable[..., Awaitable[RawServer]],
) -> None:
    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Take the request, answer nothing, hang up."""

    server = await raw_server(drop)
    events: list[Any] = []
    async with sr.StreamrunClient(API_KEY, base_url=server.url, hooks=[events.append]) as c:
        with pytest.raises(sr.APIConnectionError):
            await c.configurations.launch("cfg-1")
    (finished,) = of(events, sr.RequestFinished)
    assert finished.route == "/configurations/{configurationId}/instances"
    assert (finished.status, finished.error) == (None, "APIConnectionError")
    assert finished.outcome_unknown is True


async def test_a_plain_hook_may_add_headers_but_not_replace_the_key(
    local_server: Callable[..., Awaitable[LocalServer]],
) -> None:
    received: list[Any] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        received.append(request.headers)
        return web.json_response([])

    server = await local_server(handler)

    def tag(event: Any) -> None:
        if isinstance(event, sr.RequestStarted):
            event.headers["traceparent"] = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
            event.headers["Authorization"] = "Bearer stolen"

    async with sr.StreamrunClient(API_KEY, base_url=server.url, hooks=[tag]) as c:
        await c.instances.list()
    (headers,) = received
    assert headers["traceparent"].startswith("00-111")
    assert headers["Authorization"] == f"Bearer {API_KEY}"


# --- failing and async hooks -----------------------------------------------------------------


async def test_a_raising_hook_is_logged_once_and_the_call_goes_on(
    mock_api: aioresponses, caplog: pytest.LogCaptureFixture
) -> None:
    mock_api.get(f"{API}/instances", payload=[], repeat=True)
    seen: list[Any] = []

    def broken(event: Any) -> None:
        raise RuntimeError("hook bug")

    caplog.set_level(logging.DEBUG, logger="streamrun_async")
    async with sr.StreamrunClient(API_KEY, hooks=[broken, seen.append]) as c:
        assert await c.instances.list() == []
        assert await c.instances.list() == []
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    (error,) = errors
    assert "broken" in error.getMessage()
    assert error.exc_info is not None
    assert "hook bug" in str(error.exc_info[1])
    assert getattr(error, "streamrun", None) == {"hook": broken.__qualname__}
    # Later failures are kept at DEBUG; the hooks after the broken one still get everything.
    assert sum("raised again" in r.getMessage() for r in caplog.records) == 3
    assert len(seen) == 4


async def test_an_async_hook_never_holds_up_the_request(mock_api: aioresponses) -> None:
    mock_api.get(f"{API}/instances", payload=[])
    release = asyncio.Event()
    delivered: list[Any] = []

    async def slow(event: Any) -> None:
        await release.wait()
        delivered.append(event)

    c = sr.StreamrunClient(API_KEY, hooks=[slow])
    assert await asyncio.wait_for(c.instances.list(), 5) == []
    assert delivered == []  # the call returned while both hooks were still waiting
    release.set()
    await c.aclose()  # aclose lets the hooks finish
    assert [type(e) for e in delivered] == [sr.RequestStarted, sr.RequestFinished]


async def test_aclose_cancels_async_hooks_that_do_not_finish(
    mock_api: aioresponses, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_events, "_HOOK_GRACE", 0.01)
    mock_api.get(f"{API}/instances", payload=[])
    cancelled: list[Any] = []

    async def stuck(event: Any) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(event)
            raise

    c = sr.StreamrunClient(API_KEY, hooks=[stuck])
    await c.instances.list()
    await c.aclose()
    assert len(cancelled) == 2
    assert not c._events._tasks


async def test_a_raising_async_hook_is_logged(
    mock_api: aioresponses, caplog: pytest.LogCaptureFixture
) -> None:
    mock_api.get(f"{API}/instances", payload=[])

    async def broken(event: Any) -> None:
        raise ValueError("async hook bug")

    async with sr.StreamrunClient(API_KEY, hooks=[broken]) as c:
        assert await c.instances.list() == []
    (error,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert error.exc_info is not None
    assert "async hook bug" in str(error.exc_info[1])


@pytest.mark.parametrize("hooks", [print, "print", [1], [None]])
def test_hooks_must_be_a_list_of_callables(hooks: Any) -> None:
    with pytest.raises(sr.InvalidArgumentTypeError):
        sr.StreamrunClient(API_KEY, hooks=hooks)


async def test_without_hooks_no_event_is_made(
    mock_api: aioresponses, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(**kwargs: Any) -> None:
        raise AssertionError("an event was built with no hook to take it")

    monkeypatch.setattr(_http, "RequestStarted", refuse)
    mock_api.get(f"{API}/instances", payload=[])
    async with sr.StreamrunClient(API_KEY) as c:
        assert not c._events
        assert await c.instances.list() == []


# --- waits, the poller, launches ---------------------------------------------------------------


async def test_waits_report_start_and_outcome(emu: Emulator) -> None:
    recorder = Recorder()
    events = recorder.events
    cfg = emu.configuration_ids[0]
    async with emu.client(poll=FAST, hooks=[recorder]) as c:
        request = await launch(c, cfg, "a")
        waiter = asyncio.create_task(c.instance_requests.wait_until_running(request, timeout=60))
        await recorder.until(lambda e: bool(of(e, sr.WaitStarted)))
        await emu.advance(10)
        await asyncio.wait_for(waiter, 5)
        (instance,) = await c.configurations.list_instances(cfg)
        with pytest.raises(sr.WaitTimeoutError):
            await c.instances.wait_for_state(instance.id, sr.InstanceState.STOPPED, timeout=0.05)
    started = of(events, sr.WaitStarted)
    finished = of(events, sr.WaitFinished)
    assert [(s.what, s.subject, s.target) for s in started] == [
        ("request", request.id, ("RUNNING",)),
        ("instance", instance.id, ("STOPPED",)),
    ]
    assert [f.wait_id for f in finished] == [s.wait_id for s in started]
    assert [(f.outcome, f.state, f.error) for f in finished] == [
        ("succeeded", "RUNNING", None),
        ("timed_out", "RUNNING", "WaitTimeoutError"),
    ]
    assert all(f.duration >= 0 for f in finished)


async def test_a_cancelled_wait_reports_cancelled(emu: Emulator) -> None:
    recorder = Recorder()
    events = recorder.events
    async with emu.client(poll=FAST, hooks=[recorder]) as c:
        request = await launch(c, emu.configuration_ids[0])
        waiter = asyncio.create_task(c.instance_requests.wait_until_running(request))
        await recorder.until(lambda e: bool(of(e, sr.WaitStarted)))
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    (finished,) = of(events, sr.WaitFinished)
    assert finished.outcome == "cancelled"


async def test_launch_events_reach_the_hooks(emu: Emulator) -> None:
    events: list[Any] = []
    cfg = emu.configuration_ids[0]
    async with emu.client(poll=FAST, hooks=[events.append]) as c:
        await c.launch_many({cfg: [sr.InstanceSettings(name="a"), sr.InstanceSettings(name="b")]})
    kinds = [e.kind for e in of(events, sr.LaunchEvent)]
    assert sr.LaunchEventKind.SUBMITTED in kinds
    assert sr.LaunchEventKind.LAUNCHED in kinds


async def test_poller_ticks_are_reported(emu: Emulator) -> None:
    recorder = Recorder()
    events = recorder.events
    async with emu.client(poll=FAST, hooks=[recorder]) as c:
        request = await launch(c, emu.configuration_ids[0])
        waiter = asyncio.create_task(c.instance_requests.wait_until_running(request, timeout=60))
        await recorder.until(lambda e: len(of(e, sr.PollTicked)) >= 3)
        await emu.advance(10)
        await asyncio.wait_for(waiter, 5)
    ticks = of(events, sr.PollTicked)
    assert [t.tick for t in ticks] == list(range(1, len(ticks) + 1))
    assert all(t.list_calls >= 1 and t.next_interval > 0 for t in ticks)
    assert all(t.budget_left >= 0 and t.error is None for t in ticks)


async def test_a_failed_poll_is_reported_with_its_error(emu: Emulator) -> None:
    recorder = Recorder()
    events = recorder.events
    # The poller lists the account or the request's configuration: fail either.
    emu.faults.script("GET /instances", [Fault.HTTP_503])
    emu.faults.script("GET /configurations/{configurationId}/instances", [Fault.HTTP_503])
    async with emu.client(poll=FAST, hooks=[recorder]) as c:
        request = await launch(c, emu.configuration_ids[0])
        waiter = asyncio.create_task(c.instance_requests.wait_until_running(request, timeout=60))
        await recorder.until(lambda e: len(of(e, sr.PollTicked)) >= 2)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
    assert of(events, sr.PollTicked)[0].error == "ServerError"


# --- secrets -------------------------------------------------------------------------------------


def _texts(value: Any, depth: int = 0) -> list[str]:
    """Every text an event shows or holds: its repr, its fields, their errors' texts."""
    out = [repr(value), str(value)]
    if depth > 4:
        return out
    if attrs.has(type(value)):
        for field in attrs.fields(type(value)):
            out += _texts(getattr(value, field.name), depth + 1)
    elif isinstance(value, BaseException):
        out += [*getattr(value, "__notes__", ()), repr(getattr(value, "body", None))]
    elif isinstance(value, (list, tuple)):
        for item in value:
            out += _texts(item, depth + 1)
    return out


async def test_no_event_carries_the_api_key_or_a_stream_key(emu: Emulator) -> None:
    recorder = Recorder()
    events = recorder.events
    cfg = emu.configuration_ids[0]
    emu.faults.script(LAUNCH, [Fault.HTTP_503, Fault.DROP_AFTER])
    async with emu.client(
        poll=FAST, retry=sr.RetryPolicy.for_testing(), hooks=[recorder], timeout=0.5
    ) as c:
        report = await c.launch_many({cfg: [sr.InstanceSettings(name="a")]})
        waiter = asyncio.create_task(
            c.instance_requests.wait_until_running(
                next(iter(report.launched.values())).request_id or "", timeout=60
            )
        )
        await recorder.until(lambda e: bool(of(e, sr.PollTicked)))
        await emu.advance(10)
        await asyncio.wait_for(waiter, 5)
        for inst in await c.instances.list():
            await c.instances.get(inst.id)
    stream_keys = [k for i in emu.state.instances for k in (i.stream_key, *i.stream_keys.values())]
    assert stream_keys
    kinds = {type(e) for e in events}
    assert {sr.RequestStarted, sr.RequestFinished, sr.RetryScheduled, sr.PollTicked} <= kinds
    assert {sr.WaitStarted, sr.WaitFinished, sr.LaunchEvent} <= kinds
    shown = "\n".join(text for event in events for text in _texts(event))
    for secret in (API_KEY, *stream_keys):
        assert secret not in shown


async def test_hooks_work_with_a_session_of_your_own(mock_api: aioresponses) -> None:
    mock_api.get(f"{API}/destinations", payload=[])
    events: list[Any] = []
    async with (
        aiohttp.ClientSession() as session,
        sr.StreamrunClient(API_KEY, session=session, hooks=[events.append]) as c,
    ):
        await c.destinations.list()
    assert [e.route for e in events] == ["/destinations", "/destinations"]


async def test_the_example_hook_counts_retries_and_calls_that_failed(emu: Emulator) -> None:
    spec = importlib.util.spec_from_file_location(
        "observe_retries", Path(__file__).parent.parent / "examples" / "observe_retries.py"
    )
    assert spec is not None
    assert spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    counter = example.RetryCounter()
    # The first list fails three times (two retries, then it gives up), the next once.
    emu.faults.script("GET /instances", [Fault.HTTP_503] * 3 + [Fault.HTTP_502])
    policy = sr.RetryPolicy.for_testing(attempts=3)
    async with emu.client(retry=policy, hooks=[counter]) as c:
        await example.survey(c, rounds=2)
    assert counter.retries == {("/instances", "ServerError"): 3}
    assert counter.gave_up() == {"/instances": 1}
    assert "3 retries of /instances after ServerError" in counter.summary()


async def test_a_cancelled_attempt_still_finishes_its_event(
    local_server: Callable[..., Awaitable[LocalServer]],
) -> None:
    arrived = asyncio.Event()

    async def hang(request: web.Request) -> web.StreamResponse:
        arrived.set()
        await asyncio.Event().wait()  # answers nothing: the server's shutdown cancels it
        return web.json_response([])

    server = await local_server(hang)
    events: list[Any] = []
    async with sr.StreamrunClient(API_KEY, base_url=server.url, hooks=[events.append]) as c:
        call = asyncio.create_task(c.instances.list())
        async with asyncio.timeout(5):
            await arrived.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    started, finished = events
    assert isinstance(finished, sr.RequestFinished)
    assert (finished.call_id, finished.error) == (started.call_id, "CancelledError")


async def test_views_made_by_with_options_share_the_hooks(mock_api: aioresponses) -> None:
    mock_api.get(f"{API}/destinations", payload=[])
    events: list[Any] = []
    async with sr.StreamrunClient(API_KEY, hooks=[events.append]) as c:
        await c.with_options(retry=sr.RetryPolicy.disabled()).destinations.list()
    assert [type(e) for e in events] == [sr.RequestStarted, sr.RequestFinished]
