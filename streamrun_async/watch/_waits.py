"""``wait_for_instance`` and ``wait_for_request``: arguments checked at once, then one
small coroutine per waiter (a fleet tool may hold ten thousand)."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Coroutine
from datetime import timedelta
from typing import Any

from .._models import Instance, InstanceRequest, InstanceState, check_timeout
from ._poller import Poller
from ._subscriptions import Acceptor, InstanceWaiter, RequestWaiter, acceptor, check_states

__all__ = ["wait_for_instance", "wait_for_request"]


def wait_for_instance(
    poller: Poller,
    instance_id: str,
    success: InstanceState | Collection[InstanceState],
    *,
    failure: Collection[InstanceState] = (),
    configuration_id: str | None = None,
    timeout: float | timedelta,
) -> Coroutine[Any, Any, Instance]:
    """Wait through ``poller`` until the instance reaches one of ``success``."""
    seconds = check_timeout(timeout)
    judge = acceptor(
        check_states(success, "success states"),
        check_states(failure, "failure states", allow_empty=True),
    )
    return _wait_instance(poller, InstanceWaiter(instance_id, judge, configuration_id, seconds))


async def _wait_instance(poller: Poller, waiter: InstanceWaiter) -> Instance:
    # Few locals: this frame exists once per waiter.
    waiter.start(asyncio.get_running_loop().create_future(), poller.now())
    if not poller.add_instance_waiter(waiter):
        return waiter.future.result()
    try:
        return await waiter.future
    finally:
        poller.discard_instance_waiter(waiter)


def wait_for_request(
    poller: Poller,
    request: str | InstanceRequest,
    *,
    success: InstanceState | Collection[InstanceState] = InstanceState.RUNNING,
    failure: Collection[InstanceState] = (),
    timeout: float | timedelta,
) -> Coroutine[Any, Any, InstanceRequest]:
    """Wait through ``poller`` until the request reaches one of ``success``."""
    seconds = check_timeout(timeout)
    judge = acceptor(
        check_states(success, "success states"),
        check_states(failure, "failure states", allow_empty=True),
    )
    return _wait_request(poller, request, judge, seconds)


async def _wait_request(
    poller: Poller, request: str | InstanceRequest, judge: Acceptor, timeout: float
) -> InstanceRequest:
    known = request if isinstance(request, InstanceRequest) else None
    request_id = request.id if isinstance(request, InstanceRequest) else request
    future: asyncio.Future[InstanceRequest] = asyncio.get_running_loop().create_future()
    waiter = RequestWaiter(request_id, judge, future, poller.now(), timeout, known)
    if not poller.add_request_sub(waiter, known):
        return future.result()
    try:
        return await future
    finally:
        poller.discard_request_sub(waiter)
