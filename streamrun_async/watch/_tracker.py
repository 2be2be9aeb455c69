"""The request tracker: per watched request, does the list prove its state, or must the
request itself be fetched?

The request resource is the authority. The list may settle a request RUNNING only when
its expected instance count is known (``numberOfInstances`` from the launch answer or a
fetch) and that many of its instances are listed RUNNING. In every other case the
request is fetched: at once when nothing is known of it, when its listed instances
changed since the last fetch, or when they all vanished; otherwise again after a period
that starts at ``min_interval`` and doubles (up to ``max_interval``) while fetches bring
nothing new. Which due requests are fetched in a tick is the pacer's budget's call:
oldest-fetched first.

Pure: no I/O; every method is told the time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import attrs

from .._exceptions import StreamrunError
from .._models import InstanceRequest, InstanceState
from ._policy import PollPolicy
from ._store import Store

__all__ = ["RequestTracker", "Tracked"]


@attrs.define(slots=True)
class Tracked:
    """What the tracker knows of one watched request."""

    registered: float
    known: InstanceRequest | None = None
    fetched_at: float = -math.inf  # when a fetch (or the launch answer) last told its state
    period: float = 0.0
    in_flight: bool = False
    members: frozenset[tuple[str, InstanceState]] | None = None  # as of the last fetch
    seen_members: bool = False
    vanished: bool = False  # every listed instance is gone (as of the last list)
    vanished_at_fetch: bool = False  # ... as of when the last fetch was sent
    last_error: StreamrunError | None = None


def _derived_running(known: InstanceRequest, member_ids: Iterable[str]) -> InstanceRequest:
    derived = attrs.evolve(known, state=InstanceState.RUNNING, instance_ids=tuple(member_ids))
    # The request as the list proves it, keeping what the server last said in ``raw``.
    object.__setattr__(derived, "raw", known.raw)
    return derived


class RequestTracker:
    """Watched requests and the decision, after each list, of what to fetch."""

    def __init__(self, policy: PollPolicy) -> None:
        self._policy = policy
        self._tracked: dict[str, Tracked] = {}

    def __len__(self) -> int:
        return len(self._tracked)

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._tracked

    def __iter__(self) -> Iterator[str]:
        return iter(self._tracked)

    def get(self, request_id: str) -> Tracked | None:
        """The entry of a watched request."""
        return self._tracked.get(request_id)

    def known(self, request_id: str) -> InstanceRequest | None:
        """The request as last fetched or proven, if watched."""
        entry = self._tracked.get(request_id)
        return None if entry is None else entry.known

    def watch(self, request_id: str, known: InstanceRequest | None, now: float) -> Tracked:
        """Start (or keep) tracking a request, seeded with what the caller knows."""
        entry = self._tracked.get(request_id)
        if entry is None:
            entry = self._tracked[request_id] = Tracked(registered=now)
        if known is not None and entry.known is None:
            entry.known = known
            if known.number_of_instances is not None:
                # A launch answer with its count is as good as a fetch made just now.
                entry.fetched_at = now
                entry.period = self._policy.min_interval
        return entry

    def unwatch(self, request_id: str) -> None:
        """Stop tracking (nobody waits for it any more)."""
        self._tracked.pop(request_id, None)

    def configurations(self) -> Iterator[str | None]:
        """The configuration of each watched request (None: not known)."""
        for entry in self._tracked.values():
            yield None if entry.known is None else entry.known.configuration_id

    def after_list(self, store: Store, now: float) -> tuple[list[InstanceRequest], list[str]]:
        """After a successful list: the requests it proves RUNNING, and those due for a
        fetch, oldest-fetched first."""
        settled: list[InstanceRequest] = []
        due: list[tuple[float, str]] = []
        for request_id, entry in self._tracked.items():
            known = entry.known
            members = store.members(request_id, () if known is None else known.instance_ids)
            if members:
                entry.seen_members = True
            entry.vanished = entry.seen_members and not members
            expected = None if known is None else known.number_of_instances
            if (
                known is not None
                and expected
                and known.state is not InstanceState.RUNNING
                and sum(m.state is InstanceState.RUNNING for m in members) >= expected
            ):
                entry.known = _derived_running(known, sorted(m.id for m in members))
                settled.append(entry.known)
                continue
            if entry.in_flight:
                continue
            signature = frozenset((m.id, m.state) for m in members)
            if (
                known is None
                or expected is None
                or (entry.vanished and not entry.vanished_at_fetch)
                or (entry.members is not None and signature != entry.members)
                or now >= entry.fetched_at + entry.period
            ):
                due.append((entry.fetched_at, request_id))
            if entry.members is None:
                entry.members = signature
        due.sort()
        return settled, [request_id for _, request_id in due]

    def sending(self, request_id: str, store: Store) -> None:
        """A GET of the request is being sent."""
        entry = self._tracked[request_id]
        entry.in_flight = True
        entry.vanished_at_fetch = entry.vanished
        known = entry.known
        members = store.members(request_id, () if known is None else known.instance_ids)
        entry.members = frozenset((m.id, m.state) for m in members)

    def fetched(self, request_id: str, request: InstanceRequest, now: float) -> Tracked | None:
        """The request as the server answered; None if it is no longer tracked."""
        entry = self._tracked.get(request_id)
        if entry is None:
            return None
        previous = entry.known
        entry.in_flight = False
        entry.last_error = None
        entry.known = request
        policy = self._policy
        if previous is None or previous.state is not request.state:
            entry.period = policy.min_interval
        else:
            entry.period = min(policy.max_interval, max(policy.min_interval, entry.period * 2))
        entry.fetched_at = now
        return entry

    def failed(self, request_id: str, error: StreamrunError) -> Tracked | None:
        """A GET failed (retried on a later tick)."""
        entry = self._tracked.get(request_id)
        if entry is not None:
            entry.in_flight = False
            entry.last_error = error
        return entry

    def within_grace(self, request_id: str, now: float) -> bool:
        """A 404 now is within the eventual-consistency grace after registration."""
        entry = self._tracked.get(request_id)
        return entry is not None and now - entry.registered < self._policy.absence_grace
