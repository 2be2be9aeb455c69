"""Every fault kind as a raw aiohttp client meets it; rates, scripts, seeds, stats."""

from __future__ import annotations

import json
import logging
import time

import aiohttp
import pytest
from conftest import RawApi

from streamrun_async.testing import DROPPED, UNMATCHED, Emulator, Fault

LAUNCH = "POST /configurations/{configurationId}/instances"
LIST = "GET /instances"
# Raw shapes of the emulator as it was before dialects; tests/test_dialects_emulator.py
# covers the other dialects, the default among them.
pytestmark = pytest.mark.streamrun_emulator(dialect="classic")


def launch_path(api: RawApi) -> str:
    return f"/configurations/{api.emulator.configuration_ids[0]}/instances"


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        (Fault.HTTP_500, 500, "internal_error"),
        (Fault.HTTP_502, 502, "bad_gateway"),
        (Fault.HTTP_503, 503, "service_unavailable"),
        (Fault.HTTP_429, 429, "rate_limited"),
    ],
)
async def test_status_faults_answer_before_handling(
    raw_api: RawApi, fault: Fault, status: int, code: str
) -> None:
    emu = raw_api.emulator
    emu.faults.script(LAUNCH, [fault])
    answer = await raw_api("POST", launch_path(raw_api))
    assert answer.status == status
    assert answer.error == (code, f"injected fault {fault.value}")
    assert answer.headers["X-Request-Id"].startswith("req_")
    assert ("Retry-After" in answer.headers) == (fault is Fault.HTTP_429)
    assert emu.state.instances == ()
    assert emu.stats.injected(fault) == emu.stats.injected() == 1
    assert emu.stats.count(LAUNCH, status=status) == 1


async def test_retry_after_is_configurable(raw_api: RawApi) -> None:
    raw_api.emulator.faults.script(LIST, [Fault.HTTP_429, Fault.HTTP_429])
    assert (await raw_api("GET", "/instances")).headers["Retry-After"] == "1"
    raw_api.emulator.faults.retry_after = 0
    assert (await raw_api("GET", "/instances")).headers["Retry-After"] == "0"


async def test_html_error_page(raw_api: RawApi) -> None:
    raw_api.emulator.faults.script(LAUNCH, [Fault.HTML_ERROR])
    answer = await raw_api("POST", launch_path(raw_api))
    assert answer.status == 502
    assert answer.headers["Content-Type"].startswith("text/html")
    assert b"<title>502 Bad Gateway</title>" in answer.body
    assert raw_api.emulator.state.instances == ()


async def test_drop_before_handling(raw_api: RawApi, caplog: pytest.LogCaptureFixture) -> None:
    emu = raw_api.emulator
    emu.faults.script(LAUNCH, [Fault.DROP_BEFORE])
    with caplog.at_level(logging.DEBUG), pytest.raises(aiohttp.ServerDisconnectedError):
        await raw_api("POST", launch_path(raw_api))
    assert emu.state.instances == ()
    assert emu.stats.count(LAUNCH, status=DROPPED) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.streamrun_emulator(idle_timeout=None)
async def test_drop_after_handling_is_a_launch_the_client_never_hears_of(
    raw_api: RawApi, caplog: pytest.LogCaptureFixture
) -> None:
    emu = raw_api.emulator
    emu.faults.script(LAUNCH, [Fault.DROP_AFTER])
    with caplog.at_level(logging.DEBUG), pytest.raises(aiohttp.ServerDisconnectedError):
        await raw_api("POST", launch_path(raw_api))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert emu.state.count("QUEUED") == 1
    # A blind retry launches, and bills, a second instance.
    await raw_api.launch()
    await emu.advance(3600 + 2)
    assert emu.state.count("RUNNING") == 2
    assert emu.billing.total == 2 * 3600
    assert emu.stats.count(LAUNCH) == 2
    assert emu.stats.count(LAUNCH, status=DROPPED) == 1


async def test_aiohttp_retries_an_idempotent_request_once_after_a_drop(raw_api: RawApi) -> None:
    """Worth knowing when testing a client: one dropped GET is invisible to aiohttp users."""
    emu = raw_api.emulator
    emu.faults.script(LIST, [Fault.DROP_BEFORE])
    assert (await raw_api("GET", "/instances")).status == 200
    assert emu.stats.count(LIST) == 2
    emu.faults.script(LIST, [Fault.DROP_BEFORE, Fault.DROP_AFTER])
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await raw_api("GET", "/instances")


async def test_malformed_json_after_handling(raw_api: RawApi) -> None:
    emu = raw_api.emulator
    emu.faults.script(LAUNCH, [Fault.MALFORMED_JSON])
    answer = await raw_api("POST", launch_path(raw_api))
    assert answer.status == 201
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.headers["Location"].startswith("/api/v1/instance-requests/ireq-")
    with pytest.raises(json.JSONDecodeError):
        answer.json  # noqa: B018
    assert emu.state.count() == 1  # the launch happened
    full = (await raw_api("GET", f"/instances/{emu.state.instances[0].id}")).body
    emu.faults.script("GET /instances/{instanceId}", [Fault.MALFORMED_JSON])
    cut = (await raw_api("GET", f"/instances/{emu.state.instances[0].id}")).body
    assert full.startswith(cut)
    assert 0 < len(cut) < len(full)
    # An empty 204 cannot carry a broken body: it becomes a 200.
    emu.faults.script("DELETE /instances", [Fault.MALFORMED_JSON])
    answer = await raw_api("DELETE", "/instances")
    assert (answer.status, answer.body) == (200, b'{"')
    assert emu.state.count() == 0


