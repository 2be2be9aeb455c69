"""Exactly once for real: the status table, one client's concurrent calls, and servers that
lag, drop names, normalise them, paginate or keep ended instances listed."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import random
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from typing import Any

import attrs
import pytest
from _launch_support import FAST, LAUNCH, LIST_CFG, SETTLE, emulated, fast_client, run_with_clock

import streamrun_async as sr
from streamrun_async._bulk import MOVES, LaunchStatus, near_name, oldest_first, sight, transition
from streamrun_async.testing import Dialect, Emulator, Fault

STOP = "DELETE /instances/{instanceId}"
PATCH = "PATCH /instances/{instanceId}/overrides"
S = LaunchStatus


def names_of(emu: Emulator) -> Counter[str | None]:
    return Counter(inst.name for inst in emu.state.instances)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with emulated(configurations=3) as emulator:
        yield emulator


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[sr.StreamrunClient]:
    async with fast_client(emu) as c:
        yield c


# -- the status table ----------------------------------------------------------------------

ALLOWED = {
    (S.PLANNED, S.IN_FLIGHT),
    (S.PLANNED, S.EXISTING),
    (S.PLANNED, S.FAILED),
    (S.PLANNED, S.UNKNOWN),
    (S.IN_FLIGHT, S.PLANNED),
    (S.IN_FLIGHT, S.LAUNCHED),
    (S.IN_FLIGHT, S.FAILED),
    (S.IN_FLIGHT, S.UNKNOWN),
    (S.EXISTING, S.UPDATED),
    (S.EXISTING, S.FAILED),
    (S.LAUNCHED, S.RUNNING),
    (S.LAUNCHED, S.ROLLED_BACK),
    (S.RUNNING, S.ROLLED_BACK),
    (S.UNKNOWN, S.LAUNCHED),
}


@pytest.mark.parametrize(("current", "new"), list(itertools.product(S, S)))
def test_transition_allows_exactly_the_table(current: S, new: S) -> None:
    if (current, new) in ALLOWED:
        assert transition(current, new) is new
    else:
        with pytest.raises(sr.TransitionError, match=f"{current.name} to {new.name}"):
            transition(current, new)


def test_every_status_is_in_the_table_and_final_ones_stay() -> None:
    assert set(MOVES) == set(S)
    for final in (S.UPDATED, S.FAILED, S.ROLLED_BACK):
        assert not MOVES[final]


def test_a_status_changes_only_through_the_table() -> None:
    item = sr.LaunchItem(name="a", configuration_id="cfg")
    with pytest.raises(attrs.exceptions.FrozenAttributeError):
        item.status = S.LAUNCHED  # type: ignore[misc]
    item._move(S.IN_FLIGHT)
    with pytest.raises(sr.TransitionError):
        item._move(S.RUNNING)
    assert item.status is S.IN_FLIGHT


def test_report_views_follow_the_items_and_are_read_only() -> None:
    report = sr.LaunchReport()
    for name, path in {
        "a": [S.EXISTING],
        "b": [S.IN_FLIGHT, S.LAUNCHED, S.RUNNING],
        "c": [S.FAILED],
        "d": [S.UNKNOWN],
        "e": [S.IN_FLIGHT, S.LAUNCHED, S.ROLLED_BACK],
        "f": [S.EXISTING, S.UPDATED],
    }.items():
        item = report.items[name] = sr.LaunchItem(name=name, configuration_id="cfg")
        for status in path:
            item._move(status)
    assert set(report.launched) == {"a", "b", "f"}
    assert set(report.failed) == {"c"}
    assert isinstance(report.failed["c"], sr.StreamrunError)
    assert dict(report.unknown) == {"d": "cfg"}
    assert report.rolled_back == ["e"]
    assert report.updated == ["f"]
    assert not report.ok
    with pytest.raises(TypeError):
        report.launched["z"] = report.items["a"]  # type: ignore[index]


# -- pure matching ----------------------------------------------------------------------------


def inst(id: str, name: str | None, state: str = "RUNNING", request: str | None = None) -> Any:
    return sr.Instance(id=id, state=sr.InstanceState(state), name=name, request_id=request)


def test_sight_finds_new_live_instances_and_the_rest_of_their_request() -> None:
    listing = [
        inst("old", "a"),  # listed before the call: not this launch
        inst("gone", "b", "STOPPED"),  # ended: satisfies nothing
        inst("n1", "b", request="r9"),
        inst("n2", None, request="r9"),  # same request, no name: the server dropped it
        inst("mine", "c", request="r1"),  # another accepted request of this call
        inst("other", "zzz"),  # someone else's
    ]
    seen = sight(
        listing,
        {"a", "b", "x"},
        planned={"a", "b", "c", "x"},
        ignore_ids={"old"},
        known_requests={"r1"},
    )
    assert {n: i.id for n, i in seen.found.items()} == {"b": "n1"}
    assert seen.lost_requests == {"r9"}
    assert [i.id for i in seen.of_lost] == ["n2"]
    assert seen.suspicious == ()


def test_sight_calls_unnamed_and_near_names_suspicious() -> None:
    listing = [inst("n1", None), inst("n2", "cam-a"), inst("n3", "elsewhere"), inst("n4", "cam")]
    seen = sight(listing, {"Cam-A"}, planned={"Cam-A", "cam"}, ignore_ids=(), known_requests=())
    assert not seen.found
    # "cam" is a planned name of its own: an exact match of another name is no suspicion.
    assert [i.id for i in seen.suspicious] == ["n1", "n2"]


def test_near_names_and_the_duplicate_rule() -> None:
    assert near_name("cam-a", "Cam-A")
    assert near_name("a-very-l", "a-very-long-name")
    assert not near_name("Cam-A", "Cam-A")
    assert not near_name("b", "Cam-A")
    from datetime import UTC, datetime

    early, late = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    dupes = [
        sr.Instance(id="z", state=sr.InstanceState.RUNNING, created_at=early),
        sr.Instance(id="b", state=sr.InstanceState.RUNNING, created_at=late),
        sr.Instance(id="a", state=sr.InstanceState.RUNNING, created_at=early),
        sr.Instance(id="0", state=sr.InstanceState.RUNNING),  # no time: last
    ]
    assert [i.id for i in oldest_first(dupes)] == ["a", "z", "b", "0"]


# -- one client, one launch per name ----------------------------------------------------


async def test_fifty_tasks_of_one_client_launch_each_name_once() -> None:
    lagging = attrs.evolve(Dialect.named("lagging_lists"), list_lag=3.0)
    async with (
        emulated(configurations=3, dialect=lagging, seed=3) as emu,
        fast_client(emu, attempts=6) as client,
    ):
        emu.faults.set_rate(Fault.DROP_AFTER, 0.05, route=LAUNCH)
        universe = [(cfg, f"n{cfg[-4:]}-{k}") for cfg in emu.configuration_ids for k in range(20)]
        rng = random.Random(11)

        def plan() -> dict[str, list[sr.InstanceSettings]]:
            chosen: dict[str, list[sr.InstanceSettings]] = {}
            for cfg, name in rng.sample(universe, 25):
                chosen.setdefault(cfg, []).append(sr.InstanceSettings(name=name))
            return chosen

        plans = [plan() for _ in range(50)]
        reports = await run_with_clock(
            emu,
            asyncio.gather(
                *(client.launch_many(p, max_per_request=4, settle=SETTLE) for p in plans)
            ),
        )
        counts = names_of(emu)
        launches = emu.stats.count(LAUNCH)

    wanted = {s.name for p in plans for items in p.values() for s in items}
    assert set(counts) == wanted
    assert max(counts.values()) == 1, counts.most_common(3)
    for report in reports:
        assert report.ok, {n: (i.status, i.reason) for n, i in report.items.items()}
    # Each name was launched by one call; every other call reported it existing.
    by_launcher = Counter(n for r in reports for n in r.by_status(S.LAUNCHED))
    assert set(by_launcher) == wanted
    assert max(by_launcher.values()) == 1
    assert launches <= len(wanted)  # chunks hold up to 4 names; never a second POST of one


async def test_a_concurrent_call_waits_for_the_first_and_reports_existing(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    cfg = emu.configuration_ids[0]
    plan = {cfg: [sr.InstanceSettings(name="double-click")]}
    first, second = await asyncio.gather(
        client.launch_many(plan, settle=SETTLE), client.launch_many(plan, settle=SETTLE)
    )
    assert emu.stats.count(LAUNCH) == 1
    statuses = {first.items["double-click"].status, second.items["double-click"].status}
    assert statuses == {S.LAUNCHED, S.EXISTING}
    waited = second if second.items["double-click"].status is S.EXISTING else first
    assert "concurrent" in (waited.items["double-click"].reason or "")
    assert waited.items["double-click"].existing
    assert names_of(emu) == {"double-click": 1}


# -- lagging lists ---------------------------------------------------------------------


@pytest.mark.parametrize(("settle", "expected"), [(0.6, 1), (0.0, 2)])
async def test_a_lost_launch_is_relaunched_only_after_two_lists_a_settle_apart(
    settle: float, expected: int
) -> None:
    # Real clock: the list shows a launch 0.3 s late. settle=0 is the documented
    # assumption broken (a settle shorter than the lag): the lost launch is sent again.
    lagging = attrs.evolve(Dialect.named("lagging_lists"), list_lag=0.3, detail_lag=False)
    async with (
        emulated(clock="real", boot_time=0, dialect=lagging) as emu,
        fast_client(emu) as client,
    ):
        emu.faults.script(LAUNCH, [Fault.DROP_AFTER])
        cfg = emu.configuration_ids[0]
        report = await client.launch_many({cfg: [sr.InstanceSettings(name="late")]}, settle=settle)
        assert names_of(emu)["late"] == expected
    if expected == 1:
        assert report.ok
        assert report.items["late"].status is S.LAUNCHED
        assert report.reconciliations == 1


async def test_a_rerun_right_after_a_launch_sees_it_despite_the_lag() -> None:
    lagging = attrs.evolve(Dialect.named("lagging_lists"), list_lag=0.2, detail_lag=False)
    async with (
        emulated(clock="real", boot_time=0, dialect=lagging) as emu,
        fast_client(emu) as client,
    ):
        cfg = emu.configuration_ids[0]
        plan = {cfg: [sr.InstanceSettings(name=f"r{k}") for k in range(3)]}
        first = await client.launch_many(plan, settle=0.3)
        second = await client.launch_many(plan, settle=0.3)
        assert emu.stats.count(LAUNCH) == 1
        assert len(emu.state.instances) == 3
    assert first.by_status(S.LAUNCHED) == ["r0", "r1", "r2"]
    # The first call returned only once a list showed its launch: ids known, rerun sees them.
    assert all(item.instance_id for item in first.items.values())
    assert second.by_status(S.EXISTING) == ["r0", "r1", "r2"]


# -- names the server does not echo -------------------------------------------------------


async def test_a_server_that_drops_names_gets_unknown_not_a_second_launch() -> None:
    async with (
        emulated(configurations=1, dialect="sparse_instances") as emu,
        fast_client(emu) as client,
    ):
        cfg = emu.configuration_ids[0]
        emu.faults.script(LAUNCH, [Fault.DROP_AFTER])
        plan = {cfg: [sr.InstanceSettings(name=f"s{k}") for k in range(3)]}
        report = await run_with_clock(emu, client.launch_many(plan, settle=SETTLE))
        assert len(emu.state.instances) == 3
        assert set(report.unknown) == {"s0", "s1", "s2"}
        assert "does not echo names" in (report.items["s0"].reason or "")

        # A rerun through the same client launches nothing: it knows names are not echoed.
        again = await run_with_clock(emu, client.launch_many(plan, settle=SETTLE))
        assert set(again.unknown) == {"s0", "s1", "s2"}
        assert emu.stats.count(LAUNCH) == 1
        assert len(emu.state.instances) == 3


async def test_a_launch_confirmed_without_names_teaches_the_client_not_to_trust_them() -> None:
    async with (
        emulated(configurations=1, dialect="sparse_instances") as emu,
        fast_client(emu) as client,
    ):
        cfg = emu.configuration_ids[0]
        plan = {cfg: [sr.InstanceSettings(name="quiet")]}
        first = await run_with_clock(emu, client.launch_many(plan, settle=SETTLE))
        assert first.ok
        second = await run_with_clock(emu, client.launch_many(plan, settle=SETTLE))
        assert second.items["quiet"].status is S.UNKNOWN
        assert "unnamed" in (second.items["quiet"].reason or "")
        assert len(emu.state.instances) == 1


@pytest.mark.parametrize(
    ("dialect", "names"),
    [
        ("lowercase_names", ["Cam-A", "Cam-B"]),
        ("truncated_names", ["overlay-north", "overlay-south"]),
    ],
)
async def test_normalised_names_are_never_relaunched_on_absence(
    dialect: str, names: list[str]
) -> None:
    async with emulated(configurations=1, dialect=dialect) as emu, fast_client(emu) as client:
        cfg = emu.configuration_ids[0]
        plan = {cfg: [sr.InstanceSettings(name=n) for n in names]}
        emu.faults.script(LAUNCH, [Fault.DROP_AFTER])
        lost = await run_with_clock(emu, client.launch_many(plan, settle=SETTLE))
        assert set(lost.unknown) == set(names)
        assert len(emu.state.instances) == 2
        # Another process (a fresh client) sees names like these and does not guess either.
        async with fast_client(emu) as fresh:
            rerun = await run_with_clock(emu, fresh.launch_many(plan, settle=SETTLE))
        assert set(rerun.unknown) == set(names)
        assert "as the server stored it" in (rerun.items[names[0]].reason or "")
        assert emu.stats.count(LAUNCH) == 1
        assert len(emu.state.instances) == 2


# -- paginated lists ------------------------------------------------------------------------


async def test_names_on_later_pages_are_found_and_never_relaunched() -> None:
    async with (
        emulated(configurations=1, dialect="paginated_link") as emu,
        fast_client(emu, attempts=6) as client,
    ):
        cfg = emu.configuration_ids[0]
        # Later chunks' answers lost: their names can only be on the list's later pages.
        emu.faults.script(LAUNCH, [None, None, Fault.DROP_AFTER, None, Fault.DROP_AFTER])
        plan = {cfg: [sr.InstanceSettings(name=f"p{k}") for k in range(9)]}
        report = await run_with_clock(
            emu, client.launch_many(plan, max_per_request=2, concurrency=1, settle=SETTLE)
        )
        assert emu.stats.injected(Fault.DROP_AFTER) == 2
        assert report.ok, {n: i.reason for n, i in report.items.items()}
        assert names_of(emu) == Counter({f"p{k}": 1 for k in range(9)})
        launches = emu.stats.count(LAUNCH)
        again = await run_with_clock(emu, client.launch_many(plan, settle=SETTLE))
        assert emu.stats.count(LAUNCH) == launches
        assert len(again.by_status(S.EXISTING)) == 9


async def test_a_list_that_cannot_be_read_whole_proves_no_absence() -> None:
    async with (
        emulated(configurations=1, dialect="paginated_link") as emu,
        fast_client(emu, attempts=2) as client,
    ):
        cfg = emu.configuration_ids[0]
        emu.faults.script(LAUNCH, [Fault.DROP_AFTER])

        def progress(event: sr.LaunchEvent) -> None:
            if event.kind is sr.LaunchEventKind.RECONCILING:
                # From now on the first page reads and every later page fails.
                emu.faults.script(LIST_CFG, [None, *[Fault.HTTP_500] * 2] * 5)

        plan = {cfg: [sr.InstanceSettings(name=f"q{k}") for k in range(3)]}
        report = await run_with_clock(
            emu, client.launch_many(plan, settle=SETTLE, on_progress=progress)
        )
        assert len(emu.state.instances) == 3
        assert emu.stats.count(LAUNCH) == 1
        unknown = set(report.unknown)
        found = set(report.by_status(S.LAUNCHED))
        assert unknown | found == {"q0", "q1", "q2"}
        assert unknown, "a name on the unread page must not be called absent"
        assert isinstance(report.items[min(unknown)].error, sr.IncompleteListError)


# -- ended instances ---------------------------------------------------------------------------


async def test_a_stopped_instance_still_listed_does_not_count_as_existing() -> None:
    async with (
        emulated(configurations=1, dialect="stops_linger") as emu,
        fast_client(emu) as client,
    ):
        cfg = emu.configuration_ids[0]
        plan = {cfg: [sr.InstanceSettings(name="phoenix")]}
        first = await client.launch_many(plan, settle=SETTLE)
        await client.instances.stop(first.items["phoenix"].instance_id or "")
        listed = await client.configurations.list_instances(cfg)
        assert [i.state for i in listed] == [sr.InstanceState.STOPPING]
        again = await client.launch_many(plan, settle=SETTLE)
        assert again.items["phoenix"].status is S.LAUNCHED
        assert emu.stats.count(LAUNCH) == 2
        assert [i.name for i in emu.state.instances] == ["phoenix"]


# -- existing names with other overrides ------------------------------------------------------


def overlay(url: str) -> dict[str, dict[str, Any]]:
    return {"htmloverlay-1": {"url": url}}


@pytest.mark.parametrize("on_existing", ["keep", "update"])
async def test_existing_names_with_other_overrides_are_kept_or_updated(
    emu: Emulator, client: sr.StreamrunClient, on_existing: sr.OnExisting
) -> None:
    cfg = emu.configuration_ids[0]
    old = {cfg: [sr.InstanceSettings(name=n, overrides=overlay("https://o/old")) for n in "ab"]}
    await client.launch_many(old, settle=SETTLE)
    new = {
        cfg: [
            sr.InstanceSettings(name="a", overrides=overlay("https://o/old")),
            sr.InstanceSettings(name="b", overrides=overlay("https://o/new")),
        ]
    }
    report = await client.launch_many(new, on_existing=on_existing, settle=SETTLE)
    assert report.ok
    urls = {i.name: i.overrides["htmloverlay-1"]["url"] for i in emu.state.instances}
    assert report.items["a"].status is S.EXISTING
    assert report.items["a"].overrides_differ is False
    if on_existing == "keep":
        assert report.kept_with_different_overrides == ["b"]
        assert report.updated == []
        assert urls == {"a": "https://o/old", "b": "https://o/old"}
    else:
        assert report.kept_with_different_overrides == []
        assert report.updated == ["b"]
        assert urls == {"a": "https://o/old", "b": "https://o/new"}
    assert emu.stats.count(LAUNCH) == 1
    # Only a name whose overrides differ is patched, and only when asked to.
    assert emu.stats.count(PATCH) == (1 if on_existing == "update" else 0)


async def test_an_update_that_fails_is_a_failure_of_that_name(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    cfg = emu.configuration_ids[0]
    await client.launch_many({cfg: [sr.InstanceSettings(name="a")]}, settle=SETTLE)
    emu.faults.script(PATCH, [Fault.HTTP_500] * 10)
    plan = {cfg: [sr.InstanceSettings(name="a", overrides=overlay("https://o/x"))]}
    report = await client.launch_many(plan, on_existing="update", settle=SETTLE)
    item = report.items["a"]
    assert item.status is S.FAILED
    assert item.existing
    assert item.instance_id == emu.state.instances[0].id
    assert isinstance(report.failed["a"], sr.ServerError)


# -- duplicates already there --------------------------------------------------------------


async def test_dedupe_keeps_the_oldest_and_stops_the_rest(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    cfg = emu.configuration_ids[0]
    first = await client.configurations.launch(cfg, [sr.InstanceSettings(name="twin")])
    await emu.advance(1)
    await client.configurations.launch(cfg, [sr.InstanceSettings(name="twin")])
    await client.configurations.launch(cfg, [sr.InstanceSettings(name="single")])
    plan = {cfg: [sr.InstanceSettings(name="twin"), sr.InstanceSettings(name="single")]}

    kept = await client.launch_many(plan, settle=SETTLE)
    assert kept.items["twin"].duplicate_ids
    assert kept.duplicates_stopped == {}
    assert len(emu.state.instances) == 3

    report = await client.launch_many(plan, dedupe=True, settle=SETTLE)
    (oldest,) = [i for i in emu.state.instances if i.request_id == first.id]
    assert report.items["twin"].instance_id == oldest.id
    assert set(report.duplicates_stopped) == {"twin"}
    assert sorted(i.name or "" for i in emu.state.instances) == ["single", "twin"]
    assert {s.id for s in emu.state.stopped} == set(report.duplicates_stopped["twin"])
    assert report.ok


# -- failing fast, deadlines, rollback failures --------------------------------------------


async def test_fail_fast_raises_before_waiting_for_any_boot(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    kinds: list[sr.LaunchEventKind] = []
    plan = {"cfg-missing": [sr.InstanceSettings(name="ghost")]}
    plan |= {emu.configuration_ids[0]: [sr.InstanceSettings(name="slow")]}
    # The virtual clock never moves: a wait could only end at its deadline.
    async with asyncio.timeout(5):
        with pytest.raises(sr.LaunchError) as info:
            await client.launch_many(
                plan,
                wait=True,
                fail_fast=True,
                timeout=None,
                on_progress=lambda e: kinds.append(e.kind),
            )
    assert sr.LaunchEventKind.RUNNING not in kinds
    assert info.value.report.wait_error is None
    assert info.value.report.items["ghost"].status is S.FAILED


async def test_the_timeout_bounds_the_launch_phase_too(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    cfg = emu.configuration_ids[0]
    emu.faults.latency, emu.faults.latency_jitter = 3.0, 0.0
    emu.faults.script(LAUNCH, [Fault.LATENCY])
    plan = {cfg: [sr.InstanceSettings(name="stuck"), sr.InstanceSettings(name="queued")]}
    async with asyncio.timeout(2):
        report = await client.launch_many(
            plan, max_per_request=1, concurrency=1, timeout=0.2, settle=SETTLE
        )
    statuses = {n: i.status for n, i in report.items.items()}
    assert sorted(statuses.values(), key=str) == [S.FAILED, S.UNKNOWN]
    for item in report.items.values():
        assert isinstance(item.error, sr.LaunchTimeoutError)
    assert not report.ok


async def test_the_timeout_bounds_what_follows_the_wait_too(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    # The virtual clock never moves: the wait ends at the deadline, and the account list
    # that refreshes states afterwards is slow. It must not stretch the call past it.
    cfg = emu.configuration_ids[0]
    emu.faults.latency, emu.faults.latency_jitter = 3.0, 0.0
    emu.faults.script("GET /instances", [Fault.LATENCY] * 10)
    plan = {cfg: [sr.InstanceSettings(name="booting")]}
    async with asyncio.timeout(2):
        report = await client.launch_many(plan, wait=True, timeout=0.3, settle=SETTLE)
    assert report.items["booting"].status is S.LAUNCHED
    assert report.items["booting"].instance_id == emu.state.instances[0].id
    assert isinstance(report.wait_error, sr.WaitTimeoutError)


async def test_none_means_no_deadline_and_bad_timeouts_are_refused(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    plan = {emu.configuration_ids[0]: [sr.InstanceSettings(name="patient")]}
    for bad in (0, -1):
        with pytest.raises(sr.InvalidArgumentError):
            await client.launch_many(plan, timeout=bad)
    deadlines: list[float] = []
    watch = client.instance_requests.watch

    def spy(requests: Any, *, timeout: float) -> Any:
        deadlines.append(timeout)
        return watch(requests, timeout=timeout)

    client.instance_requests.watch = spy  # type: ignore[method-assign]
    report = await run_with_clock(
        emu, client.launch_many(plan, wait=True, timeout=None, settle=SETTLE), step=100
    )
    assert report.items["patient"].status is S.RUNNING
    # No deadline at all (it used to be 600 s), not a long one.
    assert deadlines == [math.inf]


async def test_rollback_failures_are_recorded(emu: Emulator, client: sr.StreamrunClient) -> None:
    report = sr.LaunchReport()
    launched = asyncio.Event()

    def progress(event: sr.LaunchEvent) -> None:
        if event.kind is sr.LaunchEventKind.LAUNCHED:
            emu.faults.script(STOP, [Fault.HTTP_500] * 50)
            launched.set()

    plan = {
        cfg: [sr.InstanceSettings(name=f"{cfg}-{k}") for k in range(3)]
        for cfg in emu.configuration_ids
    }
    task = asyncio.create_task(
        client.launch_many(
            plan,
            concurrency=1,
            max_per_request=1,
            rollback=True,
            on_progress=progress,
            report=report,
            settle=SETTLE,
        )
    )
    await asyncio.wait_for(launched.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert report.rollback_errors
    for name, error in report.rollback_errors.items():
        assert isinstance(error, sr.ServerError)
        assert report.items[name].status in (S.LAUNCHED, S.RUNNING)
    assert not report.ok
    with pytest.raises(ExceptionGroup) as info:
        report.raise_for_failures()
    assert info.group_contains(sr.ServerError)


async def test_a_coordinator_lease_shorter_than_a_launch_is_refused(emu: Emulator) -> None:
    coordinator = sr.RedisCoordinator("redis://127.0.0.1:1/0", lease=20)
    plan = {emu.configuration_ids[0]: [sr.InstanceSettings(name="a")]}
    async with emu.client(timeout=30, coordinator=coordinator) as client:
        with pytest.raises(sr.InvalidArgumentError, match="lease"):
            await client.launch_many(plan)
    await coordinator.aclose()
    with pytest.raises(sr.InvalidArgumentTypeError):
        emu.client(coordinator="/tmp/locks")
    assert emu.stats.total == 0


# -- every dialect, answers lost --------------------------------------------------------------


async def test_every_dialect_launches_each_name_at_most_once_under_lost_answers(
    dialect: Dialect,
) -> None:
    async with (
        emulated(configurations=2, dialect=dialect, seed=2) as emu,
        fast_client(emu, attempts=6) as client,
    ):
        emu.faults.set_rate(Fault.DROP_AFTER, 0.25, route=LAUNCH)
        plan = {
            cfg: [sr.InstanceSettings(name=f"d{c}-{k}") for k in range(6)]
            for c, cfg in enumerate(emu.configuration_ids)
        }
        report = await run_with_clock(
            emu, client.launch_many(plan, max_per_request=2, wait=True, settle=SETTLE)
        )
        launches = emu.stats.count(LAUNCH)
        again = await run_with_clock(emu, client.launch_many(plan, settle=SETTLE))
        relaunches = emu.stats.count(LAUNCH) - launches
        truth = emu.state.instances
    assert emu.stats.injected(Fault.DROP_AFTER) > 0
    planned = {s.name for items in plan.values() for s in items}
    # Never more instances than names, whatever the server does to names and lists.
    assert len(truth) == len(planned)
    assert relaunches == 0
    if dialect.instance_names == "absent":
        # Nameless instances: a lost answer cannot be settled by name, and a rerun cannot
        # tell the names apart: unknown, never a second launch.
        assert report.unknown
        assert set(report.items) == set(report.unknown) | set(report.by_status(S.RUNNING))
        assert set(again.unknown) == planned
    else:
        # These names are echoed as sent (short, lower case): everything is settled.
        assert Counter(i.name for i in truth) == Counter(planned)
        assert report.ok, {n: (i.status, i.reason) for n, i in report.items.items()}
        assert set(report.by_status(S.RUNNING)) == planned
        assert set(again.by_status(S.EXISTING)) == planned


async def test_a_ttl_without_a_guard_is_refused_before_any_request(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    cfg = emu.configuration_ids[0]
    with pytest.raises(sr.InvalidArgumentError, match="guard"):
        await client.launch_many({cfg: [sr.InstanceSettings(name="a")]}, ttl=60)
    with pytest.raises(sr.InvalidArgumentError, match="guard"):
        await client.launch_many({cfg: [sr.InstanceSettings(name="a", ttl=60)]})
    assert emu.stats.total == 0


class MemoryCoordinator(sr.Coordinator):
    """A coordinator of one process, with a lease: what a user's own lock service looks like."""

    def __init__(self, lease: float) -> None:
        self.lease = lease
        self.held: set[tuple[str, str]] = set()

    @contextlib.asynccontextmanager
    async def hold(self, keys: Iterable[tuple[str, str]]) -> AsyncIterator[None]:
        wanted = set(keys)
        assert not wanted & self.held
        self.held |= wanted
        try:
            yield
        finally:
            self.held -= wanted


