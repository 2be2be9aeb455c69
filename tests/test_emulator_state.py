"""The emulator's state machine under the virtual clock (driven over raw HTTP)."""

from __future__ import annotations

import asyncio
import math

import aiohttp
import pytest
from conftest import RawApi

from streamrun_async.testing import Emulator

# Raw shapes of the emulator as it was before dialects; tests/test_dialects_emulator.py
# covers the other dialects, the default among them.
pytestmark = pytest.mark.streamrun_emulator(dialect="classic")


def states(api: RawApi, ids: list[str]) -> list[str]:
    state = api.emulator.state
    return [state.instance(i).state for i in ids]


def request_state(api: RawApi, request: dict[str, str]) -> str:
    state: str = api.emulator.state.request(request["id"]).state
    return state


@pytest.mark.streamrun_emulator(capacity=2, boot_time=10)
async def test_capacity_boots_instances_first_come_first_served(raw_api: RawApi) -> None:
    emu = raw_api.emulator
    a, b, c, d = [(await raw_api.launch())["instanceIds"][0] for _ in range(4)]
    assert states(raw_api, [a, b, c, d]) == ["QUEUED"] * 4
    await emu.advance(9.99)
    assert states(raw_api, [a, b, c, d]) == ["QUEUED"] * 4
    await emu.advance(0.01)
    assert states(raw_api, [a, b, c, d]) == ["RUNNING", "RUNNING", "QUEUED", "QUEUED"]
    await emu.advance(100)  # a running instance keeps its server
    assert states(raw_api, [c, d]) == ["QUEUED", "QUEUED"]
    await raw_api("DELETE", f"/instances/{b}")
    await emu.advance(10)
    assert states(raw_api, [a, c, d]) == ["RUNNING", "RUNNING", "QUEUED"]
    await raw_api("DELETE", f"/instances/{a}")
    await emu.advance(10)
    assert states(raw_api, [c, d]) == ["RUNNING", "RUNNING"]
    assert emu.now() == 130


@pytest.mark.streamrun_emulator(capacity=2, boot_time=10)
async def test_request_runs_when_all_its_instances_run(raw_api: RawApi) -> None:
    blocker = (await raw_api.launch())["instanceIds"][0]
    request = await raw_api.launch("a", "b")
    await raw_api.emulator.advance(10)
    assert states(raw_api, request["instanceIds"]) == ["RUNNING", "QUEUED"]
    answer = await raw_api("GET", f"/instance-requests/{request['id']}")
    assert answer.json["state"] == "QUEUED"
    await raw_api("DELETE", f"/instances/{blocker}")
    await raw_api.emulator.advance(10)
    answer = await raw_api("GET", f"/instance-requests/{request['id']}")
    assert answer.json["state"] == "RUNNING"


@pytest.mark.streamrun_emulator(capacity=1, boot_time=10)
async def test_request_is_judged_by_its_remaining_instances(raw_api: RawApi) -> None:
    request = await raw_api.launch("a", "b")
    await raw_api("DELETE", f"/instances/{request['instanceIds'][1]}")
    await raw_api.emulator.advance(10)
    assert request_state(raw_api, request) == "RUNNING"
    # With none left the request never runs: it stays QUEUED, listing its gone instances.
    gone = await raw_api.launch("c")
    await raw_api("DELETE", f"/instances/{gone['instanceIds'][0]}")
    await raw_api.emulator.advance(100)
    assert request_state(raw_api, gone) == "QUEUED"


@pytest.mark.streamrun_emulator(capacity=1, boot_time=10)
async def test_stopping_frees_capacity(raw_api: RawApi) -> None:
    emu = raw_api.emulator
    a, b, c = [(await raw_api.launch())["instanceIds"][0] for _ in range(3)]
    await emu.advance(4)
    await raw_api("DELETE", f"/instances/{b}")  # cancelled while waiting: never runs
    await raw_api("DELETE", f"/instances/{a}")  # stopped while booting: c gets the server
    await emu.advance(9.5)
    assert states(raw_api, [c]) == ["QUEUED"]
    await emu.advance(0.5)
    assert states(raw_api, [c]) == ["RUNNING"]
    assert [(s.id, s.reason, s.at) for s in emu.state.stopped] == [(b, "api", 4), (a, "api", 4)]
    assert emu.billing.seconds == {a: 0, b: 0, c: 0}


