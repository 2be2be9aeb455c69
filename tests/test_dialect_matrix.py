"""The SDK's behaviour against every dialect the emulator speaks (``dialect`` fixture).

Each test is what a user relies on, checked against the emulator's truth (``emu.state``)
rather than against what the dialect happens to spell: a dialect the SDK cannot serve
correctly is a bug in the SDK, never a reason to drop the preset.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest

import streamrun_async as sr
from streamrun_async.testing import DEMO_CONFIGURATIONS, DEMO_DESTINATIONS, Dialect, Emulator

_T = TypeVar("_T")

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
BOOT = 10.0
POLL = sr.PollPolicy(min_interval=0.01, max_interval=0.01, requests_per_second=1000)
# Five instances: more than one page in every paginated preset.
NAMES = ("Cam-North-Entrance", "cam-2", "cam-3", "cam-4", "cam-5")


def emulator(dialect: Dialect, **options: Any) -> Emulator:
    return Emulator(
        clock="virtual", boot_time=BOOT, dialect=dialect, epoch=EPOCH, idle_timeout=None, **options
    )


@pytest.fixture
async def emu(dialect: Dialect) -> AsyncIterator[Emulator]:
    async with emulator(dialect) as running:
        yield running


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[sr.StreamrunClient]:
    async with emu.client(retry=sr.RetryPolicy.for_testing(), poll=POLL) as running:
        yield running


async def drive(emu: Emulator, task: asyncio.Task[_T], *, limit: float = 120.0) -> _T:
    """Move the virtual clock a second at a time, letting the poller run in between,
    until ``task`` ends (or ``limit`` virtual seconds passed)."""
    moved = 0.0
    while not task.done() and moved < limit:
        await asyncio.sleep(0.02)
        await emu.advance(1.0)
        moved += 1.0
    return await asyncio.wait_for(task, 5)


def echoed(dialect: Dialect, name: str) -> str | None:
    """The name a server of this dialect gives back for ``name``."""
    return {
        "exact": name,
        "absent": None,
        "lower": name.lower(),
        "truncate": name[: dialect.name_max_length],
    }[dialect.instance_names]


def names_no_request(dialect: Dialect) -> bool:
    """Whether this dialect's launch answers leave the instance request unnamed."""
    return dialect.launch_answer == "instance_body" and not dialect.instance_request_id


def request_of(
    dialect: Dialect, launched: sr.InstanceRequest | sr.AcceptedLaunch
) -> sr.InstanceRequest | None:
    """The request a launch answer named; None exactly when the dialect names none."""
    if names_no_request(dialect):
        assert isinstance(launched, sr.AcceptedLaunch)
        return None
    assert isinstance(launched, sr.InstanceRequest)
    return launched


async def launch_running(
    emu: Emulator, client: sr.StreamrunClient, cfg: str, names: tuple[str, ...]
) -> None:
    """Launch ``names`` and move the clock until they run and every read shows them."""
    await client.configurations.launch(cfg, [sr.InstanceSettings(n) for n in names])
    await emu.advance(BOOT + emu.dialect.list_lag + emu.dialect.request_lag)


async def wait_running(
    emu: Emulator,
    client: sr.StreamrunClient,
    launched: sr.InstanceRequest | sr.AcceptedLaunch,
    *,
    by_id: bool = False,
    stopped: tuple[str, ...] = (),
) -> None:
    """Wait as a user would: for the request when the answer named one (by id: the SDK
    must poll it), else for each instance the truth says it launched, but the ``stopped``."""
    request = request_of(emu.dialect, launched)
    if request is not None:
        task = asyncio.create_task(
            client.instance_requests.wait_until_running(request.id if by_id else request)
        )
        running = await drive(emu, task)
        assert running.id == request.id
        assert running.state is sr.InstanceState.RUNNING
        return
    (made,) = (r for r in emu.state.requests if r.configuration_id == launched.configuration_id)
    for instance_id in made.instance_ids:
        if instance_id not in stopped:
            wait = client.instances.wait_for_state(instance_id, timeout=60)
            instance = await drive(emu, asyncio.create_task(wait))
            assert instance.state is sr.InstanceState.RUNNING


# -- reading --------------------------------------------------------------------------


async def test_configurations_list_and_get(
    emu: Emulator, client: sr.StreamrunClient, dialect: Dialect
) -> None:
    listed = await client.configurations.list()
    assert [c.id for c in listed] == list(emu.configuration_ids)
    assert [c.name for c in listed] == [seed.name for seed in DEMO_CONFIGURATIONS]
    assert all(c.created_at == EPOCH for c in listed)
    for cfg_id, seed in zip(emu.configuration_ids, DEMO_CONFIGURATIONS, strict=True):
        detail = await client.configurations.get(cfg_id)
        assert detail.id == cfg_id
        assert [e.id for e in detail.elements] == list(seed.elements)
        elements = {e.id: e for e in detail.elements}
        overlay, output = elements["htmloverlay-1"], elements["outputstream-1"]
        assert (overlay.type, overlay.title) == ("htmloverlay", "HTML overlay 1")
        if dialect.element_settings:
            assert overlay.settings["url"] == "https://example.com/overlay-1"
            assert output.settings["destinations"] == [emu.destination_ids[0]]
        else:
            assert not overlay.settings
        assert detail.created_at == EPOCH


