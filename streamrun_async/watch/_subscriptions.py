"""One subscription shape and one acceptor rule for every waiter and watch.

An :class:`Acceptor` judges a state: success, failure, or keep waiting. A wait for
RUNNING fails at once on a state that can never lead to RUNNING (every terminal state,
and STOPPING); any wait fails on a terminal state it does not wait for; ``failure=``
adds states. Subscriptions are small objects with ``__slots__``: a fleet tool may hold
ten thousand. Their deadlines live in the poller's heap (ordered by ``__lt__``), not in
timer handles of their own.
"""

from __future__ import annotations

import asyncio
import enum
import functools
from collections.abc import Callable, Collection, Mapping
from typing import Any

from .._exceptions import InvalidArgumentError, WaiterError, WaitTimeoutError
from .._models import Instance, InstanceRequest, InstanceState
from ._store import InstanceChange

__all__ = [
    "Acceptor",
    "InstanceFeedSub",
    "InstanceWaiter",
    "RequestFeedSub",
    "RequestWaiter",
    "Subscription",
    "Verdict",
    "acceptor",
    "check_states",
]


class Verdict(enum.Enum):
    """What an acceptor makes of a state."""

    WAIT = "wait"
    SUCCESS = "success"
    FAILURE = "failure"


class Acceptor:
    """Success and failure states, and the rule that judges a state against them."""

    __slots__ = ("failure", "running", "success")

    def __init__(
        self, success: frozenset[InstanceState], failure: frozenset[InstanceState]
    ) -> None:
        self.success = success
        self.failure = failure
        self.running = InstanceState.RUNNING in success

    def judge(self, state: InstanceState) -> Verdict:
        """SUCCESS, FAILURE, or WAIT (keep waiting) for ``state``."""
        if state in self.success:
            return Verdict.SUCCESS
        if state in self.failure or state.is_terminal:
            return Verdict.FAILURE
        if self.running and not state.can_become_running:
            return Verdict.FAILURE
        return Verdict.WAIT

    def describe(self) -> str:
        """The success states, for messages: ``RUNNING`` or ``PREVIEW/RUNNING``."""
        return "/".join(sorted(self.success))


@functools.lru_cache(maxsize=256)
def acceptor(success: frozenset[InstanceState], failure: frozenset[InstanceState]) -> Acceptor:
    """The shared acceptor of these states (one object for thousands of waiters)."""
    return Acceptor(success, failure)


def check_states(
    value: InstanceState | Collection[InstanceState], what: str, *, allow_empty: bool = False
) -> frozenset[InstanceState]:
    """The states given as one member or a collection; refused unless InstanceState."""
    states = frozenset([value] if isinstance(value, str) else value)
    if not states and allow_empty:
        return states
    if not states or not all(isinstance(s, InstanceState) for s in states):
        raise InvalidArgumentError(f"{what} must be InstanceState members, got {value!r}")
    return states


class Subscription:
    """Interest with a deadline (``inf`` for none) in the poller's heap."""

    __slots__ = ("deadline", "registered")

    deadline: float
    registered: float

    def __lt__(self, other: Subscription) -> bool:
        return self.deadline < other.deadline

    @property
    def done(self) -> bool:
        """True once answered, failed, expired or withdrawn."""
        raise NotImplementedError

    def fail(self, error: BaseException) -> None:
        """End with ``error``."""
        raise NotImplementedError

    def expire(self, cause: BaseException | None) -> None:
        """The deadline passed; ``cause`` is the last poll error if polls were failing."""
        raise NotImplementedError


def _timeout_error(message: str, last: Any, cause: BaseException | None) -> WaitTimeoutError:
    if cause is not None:
        message += f"; polls were failing: {cause}"
    error = WaitTimeoutError(message, last_seen=last)
    error.__cause__ = cause
    return error


def _state_text(last: Any) -> str:
    state = getattr(last, "state", None)
    return "none (never listed)" if state is None else str(state)


class InstanceWaiter(Subscription):
    """``instances.wait_for_state``: one instance, its configuration, its acceptor."""

    __slots__ = (
        "absent_count",
        "absent_since",
        "acceptor",
        "configuration_id",
        "future",
        "instance_id",
        "last",
        "timeout",
    )

    future: asyncio.Future[Instance]

    def __init__(
        self, instance_id: str, acceptor: Acceptor, configuration_id: str | None, timeout: float
    ) -> None:
        self.instance_id = instance_id
        self.acceptor = acceptor
        self.configuration_id = configuration_id
        self.timeout = timeout
        self.last: Instance | None = None
        self.absent_since: float | None = None
        self.absent_count = 0

    def start(self, future: asyncio.Future[Instance], now: float) -> None:
        """Begin waiting (in the running loop, at ``now``)."""
        self.future = future
        self.registered = now
        self.deadline = now + self.timeout

    @property
    def done(self) -> bool:
        return self.future.done()

    def offer(self, instance: Instance) -> bool:
        """Judge the instance as listed now; True when the wait is over."""
        self.last = instance
        self.absent_count = 0
        verdict = self.acceptor.judge(instance.state)
        if verdict is Verdict.WAIT:
            return False
        if verdict is Verdict.SUCCESS:
            if not self.future.done():
                self.future.set_result(instance)
        else:
            self.fail(
                WaiterError(
                    f"instance {self.instance_id} reached {instance.state}; it will not "
                    f"become {self.acceptor.describe()}",
                    last_seen=instance,
                )
            )
        return True

    def absent(self, taken: float, grace: float) -> bool:
        """The instance is not in a list taken at ``taken``; True when the wait is over."""
        if self.last is not None:
            self.fail(
                WaiterError(
                    f"instance {self.instance_id} disappeared (stopped, or stopped itself "
                    f"when idle); last seen {self.last.state}",
                    last_seen=self.last,
                )
            )
            return True
        if self.absent_since is None:
            self.absent_since = taken
        self.absent_count += 1
        if self.absent_count >= 2 and taken - self.absent_since >= grace:
            where = "" if self.configuration_id is None else f" in {self.configuration_id}"
            self.fail(
                WaiterError(
                    f"instance {self.instance_id} does not exist{where} (missing from "
                    f"{self.absent_count} lists over {taken - self.absent_since:g}s)"
                )
            )
            return True
        return False

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)

    def expire(self, cause: BaseException | None) -> None:
        self.fail(
            _timeout_error(
                f"instance {self.instance_id}: {self.acceptor.describe()} not reached within "
                f"{self.timeout:g}s; last state seen: {_state_text(self.last)}",
                self.last,
                cause,
            )
        )


