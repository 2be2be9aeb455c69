"""Resource namespaces: one method per endpoint, bound to the client's transport.

They check arguments before anything is sent, build paths from quoted segments and
decode answers; they know nothing of aiohttp.
"""

from __future__ import annotations

import builtins
from collections.abc import Collection, Coroutine, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import attrs
from yarl import URL

from ._exceptions import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    ResponseDecodeError,
    StreamrunError,
    WaitTimeoutError,
)
from ._http import Response, Transport, path_segment
from ._models import (
    Configuration,
    Destination,
    Instance,
    InstanceRequest,
    InstanceSettings,
    InstanceState,
    Outputs,
    Overrides,
    check_overrides,
)
from .watch import InstanceWatch, Poller, RequestWatch, wait_for_instance, wait_for_request

if TYPE_CHECKING:
    from .guard import Guard

__all__ = [
    "AcceptedLaunch",
    "Configurations",
    "Destinations",
    "InstanceRequests",
    "Instances",
    "check_instances",
    "launch_body",
]

_M = TypeVar("_M")
# Fields only an instance has: a launch answered with an instance object must not have
# the instance's id taken for the request's.
_INSTANCE_MARKERS = frozenset({"name", "outputs", "overrides", "streamkey", "streamKey"})
_REQUEST_MARKERS = frozenset({"instanceIds", "numberOfInstances", "instances"})


@attrs.frozen
class AcceptedLaunch:
    """A launch the server accepted (2xx or 303) without naming its instance request.

    Not a failure, and never retried: the instances were asked for. Follow them by name
    (``names``, in the order sent; empty for a default launch) in the configuration's
    instance list; ``launch_many`` does. ``id`` is always ``None``, so that ``.id`` of
    whatever ``launch`` returns reads as ``str | None``. Narrow with ``isinstance``.
    """

    configuration_id: str
    names: tuple[str, ...]
    number_of_instances: int
    status: int
    location: str | None = None
    raw: Any = attrs.field(default=None, repr=False, eq=False)

    @property
    def id(self) -> None:
        """Always ``None``: the answer named no instance request."""
        return None


def _check_id(request: str | InstanceRequest) -> None:
    if isinstance(request, AcceptedLaunch):
        raise InvalidArgumentError(
            "this launch was accepted without naming its instance request, so there is no "
            "request to wait for: wait for its instances by name "
            "(client.instances.wait_for_state) or use launch_many"
        )
    if not isinstance(request, InstanceRequest):
        path_segment(request, "request_id")


class _Resource:
    # The transport to send with and the client's one poller for waits and watches: the
    # resources never reach back into the client.
    def __init__(self, transport: Transport, poller: Poller) -> None:
        self._transport = transport
        self._poller = poller

    async def _call(
        self, method: str, segments: list[str], body: Any = None, *, lenient: bool = False
    ) -> Response:
        return await self._transport.request(method, segments, json_body=body, lenient=lenient)

    async def _list(self, segments: list[str], cls: type[_M], envelope: str) -> list[_M]:
        return await self._transport.get_list(segments, cls, envelope)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._transport.base_url}>"


def check_instances(instances: Sequence[InstanceSettings]) -> None:
    """Refuse a launch's instances before sending: types, emptiness, repeated names."""
    if isinstance(instances, (str, bytes, Mapping)) or not isinstance(instances, Sequence):
        raise InvalidArgumentTypeError(
            f"instances must be a sequence of InstanceSettings, got {type(instances).__name__}"
        )
    if not instances:
        raise InvalidArgumentError("instances must not be empty (omit it for one default)")
    names: set[str] = set()
    duplicates: set[str] = set()
    for item in instances:
        if not isinstance(item, InstanceSettings):
            raise InvalidArgumentTypeError(
                f"instances must hold InstanceSettings, got {type(item).__name__}"
            )
        (duplicates if item.name in names else names).add(item.name)
    if duplicates:
        raise InvalidArgumentError(f"instance names must be unique: {sorted(duplicates)}")


def launch_body(instances: Sequence[InstanceSettings]) -> dict[str, Any]:
    """Check the instances of one launch and build its camelCase body."""
    check_instances(instances)
    return {
        "numberOfInstances": len(instances),
        "instanceSettings": [item.to_json() for item in instances],
    }


