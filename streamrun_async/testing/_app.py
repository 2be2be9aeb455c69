"""The aiohttp.web application: routing, auth, faults, stats, JSON in and out.

Handlers stay thin: parse (``_validation``), act (``_state.Account``), render. One
middleware wraps every request, matched or not, with fault injection, auth, the JSON
error body, ``X-Request-Id`` and the stats. Adding a route is an entry in ``ROUTES`` and
in ``_Api.handlers``. ``GET /api/v1/openapi.json`` (the API's description) stands apart:
it is public documentation, so it needs no key (tools fetch a schema before they know how
to authenticate, and should not be handed the key for that), and it is never faulted.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from aiohttp import hdrs, web

from ._errors import ApiError
from ._faults import Decision, Fault, Faults
from ._routes import API_PREFIX, OPENAPI_PATH, ROUTES, openapi_document
from ._seed import ConfigurationSeed, DestinationSeed, describe_element
from ._state import Account, Instance, InstanceRequest
from ._stats import DROPPED, UNMATCHED, Stats
from ._validation import parse_launch, parse_outputs, parse_overrides_patch

__all__ = ["build_app"]

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# What nginx sends when the upstream fails: the shape a proxy error really has.
_HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_STATUS_FAULTS: Mapping[Fault, tuple[int, str]] = {
    Fault.HTTP_500: (500, "internal_error"),
    Fault.HTTP_502: (502, "bad_gateway"),
    Fault.HTTP_503: (503, "service_unavailable"),
    Fault.HTTP_429: (429, "rate_limited"),
}
_NO_FAULT = Decision(None, 0.0)


def build_app(
    *, account: Account, faults: Faults, stats: Stats, api_key: str, envelopes: bool
) -> web.Application:
    """The emulator's application, serving ``ROUTES`` under ``/api/v1``."""
    return _Api(account, faults, stats, api_key, envelopes).application()


def _error(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )


