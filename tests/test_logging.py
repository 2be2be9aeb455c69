"""Logs: one INFO line per retry, a WARNING on giving up, wire detail at DEBUG; no secrets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aioresponses import aioresponses
from conftest import API, API_KEY

import streamrun_async as sr
from streamrun_async.testing import Emulator, Fault

LAUNCH = "POST /configurations/{configurationId}/instances"


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "streamrun_async" and r.levelno == level]


def fields(record: logging.LogRecord) -> dict[str, Any]:
    value = getattr(record, "streamrun", None)
    assert isinstance(value, dict), f"no structured fields on {record.getMessage()!r}"
    return value


@pytest.fixture
def debug(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="streamrun_async")
    return caplog


async def test_each_retry_is_one_info_line_saying_what_why_and_how_long(
    mock_api: aioresponses, debug: pytest.LogCaptureFixture
) -> None:
    url = f"{API}/instances/inst-1"
    mock_api.get(url, status=503, headers={"Retry-After": "3"}, body='{"message": "busy"}')
    mock_api.get(url, status=502)
    mock_api.get(url, payload={"id": "inst-1", "state": "RUNNING"})
    async with sr.StreamrunClient(API_KEY, retry=sr.RetryPolicy.for_testing()) as c:
        await c.instances.get("inst-1")
    first, second = records(debug, logging.INFO)
    assert "GET /api/v1/instances/inst-1" in first.getMessage()
    assert "ServerError" in first.getMessage()
    assert "busy" in first.getMessage()
    info = fields(first)
    assert info["event"] == "retry"
    assert (info["method"], info["route"], info["attempt"]) == ("GET", "/instances/{instanceId}", 1)
    assert (info["error"], info["status"], info["retry_after"]) == ("ServerError", 503, 3.0)
    assert info["wait"] >= 3
    assert f"{info['wait']:.2f}s" in first.getMessage()
    assert fields(second)["attempt"] == 2
    assert records(debug, logging.WARNING) == []


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        ([{"status": 500}] * 3, "3 attempts made"),
        ([{"status": 429, "headers": {"Retry-After": "3600"}}], "Retry-After 3600.0s exceeds"),
        ([{"status": 503, "headers": {"Retry-After": "30"}}], "budget of 10.0s"),
    ],
    ids=["attempts", "retry-after-cap", "budget"],
)
async def test_giving_up_is_one_warning_with_the_reason(
    mock_api: aioresponses,
    debug: pytest.LogCaptureFixture,
    answers: list[dict[str, Any]],
    reason: str,
) -> None:
    for answer in answers:
        mock_api.get(f"{API}/instances", **answer)
    policy = sr.RetryPolicy(attempts=3, timeout=10, testing=True)
    async with sr.StreamrunClient(API_KEY, retry=policy) as c:
        with pytest.raises(sr.APIStatusError) as info:
            await c.instances.list()
    (warning,) = records(debug, logging.WARNING)
    assert reason in warning.getMessage()
    logged = fields(warning)
    assert logged["event"] == "give_up"
    assert reason in logged["reason"]
    assert (logged["attempts"], logged["route"]) == (len(answers), "/instances")
    assert logged["status"] == answers[-1]["status"]
    # The error says it too, for whoever only sees the traceback.
    assert any(reason in note for note in info.value.__notes__)


@pytest.mark.parametrize("status", [404, 400])
async def test_an_error_not_worth_retrying_is_no_warning(
    mock_api: aioresponses, debug: pytest.LogCaptureFixture, status: int
) -> None:
    mock_api.get(f"{API}/instances/nope", status=status)
    async with sr.StreamrunClient(API_KEY, retry=sr.RetryPolicy.for_testing()) as c:
        with pytest.raises(sr.APIStatusError):
            await c.instances.get("nope")
    assert records(debug, logging.WARNING) == []
    assert records(debug, logging.INFO) == []


async def test_with_retries_off_a_failure_is_not_a_give_up(
    mock_api: aioresponses, debug: pytest.LogCaptureFixture
) -> None:
    mock_api.get(f"{API}/instances", status=503)
    async with sr.StreamrunClient(API_KEY, retry=sr.RetryPolicy.disabled()) as c:
        with pytest.raises(sr.ServerError):
            await c.instances.list()
    assert records(debug, logging.WARNING) == []


async def test_wire_detail_is_at_debug_with_fields(
    mock_api: aioresponses, debug: pytest.LogCaptureFixture
) -> None:
    mock_api.get(f"{API}/instances", payload=[], headers={"X-Request-Id": "req-9"})
    async with sr.StreamrunClient(API_KEY) as c:
        await c.instances.list()
    (line,) = [r for r in records(debug, logging.DEBUG) if "-> 200" in r.getMessage()]
    wire = fields(line)
    assert wire["event"] == "response"
    assert (wire["method"], wire["url"], wire["status"]) == ("GET", "/api/v1/instances", 200)
    assert (wire["attempt"], wire["request_id"]) == (1, "req-9")
    assert records(debug, logging.INFO) == []


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(clock="virtual", api_key=API_KEY, boot_time=5, configurations=2) as e:
        yield e


async def test_no_log_line_shows_the_key_or_a_stream_key(
    emu: Emulator, debug: pytest.LogCaptureFixture
) -> None:
    def broken_hook(event: object) -> None:
        raise RuntimeError(f"hook saw {event!r}")

    cfg = emu.configuration_ids[0]
    poll = sr.PollPolicy(min_interval=0.002, max_interval=0.01, requests_per_second=5_000)
    emu.faults.script(LAUNCH, [Fault.HTTP_503])
    emu.faults.script("GET /instances", [Fault.HTTP_502, Fault.HTTP_500, Fault.HTTP_503])
    policy = sr.RetryPolicy.for_testing(attempts=3)
    async with emu.client(retry=policy, poll=poll, hooks=[broken_hook]) as c:
        request = await c.configurations.launch(cfg, [sr.InstanceSettings(name="cam")])
        assert isinstance(request, sr.InstanceRequest)
        with pytest.raises(sr.ServerError):
            await c.instances.list()  # three failures: a give-up warning
        waiting = c.instance_requests.wait_until_running(request, timeout=60)
        waiter = asyncio.create_task(waiting)
        await asyncio.sleep(0.05)
        await emu.advance(10)
        await asyncio.wait_for(waiter, 5)
        for inst in await c.instances.list():
            detail = await c.instances.get(inst.id)
            assert detail.id == inst.id
    stream_keys = [k for i in emu.state.instances for k in (i.stream_key, *i.stream_keys.values())]
    assert stream_keys
    assert records(debug, logging.INFO)
    assert records(debug, logging.WARNING)
    assert records(debug, logging.ERROR)  # the hook's failure, with its traceback
    shown = "\n".join(
        debug.text.splitlines() + [r.getMessage() + repr(r.__dict__) for r in debug.records]
    )
    for secret in (API_KEY, *stream_keys):
        assert secret not in shown
