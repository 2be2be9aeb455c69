"""Property tests (hypothesis): whatever the server sends and whatever the caller passes.

- Any body a server may send decodes to the models, or raises ``ResponseDecodeError``:
  never a ``KeyError``, ``TypeError`` or a half-built model; unknown fields stay in ``raw``.
- Any string used as an id reaches the route it names, whole, as one path segment (seen
  from the server), or is refused before sending.
- Overrides that are not JSON serialisable are refused before anything is sent; all other
  overrides arrive as given.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import pytest
from aiohttp import web
from conftest import API_KEY, LocalServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

import streamrun_async as sr
from streamrun_async._converter import MODELS, _camel
from streamrun_async._http import Response

T = TypeVar("T")
NO_RETRY = sr.RetryPolicy.disabled()
SERVER_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --- what a server may send ---------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
timestamps = st.datetimes().map(lambda d: d.isoformat()) | st.text(max_size=30)
states = st.sampled_from(["QUEUED", "STARTING", "RUNNING", "PREVIEW"]) | st.text()


def field_values(name: str) -> st.SearchStrategy[Any]:
    """Plausible values for a known field, mixed with anything at all."""
    plausible: dict[str, st.SearchStrategy[Any]] = {
        "id": st.text(min_size=1),
        "state": states,
        "outputs": st.sampled_from(["LIVE", "OFFLINE"]) | st.text(),
        "createdAt": timestamps,
        "instanceIds": st.lists(st.text(), max_size=3),
        "numberOfInstances": st.integers(0, 50),
        "elements": st.lists(
            st.fixed_dictionaries({"id": st.text()}, optional={"type": st.text()}), max_size=3
        ),
        "overrides": st.dictionaries(st.text(), st.dictionaries(st.text(), scalars), max_size=2),
    }
    return plausible.get(name, st.text()) | json_values


def model_objects(model: type[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """JSON objects shaped like ``model``: some of its fields, and unknown ones."""
    import attrs

    names = [_camel(f.name) for f in attrs.fields(model) if f.init]
    known = st.fixed_dictionaries({}, optional={n: field_values(n) for n in names})
    extra = st.dictionaries(
        st.text(min_size=1).filter(lambda k: k not in names), json_values, max_size=3
    )
    return st.builds(lambda a, b: {**b, **a}, known, extra)


def response(data: Any, method: str = "GET") -> Response:
    headers: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())
    return Response(
        method=method, url="/api/v1/x", status=200, headers=headers, data=data, request_id=None
    )


ENVELOPES = {
    "Element": "element",
    "Configuration": "configuration",
    "Instance": "instance",
    "InstanceRequest": "instanceRequest",
    "Destination": "destination",
}


def check_decoded(model: Any, data: dict[str, Any]) -> None:
    """A decoded model is faithful to its JSON: every field as sent when it has the field's
    shape (the tolerant reader falls back to the default otherwise), all of it in raw."""
    import attrs

    assert model.raw is data
    for field in attrs.fields(type(model)):
        key = _camel(field.name)
        if not field.init or key not in data or field.name == "state":
            continue  # the state may also come from ``status`` (tests/test_tolerant_decode.py)
        value, sent = getattr(model, field.name), data[key]
        if isinstance(value, str):  # ids and names keep the server's text, enums any case
            assert isinstance(sent, str)
            assert value in (sent, sent.upper())
        elif isinstance(value, datetime):
            assert isinstance(sent, str | int | float)
            assert not isinstance(sent, bool)
        elif isinstance(value, tuple) and value:  # an array (elements: or an object)
            assert isinstance(sent, list | dict), (key, sent)
            assert len(value) <= len(sent)
        elif isinstance(value, int):
            assert float(sent) == value, (key, sent)
            assert not isinstance(sent, bool), (key, sent)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
@given(data=st.data())
@settings(max_examples=100, deadline=None)
def test_any_object_decodes_faithfully_or_raises_a_decode_error(
    model: type[Any], data: st.DataObject
) -> None:
    sent = data.draw(model_objects(model) | json_values)
    envelope = ENVELOPES[model.__name__]
    for body in (sent, {envelope: sent}):
        decoded = decode_or_error(lambda body=body: response(body).object(model, envelope))
        if isinstance(decoded, sr.ResponseDecodeError):
            assert decoded.body == body
            continue
        assert isinstance(decoded, model)
        check_decoded(decoded, decoded.raw)  # type: ignore[arg-type]


def decode_or_error(decode: Callable[[], T]) -> T | sr.ResponseDecodeError:
    """The decoded value, or the ``ResponseDecodeError``: anything else propagates."""
    try:
        return decode()
    except sr.ResponseDecodeError as error:
        return error


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
@given(data=st.data())
@settings(max_examples=60, deadline=None)
def test_any_list_decodes_or_raises_a_decode_error(model: type[Any], data: st.DataObject) -> None:
    items = data.draw(st.lists(model_objects(model), max_size=4))
    body = data.draw(st.sampled_from([items, {"items": items}, {"a": items, "b": 1}]))
    try:
        decoded = response(body).list(model, "items")
    except sr.ResponseDecodeError:
        return
    usable = [item for item in items if isinstance(item.get("id"), str)]
    assert len(decoded) == len(usable)  # only items without a string id are left out
    for model_obj, item in zip(decoded, usable, strict=True):
        check_decoded(model_obj, item)


@given(body=json_values | st.dictionaries(st.text(), st.dictionaries(st.text(), json_values)))
@settings(max_examples=100, deadline=None)
def test_any_overrides_answer_decodes_or_raises_a_decode_error(body: Any) -> None:
    try:
        decoded = response(body).overrides()
    except sr.ResponseDecodeError:
        return
    assert isinstance(decoded, dict)
    assert all(isinstance(v, dict) for v in decoded.values())


# --- through a real server: any bytes at all -------------------------------------------

Call = Callable[[sr.StreamrunClient], Awaitable[Any]]
CALLS: list[tuple[str, Call]] = [
    ("configurations.list", lambda c: c.configurations.list()),
    ("configurations.get", lambda c: c.configurations.get("cfg-1")),
    ("configurations.launch", lambda c: c.configurations.launch("cfg-1")),
    ("configurations.list_instances", lambda c: c.configurations.list_instances("cfg-1")),
    ("instance_requests.get", lambda c: c.instance_requests.get("ireq-1")),
    ("instances.list", lambda c: c.instances.list()),
    ("instances.get", lambda c: c.instances.get("inst-1")),
    ("instances.restart", lambda c: c.instances.restart("inst-1")),
    ("instances.get_overrides", lambda c: c.instances.get_overrides("inst-1")),
    ("instances.update_overrides", lambda c: c.instances.update_overrides("inst-1", {})),
    ("destinations.list", lambda c: c.destinations.list()),
]


class Answer:
    """What the test server answers next."""

    status = 200
    body = b""
    content_type = "application/json"
    location: str | None = None


@pytest.fixture
async def answering(
    local_server: Callable[..., Awaitable[LocalServer]],
) -> AsyncIterator[tuple[Answer, sr.StreamrunClient]]:
    answer = Answer()

    async def handler(request: web.Request) -> web.StreamResponse:
        headers = {"Location": answer.location} if answer.location else None
        return web.Response(
            status=answer.status,
            body=answer.body,
            headers=headers,
            content_type=answer.content_type,
        )

    server = await local_server(handler)
    async with sr.StreamrunClient(API_KEY, base_url=server.url, retry=NO_RETRY) as client:
        yield answer, client


bodies = (
    st.binary(max_size=200)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.sampled_from(MODELS).flatmap(model_objects).map(lambda v: json.dumps(v).encode())
    | st.sampled_from(MODELS)
    .flatmap(lambda m: st.lists(model_objects(m), max_size=3))
    .map(lambda v: json.dumps(v).encode())
)


@SERVER_SETTINGS
@given(
    call=st.sampled_from(CALLS),
    status=st.sampled_from([200, 201, 204, 400, 404, 409, 429, 500, 502, 503]),
    body=bodies,
    content_type=st.sampled_from(["application/json", "text/html", "text/plain"]),
    location=st.none() | st.text(max_size=60).map(lambda t: "/api/v1/instance-requests/" + t),
)
async def test_any_answer_is_a_result_or_a_typed_error(
    answering: tuple[Answer, sr.StreamrunClient],
    call: tuple[str, Call],
    status: int,
    body: bytes,
    content_type: str,
    location: str | None,
) -> None:
    answer, client = answering
    answer.status, answer.body, answer.content_type = status, body, content_type
    answer.location = location if location is None or location.isprintable() else None
    if status == 204:
        answer.body = b""
    error: sr.APIStatusError | sr.ResponseDecodeError | None = None
    try:
        await call[1](client)
    except (sr.APIStatusError, sr.ResponseDecodeError) as exc:  # nothing else may escape
        error = exc
    if error is None:
        assert status < 400
        return
    assert error.status == status
    assert isinstance(error, sr.APIStatusError if status >= 400 else sr.ResponseDecodeError)


# --- ids: one path segment, the right route ------------------------------------------------

ID_ROUTES: list[tuple[str, str, Callable[[sr.StreamrunClient, str], Awaitable[Any]]]] = [
    ("GET", "/api/v1/configurations/{id}", lambda c, i: c.configurations.get(i)),
    ("POST", "/api/v1/configurations/{id}/instances", lambda c, i: c.configurations.launch(i)),
    (
        "GET",
        "/api/v1/configurations/{id}/instances",
        lambda c, i: c.configurations.list_instances(i),
    ),
    (
        "PUT",
        "/api/v1/configurations/{id}/instances",
        lambda c, i: c.configurations.set_outputs(i, "LIVE"),
    ),
    (
        "DELETE",
        "/api/v1/configurations/{id}/instances",
        lambda c, i: c.configurations.stop_instances(i),
    ),
    ("GET", "/api/v1/instance-requests/{id}", lambda c, i: c.instance_requests.get(i)),
    ("GET", "/api/v1/instances/{id}", lambda c, i: c.instances.get(i)),
    ("DELETE", "/api/v1/instances/{id}", lambda c, i: c.instances.stop(i)),
    ("POST", "/api/v1/instances/{id}/restart", lambda c, i: c.instances.restart(i)),
    ("GET", "/api/v1/instances/{id}/overrides", lambda c, i: c.instances.get_overrides(i)),
    (
        "PATCH",
        "/api/v1/instances/{id}/overrides",
        lambda c, i: c.instances.update_overrides(i, {}),
    ),
]


@pytest.fixture
async def routed(
    local_server: Callable[..., Awaitable[LocalServer]],
) -> AsyncIterator[tuple[list[tuple[str, str]], sr.StreamrunClient]]:
    """A server with the API's id routes; each records (route, id matched) and answers in
    the shape its SDK method expects. Anything else is a 418."""
    hits: list[tuple[str, str]] = []

    def make(method: str, path: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            ident = request.match_info["id"]
            hits.append((f"{method} {path}", ident))
            if path.endswith("overrides"):
                return web.json_response({})
            if method in ("PUT", "DELETE") or path.endswith("restart"):
                return web.Response(status=204)
            if method == "GET" and path.endswith("instances"):
                return web.json_response([])
            headers = {"Location": "/api/v1/instance-requests/r"}
            return web.json_response({"id": ident, "state": "RUNNING"}, headers=headers)

        return handler

    async def other(request: web.Request) -> web.StreamResponse:
        hits.append(("<other>", request.raw_path))
        return web.json_response({"error": {"message": "no such route"}}, status=418)

    def routes(app: web.Application) -> None:
        for method, path, _ in ID_ROUTES:
            # aiohttp's default segment pattern refuses braces: any segment at all here.
            app.router.add_route(method, path.replace("{id}", "{id:[^/]+}"), make(method, path))

    server = await local_server(other, routes)
    async with sr.StreamrunClient(API_KEY, base_url=server.url, retry=NO_RETRY) as client:
        yield hits, client


ids = st.text(min_size=1, max_size=40) | st.text(
    alphabet=st.sampled_from(list("./%?#&;=+ \\\x00\r\nab")), min_size=1, max_size=12
)
# Lone surrogates: a str, yet not text that UTF-8 (or a URL) can carry.
any_text = st.lists(st.sampled_from(["\ud800", "\udfff", "a", "/", "é"]), min_size=1).map("".join)


@SERVER_SETTINGS
@given(route=st.sampled_from(ID_ROUTES), ident=ids | any_text)
async def test_any_id_reaches_its_route_whole_or_is_refused(
    routed: tuple[list[tuple[str, str]], sr.StreamrunClient],
    route: tuple[str, str, Any],
    ident: str,
) -> None:
    hits, client = routed
    hits.clear()
    method, path, call = route
    try:
        await call(client, ident)
    except sr.InvalidArgumentError:
        assert hits == []  # refused before sending
        return
    assert hits == [(f"{method} {path}", ident)]


# --- overrides: refused before sending unless JSON can carry them ------------------------

unserialisable = st.sampled_from(
    [object(), {1, 2}, b"bytes", math.nan, math.inf, -math.inf, datetime(2024, 1, 1), 1j]
)


def nest(leaf: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Put ``leaf`` somewhere inside a JSON-like value."""
    return st.recursive(
        leaf,
        lambda inner: (
            st.lists(inner, min_size=1, max_size=2)
            | st.dictionaries(st.text(max_size=5), inner, min_size=1, max_size=2)
        ),
        max_leaves=4,
    )


