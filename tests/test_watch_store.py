"""The store, as tables: diffs of parsed lists, model reuse, grace, scope, request members."""

from __future__ import annotations

from typing import Any

import pytest

import streamrun_async as sr
from streamrun_async._converter import decode_list
from streamrun_async.watch import ChangeKind, Store

GRACE = 3.0


class CountingDecode:
    """decode_list, counting the items it was asked to build."""

    def __init__(self) -> None:
        self.built = 0

    def __call__(self, items: list[Any]) -> list[sr.Instance]:
        self.built += len(items)
        return decode_list(items, sr.Instance, "instances")


def item(iid: str, state: str = "QUEUED", **extra: Any) -> dict[str, Any]:
    return {"id": iid, "state": state, **extra}


def kinds(diff: Any) -> list[tuple[ChangeKind, str]]:
    return sorted((c.kind, c.instance.id) for c in diff.changes())


def test_an_unchanged_list_builds_no_model_and_keeps_every_model() -> None:
    decode = CountingDecode()
    store = Store(decode, grace=GRACE)
    first = store.update({None: [item(f"i{n}") for n in range(100)]}, 0.0)
    assert len(first.added) == 100
    assert decode.built == 100
    models = dict(store.view)
    again = store.update({None: [item(f"i{n}") for n in range(100)]}, 1.0)
    assert not again
    assert decode.built == 100
    assert all(store.get(k) is v for k, v in models.items())


def test_only_the_changed_item_is_decoded_and_reported_with_its_previous_state() -> None:
    decode = CountingDecode()
    store = Store(decode, grace=GRACE)
    store.update({None: [item("a"), item("b")]}, 0.0)
    diff = store.update({None: [item("a", "RUNNING"), item("b")]}, 1.0)
    assert decode.built == 3
    ((now, before),) = diff.changed
    assert (now.id, now.state, before.state) == ("a", sr.InstanceState.RUNNING, "QUEUED")
    (change,) = diff.changes()
    assert change.previous is sr.InstanceState.QUEUED


# (lists as (time, ids), expected REMOVED at each step): absent from >= 2 consecutive
# lists spanning >= GRACE seconds, and not before.
@pytest.mark.parametrize(
    ("steps", "removed_at"),
    [
        ([(0, "ab"), (1, "b"), (2, "b"), (3, "b")], []),  # three lists, but over 2 s only
        ([(0, "ab"), (1, "b"), (4, "b")], [4]),  # two lists 3 s apart
        ([(0, "ab"), (5, "b")], []),  # one list, however late, is not enough
        ([(0, "ab"), (1, "b"), (2, "ab"), (3, "b"), (5, "b")], []),  # came back: restart
        ([(0, "ab"), (1, "b"), (2, "ab"), (3, "b"), (6, "b")], [6]),
    ],
)
def test_a_missing_instance_is_removed_only_after_the_grace(
    steps: list[tuple[float, str]], removed_at: list[float]
) -> None:
    store = Store(CountingDecode(), grace=GRACE)
    seen: list[float] = []
    for when, ids in steps:
        diff = store.update({None: [item(i) for i in ids]}, float(when))
        if any(c.kind is ChangeKind.REMOVED and c.instance.id == "a" for c in diff.changes()):
            seen.append(when)
        if "a" not in ids and not seen:
            assert store.get("a") is not None  # kept, as last seen, during the grace
    assert seen == removed_at


def test_a_configuration_list_says_nothing_of_other_configurations() -> None:
    store = Store(CountingDecode(), grace=0)
    store.update({None: [item("a", configurationId="c1"), item("b", configurationId="c2")]}, 0)
    diff = store.update({"c1": [item("a", configurationId="c1")]}, 1)
    assert not diff.removed  # b is not gone: c2 was not listed
    assert store.get("b") is None
    assert store.covered == frozenset({"c1"})
    assert store.covers("c1")
    assert not store.covers("c2")
    assert not store.covers(None)


def test_where_an_instance_was_listed_stands_in_for_a_missing_configuration_id() -> None:
    store = Store(CountingDecode(), grace=0)
    store.update({"c1": [item("a", requestId="r1")]}, 0)
    (a,) = store.view.values()
    assert a.configuration_id is None
    assert store.configuration_of(a) == "c1"
    # A sibling of the same request, listed account-wide without its configuration:
    store.update({None: [item("a", requestId="r1"), item("b", requestId="r1")]}, 1)
    b = store.get("b")
    assert b is not None
    assert store.configuration_of(b) == "c1"


def test_a_request_known_to_the_poller_gives_its_instances_a_configuration() -> None:
    store = Store(CountingDecode(), grace=0)
    store.learn_request("r9", "c7")
    store.update({None: [item("x", requestId="r9")]}, 0)
    x = store.get("x")
    assert x is not None
    assert store.configuration_of(x) == "c7"


def test_members_of_a_request_by_their_request_id_and_by_the_ids_it_names() -> None:
    store = Store(CountingDecode(), grace=0)
    store.update({None: [item("a", requestId="r1"), item("b"), item("c", requestId="r2")]}, 0)
    assert {m.id for m in store.members("r1")} == {"a"}
    assert {m.id for m in store.members("r1", ["b", "zz"])} == {"a", "b"}


def test_items_without_a_string_id_are_left_out_and_the_rest_kept() -> None:
    store = Store(CountingDecode(), grace=0)
    diff = store.update({None: [item("a"), {"id": 5, "state": "RUNNING"}, "junk", {}]}, 0)
    assert [i.id for i in diff.added] == ["a"]
    assert len(store) == 1


def test_unchanged_raw_dicts_cost_no_decode_even_across_per_configuration_lists() -> None:
    decode = CountingDecode()
    store = Store(decode, grace=0)
    lists = {"c1": [item("a", configurationId="c1")], "c2": [item("b", configurationId="c2")]}
    store.update(lists, 0)
    store.update({k: [dict(i) for i in v] for k, v in lists.items()}, 1)
    assert decode.built == 2