async def test_destinations(emu: Emulator, client: sr.StreamrunClient, dialect: Dialect) -> None:
    destinations = await client.destinations.list()
    assert [d.id for d in destinations] == list(emu.destination_ids)
    assert [d.name for d in destinations] == [seed.name for seed in DEMO_DESTINATIONS]
    platforms = [
        seed.platform if dialect.destination_platform else None for seed in DEMO_DESTINATIONS
    ]
    assert [d.platform for d in destinations] == platforms


async def test_empty_lists_are_empty(emu: Emulator, client: sr.StreamrunClient) -> None:
    assert await client.instances.list() == []
    assert await client.configurations.list_instances(emu.configuration_ids[0]) == []


async def test_instances_list_and_get(
    emu: Emulator, client: sr.StreamrunClient, dialect: Dialect
) -> None:
    cfg, other = emu.configuration_ids[:2]
    await launch_running(emu, client, cfg, NAMES)
    (request,) = emu.state.requests
    truth = emu.state.instances
    assert [i.name for i in truth] == list(NAMES)
    for listed in (await client.instances.list(), await client.configurations.list_instances(cfg)):
        assert [i.id for i in listed] == [i.id for i in truth]
        assert [i.state for i in listed] == [sr.InstanceState.RUNNING] * len(NAMES)
        assert [i.name for i in listed] == [echoed(dialect, n) for n in NAMES]
        assert all(i.created_at == EPOCH for i in listed)
        expected_cfg = cfg if dialect.instance_configuration_id else None
        assert all(i.configuration_id == expected_cfg for i in listed)
        expected_request = request.id if dialect.instance_request_id else None
        assert all(i.request_id == expected_request for i in listed)
    assert await client.configurations.list_instances(other) == []
    elements = DEMO_CONFIGURATIONS[0].elements
    for instance in truth:
        got = await client.instances.get(instance.id)
        assert (got.id, got.state, got.name) == (
            instance.id,
            sr.InstanceState.RUNNING,
            echoed(dialect, instance.name or ""),
        )
        assert got.outputs == sr.Outputs.OFFLINE
        if dialect.detail_state == "object":
            assert list(got.element_states) == list(elements)
            runtime = got.element_states["inputstream-1"]
            assert runtime.stream_key is not None
            assert runtime.stream_key.get_secret_value() == instance.stream_keys["inputstream-1"]
            assert runtime.fps == 0.0
            assert got.element_states["htmloverlay-1"].stream_key is None
            assert got.stream_key is not None
            assert got.stream_key.get_secret_value() == instance.stream_key
            for secret in (instance.stream_key, *instance.stream_keys.values()):
                assert secret not in repr(got)
                assert secret not in str(got.stream_key)
        else:
            assert not got.element_states
            assert got.stream_key is None


# -- launching and waiting -----------------------------------------------------------


async def test_launch_and_wait_until_running(
    emu: Emulator, client: sr.StreamrunClient, dialect: Dialect
) -> None:
    cfg = emu.configuration_ids[0]
    launched = await client.configurations.launch(
        cfg, [sr.InstanceSettings("a"), sr.InstanceSettings("b")]
    )
    (made,) = emu.state.requests
    request = request_of(dialect, launched)
    if request is None:
        assert isinstance(launched, sr.AcceptedLaunch)
        assert (launched.configuration_id, launched.names) == (cfg, ("a", "b"))
    else:
        assert request.id == made.id
    assert emu.state.count() == 2
    await wait_running(emu, client, launched)
    # RUNNING means what the server's request says (servers allocated, when it leads its
    # instances) or that every instance of it runs (when the request lags behind them).
    states = {emu.state.instance(i).state for i in made.instance_ids}
    if dialect.request_state == "leads":
        assert emu.state.request(made.id).state == "RUNNING"
        assert states <= {"RUNNING", "STARTING"}
    else:
        assert states == {"RUNNING"}
    assert emu.state.count() == 2  # waiting launched nothing more