@pytest.mark.streamrun_emulator(slot_limit=3)
async def test_slot_limit(raw_api: RawApi) -> None:
    emu = raw_api.emulator
    cfg = emu.configuration_ids[0]
    emu.open_in_editor(cfg)  # previews take no slot
    first = await raw_api.launch("a", "b")
    answer = await raw_api("POST", f"/configurations/{cfg}/instances", json=None)
    assert answer.status == 201
    answer = await raw_api("POST", f"/configurations/{cfg}/instances")
    assert answer.status == 400
    assert answer.error == (
        "no_capacity",
        "Not enough instance slots: 0 instance slots available, 1 requested",
    )
    await raw_api("DELETE", f"/instances/{first['instanceIds'][0]}")
    body = {"numberOfInstances": 2, "instanceSettings": [{"name": "x"}, {"name": "y"}]}
    answer = await raw_api("POST", f"/configurations/{cfg}/instances", json=body)
    assert answer.status == 400
    assert "1 instance slots available, 2 requested" in answer.error[1]
    assert emu.state.count() == 3
    assert emu.state.count("PREVIEW") == 1


@pytest.mark.streamrun_emulator(boot_time=10)
async def test_restart(raw_api: RawApi) -> None:
    emu = raw_api.emulator
    instance_id = (await raw_api.launch())["instanceIds"][0]
    await emu.advance(15)
    answer = await raw_api("POST", f"/instances/{instance_id}/restart")
    assert answer.json["state"] == "STARTING"
    await emu.advance(5)
    answer = await raw_api("POST", f"/instances/{instance_id}/restart")  # again, while starting
    assert answer.json["state"] == "STARTING"
    await emu.advance(9)
    assert states(raw_api, [instance_id]) == ["STARTING"]
    await emu.advance(1)
    assert states(raw_api, [instance_id]) == ["RUNNING"]
    await emu.advance(3)
    assert emu.billing.seconds[instance_id] == 5 + 3  # STARTING is not billed


@pytest.mark.streamrun_emulator(boot_time=10, idle_timeout=60)
async def test_idle_instances_stop_themselves(raw_api: RawApi) -> None:
    emu = raw_api.emulator
    cfg = emu.configuration_ids[0]
    idle = (await raw_api.launch())["instanceIds"][0]
    busy = (await raw_api.launch(cfg=emu.configuration_ids[1]))["instanceIds"][0]
    await emu.advance(30)  # both RUNNING since t=10
    await raw_api(
        "PUT", f"/configurations/{emu.configuration_ids[1]}/instances", json={"outputs": "LIVE"}
    )
    await emu.advance(39)
    assert emu.state.count("RUNNING") == 2
    await emu.advance(1)  # t=70: idle since t=10
    assert (await raw_api("GET", f"/instances/{idle}")).status == 404
    [stop] = emu.state.stopped
    assert (stop.id, stop.configuration_id, stop.reason, stop.at) == (idle, cfg, "idle", 70)
    assert emu.billing.seconds[idle] == 60
    # LIVE then OFFLINE again starts a fresh countdown.
    await raw_api(
        "PUT", f"/configurations/{emu.configuration_ids[1]}/instances", json={"outputs": "OFFLINE"}
    )
    await emu.advance(59)
    assert states(raw_api, [busy]) == ["RUNNING"]
    await emu.advance(1)
    assert emu.state.count() == 0


@pytest.mark.streamrun_emulator(boot_time=10, idle_timeout=60)
async def test_idle_countdown_restarts_after_a_restart(raw_api: RawApi) -> None:
    emu = raw_api.emulator
    instance_id = (await raw_api.launch())["instanceIds"][0]
    await emu.advance(50)  # RUNNING since 10, idle for 40
    await raw_api("POST", f"/instances/{instance_id}/restart")
    await emu.advance(69)  # RUNNING again since 60
    assert states(raw_api, [instance_id]) == ["RUNNING"]
    await emu.advance(1)
    assert emu.state.count() == 0


@pytest.mark.streamrun_emulator(idle_timeout=None)
async def test_idle_stop_can_be_disabled(raw_api: RawApi) -> None:
    await raw_api.launch()
    await raw_api.emulator.advance(100_000)
    assert raw_api.emulator.state.count("RUNNING") == 1


async def test_preview(raw_api: RawApi) -> None:
    emu = raw_api.emulator
    first, second = emu.configuration_ids[:2]
    preview = emu.open_in_editor(first)
    listed = (await raw_api("GET", "/instances")).json
    assert [(i["id"], i["state"], i["requestId"], i["name"]) for i in listed] == [
        (preview, "PREVIEW", None, None)
    ]
    answer = await raw_api("POST", f"/instances/{preview}/restart")
    assert answer.status == 409
    other = emu.open_in_editor(second)  # one preview per account
    assert [(i.id, i.state) for i in emu.state.instances] == [(other, "PREVIEW")]
    emu.close_editor()
    emu.close_editor()
    assert emu.state.count() == 0
    assert [(s.id, s.reason) for s in emu.state.stopped] == [(preview, "editor"), (other, "editor")]
    await emu.advance(1000)
    assert emu.billing.total == 0
    with pytest.raises(KeyError):
        emu.open_in_editor("cfg-nope")


