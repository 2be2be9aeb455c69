"""Waiting and watching, built as an informer: one shared poller per client.

The layers, bottom up (each imports only those below it):

- ``_policy``: :class:`PollPolicy`; ``_clock``: the loop's clock or a manual one;
- ``_store``: the last list by id / configuration / request, and diffs (pure);
- ``_tracker``: per watched request, whether the list proves its state (pure);
- ``_pacer``: intervals, the shared budget, Retry-After, the failure streak (pure);
- ``_tokens``: resume tokens (pure);
- ``_subscriptions``: one acceptor rule, waiters and watch subscriptions (pure);
- ``_poller``: the thin loop that does the I/O and ties the rest together;
- ``_waits`` and ``_feeds``: the waits and the two watches users hold.
"""

from __future__ import annotations

from ._clock import Clock, LoopClock, ManualClock
from ._feeds import InstanceWatch, RequestWatch
from ._pacer import Pacer
from ._policy import PollPolicy
from ._poller import GetRequest, ListInstances, Poller, PollStats, SnapshotListener, TickSummary
from ._store import ChangeKind, Diff, InstanceChange, Store
from ._subscriptions import Acceptor, Verdict, acceptor
from ._tokens import MAX_TOKEN_BYTES, decode_token, encode_token
from ._tracker import RequestTracker
from ._waits import wait_for_instance, wait_for_request

__all__ = [
    "MAX_TOKEN_BYTES",
    "Acceptor",
    "ChangeKind",
    "Clock",
    "Diff",
    "GetRequest",
    "InstanceChange",
    "InstanceWatch",
    "ListInstances",
    "LoopClock",
    "ManualClock",
    "Pacer",
    "PollPolicy",
    "PollStats",
    "Poller",
    "RequestTracker",
    "RequestWatch",
    "SnapshotListener",
    "Store",
    "TickSummary",
    "Verdict",
    "acceptor",
    "decode_token",
    "encode_token",
    "wait_for_instance",
    "wait_for_request",
]
