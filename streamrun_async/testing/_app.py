"""The aiohttp.web application: routing, auth, faults, stats, JSON in and out.

Handlers stay thin: parse (``_validation``), act (``_state.Account``), render. One
middleware wraps every request, matched or not, with fault injection, auth, the error
body, ``X-Request-Id`` and the stats. Every body is rendered in the account's `Dialect`
(envelopes, states, timestamps, pages, empty lists, error bodies, launch and stop answers).
Adding a route is an entry in ``ROUTES`` and in ``_Api.handlers``.
``GET /api/v1/openapi.json`` (the API's description) stands apart: it is public
documentation, so it needs no key (tools fetch a schema before they know how to
authenticate, and should not be handed the key for that), and it is never faulted.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hmac
import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from aiohttp import hdrs, web
from yarl import URL

from ._errors import ApiError
from ._faults import Decision, Fault, Faults
from ._routes import API_PREFIX, OPENAPI_PATH, ROUTES, openapi_document
from ._seed import ConfigurationSeed, DestinationSeed, describe_element, element_settings
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


def build_app(*, account: Account, faults: Faults, stats: Stats, api_key: str) -> web.Application:
    """The emulator's application, serving ``ROUTES`` under ``/api/v1`` in the account's
    dialect."""
    return _Api(account, faults, stats, api_key).application()


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


def _text(text: str, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain", headers=headers)


class _Api:
    def __init__(self, account: Account, faults: Faults, stats: Stats, api_key: str) -> None:
        self._account = account
        self._dialect = account.dialect
        self._faults = faults
        self._stats = stats
        self._authorization = f"Bearer {api_key}".encode()
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
            return await self._handle(request, handler, public=True)
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

    async def _handle(
        self, request: web.Request, handler: _Handler, *, public: bool = False
    ) -> web.StreamResponse:
        try:
            if not public:
                self._authenticate(request)
            return await handler(request)
        except ApiError as exc:
            return self._error(exc.status, exc.code, exc.message)
        except web.HTTPException as exc:  # the router's 404 and 405, a body too large...
            allow = exc.headers.get(hdrs.ALLOW)
            message = f"{exc.reason}: {request.method} {request.path}"
            return self._error(
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
        return self._error(status, code, f"injected fault {fault.value}", headers)

    def _drop(self, request: web.Request, route: str) -> web.Response:
        """Close the connection unanswered. aiohttp then fails to write the returned
        response, takes it for a client that went away, and says nothing."""
        if request.transport is not None:
            request.transport.close()
        self._stats.record(route, DROPPED)
        return web.Response()

    # -- rendering, in the dialect ------------------------------------------------

    def _error(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        if self._dialect.error_body == "text":
            return _text(message, status, headers)
        return web.json_response(
            {"error": {"code": code, "message": message}}, status=status, headers=headers
        )

    def _object(
        self,
        key: str,
        payload: object,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        body = {key: payload} if self._dialect.object_envelopes else payload
        return web.json_response(body, status=status, headers=headers)

    def _list(
        self, key: str, items: list[dict[str, Any]], request: web.Request | None = None
    ) -> web.Response:
        """A list answer: cut into a page when ``request`` may be paginated, empty lists
        in the dialect's empty form."""
        dialect = self._dialect
        headers: dict[str, str] = {}
        beside: dict[str, str] = {}
        if request is not None and dialect.page_size is not None:
            start = self._page_start(request, dialect.page_size)
            end = start + dialect.page_size
            if end < len(items):
                page = end // dialect.page_size + 1
                following = request.rel_url.with_query(page=page)
                if dialect.pagination == "link":
                    headers[hdrs.LINK] = f'<{_origin(request)}{following}>; rel="next"'
                elif dialect.pagination == "field":
                    beside["next"] = str(following)
                else:
                    beside["nextCursor"] = _cursor(end)
            items = items[start:end]
        if not items and not beside and dialect.empty_list != "envelope":
            return self._empty(key)
        body: object = {key: items, **beside} if dialect.envelopes else items
        return web.json_response(body, headers=headers)

    def _page_start(self, request: web.Request, size: int) -> int:
        """Where the asked page starts: ``?cursor=`` (opaque) or ``?page=`` (from 1)."""
        if self._dialect.pagination == "cursor":
            token = request.query.get("cursor")
            if token is None:
                return 0
            try:
                start = int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("at:"))
            except ValueError:  # bad base64 and bad UTF-8 too
                start = -1
            if start < 0:
                raise ApiError(400, "invalid_request", "cursor is not one this server gave")
            return start
        text = request.query.get("page", "1")
        try:
            page = int(text)
        except ValueError:
            page = 0
        if page < 1:
            raise ApiError(400, "invalid_request", f"page must be a positive integer, got {text!r}")
        return (page - 1) * size

    def _empty(self, key: str) -> web.Response:
        form = self._dialect.empty_list
        if form == "no_content":
            return web.Response(status=204)
        body = {"null": None, "object": {}, "null_envelope": {key: None}}[form]
        return web.json_response(body)

    def _done(self, kind: str, stopped: list[Instance], *, one: bool) -> web.Response:
        """The answer of a stop (or of a restart, ``kind="restart"``)."""
        form = self._dialect.restart_answer if kind == "restart" else self._dialect.stop_answer
        if form == "no_content":
            return web.Response(status=204)
        if form == "text_ok":
            return _text("OK")
        if kind == "restart":
            return self._object("instance", self._instance(stopped[0], detail=True))
        shown = [self._instance(i, state="STOPPING") for i in stopped]
        return self._object("instance", shown[0]) if one else self._list("instances", shown)

    def _timestamp(self, seconds: float) -> str | int:
        moment: datetime = self._account.epoch + timedelta(seconds=seconds)
        form = self._dialect.timestamps
        if form == "epoch_s":
            return int(moment.timestamp())
        if form == "epoch_ms":
            return int(moment.timestamp() * 1000)
        if form == "rfc1123":
            return email.utils.format_datetime(moment, usegmt=True)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def _configuration(self, cfg: ConfigurationSeed, *, summary: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"id": cfg.id, "name": cfg.name}
        if not summary:
            destinations = tuple(self._account.destinations)
            elements = {}
            for element_id in cfg.elements:
                kind, title = describe_element(element_id)
                element: dict[str, Any] = {"title": title, "type": kind}
                if self._dialect.element_settings:
                    element["settings"] = element_settings(element_id, cfg.elements, destinations)
                elements[element_id] = element
            body["elements"] = (
                elements
                if self._dialect.elements_form == "object"
                else [{"id": element_id, **e} for element_id, e in elements.items()]
            )
        body["createdAt"] = self._timestamp(0)
        return body

    def _instance(
        self, instance: Instance, *, detail: bool = False, state: str | None = None
    ) -> dict[str, Any]:
        dialect = self._dialect
        body: dict[str, Any] = {"id": instance.id}
        if dialect.instance_configuration_id:
            body["configurationId"] = instance.configuration_id
        if dialect.instance_names != "absent":
            body["name"] = dialect.spell_name(instance.name)
        status = dialect.spell_state(state or instance.state)
        if detail and dialect.detail_state == "object":
            runtime: dict[str, Any] = {}
            if dialect.status_field != "status":
                runtime[dialect.status_field.removeprefix("state.")] = status
            else:
                body["status"] = status
            runtime["elements"] = [
                {"id": element_id, "type": describe_element(element_id)[0], "state": element_state}
                for element_id, element_state in self._element_states(instance)
            ]
            body["state"] = runtime
            body["streamkey"] = instance.stream_key
        else:
            body["state"] = status
        if dialect.instance_request_id:
            body["requestId"] = instance.request_id
        body["outputs"] = instance.outputs
        body["createdAt"] = self._timestamp(instance.created_at)
        body["overrides"] = instance.overrides
        return body

    def _element_states(self, instance: Instance) -> list[tuple[str, dict[str, Any]]]:
        """Each element's runtime state: an input's stream key and frame rate."""
        states = []
        for element_id in self._account.configurations[instance.configuration_id].elements:
            key = instance.input_keys.get(element_id)
            runtime: dict[str, Any] = {}
            if key is not None:
                runtime = {"streamkey": key, "fps": instance.input_fps.get(element_id, 0.0)}
            states.append((element_id, runtime))
        return states

    def _instance_request(self, request: InstanceRequest) -> dict[str, Any]:
        return {
            "id": request.id,
            "configurationId": request.configuration_id,
            "state": self._dialect.spell_state(self._account.request_state(request)),
            "instanceIds": list(request.instance_ids),
            "numberOfInstances": len(request.instance_ids),
            "createdAt": self._timestamp(request.created_at),
        }

    def _destination(self, destination: DestinationSeed) -> dict[str, Any]:
        body: dict[str, Any] = {"id": destination.id, "name": destination.name}
        if self._dialect.destination_platform:
            body["platform"] = destination.platform
        return body

    def _launched(self, launched: InstanceRequest, origin: str) -> web.Response:
        """A launch's answer; ``origin`` prefixes its Location (empty: a relative one)."""
        form = self._dialect.launch_answer
        headers: dict[str, str] = {
            hdrs.LOCATION: f"{origin}{API_PREFIX}/instance-requests/{launched.id}"
        }
        if form == "see_other":
            return web.Response(status=303, headers=headers)
        if form == "instance_body":
            made = [self._account.find(i) for i in launched.instance_ids]
            shown = [self._instance(i, detail=True) for i in made if i is not None]
            if len(shown) == 1:
                return self._object("instance", shown[0], status=201)
            return web.json_response({"instances": shown}, status=201)
        status = 202 if form.startswith("accepted") else 201
        if form.endswith("no_location"):
            headers = {}
        return self._object(
            "instanceRequest", self._instance_request(launched), status=status, headers=headers
        )

    # -- the endpoints, in the order of the API table ------------------------------

    async def list_configurations(self, request: web.Request) -> web.Response:
        summary = self._dialect.list_summaries
        shown = [
            self._configuration(c, summary=summary) for c in self._account.configurations.values()
        ]
        return self._list("configurations", shown, request)

    async def get_configuration(self, request: web.Request) -> web.Response:
        cfg = self._account.configuration(request.match_info["configurationId"])
        return self._object("configuration", self._configuration(cfg))

    async def launch(self, request: web.Request) -> web.Response:
        cfg = self._account.configuration(request.match_info["configurationId"])
        specs = parse_launch(await request.read(), cfg)
        # Read before the launch acts: a Host header too odd for an absolute URL is a 400.
        absolute = self._dialect.launch_answer == "absolute_location"
        origin = str(_origin(request)) if absolute else ""
        launched = self._account.launch(request.match_info["configurationId"], specs)
        return self._launched(launched, origin)

    async def list_configuration_instances(self, request: web.Request) -> web.Response:
        instances = self._account.listed(request.match_info["configurationId"])
        return self._list("instances", [self._instance(i) for i in instances], request)

    async def set_outputs(self, request: web.Request) -> web.Response:
        configuration_id = request.match_info["configurationId"]
        self._account.configuration(configuration_id)
        outputs = parse_outputs(await request.read())
        self._account.set_outputs(configuration_id, outputs)
        return web.Response(status=204)

    async def stop_configuration(self, request: web.Request) -> web.Response:
        stopped = self._account.stop_many(request.match_info["configurationId"])
        return self._done("stop", stopped, one=False)

    async def get_instance_request(self, request: web.Request) -> web.Response:
        found = self._account.request(request.match_info["requestId"])
        return self._object("instanceRequest", self._instance_request(found))

    async def list_instances(self, request: web.Request) -> web.Response:
        instances = self._account.listed()
        return self._list("instances", [self._instance(i) for i in instances], request)

    async def stop_all(self, request: web.Request) -> web.Response:
        return self._done("stop", self._account.stop_many(), one=False)

    async def get_instance(self, request: web.Request) -> web.Response:
        instance = self._account.shown(request.match_info["instanceId"])
        return self._object("instance", self._instance(instance, detail=True))

    async def stop_instance(self, request: web.Request) -> web.Response:
        stopped = self._account.stop_one(request.match_info["instanceId"])
        return self._done("stop", [stopped], one=True)

    async def restart(self, request: web.Request) -> web.Response:
        instance = self._account.restart(request.match_info["instanceId"])
        return self._done("restart", [instance], one=True)

    async def get_overrides(self, request: web.Request) -> web.Response:
        instance = self._account.shown(request.match_info["instanceId"])
        return self._object("overrides", instance.overrides)

    async def update_overrides(self, request: web.Request) -> web.Response:
        instance_id = request.match_info["instanceId"]
        instance = self._account.writable(instance_id)
        cfg = self._account.configuration(instance.configuration_id)
        patch = parse_overrides_patch(await request.read(), cfg)
        return self._object("overrides", self._account.update_overrides(instance_id, patch))

    async def openapi(self, request: web.Request) -> web.Response:
        # The emulator names itself as the server, so tools pointed here test it.
        server = {"url": f"{_origin(request)}{API_PREFIX}", "description": "this emulator"}
        return web.json_response({**openapi_document(), "servers": [server]})

    async def list_destinations(self, request: web.Request) -> web.Response:
        destinations = [self._destination(d) for d in self._account.destinations.values()]
        return self._list("destinations", destinations, request)


def _origin(request: web.Request) -> URL:
    """The origin the client addressed, for absolute URLs; a 400, as HTTP asks of a
    server, when the Host header names no valid host[:port]."""
    try:
        return request.url.origin()
    except ValueError:
        raise ApiError(400, "invalid_request", "the Host header is no valid host[:port]") from None


def _cursor(start: int) -> str:
    return base64.urlsafe_b64encode(f"at:{start}".encode()).decode()
