"""The request tracker and the acceptor rule, as tables (no I/O, time given)."""

from __future__ import annotations

from typing import Any

import pytest

import streamrun_async as sr
from streamrun_async._converter import decode_list
from streamrun_async.watch import PollPolicy, RequestTracker, Store, Verdict, acceptor

S = sr.InstanceState
POLICY = PollPolicy(min_interval=1, max_interval=8)


def store_with(*members: tuple[str, str], request: str = "r1") -> Store:
    store = Store(lambda items: decode_list(items, sr.Instance, "instances"), grace=0)
    items: list[Any] = [{"id": i, "state": s, "requestId": request} for i, s in members]
    store.update({None: items}, 0)
    return store


def request(state: S = S.QUEUED, count: int | None = 3) -> sr.InstanceRequest:
    return sr.InstanceRequest(id="r1", state=state, number_of_instances=count)


@pytest.mark.parametrize(
    ("known", "members", "settled"),
    [
        # The list proves RUNNING only with the count known and that many listed RUNNING.
        (request(count=3), [("a", "RUNNING"), ("b", "RUNNING"), ("c", "RUNNING")], True),
        (request(count=3), [("a", "RUNNING"), ("b", "RUNNING")], False),
        (request(count=None), [("a", "RUNNING")], False),  # 1 of an unknown number
        (request(count=3), [("a", "RUNNING"), ("b", "RUNNING"), ("c", "QUEUED")], False),
        (None, [("a", "RUNNING")], False),  # nothing known: fetch
    ],
)
def test_the_list_settles_running_only_when_it_proves_it(
    known: sr.InstanceRequest | None, members: list[tuple[str, str]], settled: bool
) -> None:
    tracker = RequestTracker(POLICY)
    tracker.watch("r1", known, 0.0)
    done, due = tracker.after_list(store_with(*members), 0.5)
    assert bool(done) is settled
    if settled:
        assert done[0].state is S.RUNNING
        assert done[0].instance_ids == ("a", "b", "c")
        assert due == []
    else:
        assert done == []


def test_what_is_fetched_and_when() -> None:
    tracker = RequestTracker(POLICY)
    queued = [("a", "QUEUED"), ("b", "QUEUED"), ("c", "QUEUED")]
    tracker.watch("r1", request(), 0.0)  # a launch answer with its count: as good as a fetch
    assert tracker.after_list(store_with(*queued), 0.5) == ([], [])
    # ... until min_interval has passed: the request is the authority, asked again.
    assert tracker.after_list(store_with(*queued), 1.0) == ([], ["r1"])
    tracker.sending("r1", store_with(*queued))
    assert tracker.after_list(store_with(*queued), 1.5) == ([], [])  # in flight
    tracker.fetched("r1", request(), 1.5)
    # Nothing new: the period doubles (2 s), up to max_interval.
    assert tracker.after_list(store_with(*queued), 3.0) == ([], [])
    assert tracker.after_list(store_with(*queued), 3.5) == ([], ["r1"])
    # One of its instances changed since that fetch: fetched at once.
    tracker.sending("r1", store_with(*queued))
    tracker.fetched("r1", request(), 3.5)
    moved = [("a", "STARTING"), ("b", "QUEUED"), ("c", "QUEUED")]
    assert tracker.after_list(store_with(*moved), 3.6) == ([], ["r1"])


def test_vanished_instances_send_a_fetch_at_once() -> None:
    tracker = RequestTracker(POLICY)
    tracker.watch("r1", request(), 0.0)
    tracker.after_list(store_with(("a", "QUEUED")), 0.1)
    _, due = tracker.after_list(store_with(), 0.2)
    assert due == ["r1"]
    entry = tracker.get("r1")
    assert entry is not None
    assert entry.vanished


def test_due_requests_come_oldest_fetched_first() -> None:
    tracker = RequestTracker(POLICY)
    for n, fetched in enumerate([5.0, 1.0, 3.0]):
        rid = f"r{n}"
        tracker.watch(rid, None, 0.0)
        tracker.sending(rid, store_with())
        tracker.fetched(rid, sr.InstanceRequest(id=rid, number_of_instances=1), fetched)
    tracker.watch("new", None, 9.0)
    _, due = tracker.after_list(store_with(), 20.0)
    assert due == ["new", "r1", "r2", "r0"]


def test_a_404_is_retried_within_the_grace_after_registration() -> None:
    tracker = RequestTracker(PollPolicy(absence_grace=3))
    tracker.watch("r1", None, 10.0)
    assert tracker.within_grace("r1", 12.9)
    assert not tracker.within_grace("r1", 13.0)


@pytest.mark.parametrize(
    ("success", "failure", "state", "verdict"),
    [
        ({S.RUNNING}, set(), S.RUNNING, Verdict.SUCCESS),
        ({S.RUNNING}, set(), S.QUEUED, Verdict.WAIT),
        ({S.RUNNING}, set(), S.STARTING, Verdict.WAIT),
        ({S.RUNNING}, set(), S.FAILED, Verdict.FAILURE),  # terminal: at once
        ({S.RUNNING}, set(), S.STOPPED, Verdict.FAILURE),
        ({S.RUNNING}, set(), S.ERROR, Verdict.FAILURE),
        ({S.RUNNING}, set(), S.STOPPING, Verdict.FAILURE),  # cannot lead to RUNNING
        ({S.RUNNING}, set(), S("TERMINATED"), Verdict.FAILURE),  # unknown but terminal text
        ({S.RUNNING}, set(), S("HIBERNATING"), Verdict.WAIT),  # unknown: keep waiting
        ({S.RUNNING}, {S.PREVIEW}, S.PREVIEW, Verdict.FAILURE),  # failure= adds states
        ({S.STOPPED}, set(), S.STOPPED, Verdict.SUCCESS),  # waiting for a terminal state
        ({S.STOPPED}, set(), S.STOPPING, Verdict.WAIT),
        ({S.PREVIEW}, set(), S.FAILED, Verdict.FAILURE),
    ],
)
def test_one_acceptor_rule(success: set[S], failure: set[S], state: S, verdict: Verdict) -> None:
    assert acceptor(frozenset(success), frozenset(failure)).judge(state) is verdict


def test_acceptors_are_shared_between_waiters() -> None:
    one = acceptor(frozenset({S.RUNNING}), frozenset())
    assert acceptor(frozenset({S.RUNNING}), frozenset()) is one
