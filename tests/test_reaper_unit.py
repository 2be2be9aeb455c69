"""The reaper's decision core, as tables, and its I/O shell against scripted fakes."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs
import pytest

import streamrun_async as sr
from streamrun_async.guard import Lease, Observation, Reaper, plan_reap

T0 = 1_800_000_000.0


def lease(
    name: str | None = "cam-1",
    *,
    ttl: float | None = 30.0,
    cfg: str = "cfg-1",
    instance_id: str | None = None,
    request_id: str | None = None,
    seen_at: float | None = None,
    created_at: float = T0,
) -> Lease:
    return Lease(
        id=uuid.uuid4().hex,
        owner="bot",
        host="h",
        pid=1,
        configuration_id=cfg,
        name=name,
        created_at=created_at,
        expires_at=None if ttl is None else created_at + ttl,
        request_id=request_id,
        instance_id=instance_id,
        seen_at=seen_at,
    )


def inst(
    instance_id: str,
    state: str = "RUNNING",
    *,
    cfg: str | None = "cfg-1",
    name: str | None = None,
    request_id: str | None = None,
) -> sr.Instance:
    return sr.Instance(
        id=instance_id,
        state=sr.InstanceState(state),
        configuration_id=cfg,
        name=name,
        request_id=request_id,
    )


def seen(
    *instances: sr.Instance, at: float = T0, covered: Iterable[str] | None = None
) -> Observation:
    return Observation(
        {i.id: i for i in instances}, at, None if covered is None else frozenset(covered)
    )


def ids(leases: Iterable[Lease]) -> list[str | None]:
    return [held.instance_id for held in leases]


# -- plan_reap ---------------------------------------------------------------------------


def test_an_expired_lease_of_a_running_instance_is_stopped_at_its_deadline() -> None:
    held = lease(instance_id="i-1", seen_at=T0)
    listed = seen(inst("i-1"))
    assert plan_reap([held], listed, T0 + 29.9).stop == ()
    assert ids(plan_reap([held], listed, T0 + 30).stop) == ["i-1"]


@pytest.mark.parametrize("state", ["QUEUED", "STARTING", "PREVIEW", "RUNNING", "HIBERNATING"])
def test_every_state_that_can_still_bill_is_stopped(state: str) -> None:
    held = lease(instance_id="i-1", seen_at=T0)
    assert ids(plan_reap([held], seen(inst("i-1", state)), T0 + 31).stop) == ["i-1"]


@pytest.mark.parametrize("state", ["STOPPED", "FAILED", "TERMINATED"])
def test_an_ended_instance_ends_its_lease(state: str) -> None:
    held = lease(instance_id="i-1", seen_at=T0)
    plan = plan_reap([held], seen(inst("i-1", state)), T0 + 5)
    assert plan.gone == (held,)
    assert plan.stop == ()


def test_a_stopping_instance_is_not_stopped_twice() -> None:
    held = lease(instance_id="i-1", seen_at=T0)
    plan = plan_reap([held], seen(inst("i-1", "STOPPING")), T0 + 60)
    assert plan.stopping == (held,)
    assert plan.stop == ()
    assert plan.gone == ()


def test_absence_ends_a_lease_only_once_a_list_has_shown_the_instance() -> None:
    fresh = lease(instance_id="i-1")  # bound from the launch answer, never listed yet
    shown = lease("cam-2", instance_id="i-2", seen_at=T0 + 1)
    plan = plan_reap([fresh, shown], seen(), T0 + 10)
    assert plan.gone == (shown,)
    # Lists may lag behind a launch: unseen and expired, it is stopped by id all the same.
    assert ids(plan_reap([fresh], seen(), T0 + 31).stop) == ["i-1"]
    # ...and after the grace, its absence does mean it ended.
    assert plan_reap([fresh], seen(), T0 + 500, grace=120).gone == (fresh,)


def test_a_list_of_other_configurations_decides_nothing() -> None:
    held = lease(instance_id="i-1", seen_at=T0)
    plan = plan_reap([held], seen(covered={"cfg-2"}), T0 + 100)
    assert plan == type(plan)()
    assert ids(plan_reap([held], seen(inst("i-1"), covered={"cfg-1"}), T0 + 30).stop) == ["i-1"]


def test_a_pending_lease_binds_by_request_and_name() -> None:
    held = lease("cam-2", request_id="req-1")
    listed = seen(
        inst("i-1", name="cam-1", request_id="req-1"),
        inst("i-2", name="cam-2", request_id="req-1"),
        inst("i-3", name="cam-2", request_id="req-9"),
        at=T0 + 5,
    )
    plan = plan_reap([held], listed, T0 + 5)
    assert [(b.instance_id, b.seen_at) for b in plan.bound] == [("i-2", T0 + 5)]


def test_a_lease_whose_answer_was_lost_binds_by_name_in_its_configuration() -> None:
    held = lease("Cam-1")  # no request id: the POST's answer never came
    listed = seen(
        inst("i-1", name="cam-1"),
        inst("i-2", name="cam-1", cfg="cfg-2"),
    )
    assert ids(plan_reap([held], listed, T0 + 1).bound) == ["i-1"]


def test_an_instance_claimed_by_one_lease_is_not_bound_to_another() -> None:
    bound = lease("cam-1", instance_id="i-1", seen_at=T0)
    pending = lease("cam-1", cfg="cfg-1")
    plan = plan_reap([bound, pending], seen(inst("i-1", name="cam-1")), T0 + 31)
    assert plan.bound == ()
    assert ids(plan.stop) == ["i-1"]
    assert plan.unmatched == (pending,)


def test_ambiguous_names_bind_nothing() -> None:
    held = lease("cam-1")
    listed = seen(inst("i-1", name="cam-1"), inst("i-2", name="CAM-1"))
    plan = plan_reap([held], listed, T0 + 31)
    assert plan.bound == ()
    assert plan.unmatched == (held,)


def test_a_default_launch_binds_only_by_its_request() -> None:
    held = lease(None, request_id="req-1")
    assert ids(plan_reap([held], seen(inst("i-1", request_id="req-1")), T0).bound) == ["i-1"]
    assert plan_reap([held], seen(inst("i-1")), T0).bound == ()
    unnamed = lease(None)
    assert plan_reap([unnamed], seen(inst("i-1")), T0).bound == ()


def test_a_lease_without_a_deadline_is_never_stopped() -> None:
    held = lease(ttl=None, instance_id="i-1", seen_at=T0)
    assert plan_reap([held], seen(inst("i-1")), T0 + 10**8).stop == ()


# -- the I/O shell -------------------------------------------------------------------------


@attrs.define
class FakeAccount:
    """Instances by id; stops that may fail or not take, scripted per call."""

    instances: dict[str, sr.Instance]
    stop_script: list[str] = attrs.Factory(list)  # "ok", "ignore" (2xx, no effect), "fail"
    stops: list[str] = attrs.Factory(list)
    lists: int = 0
    requests: dict[str, sr.InstanceRequest] = attrs.Factory(dict)

    async def list(self) -> list[sr.Instance]:
        self.lists += 1
        return list(self.instances.values())

    async def stop(self, instance_id: str) -> None:
        self.stops.append(instance_id)
        action = self.stop_script.pop(0) if self.stop_script else "ok"
        if action == "fail":
            raise sr.ServerError(
                "503", method="DELETE", url=f"/instances/{instance_id}", status=503
            )
        if action == "ok":
            self.instances.pop(instance_id, None)

    async def get_request(self, request_id: str) -> sr.InstanceRequest:
        return self.requests[request_id]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    made = sr.SQLiteLeaseStore(tmp_path / "leases.sqlite3")
    yield made
    await made.aclose()


def reaper(store: sr.LeaseStore, account: FakeAccount, clock: Clock, events: list[Any]) -> Reaper:
    return Reaper(
        owner="bot",
        store=store,
        list_instances=account.list,
        stop_instance=account.stop,
        get_request=account.get_request,
        clock=clock,
        emit=events.append,
    )


async def test_a_stop_that_did_not_take_is_an_error_event_and_is_retried(store: Any) -> None:
    account = FakeAccount({"i-1": inst("i-1")}, stop_script=["ignore"])
    clock, events = Clock(), []
    held = lease(instance_id="i-1", seen_at=T0)
    await store.put([held])
    clock.now = T0 + 31
    first = await reaper(store, account, clock, events).reap()
    assert first.stopped == ()
    assert [(f.reason, f.lease.id) for f in first.failed] == [("not_confirmed", held.id)]
    assert [type(e) for e in events] == [sr.ReapFailed]
    assert await store.leases("bot") == [held]  # kept: never a silent success
    second = await reaper(store, account, clock, events).reap()
    assert [s.id for s in second.stopped] == [held.id]
    assert isinstance(events[-1], sr.LeaseReaped)
    assert account.stops == ["i-1", "i-1"]
    assert await store.leases("bot") == []


async def test_a_failed_stop_is_an_error_event_and_the_lease_stays(store: Any) -> None:
    account = FakeAccount({"i-1": inst("i-1")}, stop_script=["fail"])
    clock, events = Clock(), []
    held = lease(instance_id="i-1", seen_at=T0)
    await store.put([held])
    clock.now = T0 + 31
    report = await reaper(store, account, clock, events).reap()
    assert [f.reason for f in report.failed] == ["stop_failed"]
    assert "ServerError" in (report.failed[0].error or "")
    assert isinstance(events[0], sr.ReapFailed)
    assert account.lists == 1  # nothing was asked to stop, so nothing to confirm
    assert await store.leases("bot") == [held]


async def test_a_round_with_a_given_observation_lists_only_to_confirm(store: Any) -> None:
    account = FakeAccount({"i-1": inst("i-1"), "i-2": inst("i-2")})
    clock, events = Clock(), []
    await store.put(
        [
            lease(instance_id="i-1", seen_at=T0),
            lease("cam-2", ttl=60, instance_id="i-2", seen_at=T0),
        ]
    )
    clock.now = T0 + 40
    report = await reaper(store, account, clock, events).reap(seen(*account.instances.values()))
    assert ids(report.stopped) == ["i-1"]
    assert account.lists == 1
    assert list(account.instances) == ["i-2"]


async def test_nothing_to_do_costs_no_call(store: Any) -> None:
    account = FakeAccount({"i-1": inst("i-1")})
    report = await reaper(store, account, Clock(), []).reap()
    assert report == sr.ReapReport()
    assert account.lists == 0


async def test_a_lease_extended_during_the_round_is_not_stopped(store: Any) -> None:
    account = FakeAccount({"i-1": inst("i-1")})
    clock, events = Clock(), []
    held = lease(instance_id="i-1", seen_at=T0)
    await store.put([held])
    clock.now = T0 + 31

    class Extending(FakeAccount):
        async def list(self) -> list[sr.Instance]:
            await store.put([attrs.evolve(held, expires_at=T0 + 300)])  # another process
            return await super().list()

    racing = Extending(account.instances)
    report = await reaper(store, racing, clock, events).reap()
    assert report.stopped == ()
    assert racing.stops == []


async def test_a_dry_run_stops_nothing_and_changes_nothing(store: Any) -> None:
    account = FakeAccount({"i-1": inst("i-1", name="cam-1")})
    clock = Clock()
    held = lease()
    await store.put([held])
    clock.now = T0 + 31
    report = await reaper(store, account, clock, []).reap(dry_run=True)
    assert ids(report.to_stop) == ["i-1"]
    assert account.stops == []
    assert await store.leases("bot") == [held]


async def test_unidentifiable_instances_are_resolved_through_their_request(store: Any) -> None:
    # A server that echoes no names and no request ids: only the request can tell.
    account = FakeAccount({"i-1": inst("i-1"), "i-2": inst("i-2"), "i-3": inst("i-3")})
    account.requests["req-1"] = sr.InstanceRequest(id="req-1", instance_ids=("i-1", "i-2"))
    clock, events = Clock(), []
    await store.put([lease("a", request_id="req-1"), lease("b", request_id="req-1")])
    clock.now = T0 + 31
    report = await reaper(store, account, clock, events).reap()
    assert sorted(ids(report.stopped)) == ["i-1", "i-2"]
    assert list(account.instances) == ["i-3"]


async def test_an_expired_lease_nothing_identifies_is_reported(store: Any) -> None:
    account = FakeAccount({"i-1": inst("i-1")})
    clock, events = Clock(), []
    held = lease(None)
    await store.put([held])
    clock.now = T0 + 31
    report = await reaper(store, account, clock, events).reap()
    assert report.unmatched == (held,)
    assert not report.ok
    assert isinstance(events[0], sr.LeaseUnmatched)
    assert account.stops == []
