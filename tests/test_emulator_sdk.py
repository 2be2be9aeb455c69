"""The SDK against the emulator over real loopback HTTP, and the pytest plugin's fixtures."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

import streamrun_async as sr
from streamrun_async.testing import DROPPED, Emulator, Fault

LAUNCH = "POST /configurations/{configurationId}/instances"
LIST = "GET /instances"
EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["classic", "wrapped"])
async def emu(request: pytest.FixtureRequest) -> AsyncIterator[Emulator]:
    """An emulator answering bare bodies, then one answering envelopes (every dialect:
    tests/test_dialect_matrix.py)."""
    emulator = Emulator(clock="virtual", boot_time=10, dialect=request.param, epoch=EPOCH)
    async with emulator:
        yield emulator


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[sr.StreamrunClient]:
    async with emu.client(retry=sr.RetryPolicy.for_testing()) as client:
        yield client


async def test_configurations_and_destinations(emu: Emulator, client: sr.StreamrunClient) -> None:
    configurations = await client.configurations.list()
    assert [c.id for c in configurations] == list(emu.configuration_ids)
    first = await client.configurations.get(emu.configuration_ids[0])
    assert first == configurations[0]
    assert first.name == "Morning Show"
    assert first.created_at == EPOCH
    assert sr.Element(id="htmloverlay-1", title="HTML overlay 1", type="htmloverlay") in (
        first.elements
    )
    destinations = await client.destinations.list()
    assert [d.id for d in destinations] == list(emu.destination_ids)
    assert {d.platform for d in destinations} == {"twitch", "youtube", "kick", "rtmp"}


async def test_launch_and_follow(emu: Emulator, client: sr.StreamrunClient) -> None:
    cfg = emu.configuration_ids[0]
    default = await client.configurations.launch(cfg)
    assert default.state == sr.InstanceState.QUEUED
    assert default.number_of_instances == 1
    overrides = {"htmloverlay-1": {"url": "https://example.com/overlay"}}
    request = await client.configurations.launch(
        cfg,
        [sr.InstanceSettings(name="cam-1", overrides=overrides), sr.InstanceSettings("cam-2")],
    )
    assert request.configuration_id == cfg
    assert len(request.instance_ids) == 2
    assert emu.state.request(request.id).instance_ids == request.instance_ids
    await emu.advance(10)
    followed = await client.instance_requests.get(request.id)
    assert followed.state == sr.InstanceState.RUNNING
    instances = await client.configurations.list_instances(cfg)
    assert [i.name for i in instances] == [None, "cam-1", "cam-2"]
    cam1 = await client.instances.get(request.instance_ids[0])
    assert cam1.overrides == overrides
    assert cam1.state == sr.InstanceState.RUNNING
    assert cam1.outputs == sr.Outputs.OFFLINE
    assert cam1.request_id == request.id
    assert cam1.created_at == EPOCH
    assert [i.id for i in await client.instances.list()] == [i.id for i in instances]


async def test_outputs_overrides_restart_and_stops(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    first, second = emu.configuration_ids[:2]
    a = await client.configurations.launch(first, [sr.InstanceSettings("a")])
    b = await client.configurations.launch(second)
    await emu.advance(10)
    await client.configurations.set_outputs(first, sr.Outputs.LIVE)
    assert (await client.instances.get(a.instance_ids[0])).outputs == sr.Outputs.LIVE
    instance_id = a.instance_ids[0]
    assert await client.instances.get_overrides(instance_id) == {}
    await client.instances.update_overrides(instance_id, {"switch-1": {"input": "inputstream-1"}})
    merged = await client.instances.update_overrides(
        instance_id, {"switch-1": {"fade": 2}, "htmloverlay-1": {"url": "u"}}
    )
    assert merged == {
        "switch-1": {"input": "inputstream-1", "fade": 2},
        "htmloverlay-1": {"url": "u"},
    }
    assert await client.instances.get_overrides(instance_id) == merged
    restarted = await client.instances.restart(instance_id)
    assert restarted is not None
    assert restarted.state == sr.InstanceState.STARTING
    await client.instances.stop(instance_id)
    with pytest.raises(sr.NotFoundError):
        await client.instances.get(instance_id)
    await client.configurations.launch(first)
    await client.configurations.stop_instances(first)
    assert await client.configurations.list_instances(first) == []
    assert [i.id for i in await client.instances.list()] == list(b.instance_ids)
    await client.instances.stop_all()
    assert await client.instances.list() == []


async def test_api_errors_become_typed_exceptions(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    cfg = emu.configuration_ids[0]
    with pytest.raises(sr.NotFoundError) as not_found:
        await client.configurations.get("cfg-nope")
    assert not_found.value.request_id is not None
    assert not_found.value.request_id.startswith("req_")
    with pytest.raises(sr.BadRequestError, match="'ghost-1' is not an element"):
        await client.configurations.launch(
            cfg, [sr.InstanceSettings("a", overrides={"ghost-1": {}})]
        )
    queued = await client.configurations.launch(cfg)
    with pytest.raises(sr.ConflictError):
        await client.instances.restart(queued.instance_ids[0])
    async with sr.StreamrunClient(api_key="sr_wrong", base_url=emu.url) as stranger:
        with pytest.raises(sr.AuthenticationError):
            await stranger.instances.list()


async def test_no_capacity() -> None:
    async with Emulator(clock="virtual", slot_limit=1) as emu, emu.client() as client:
        await client.configurations.launch(emu.configuration_ids[0])
        with pytest.raises(sr.NoCapacityError, match="0 instance slots"):
            await client.configurations.launch(emu.configuration_ids[1])


async def test_waiting_follows_the_virtual_clock() -> None:
    poll = sr.PollPolicy(min_interval=0.01, max_interval=0.01, requests_per_second=1000)
    async with Emulator(clock="virtual", boot_time=30) as emu, emu.client(poll=poll) as client:
        request = await client.configurations.launch(emu.configuration_ids[0])
        waiting = asyncio.create_task(client.instance_requests.wait_until_running(request))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        await emu.advance(30)
        running = await asyncio.wait_for(waiting, 5)
        assert running.state == sr.InstanceState.RUNNING


# -- what the SDK does with each fault --------------------------------------------


async def test_sdk_retries_what_is_safe_to_retry(emu: Emulator, client: sr.StreamrunClient) -> None:
    emu.faults.script(LIST, [Fault.HTTP_503, Fault.HTTP_500, Fault.HTML_ERROR])
    assert await client.instances.list() == []
    assert emu.stats.count(LIST) == 4
    emu.faults.script(LIST, [Fault.HTTP_429] * 4)  # for_testing() makes 4 attempts
    with pytest.raises(sr.RateLimitError) as error:
        await client.instances.list()
    assert error.value.retry_after == 1
    # A launch answered 503 or 429 was certainly not acted on: retried, launched once.
    emu.faults.script(LAUNCH, [Fault.HTTP_503, Fault.HTTP_429])
    await client.configurations.launch(emu.configuration_ids[0])
    assert emu.state.count() == 1
    assert emu.stats.count(LAUNCH, status=201) == 1


async def test_launch_not_retried_after_a_500(emu: Emulator, client: sr.StreamrunClient) -> None:
    emu.faults.script(LAUNCH, [Fault.HTTP_500])
    with pytest.raises(sr.ServerError) as error:
        await client.configurations.launch(emu.configuration_ids[0])
    assert error.value.status == 500
    assert emu.stats.count(LAUNCH) == 1


@pytest.mark.parametrize("fault", [Fault.DROP_BEFORE, Fault.DROP_AFTER])
async def test_a_dropped_launch_has_an_unknown_outcome(
    emu: Emulator, client: sr.StreamrunClient, fault: Fault
) -> None:
    emu.faults.script(LAUNCH, [fault])
    with pytest.raises(sr.APIConnectionError) as error:
        await client.configurations.launch(emu.configuration_ids[0])
    assert error.value.outcome_unknown
    assert emu.stats.count(LAUNCH) == emu.stats.count(LAUNCH, status=DROPPED) == 1
    # Only the emulator knows the truth the client cannot: did it launch?
    assert emu.state.count() == (1 if fault is Fault.DROP_AFTER else 0)


async def test_dropped_reads_are_retried(emu: Emulator, client: sr.StreamrunClient) -> None:
    emu.faults.script(LIST, [Fault.DROP_BEFORE, Fault.DROP_AFTER, Fault.DROP_BEFORE])
    assert await client.instances.list() == []
    assert emu.stats.count(LIST, status=DROPPED) == 3


async def test_malformed_json(emu: Emulator, client: sr.StreamrunClient) -> None:
    emu.faults.script("GET /destinations", [Fault.MALFORMED_JSON])
    with pytest.raises(sr.ResponseDecodeError) as error:
        await client.destinations.list()
    assert not error.value.outcome_unknown
    emu.faults.script(LAUNCH, [Fault.MALFORMED_JSON])
    launched = await client.configurations.launch(emu.configuration_ids[0])
    # The body is garbled but the Location header names the request: nothing is lost.
    assert isinstance(launched, sr.InstanceRequest)
    assert launched.id == emu.state.requests[0].id
    assert emu.state.count() == 1


async def test_latency_beyond_the_timeout(emu: Emulator) -> None:
    emu.faults.latency, emu.faults.latency_jitter = 0.2, 0.0
    emu.faults.script(LAUNCH, [Fault.LATENCY])
    async with emu.client(timeout=0.05, retry=sr.RetryPolicy.for_testing()) as client:
        with pytest.raises(sr.APITimeoutError) as error:
            await client.configurations.launch(emu.configuration_ids[0])
    assert error.value.outcome_unknown


async def test_launch_many_is_exactly_once_despite_lost_answers() -> None:
    async with Emulator(clock="virtual", configurations=5) as emu:
        emu.faults.set_rate(Fault.DROP_AFTER, 0.5, route=LAUNCH)
        plan = {
            cfg: [sr.InstanceSettings(f"{cfg}-a"), sr.InstanceSettings(f"{cfg}-b")]
            for cfg in emu.configuration_ids
        }
        async with emu.client(retry=sr.RetryPolicy.for_testing(attempts=10)) as client:
            await client.launch_many(plan)
        assert emu.stats.injected(Fault.DROP_AFTER) > 0
        assert sorted(i.name or "" for i in emu.state.instances) == sorted(
            s.name for settings in plan.values() for s in settings
        )


# -- the pytest plugin, as a user meets it ----------------------------------------


@pytest.mark.streamrun_emulator(capacity=1, boot_time=5, dialect="wrapped")
async def test_plugin_fixtures(
    streamrun_emulator: Emulator, streamrun_client: sr.StreamrunClient
) -> None:
    emu = streamrun_emulator
    cfg = emu.configuration_ids[0]
    first = await streamrun_client.configurations.launch(cfg)
    second = await streamrun_client.configurations.launch(cfg)
    await emu.advance(5)
    assert (await streamrun_client.instance_requests.get(first.id)).state == "RUNNING"
    assert (await streamrun_client.instance_requests.get(second.id)).state == "QUEUED"
    assert streamrun_client.base_url == emu.url


pytest_plugins = ("pytester",)


def test_plugin_in_a_fresh_project(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "filterwarnings = error\n"
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.streamrun_emulator(boot_time=3)
        async def test_user(streamrun_emulator, streamrun_client):
            cfg = streamrun_emulator.configuration_ids[0]
            request = await streamrun_client.configurations.launch(cfg)
            await streamrun_emulator.advance(3)
            assert streamrun_emulator.state.request(request.id).state == "RUNNING"
        """
    )
    pytester.runpytest_inprocess("--strict-markers").assert_outcomes(passed=1)


def test_plugin_without_pytest_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    """Users without pytest-asyncio keep a working pytest: the plugin just has no fixtures."""
    monkeypatch.setitem(sys.modules, "pytest_asyncio", None)  # import now fails
    spec = importlib.util.find_spec("streamrun_async.testing._plugin")
    assert spec is not None
    assert spec.loader is not None
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    assert hasattr(plugin, "pytest_configure")
    assert not hasattr(plugin, "streamrun_emulator")