@given(
    element=st.text(min_size=1, max_size=10),
    key=st.text(max_size=10),
    bad=nest(unserialisable),
)
@settings(max_examples=200, deadline=None)
async def test_unserialisable_overrides_are_refused_before_sending(
    element: str, key: str, bad: Any
) -> None:
    overrides = {element: {key: bad}}
    # No server at all: a request would fail with a connection error, not these.
    client = sr.StreamrunClient(API_KEY, base_url="http://127.0.0.1:9", retry=NO_RETRY)
    async with client:
        with pytest.raises(sr.InvalidArgumentTypeError, match="JSON serialisable"):
            await client.instances.update_overrides("inst-1", overrides)
        with pytest.raises(sr.InvalidArgumentTypeError, match="JSON serialisable"):
            sr.InstanceSettings(name="cam", overrides=overrides)


# orjson (used when installed) reads integers beyond 64 bits as floats: keep within them.
finite = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
)
json_settings = st.dictionaries(
    st.text(max_size=8),
    st.recursive(finite | st.text(), lambda i: st.lists(i, max_size=3), max_leaves=5),
)


@pytest.fixture
async def echo(
    local_server: Callable[..., Awaitable[LocalServer]],
) -> AsyncIterator[tuple[list[Any], sr.StreamrunClient]]:
    """A server that answers a PATCH with the body it received."""
    received: list[Any] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        received.append(await request.json())
        return web.json_response(received[-1])

    server = await local_server(handler)
    async with sr.StreamrunClient(API_KEY, base_url=server.url, retry=NO_RETRY) as client:
        yield received, client


@SERVER_SETTINGS
@given(overrides=st.dictionaries(st.text(min_size=1, max_size=10), json_settings, max_size=3))
async def test_serialisable_overrides_arrive_as_given(
    echo: tuple[list[Any], sr.StreamrunClient], overrides: dict[str, Any]
) -> None:
    received, client = echo
    received.clear()
    result = await client.instances.update_overrides("inst-1", overrides)
    assert received == [overrides]
    assert result == overrides