def _garbled(response: web.StreamResponse) -> web.Response:
    """The same answer with its JSON cut in half: a prefix of an object or array is
    never valid JSON. A 204 becomes 200, as a 204 cannot carry a body."""
    body = response.body if isinstance(response, web.Response) else None
    cut = body[: len(body) // 2] if isinstance(body, bytes) and body else b'{"'
    headers = {
        name: value
        for name, value in response.headers.items()
        if name not in (hdrs.CONTENT_TYPE, hdrs.CONTENT_LENGTH)
    }
    status = 200 if response.status == 204 else response.status
    return web.Response(status=status, body=cut, headers=headers, content_type="application/json")


class _Api:
    def __init__(
        self, account: Account, faults: Faults, stats: Stats, api_key: str, envelopes: bool
    ) -> None:
        self._account = account
        self._faults = faults
        self._stats = stats
        self._authorization = f"Bearer {api_key}".encode()
        self._envelopes = envelopes
        self._route_names: dict[web.AbstractRoute, str] = {}
        self._public: web.AbstractResource | None = None

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        handlers = self.handlers()
        for name in ROUTES:
            method, path = name.split(" ", 1)
            route = app.router.add_route(method, API_PREFIX + path, handlers[name])
            self._route_names[route] = name
        self._public = app.router.add_get(API_PREFIX + OPENAPI_PATH, self.openapi).resource
        return app

    def handlers(self) -> dict[str, _Handler]:
        return {
            "GET /configurations": self.list_configurations,
            "GET /configurations/{configurationId}": self.get_configuration,
            "POST /configurations/{configurationId}/instances": self.launch,
            "GET /configurations/{configurationId}/instances": self.list_configuration_instances,
            "PUT /configurations/{configurationId}/instances": self.set_outputs,
            "DELETE /configurations/{configurationId}/instances": self.stop_configuration,
            "GET /instance-requests/{requestId}": self.get_instance_request,
            "GET /instances": self.list_instances,
            "DELETE /instances": self.stop_all,
            "GET /instances/{instanceId}": self.get_instance,
            "DELETE /instances/{instanceId}": self.stop_instance,
            "POST /instances/{instanceId}/restart": self.restart,
            "GET /instances/{instanceId}/overrides": self.get_overrides,
            "PATCH /instances/{instanceId}/overrides": self.update_overrides,
            "GET /destinations": self.list_destinations,
        }

    # -- the wrapper around every request -----------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        if self._public is not None and request.match_info.route.resource is self._public:
            return await handler(request)
        route = self._route_names.get(request.match_info.route, UNMATCHED)
        fault, delay = _NO_FAULT if route == UNMATCHED else self._faults.decide(route)
        if delay:
            self._stats.record_fault(Fault.LATENCY)
            await asyncio.sleep(delay)
        if fault is not None:
            self._stats.record_fault(fault)
        if fault is Fault.DROP_BEFORE:
            return self._drop(request, route)
        response: web.StreamResponse | None = self._fault_answer(fault)
        if response is None:
            response = await self._handle(request, handler)
        if fault is Fault.DROP_AFTER:
            return self._drop(request, route)
        if fault is Fault.MALFORMED_JSON:
            response = _garbled(response)
        response.headers["X-Request-Id"] = f"req_{secrets.token_hex(8)}"
        self._stats.record(route, response.status)
        return response

    async def _handle(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        try:
            self._authenticate(request)
            return await handler(request)
        except ApiError as exc:
            return _error(exc.status, exc.code, exc.message)
        except web.HTTPException as exc:  # the router's 404 and 405, a body too large...
            allow = exc.headers.get(hdrs.ALLOW)
            message = f"{exc.reason}: {request.method} {request.path}"
            return _error(
                exc.status,
                exc.reason.lower().replace(" ", "_"),
                message if allow is None else f"{message} (allowed: {allow})",
                None if allow is None else {hdrs.ALLOW: allow},
            )

    def _authenticate(self, request: web.Request) -> None:
        given = request.headers.get(hdrs.AUTHORIZATION)
        if given is None:
            raise ApiError(401, "unauthorized", "missing 'Authorization: Bearer <API key>'")
        if not hmac.compare_digest(given.encode(errors="replace"), self._authorization):
            raise ApiError(401, "unauthorized", "invalid API key")

    def _fault_answer(self, fault: Fault | None) -> web.Response | None:
        """The answer of a fault that replaces handling, if ``fault`` is one."""
        if fault is Fault.HTML_ERROR:
            return web.Response(status=502, text=_HTML_502, content_type="text/html")
        if fault is None or fault not in _STATUS_FAULTS:
            return None
        status, code = _STATUS_FAULTS[fault]
        headers = {"Retry-After": str(self._faults.retry_after)} if status == 429 else None
        return _error(status, code, f"injected fault {fault.value}", headers)

    def _drop(self, request: web.Request, route: str) -> web.Response:
        """Close the connection unanswered. aiohttp then fails to write the returned
        response, takes it for a client that went away, and says nothing."""
        if request.transport is not None:
            request.transport.close()
        self._stats.record(route, DROPPED)
        return web.Response()

    # -- rendering --------------------------------------------------------------

    def _answer(
        self,
        key: str,
        payload: object,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        body = {key: payload} if self._envelopes else payload
        return web.json_response(body, status=status, headers=headers)

    def _timestamp(self, seconds: float) -> str:
        moment: datetime = self._account.epoch + timedelta(seconds=seconds)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def _configuration(self, cfg: ConfigurationSeed) -> dict[str, Any]:
        elements = []
        for element_id in cfg.elements:
            kind, title = describe_element(element_id)
            elements.append({"id": element_id, "title": title, "type": kind})
        return {
            "id": cfg.id,
            "name": cfg.name,
            "elements": elements,
            "createdAt": self._timestamp(0),
        }

    def _instance(self, instance: Instance) -> dict[str, Any]:
        return {
            "id": instance.id,
            "configurationId": instance.configuration_id,
            "name": instance.name,
            "state": instance.state,
            "requestId": instance.request_id,
            "outputs": instance.outputs,
            "createdAt": self._timestamp(instance.created_at),
            "overrides": instance.overrides,
        }

    def _instance_request(self, request: InstanceRequest) -> dict[str, Any]:
        return {
            "id": request.id,
            "configurationId": request.configuration_id,
            "state": request.state,
            "instanceIds": list(request.instance_ids),
            "numberOfInstances": len(request.instance_ids),
            "createdAt": self._timestamp(request.created_at),
        }

    @staticmethod
    def _destination(destination: DestinationSeed) -> dict[str, Any]:
        return {"id": destination.id, "name": destination.name, "platform": destination.platform}

    # -- the endpoints, in the order of the API table ------------------------------

    async def list_configurations(self, request: web.Request) -> web.Response:
        configurations = self._account.configurations.values()
        return self._answer("configurations", [self._configuration(c) for c in configurations])

    async def get_configuration(self, request: web.Request) -> web.Response:
        cfg = self._account.configuration(request.match_info["configurationId"])
        return self._answer("configuration", self._configuration(cfg))

    async def launch(self, request: web.Request) -> web.Response:
        cfg = self._account.configuration(request.match_info["configurationId"])
        specs = parse_launch(await request.read(), cfg)
        launched = self._account.launch(request.match_info["configurationId"], specs)
        return self._answer(
            "instanceRequest",
            self._instance_request(launched),
            status=201,
            headers={hdrs.LOCATION: f"{API_PREFIX}/instance-requests/{launched.id}"},
        )

    async def list_configuration_instances(self, request: web.Request) -> web.Response:
        instances = self._account.instances(request.match_info["configurationId"])
        return self._answer("instances", [self._instance(i) for i in instances])

    async def set_outputs(self, request: web.Request) -> web.Response:
        configuration_id = request.match_info["configurationId"]
        self._account.configuration(configuration_id)
        outputs = parse_outputs(await request.read())
        self._account.set_outputs(configuration_id, outputs)
        return web.Response(status=204)

    async def stop_configuration(self, request: web.Request) -> web.Response:
        self._account.stop(self._account.instances(request.match_info["configurationId"]))
        return web.Response(status=204)

    async def get_instance_request(self, request: web.Request) -> web.Response:
        found = self._account.request(request.match_info["requestId"])
        return self._answer("instanceRequest", self._instance_request(found))

    async def list_instances(self, request: web.Request) -> web.Response:
        return self._answer("instances", [self._instance(i) for i in self._account.instances()])

    async def stop_all(self, request: web.Request) -> web.Response:
        self._account.stop(self._account.instances())
        return web.Response(status=204)

    async def get_instance(self, request: web.Request) -> web.Response:
        instance = self._account.instance(request.match_info["instanceId"])
        return self._answer("instance", self._instance(instance))

    async def stop_instance(self, request: web.Request) -> web.Response:
        self._account.stop([self._account.instance(request.match_info["instanceId"])])
        return web.Response(status=204)

    async def restart(self, request: web.Request) -> web.Response:
        instance = self._account.restart(request.match_info["instanceId"])
        return self._answer("instance", self._instance(instance))

    async def get_overrides(self, request: web.Request) -> web.Response:
        instance = self._account.instance(request.match_info["instanceId"])
        return self._answer("overrides", instance.overrides)

    async def update_overrides(self, request: web.Request) -> web.Response:
        instance_id = request.match_info["instanceId"]
        instance = self._account.instance(instance_id)
        cfg = self._account.configuration(instance.configuration_id)
        patch = parse_overrides_patch(await request.read(), cfg)
        return self._answer("overrides", self._account.update_overrides(instance_id, patch))

    async def openapi(self, request: web.Request) -> web.Response:
        # The emulator names itself as the server, so tools pointed here test it.
        server = {"url": f"{request.url.origin()}{API_PREFIX}", "description": "this emulator"}
        return web.json_response({**openapi_document(), "servers": [server]})

    async def list_destinations(self, request: web.Request) -> web.Response:
        destinations = self._account.destinations.values()
        return self._answer("destinations", [self._destination(d) for d in destinations])
