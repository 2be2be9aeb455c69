"""How a watch merges the changes its consumer has not read yet, per instance (a table)."""

from __future__ import annotations

import pytest

import streamrun_async as sr
from streamrun_async.watch._feeds import _merge_changes

S = sr.InstanceState
K = sr.ChangeKind


def change(kind: K, state: str, previous: str | None = None) -> sr.InstanceChange:
    return sr.InstanceChange(kind, sr.Instance(id="i", state=S(state)), previous)


@pytest.mark.parametrize(
    ("first", "then", "merged"),
    [
        (None, change(K.ADDED, "QUEUED"), change(K.ADDED, "QUEUED")),
        (
            change(K.ADDED, "QUEUED"),
            change(K.CHANGED, "RUNNING", "QUEUED"),
            change(K.ADDED, "RUNNING"),
        ),
        (change(K.ADDED, "QUEUED"), change(K.REMOVED, "QUEUED", "QUEUED"), None),
        (
            change(K.CHANGED, "STARTING", "QUEUED"),
            change(K.CHANGED, "RUNNING", "STARTING"),
            change(K.CHANGED, "RUNNING", "QUEUED"),
        ),
        (
            change(K.CHANGED, "RUNNING", "QUEUED"),
            change(K.REMOVED, "RUNNING", "RUNNING"),
            change(K.REMOVED, "RUNNING", "QUEUED"),
        ),
        (
            change(K.REMOVED, "RUNNING", "RUNNING"),
            change(K.ADDED, "QUEUED"),
            change(K.CHANGED, "QUEUED", "RUNNING"),
        ),
    ],
)
def test_pending_changes_merge_per_instance(
    first: sr.InstanceChange | None, then: sr.InstanceChange, merged: sr.InstanceChange | None
) -> None:
    assert _merge_changes(first, then) == merged