async def test_default_launch_and_wait_for_the_instance(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    cfg = emu.configuration_ids[0]
    await client.configurations.launch(cfg)
    ((instance_id,),) = (r.instance_ids for r in emu.state.requests)
    waiting = asyncio.create_task(
        client.instances.wait_for_state(instance_id, configuration_id=cfg, timeout=60)
    )
    instance = await drive(emu, waiting)
    assert instance.id == instance_id
    assert instance.state is sr.InstanceState.RUNNING
    assert emu.state.instance(instance_id).state == "RUNNING"


async def test_a_request_runs_once_its_instance_left_after_a_stop_runs(dialect: Dialect) -> None:
    async with (
        emulator(dialect, capacity=1) as emu,
        emu.client(retry=sr.RetryPolicy.for_testing(), poll=POLL) as client,
    ):
        cfg = emu.configuration_ids[0]
        launched = await client.configurations.launch(
            cfg, [sr.InstanceSettings("a"), sr.InstanceSettings("b")]
        )
        ((first, queued),) = (r.instance_ids for r in emu.state.requests)
        await client.instances.stop(queued)  # stopped while it waited for a server
        await wait_running(emu, client, launched, stopped=(queued,))
        assert [i.id for i in emu.state.instances] == [first]
        assert emu.state.instance(first).state in {"RUNNING", "STARTING"}


async def test_a_failed_instance_ends_the_wait(
    emu: Emulator, client: sr.StreamrunClient, dialect: Dialect
) -> None:
    launched = await client.configurations.launch(emu.configuration_ids[0])
    ((instance_id,),) = (r.instance_ids for r in emu.state.requests)
    # Failed before the wait's first poll, waited for by id: a request leading its
    # instances is RUNNING in the launch answer, which would rightly end the wait at once.
    emu.fail_instance(instance_id)
    with pytest.raises(sr.WaiterError) as failed:
        await wait_running(emu, client, launched, by_id=True)
    # It ended on what was seen failed, not on a disappearance.
    assert failed.value.last_seen is not None
    assert failed.value.last_seen.state.is_terminal


async def test_no_capacity_is_typed(dialect: Dialect) -> None:
    async with emulator(dialect, slot_limit=1) as emu, emu.client() as client:
        await client.configurations.launch(emu.configuration_ids[0])
        with pytest.raises(sr.NoCapacityError):
            await client.configurations.launch(emu.configuration_ids[1])
        assert emu.state.count() == 1


async def test_unknown_ids_are_not_found(client: sr.StreamrunClient) -> None:
    with pytest.raises(sr.NotFoundError):
        await client.instances.get("inst-nope")
    with pytest.raises(sr.NotFoundError):
        await client.configurations.get("cfg-nope")
    with pytest.raises(sr.NotFoundError):
        await client.instance_requests.get("ireq-nope")


async def test_launch_many(emu: Emulator, client: sr.StreamrunClient) -> None:
    first, second = emu.configuration_ids[:2]
    plan = {
        first: [sr.InstanceSettings("north"), sr.InstanceSettings("south")],
        second: [sr.InstanceSettings("stage")],
    }
    report = await client.launch_many(plan)
    assert report.ok
    launched = sorted((i.configuration_id, i.name) for i in emu.state.instances)
    assert launched == sorted([(first, "north"), (first, "south"), (second, "stage")])


# -- stopping --------------------------------------------------------------------------


async def test_stop_one(emu: Emulator, client: sr.StreamrunClient) -> None:
    cfg = emu.configuration_ids[0]
    await launch_running(emu, client, cfg, ("keep", "stop"))
    kept, stopped = (i.id for i in emu.state.instances)
    await client.instances.stop(stopped)
    assert [i.id for i in emu.state.instances] == [kept]
    listed = {i.id: i for i in await client.instances.list()}
    assert listed[kept].state is sr.InstanceState.RUNNING
    # Gone, or shown on its way out (STOPPING/STOPPED): never again one that may run.
    assert stopped not in listed or not listed[stopped].state.can_become_running
    try:
        gone = await client.instances.get(stopped)
    except sr.NotFoundError:
        pass
    else:
        assert not gone.state.can_become_running


async def test_stop_all_of_a_configuration(emu: Emulator, client: sr.StreamrunClient) -> None:
    cfg, other = emu.configuration_ids[:2]
    await launch_running(emu, client, cfg, ("a", "b"))
    await launch_running(emu, client, other, ("c",))
    await client.configurations.stop_instances(cfg)
    assert emu.state.count(configuration_id=cfg) == 0
    assert emu.state.count(configuration_id=other) == 1
    left = await client.configurations.list_instances(cfg)
    assert all(not i.state.can_become_running for i in left)
    await client.instances.stop_all()
    assert emu.state.count() == 0


async def test_restart(emu: Emulator, client: sr.StreamrunClient, dialect: Dialect) -> None:
    await launch_running(emu, client, emu.configuration_ids[0], ("r",))
    (instance,) = emu.state.instances
    restarted = await client.instances.restart(instance.id)
    if dialect.restart_answer == "json":  # the answer has the instance: the SDK returns it
        assert restarted is not None
        assert (restarted.id, restarted.state) == (instance.id, sr.InstanceState.STARTING)
    else:
        assert restarted is None
    assert emu.state.instance(instance.id).state == "STARTING"
    await emu.advance(BOOT)
    assert (await client.instances.get(instance.id)).state is sr.InstanceState.RUNNING


def test_every_preset_is_in_the_matrix() -> None:
    """The fixture runs each preset; no two have the same knobs (names are not compared),
    and observed is the default."""
    presets = Dialect.presets()
    assert len(set(presets.values())) == len(presets)
    assert Emulator().dialect == Dialect.observed() == presets["observed"]
    assert EPOCH.microsecond == 0  # whole seconds: epoch_s loses nothing