class RequestSub(Subscription):
    """Interest in one instance request."""

    __slots__ = ("acceptor", "request_id")

    acceptor: Acceptor
    request_id: str

    def offer(self, request: InstanceRequest) -> bool:
        """A new state of the request; True when this interest is over."""
        raise NotImplementedError


class RequestWaiter(RequestSub):
    """``instance_requests.wait_until_running``."""

    __slots__ = ("future", "last", "timeout")

    def __init__(
        self,
        request_id: str,
        acceptor: Acceptor,
        future: asyncio.Future[InstanceRequest],
        registered: float,
        timeout: float,
        last: InstanceRequest | None,
    ) -> None:
        self.request_id = request_id
        self.acceptor = acceptor
        self.future = future
        self.registered = registered
        self.timeout = timeout
        self.deadline = registered + timeout
        self.last = last

    @property
    def done(self) -> bool:
        return self.future.done()

    def offer(self, request: InstanceRequest) -> bool:
        self.last = request
        verdict = self.acceptor.judge(request.state)
        if verdict is Verdict.WAIT:
            return False
        if verdict is Verdict.SUCCESS:
            if not self.future.done():
                self.future.set_result(request)
        else:
            self.fail(
                WaiterError(
                    f"instance request {request.id} reached {request.state}; it will not "
                    f"become {self.acceptor.describe()}",
                    last_seen=request,
                )
            )
        return True

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)

    def expire(self, cause: BaseException | None) -> None:
        self.fail(
            _timeout_error(
                f"instance request {self.request_id}: {self.acceptor.describe()} not reached "
                f"within {self.timeout:g}s; last state seen: {_state_text(self.last)}",
                self.last,
                cause,
            )
        )


class RequestFeedSub(RequestSub):
    """One request of a :class:`RequestWatch`: states go to the watch's feed."""

    __slots__ = ("closed", "on_error", "on_request")

    def __init__(
        self,
        request_id: str,
        acceptor: Acceptor,
        registered: float,
        on_request: Callable[[InstanceRequest, Verdict], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        self.request_id = request_id
        self.acceptor = acceptor
        self.registered = registered
        self.deadline = float("inf")  # the watch keeps one deadline for all its requests
        self.on_request = on_request
        self.on_error = on_error
        self.closed = False

    @property
    def done(self) -> bool:
        return self.closed

    def offer(self, request: InstanceRequest) -> bool:
        verdict = self.acceptor.judge(request.state)
        self.on_request(request, verdict)
        if verdict is Verdict.WAIT:
            return False
        self.closed = True
        return True

    def fail(self, error: BaseException) -> None:
        if not self.closed:
            self.closed = True
            self.on_error(error)

    def expire(self, cause: BaseException | None) -> None:  # pragma: no cover - no deadline
        raise AssertionError("a request watch's requests have no deadline of their own")


class InstanceFeedSub(Subscription):
    """An :class:`InstanceWatch`'s interest: its configurations and where changes go.

    ``known``: the states a resumed watch starts from (None: a fresh watch, whose first
    delivery is an ADDED for every instance in scope).
    """

    __slots__ = (
        "absent",
        "closed",
        "configs",
        "generation",
        "known",
        "members",
        "on_changes",
        "on_error",
        "started",
    )

    def __init__(
        self,
        configs: frozenset[str] | None,
        known: Mapping[str, InstanceState] | None,
        registered: float,
        on_changes: Callable[[list[InstanceChange]], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        self.configs = configs
        self.known = known
        self.registered = registered
        self.deadline = float("inf")
        self.on_changes = on_changes
        self.on_error = on_error
        self.started = False
        self.closed = False
        # A configuration watch: the ids it has reported in scope, and the store's
        # generation of request configurations it last matched against.
        self.members: set[str] | None = None
        self.generation = -1
        # A resumed watch: instances of its token not listed yet (state, since, lists).
        self.absent: dict[str, tuple[InstanceState, float, int]] = {}

    @property
    def done(self) -> bool:
        return self.closed

    def fail(self, error: BaseException) -> None:
        if not self.closed:
            self.closed = True
            self.on_error(error)

    def expire(self, cause: BaseException | None) -> None:  # pragma: no cover - no deadline
        raise AssertionError("an instance watch has no deadline")