def _id_from_location(location: str) -> str | None:
    """The request id of ``.../instance-requests/{id}`` (relative or absolute)."""
    try:
        parts = URL(location.strip()).parts
    except ValueError:
        return None
    parts = tuple(part for part in parts if part not in ("/", ""))
    if len(parts) >= 2 and parts[-2] == "instance-requests" and parts[-1]:
        return parts[-1]
    return None


def _str_id(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _id_from_body(data: object) -> tuple[str | None, bool]:
    """(request id, whether ``data`` is itself the request object) from a launch answer."""
    if not isinstance(data, dict):
        return None, False
    inner = data.get("instanceRequest")
    if isinstance(inner, dict) and _str_id(inner.get("id")):
        return inner["id"], True
    if _str_id(data.get("requestId")):
        return data["requestId"], False
    instance = data.get("instance")
    if isinstance(instance, dict) and _str_id(instance.get("requestId")):
        return instance["requestId"], False
    instances = data.get("instances")
    if isinstance(instances, list) and instances:
        found = {item.get("requestId") if isinstance(item, dict) else None for item in instances}
        if len(found) == 1 and _str_id(next(iter(found))):
            return found.pop(), False
    request_id = _str_id(data.get("id"))
    if request_id is None:
        return None, False
    looks_like_instance = not _REQUEST_MARKERS.intersection(data) and (
        _INSTANCE_MARKERS.intersection(data) or isinstance(data.get("state"), dict)
    )
    return (None, False) if looks_like_instance else (request_id, True)


class Configurations(_Resource):
    """``client.configurations``: list, inspect and launch configurations."""

    async def list(self) -> list[Configuration]:
        """All configurations of the account (every page)."""
        return await self._list(["configurations"], Configuration, "configurations")

    async def get(self, configuration_id: str) -> Configuration:
        """One configuration."""
        segment = path_segment(configuration_id, "configuration_id")
        response = await self._call("GET", ["configurations", segment])
        return response.object(Configuration, "configuration")

    # Set by a guarded client on its namespace (issue 14): every launch then holds leases.
    _guard: Guard | None = None

    async def launch(
        self,
        configuration_id: str,
        instances: Sequence[InstanceSettings] | None = None,
        *,
        ttl: float | timedelta | None = None,
    ) -> InstanceRequest | AcceptedLaunch:
        """Launch instances of a configuration in one POST; returns the instance request.

        Without ``instances``, one instance with the configuration's defaults. The request
        id is read from the ``Location`` header (any 2xx, or a 303, which is never
        followed), else from the body. An accepted launch whose answer names no request
        returns an :class:`AcceptedLaunch`: follow its instances by name.

        A launch is retried only when the server certainly did not act (see
        :class:`RetryPolicy`); otherwise the error's ``outcome_unknown`` is true: list the
        configuration's instances before launching again (``launch_many`` does this for
        you).

        ``ttl`` (guarded clients only): seconds, or a timedelta, until the guard's reaper
        stops these instances; ``InstanceSettings.ttl`` overrides it per instance. The
        guard writes the leases before the POST, and refuses the launch if it cannot.
        """
        segment = path_segment(configuration_id, "configuration_id")
        body = None if instances is None else launch_body(instances)
        if self._guard is None:
            if ttl is not None or any(item.ttl is not None for item in instances or ()):
                raise InvalidArgumentError(
                    "ttl needs a guarded client: StreamrunClient(guard=sr.Guard(owner=...))"
                )
            return await self._send_launch(configuration_id, segment, instances, body)
        return await self._guard.launch(
            configuration_id,
            instances,
            ttl,
            lambda: self._send_launch(configuration_id, segment, instances, body),
        )

    async def _send_launch(
        self,
        configuration_id: str,
        segment: str,
        instances: Sequence[InstanceSettings] | None,
        body: dict[str, Any] | None,
    ) -> InstanceRequest | AcceptedLaunch:
        response = await self._transport.request(
            "POST",
            ["configurations", segment, "instances"],
            json_body=body,
            lenient=True,
            see_other=True,
        )
        location = response.headers.get("Location")
        request_id = _id_from_location(location) if location else None
        body_id, is_request = _id_from_body(response.data)
        if is_request and request_id in (None, body_id):
            try:
                return response.object(InstanceRequest, "instanceRequest")
            except ResponseDecodeError:
                pass  # accepted all the same: the id alone is the answer
        request_id = request_id or body_id
        if request_id is None:
            names = () if instances is None else tuple(item.name for item in instances)
            return AcceptedLaunch(
                configuration_id=configuration_id,
                names=names,
                number_of_instances=len(names) or 1,
                status=response.status,
                location=location,
                raw=response.data,
            )
        return InstanceRequest(
            id=request_id,
            configuration_id=configuration_id,
            number_of_instances=None if instances is None else len(instances),
        )

    async def list_instances(self, configuration_id: str) -> builtins.list[Instance]:
        """The instances of one configuration."""
        segment = path_segment(configuration_id, "configuration_id")
        return await self._list(["configurations", segment, "instances"], Instance, "instances")

    async def set_outputs(self, configuration_id: str, outputs: Outputs | str) -> None:
        """Set every output of every instance of the configuration LIVE or OFFLINE."""
        segment = path_segment(configuration_id, "configuration_id")
        value = Outputs(outputs) if isinstance(outputs, str) else None
        if value is None or value.is_unknown:
            raise InvalidArgumentError(f"outputs must be Outputs.LIVE or OFFLINE, got {outputs!r}")
        body = {"outputs": value.value}
        await self._call("PUT", ["configurations", segment, "instances"], body, lenient=True)

    async def stop_instances(self, configuration_id: str) -> None:
        """Stop the configuration's instances, running or queued (any 2xx is success)."""
        segment = path_segment(configuration_id, "configuration_id")
        await self._call("DELETE", ["configurations", segment, "instances"], lenient=True)


class InstanceRequests(_Resource):
    """``client.instance_requests``: follow launches from QUEUED to RUNNING."""

    async def get(self, request_id: str) -> InstanceRequest:
        """One instance request."""
        segment = path_segment(request_id, "request_id")
        response = await self._call("GET", ["instance-requests", segment])
        return response.object(InstanceRequest, "instanceRequest")

    def wait_until_running(
        self,
        request: str | InstanceRequest,
        *,
        timeout: float = 600.0,
        failure: Collection[InstanceState] = (),
        on_timeout: Literal["raise", "stop"] = "raise",
    ) -> Coroutine[Any, Any, InstanceRequest]:
        """Wait until the request is RUNNING (every instance has a server); returns it.

        Pass the ``InstanceRequest`` from ``launch`` rather than its id to save a call.
        Raises ``WaitTimeoutError`` (with the last state seen) after ``timeout`` seconds,
        and ``WaiterError`` when the request reaches a ``failure`` state or disappears.
        Every waiter of the client shares one poller. ``on_timeout="stop"``: at the
        deadline, every instance of the request that is not RUNNING is stopped and the
        stop confirmed (``sr.stop_unfinished``) before the ``WaitTimeoutError`` is raised,
        so nothing queued starts billing later.
        """
        _check_id(request)
        if on_timeout not in ("raise", "stop"):
            raise InvalidArgumentError(f'on_timeout must be "raise" or "stop", got {on_timeout!r}')
        # Returns the waiting coroutine itself (arguments checked now): one frame less for
        # each of the thousands of waiters a fleet tool may hold.
        waiting = wait_for_request(
            self._poller,
            request,
            success=InstanceState.RUNNING,
            failure=failure,
            timeout=timeout,
        )
        # The coroutine itself when the client has no hooks; else wrapped in wait events.
        waited = self._transport.events.wait(
            waiting,
            what="request",
            subject=request if isinstance(request, str) else request.id,
            target=(InstanceState.RUNNING,),
            timeout=timeout,
        )
        return waited if on_timeout == "raise" else self._stop_on_timeout(waited, request)

    async def _stop_on_timeout(
        self, waited: Coroutine[Any, Any, InstanceRequest], request: str | InstanceRequest
    ) -> InstanceRequest:
        try:
            return await waited
        except WaitTimeoutError as timed_out:
            from .guard._stop import stop_requests  # the guard loads only when used

            instances = Instances(self._transport, self._poller)
            try:
                report = await stop_requests(instances.list, instances.stop, self.get, [request])
            except StreamrunError as failed:
                # Something may still bill: that is the error to see, the timeout its cause.
                raise failed from timed_out
            timed_out.add_note(report.describe())
            raise

    def watch(
        self, requests: Iterable[str | InstanceRequest], *, timeout: float = 600.0
    ) -> RequestWatch:
        """Yield each request when its state changes, until all are RUNNING.

        ``async for request in client.instance_requests.watch(launched): ...``
        """
        items = builtins.list(requests)
        for item in items:
            _check_id(item)
        return RequestWatch(self._poller, items, timeout)


class Instances(_Resource):
    """``client.instances``: inspect, stop, restart and re-configure instances."""

    async def list(self) -> list[Instance]:
        """All instances of the account (every page)."""
        return await self._list(["instances"], Instance, "instances")

    async def get(self, instance_id: str) -> Instance:
        """One instance."""
        segment = path_segment(instance_id, "instance_id")
        response = await self._call("GET", ["instances", segment])
        return response.object(Instance, "instance")

    def wait_for_state(
        self,
        instance_id: str,
        state: InstanceState | Collection[InstanceState] = InstanceState.RUNNING,
        *,
        failure: Collection[InstanceState] = (),
        configuration_id: str | None = None,
        timeout: float = 300.0,
    ) -> Coroutine[Any, Any, Instance]:
        """Wait until the instance is in ``state`` (or one of several); returns it.

        Instances are watched through list calls shared by every waiter of the client;
        give ``configuration_id`` to let the poller list only that configuration.
        Raises ``WaiterError`` at once if the instance disappears (stopped, or idle-stopped
        by the service) or reaches a ``failure`` state, ``WaitTimeoutError`` after
        ``timeout`` seconds, both carrying the last state seen.
        """
        path_segment(instance_id, "instance_id")
        if configuration_id is not None:
            path_segment(configuration_id, "configuration_id")
        waiting = wait_for_instance(
            self._poller,
            instance_id,
            state,
            failure=failure,
            configuration_id=configuration_id,
            timeout=timeout,
        )
        return self._transport.events.wait(
            waiting,
            what="instance",
            subject=instance_id,
            target=(state,) if isinstance(state, InstanceState) else tuple(state),
            timeout=timeout,
        )

    def watch(
        self, configuration_ids: Iterable[str] | None = None, *, resume: str | None = None
    ) -> InstanceWatch:
        """An async iterator of instance changes (ADDED, CHANGED, REMOVED).

        ``configuration_ids=None`` watches the whole account. ``watch.token`` resumes it in
        another process: ``client.instances.watch(resume=token)``.
        """
        configs = None
        if configuration_ids is not None:
            if isinstance(configuration_ids, str):
                raise InvalidArgumentTypeError("configuration_ids must be a list of ids")
            configs = builtins.list(configuration_ids)
            if not configs:
                raise InvalidArgumentError(
                    "configuration_ids is empty: pass None to watch the whole account"
                )
            for configuration_id in configs:
                path_segment(configuration_id, "configuration_id")
        return InstanceWatch(self._poller, configs, resume)

    async def stop(self, instance_id: str) -> None:
        """Stop one instance (a queued one is cancelled); any 2xx is success."""
        segment = path_segment(instance_id, "instance_id")
        await self._call("DELETE", ["instances", segment], lenient=True)

    async def stop_all(self) -> None:
        """Stop every instance of the account; any 2xx is success."""
        await self._call("DELETE", ["instances"], lenient=True)

    async def restart(self, instance_id: str) -> Instance | None:
        """Restart one instance; returns it as the API reports it, if the answer has it."""
        segment = path_segment(instance_id, "instance_id")
        response = await self._call("POST", ["instances", segment, "restart"], lenient=True)
        data = response.data
        if isinstance(data, dict) and isinstance(data.get("instance"), dict):
            data = data["instance"]
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            # The 2xx says the restart happened; a body without an instance ("OK", a
            # message) must not claim otherwise.
            return None
        return response.object(Instance, "instance")

    async def get_overrides(self, instance_id: str) -> Overrides:
        """The instance's overrides: element id -> settings."""
        segment = path_segment(instance_id, "instance_id")
        response = await self._call("GET", ["instances", segment, "overrides"])
        return response.overrides()

    async def update_overrides(self, instance_id: str, overrides: Overrides) -> Overrides:
        """Merge ``overrides`` into the instance's, per element; returns the result."""
        segment = path_segment(instance_id, "instance_id")
        body = check_overrides(overrides)
        response = await self._call("PATCH", ["instances", segment, "overrides"], body)
        return response.overrides()


class Destinations(_Resource):
    """``client.destinations``: where outputs can stream to."""

    async def list(self) -> list[Destination]:
        """All destinations of the account (every page)."""
        return await self._list(["destinations"], Destination, "destinations")