async def test_locked_work_stops_before_the_lease_could_expire(emu: Emulator) -> None:
    # lease 6.5 s - 1 s attempt - 5 s margin: 0.5 s of locked work at most.
    coordinator = MemoryCoordinator(lease=6.5)
    cfg = emu.configuration_ids[0]
    emu.faults.latency, emu.faults.latency_jitter = 0.8, 0.0
    emu.faults.script(LAUNCH, [Fault.LATENCY])
    plan = {cfg: [sr.InstanceSettings(name="slow-lock")]}
    async with emu.client(timeout=1, coordinator=coordinator, poll=FAST) as client:
        async with asyncio.timeout(5):
            report = await client.launch_many(plan, settle=SETTLE)
        item = report.items["slow-lock"]
        assert item.status is S.UNKNOWN
        assert isinstance(item.error, sr.LaunchTimeoutError)
        assert "lease" in str(item.error)
        assert coordinator.held == set()
        # Uncoordinated, the same slow launch simply completes.
        emu.faults.script(LAUNCH, [Fault.LATENCY])
    async with emu.client(timeout=1, poll=FAST) as plain:
        other = await plain.launch_many({cfg: [sr.InstanceSettings(name="b")]}, settle=SETTLE)
    assert other.items["b"].status is S.LAUNCHED