async def test_latency(raw_api: RawApi) -> None:
    emu = raw_api.emulator
    emu.faults.latency, emu.faults.latency_jitter = 0.05, 0.0
    emu.faults.script(LIST, [Fault.LATENCY])
    started = time.perf_counter()
    assert (await raw_api("GET", "/instances")).status == 200
    assert time.perf_counter() - started >= 0.045
    emu.faults.set_rate(Fault.LATENCY, 1.0)
    emu.faults.set_rate(Fault.HTTP_503, 1.0)
    emu.faults.latency = 0.001
    assert (await raw_api("GET", "/instances")).status == 503  # latency combines
    assert emu.stats.injected(Fault.LATENCY) == 2
    assert emu.stats.injected(Fault.HTTP_503) == 1


async def test_scripts(raw_api: RawApi) -> None:
    faults = raw_api.emulator.faults
    faults.script(LIST, [Fault.HTTP_503, None, Fault.HTTP_500])
    faults.script(None, [Fault.HTTP_502, Fault.HTTP_502])
    assert faults.pending(LIST) == 3
    assert faults.pending() == 2
    statuses = [(await raw_api("GET", "/instances")).status for _ in range(6)]
    assert statuses == [503, 200, 500, 502, 502, 200]
    faults.script(None, [Fault.HTTP_503])
    assert (await raw_api("GET", "/nowhere")).status == 404  # unknown paths get no faults
    assert (await raw_api("GET", "/destinations")).status == 503
    faults.script(LIST, [Fault.HTTP_503])
    faults.clear()
    assert faults.pending(LIST) == 0
    assert (await raw_api("GET", "/instances")).status == 200


async def test_rates_per_route_and_global(raw_api: RawApi) -> None:
    faults = raw_api.emulator.faults
    faults.set_rate(Fault.HTTP_503, 1.0)
    faults.set_rate(Fault.HTTP_503, 0.0, route="GET /destinations")  # the route's rate wins
    faults.set_rate(Fault.HTTP_429, 1.0, route="GET /configurations")
    assert (await raw_api("GET", "/instances")).status == 503
    assert (await raw_api("GET", "/destinations")).status == 200
    assert (await raw_api("GET", "/configurations")).status == 503  # kinds in Fault order


async def test_rates_are_reproducible_with_a_seed() -> None:
    async def statuses(seed: int) -> list[int]:
        emu = Emulator(clock="virtual", seed=seed, dialect="classic")
        emu.faults.set_rate(Fault.HTTP_503, 0.3)
        emu.faults.set_rate(Fault.HTTP_500, 0.2, route=LIST)
        emu.faults.set_rate(Fault.MALFORMED_JSON, 0.1)
        async with emu, aiohttp.ClientSession() as session:
            headers = {"Authorization": f"Bearer {emu.api_key}"}
            result = []
            for _ in range(60):
                async with session.get(f"{emu.url}/api/v1/instances", headers=headers) as r:
                    body = await r.read()
                    result.append(r.status if body != b"[]" else 0)
            return result

    first = await statuses(3)
    assert first == await statuses(3)
    assert first != await statuses(4)
    assert {500, 503, 200, 0} <= set(first)


def test_fault_plan_refuses_mistakes() -> None:
    faults = Emulator().faults
    with pytest.raises(ValueError, match="unknown route 'GET /instance'"):
        faults.set_rate(Fault.HTTP_503, 0.1, route="GET /instance")
    with pytest.raises(ValueError, match="unknown route"):
        faults.script("/instances", [Fault.HTTP_503])
    with pytest.raises(ValueError, match="between 0 and 1"):
        faults.set_rate(Fault.HTTP_503, 1.5)
    faults.set_rate(Fault.HTTP_503, 0.6)
    faults.set_rate(Fault.LATENCY, 0.9)  # latency has a draw of its own
    with pytest.raises(ValueError, match="over 1"):
        faults.set_rate(Fault.HTTP_500, 0.5)
    faults.set_rate(Fault.HTTP_500, 0.4)


async def test_stats(raw_api: RawApi) -> None:
    stats = raw_api.emulator.stats
    await raw_api("GET", "/instances")
    await raw_api("GET", "/instances/inst-x")
    await raw_api("GET", "/nowhere")
    await raw_api("PATCH", "/instances")
    assert stats.count(LIST) == stats.count(LIST, status=200) == 1
    assert stats.count("GET /instances/{instanceId}", status=404) == 1
    assert stats.count(UNMATCHED) == 2
    assert stats.count(status=404) == 2
    assert stats.total == 4
    with pytest.raises(ValueError, match="unknown route"):
        stats.count("GET /instance")
    stats.reset()
    assert stats.total == stats.injected() == 0
