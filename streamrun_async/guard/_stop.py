"""Deadline means stop: end what a timed-out wait leaves unfinished, and confirm it.

A request that is still QUEUED at its deadline starts billing whenever a server frees up,
long after its caller gave up. ``stop_unfinished`` stops every instance of the given
requests that is not RUNNING, then lists again until none of them is left (or raises).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING

import attrs

from .._exceptions import NotFoundError, StreamrunError
from .._models import Instance, InstanceRequest, InstanceState
from ._errors import StopNotConfirmedError

if TYPE_CHECKING:
    from .._client import StreamrunClient

__all__ = ["StopReport", "stop_requests", "stop_unfinished"]

_log = logging.getLogger("streamrun_async.guard")


@attrs.frozen
class StopReport:
    """What ``stop_unfinished`` did.

    ``stopped``: instance ids stopped and confirmed gone; ``kept``: RUNNING at the
    deadline, left running; ``unresolved``: request ids whose instances no request
    answer or list named (nothing could be stopped for them); ``members``: the instances
    found for each request.
    """

    stopped: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    unresolved: tuple[str, ...] = ()
    members: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    """Request id -> the ids of every instance found for it."""

    def describe(self) -> str:
        """One sentence for a timeout error's note."""
        parts = [f"stopped {len(self.stopped)} unfinished instance(s) (confirmed)"]
        if self.kept:
            parts.append(f"{len(self.kept)} RUNNING left running")
        if self.unresolved:
            parts.append(f"no instances found for request(s) {', '.join(self.unresolved)}")
        return "; ".join(parts)


def _unfinished(instance: Instance | None, keep_running: bool) -> bool:
    if instance is None:
        return True  # named by the request but not listed (yet): stop it by id
    state = instance.state
    if not state.can_become_running:
        return False
    return not (keep_running and state is InstanceState.RUNNING)


async def stop_unfinished(
    client: StreamrunClient,
    requests: Iterable[str | InstanceRequest],
    *,
    keep_running: bool = True,
    attempts: int = 3,
) -> StopReport:
    """Stop every instance of ``requests`` that is not RUNNING, and confirm by listing.

    ``keep_running=False`` stops the RUNNING ones too. A stop that a later list still
    shows is retried up to ``attempts`` times, then ``StopNotConfirmedError`` is raised.
    """
    return await stop_requests(
        client.instances.list,
        client.instances.stop,
        client.instance_requests.get,
        requests,
        keep_running=keep_running,
        attempts=attempts,
    )


async def stop_requests(
    list_instances: Callable[[], Awaitable[list[Instance]]],
    stop_instance: Callable[[str], Awaitable[object]],
    get_request: Callable[[str], Awaitable[InstanceRequest]],
    requests: Iterable[str | InstanceRequest],
    *,
    instance_ids: Iterable[str] = (),
    keep_running: bool = True,
    attempts: int = 3,
) -> StopReport:
    """:func:`stop_unfinished` on the three calls it needs (for the resource namespaces,
    which hold no client); ``instance_ids``: more instances to treat alike, known by id
    only (launches answered without a request)."""
    members: dict[str, set[str]] = {}
    for item in requests:
        request_id = item.id if isinstance(item, InstanceRequest) else item
        known = set(item.instance_ids) if isinstance(item, InstanceRequest) else set()
        try:
            known |= set((await get_request(request_id)).instance_ids)
        except StreamrunError as error:
            # The list below may still name its instances through their requestId.
            _log.warning("stop_unfinished: cannot read request %s: %s", request_id, error)
        members[request_id] = known
    listed = {inst.id: inst for inst in await list_instances()}
    for inst in listed.values():
        if inst.request_id in members:
            members[inst.request_id].add(inst.id)
    unresolved = tuple(rid for rid, ids in members.items() if not ids)
    every = sorted(set(instance_ids).union(*members.values()))
    targets = [i for i in every if _unfinished(listed.get(i), keep_running)]
    kept = tuple(
        i for i in every if i not in targets and i in listed and listed[i].state.can_become_running
    )
    remaining = list(targets)
    for _ in range(max(1, attempts)):
        for instance_id in remaining:
            try:
                await stop_instance(instance_id)
            except NotFoundError:
                pass  # already gone
            except StreamrunError as error:
                _log.warning("stop_unfinished: stopping %s failed: %s", instance_id, error)
        listed = {inst.id: inst for inst in await list_instances()}
        remaining = [i for i in remaining if i in listed and listed[i].state.can_become_running]
        if not remaining:
            return StopReport(
                stopped=tuple(targets),
                kept=kept,
                unresolved=unresolved,
                members={rid: tuple(sorted(ids)) for rid, ids in members.items()},
            )
    raise StopNotConfirmedError(
        f"{len(remaining)} instance(s) still listed after {attempts} stop(s): "
        f"{', '.join(remaining)}",
        instance_ids=remaining,
    )