async def test_a_lease_running_out_is_not_the_call_timing_out(emu: Emulator) -> None:
    # One configuration's locked work outlasts the lease's budget; the other launches,
    # and the call still waits for it (only the call's own deadline skips the wait).
    coordinator = MemoryCoordinator(lease=6.5)
    emu.faults.latency, emu.faults.latency_jitter = 0.8, 0.0
    emu.faults.script(LAUNCH, [Fault.LATENCY])  # the first launch POST only
    plan = {cfg: [sr.InstanceSettings(name=cfg)] for cfg in emu.configuration_ids[:2]}
    async with emu.client(timeout=1, coordinator=coordinator, poll=FAST) as client:
        report = await run_with_clock(emu, client.launch_many(plan, wait=True, settle=SETTLE))
    (slow,) = [i for i in report.items.values() if isinstance(i.error, sr.LaunchTimeoutError)]
    assert slow.status is S.UNKNOWN
    (fine,) = set(report.items) - {slow.name}
    assert report.items[fine].status is S.RUNNING
    assert report.wait_error is None


async def test_instances_of_the_lost_request_count_as_found_whatever_their_names() -> None:
    async with (
        emulated(configurations=1, dialect="lowercase_names") as emu,
        fast_client(emu) as client,
    ):
        cfg = emu.configuration_ids[0]
        emu.faults.script(LAUNCH, [Fault.DROP_AFTER])
        # One POST for both: "cam-x" comes back as sent, "Cam-Y" lowercased.
        plan = {cfg: [sr.InstanceSettings(name="cam-x"), sr.InstanceSettings(name="Cam-Y")]}
        report = await run_with_clock(emu, client.launch_many(plan, settle=SETTLE))
        assert report.ok, {n: i.reason for n, i in report.items.items()}
        (request_id,) = {i.request_id for i in emu.state.instances}
        assert {n: i.request_id for n, i in report.items.items()} == {
            "cam-x": request_id,
            "Cam-Y": request_id,
        }
        assert emu.stats.count(LAUNCH) == 1
        # And the client now knows this configuration does not echo names as sent.
        again = await run_with_clock(
            emu, client.launch_many({cfg: [sr.InstanceSettings(name="New-One")]}, settle=SETTLE)
        )
        assert again.items["New-One"].status is S.UNKNOWN
        assert "another name" in (again.items["New-One"].reason or "")
