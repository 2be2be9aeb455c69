"""Resource namespaces: one method per endpoint, bound to the client's transport.

They check arguments before anything is sent, build paths from quoted segments and
decode answers; they know nothing of aiohttp.
"""

from __future__ import annotations

import builtins
from collections.abc import Collection, Coroutine, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from ._exceptions import InvalidArgumentError, InvalidArgumentTypeError, ResponseDecodeError
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
from ._retry import RetryPolicy
from ._watch import InstanceWatch, RequestWatch, wait_for_instance, wait_for_request

if TYPE_CHECKING:
    from ._client import StreamrunClient

__all__ = [
    "Configurations",
    "Destinations",
    "InstanceRequests",
    "Instances",
    "check_instances",
    "launch_body",
]

_LOCATION_PREFIX = "/instance-requests/"


def _check_id(request: str | InstanceRequest) -> None:
    if not isinstance(request, InstanceRequest):
        path_segment(request, "request_id")


class _Resource:
    def __init__(
        self, client: StreamrunClient, transport: Transport, retry: RetryPolicy | None = None
    ) -> None:
        self._client = client
        self._transport = transport
        self._retry = retry

    async def _call(self, method: str, segments: list[str], body: Any = None) -> Response:
        return await self._transport.request(method, segments, json_body=body, retry=self._retry)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._client!r}>"


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


def _request_id_from(response: Response) -> str | None:
    location = response.headers.get("Location", "")
    _, found, tail = location.partition(_LOCATION_PREFIX)
    tail = tail.split("?", 1)[0].split("#", 1)[0].strip("/")
    return unquote(tail) if found and tail and "/" not in tail else None


class Configurations(_Resource):
    """``client.configurations``: list, inspect and launch configurations."""

    async def list(self) -> list[Configuration]:
        """All configurations of the account."""
        response = await self._call("GET", ["configurations"])
        return response.list(Configuration, "configurations")

    async def get(self, configuration_id: str) -> Configuration:
        """One configuration."""
        segment = path_segment(configuration_id, "configuration_id")
        response = await self._call("GET", ["configurations", segment])
        return response.object(Configuration, "configuration")

    async def launch(
        self, configuration_id: str, instances: Sequence[InstanceSettings] | None = None
    ) -> InstanceRequest:
        """Launch instances of a configuration in one POST; returns the instance request.

        Without ``instances``, one instance with the configuration's defaults. A launch is
        retried only when the server certainly did not act (see :class:`RetryPolicy`);
        otherwise the error's ``outcome_unknown`` is true: list the configuration's
        instances before launching again (``launch_many`` does this for you).
        """
        segment = path_segment(configuration_id, "configuration_id")
        body = None if instances is None else launch_body(instances)
        response = await self._call("POST", ["configurations", segment, "instances"], body)
        request_id = _request_id_from(response)
        data = response.data
        if isinstance(data, dict) and data:
            try:
                request = response.object(InstanceRequest, "instanceRequest")
            except ResponseDecodeError:
                # The launch was accepted: a body without a request (a bare message)
                # must not hide the id the Location header gives.
                if request_id is None:
                    raise
            else:
                if request_id is None or request_id == request.id:
                    return request
        if request_id is None:
            raise ResponseDecodeError(
                f"POST {response.url}: the launch was accepted but the answer names no "
                "instance request (no Location header, no id in the body)",
                method="POST",
                url=response.url,
                body=data,
                status=response.status,
                outcome_unknown=True,
            )
        return InstanceRequest(id=request_id, configuration_id=configuration_id)

    async def list_instances(self, configuration_id: str) -> builtins.list[Instance]:
        """The instances of one configuration."""
        segment = path_segment(configuration_id, "configuration_id")
        response = await self._call("GET", ["configurations", segment, "instances"])
        return response.list(Instance, "instances")

    async def set_outputs(self, configuration_id: str, outputs: Outputs | str) -> None:
        """Set every output of every instance of the configuration LIVE or OFFLINE."""
        segment = path_segment(configuration_id, "configuration_id")
        value = Outputs(outputs) if isinstance(outputs, str) else None
        if value is None or value.is_unknown:
            raise InvalidArgumentError(f"outputs must be Outputs.LIVE or OFFLINE, got {outputs!r}")
        await self._call("PUT", ["configurations", segment, "instances"], {"outputs": value.value})

    async def stop_instances(self, configuration_id: str) -> None:
        """Stop the configuration's instances, running or queued."""
        segment = path_segment(configuration_id, "configuration_id")
        await self._call("DELETE", ["configurations", segment, "instances"])


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
    ) -> Coroutine[Any, Any, InstanceRequest]:
        """Wait until the request is RUNNING (every instance has a server); returns it.

        Pass the ``InstanceRequest`` from ``launch`` rather than its id to save a call.
        Raises ``WaitTimeoutError`` (with the last state seen) after ``timeout`` seconds,
        and ``WaiterError`` when the request reaches a ``failure`` state or disappears.
        Every waiter of the client shares one poller.
        """
        _check_id(request)
        # Returns the waiting coroutine itself (arguments checked now): one frame less for
        # each of the thousands of waiters a fleet tool may hold.
        return wait_for_request(
            self._client._poller,
            request,
            success=InstanceState.RUNNING,
            failure=failure,
            timeout=timeout,
        )

    def watch(
        self, requests: Iterable[str | InstanceRequest], *, timeout: float = 600.0
    ) -> RequestWatch:
        """Yield each request when its state changes, until all are RUNNING.

        ``async for request in client.instance_requests.watch(launched): ...``
        """
        items = builtins.list(requests)
        for item in items:
            _check_id(item)
        return RequestWatch(self._client._poller, items, timeout)


class Instances(_Resource):
    """``client.instances``: inspect, stop, restart and re-configure instances."""

    async def list(self) -> list[Instance]:
        """All instances of the account."""
        response = await self._call("GET", ["instances"])
        return response.list(Instance, "instances")

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
        return wait_for_instance(
            self._client._poller,
            instance_id,
            state,
            failure=failure,
            configuration_id=configuration_id,
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
        return InstanceWatch(self._client._poller, configs, resume)

    async def stop(self, instance_id: str) -> None:
        """Stop one instance (a queued one is cancelled)."""
        segment = path_segment(instance_id, "instance_id")
        await self._call("DELETE", ["instances", segment])

    async def stop_all(self) -> None:
        """Stop every instance of the account."""
        await self._call("DELETE", ["instances"])

    async def restart(self, instance_id: str) -> Instance | None:
        """Restart one instance; returns it as the API reports it, if the answer has it."""
        segment = path_segment(instance_id, "instance_id")
        response = await self._call("POST", ["instances", segment, "restart"])
        if not response.data:
            return None
        try:
            return response.object(Instance, "instance")
        except ResponseDecodeError:
            # The 2xx says the restart happened; an unusable body must not claim otherwise.
            return None

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
        """All destinations of the account."""
        response = await self._call("GET", ["destinations"])
        return response.list(Destination, "destinations")