@pytest.mark.streamrun_emulator(boot_time=10, idle_timeout=None)
async def test_billing(raw_api: RawApi) -> None:
    emu = raw_api.emulator
    a, b = (await raw_api.launch("a", "b"))["instanceIds"]
    await emu.advance(40)
    await raw_api("DELETE", f"/instances/{a}")
    await emu.advance(3600)
    assert emu.billing.seconds == {a: 30, b: 3630}
    assert emu.billing.total == 3660
    assert emu.billing.cost() == pytest.approx(3660 * 0.39 / 3600)
    assert emu.billing.cost(per_hour=1.0) == pytest.approx(3660 / 3600)


async def test_state_snapshot(raw_api: RawApi) -> None:
    emu = raw_api.emulator
    request = await raw_api.launch("a", overrides={"switch-1": {"input": "inputstream-1"}})
    snapshot = emu.state
    instance = snapshot.instance(request["instanceIds"][0])
    assert (instance.name, instance.state, instance.outputs, instance.request_id) == (
        "a",
        "QUEUED",
        "OFFLINE",
        request["id"],
    )
    assert instance.overrides == {"switch-1": {"input": "inputstream-1"}}
    assert snapshot.request(request["id"]).number_of_instances == 1
    assert snapshot.count("QUEUED", configuration_id=emu.configuration_ids[0]) == 1
    assert snapshot.count(configuration_id=emu.configuration_ids[1]) == 0
    with pytest.raises(KeyError):
        snapshot.instance("inst-nope")
    with pytest.raises(KeyError):
        snapshot.request("ireq-nope")
    # A snapshot is a copy: later changes do not show through.
    await raw_api("PATCH", f"/instances/{instance.id}/overrides", json={"switch-1": {"input": "b"}})
    assert instance.overrides == {"switch-1": {"input": "inputstream-1"}}


async def test_seed_makes_ids_and_jitter_reproducible() -> None:
    async def run(seed: int) -> tuple[list[str], list[float]]:
        emu = Emulator(clock="virtual", boot_time=5, boot_jitter=10, seed=seed)
        async with emu, aiohttp.ClientSession() as session:
            for _ in range(5):
                url = f"{emu.url}/api/v1/configurations/{emu.configuration_ids[0]}/instances"
                headers = {"Authorization": f"Bearer {emu.api_key}"}
                async with session.post(url, headers=headers) as response:
                    assert response.status == 201
            ready: dict[str, float] = {}
            while len(ready) < 5:
                await emu.advance(0.25)
                for instance in emu.state.instances:
                    if instance.state == "RUNNING":
                        ready.setdefault(instance.id, emu.now())
            return [*emu.configuration_ids, *ready], list(ready.values())

    ids, times = await run(7)
    assert (ids, times) == await run(7)
    assert ids != (await run(8))[0]
    assert all(5 <= t <= 15.25 for t in times)
    assert len(set(times)) > 1


async def test_virtual_and_real_clocks() -> None:
    emu = Emulator(clock="virtual")
    with pytest.raises(ValueError, match="backwards"):
        await emu.advance(-1)
    for endless in (math.inf, math.nan):  # every later answer would fail on its timestamps
        with pytest.raises(ValueError, match="cannot move time"):
            await emu.advance(endless)
    await emu.advance(2.5)
    assert emu.now() == 2.5
    with pytest.raises(RuntimeError, match="virtual"):
        await Emulator().advance(1)
    with pytest.raises(ValueError, match="clock"):
        Emulator(clock="sundial")  # type: ignore[arg-type]
    async with Emulator(clock="real", boot_time=0.02) as real, aiohttp.ClientSession() as session:
        url = f"{real.url}/api/v1/configurations/{real.configuration_ids[0]}/instances"
        async with session.post(url, headers={"Authorization": f"Bearer {real.api_key}"}):
            pass
        assert real.state.count("QUEUED") == 1
        await asyncio.sleep(0.05)
        assert real.state.count("RUNNING") == 1
        assert 0.05 <= real.now() < 5


async def test_ipv6_loopback_url() -> None:
    async with Emulator(host="::1") as emu:
        assert emu.url.startswith("http://[::1]:")


async def test_close_and_start_again_on_the_same_port() -> None:
    emu = Emulator(clock="virtual")
    with pytest.raises(RuntimeError, match="before start"):
        _ = emu.url
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {emu.api_key}"}
        async with emu:
            url = f"{emu.url}/api/v1/configurations/{emu.configuration_ids[0]}/instances"
            async with session.post(url, headers=headers) as response:
                assert response.status == 201
            with pytest.raises(RuntimeError, match="already running"):
                await emu.start()
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.get(url, headers=headers)
        # The outage ends: same URL, same account.
        async with emu, session.get(url, headers=headers) as response:
            assert len(await response.json()) == 1
    await emu.close()
