"""The OpenAPI description: valid, complete, served by the emulator, fuzzed by schemathesis,
and in agreement with the SDK (its models decode the examples, its bodies match)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import Iterator
from importlib import resources
from typing import Any

import aiohttp
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry, Resource
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import streamrun_async as sr
from streamrun_async._http import Response
from streamrun_async._resources import launch_body
from streamrun_async.testing import ROUTES, ConfigurationSeed, Emulator, Fault
from streamrun_async.testing._routes import openapi_document
from streamrun_async.testing._validation import parse_launch, parse_outputs

KEY = "sk-test-openapi"
AUTH = {"Authorization": f"Bearer {KEY}"}
METHODS = ("get", "put", "post", "delete", "patch")
DOCUMENT: dict[str, Any] = json.loads(
    resources.files("streamrun_async.testing").joinpath("openapi.json").read_text("utf-8")
)
SCHEMAS: dict[str, Any] = DOCUMENT["components"]["schemas"]
EXAMPLES_PER_MODE = 10
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# The configuration the description's examples name, so example requests reach real data.
SEEDS = [
    ConfigurationSeed("Morning Show", id="cfg-morning-show"),
    ConfigurationSeed("Finals", ("inputstream-1", "outputstream-1", "switch-1")),
]


def validator(name: str) -> Draft202012Validator:
    """A JSON Schema validator for ``components.schemas[name]``, references resolved."""
    root = Resource.from_contents(DOCUMENT, default_specification=_draft())
    registry: Registry[Any] = Registry().with_resource("urn:streamrun", root)
    return Draft202012Validator(
        {"$ref": f"urn:streamrun#/components/schemas/{name}"}, registry=registry
    )


def _draft() -> Any:
    from referencing.jsonschema import DRAFT202012

    return DRAFT202012


# --- the document ----------------------------------------------------------------------------


def test_the_description_is_valid_openapi_3_1() -> None:
    assert DOCUMENT["openapi"].startswith("3.1")
    validate_openapi(DOCUMENT)


def test_it_describes_every_endpoint_the_emulator_serves_and_no_other() -> None:
    described = {
        f"{method.upper()} {path}"
        for path, item in DOCUMENT["paths"].items()
        for method in METHODS
        if method in item
    }
    assert described == set(ROUTES)
    assert len(described) == 15


def test_every_operation_documents_its_errors_as_json() -> None:
    for path, item in DOCUMENT["paths"].items():
        for method in METHODS:
            if method not in item:
                continue
            statuses = set(item[method]["responses"])
            assert {"401", "429", "500", "503"} <= statuses, (method, path)
            assert any(s.startswith("2") for s in statuses)
            if "{" in path:
                assert "404" in statuses, (method, path)
            if "requestBody" in item[method]:
                assert "400" in statuses, (method, path)


def test_schema_examples_are_valid_against_their_schemas() -> None:
    checked = 0
    for name, schema in SCHEMAS.items():
        for example in schema.get("examples", []):
            errors = list(validator(name).iter_errors(example))
            assert errors == [], (name, [e.message for e in errors])
            checked += 1
    assert checked >= 9


# --- the SDK and the emulator agree with it ---------------------------------------------------

MODELS: dict[str, tuple[type[Any], str]] = {
    "Element": (sr.Element, "element"),
    "Configuration": (sr.Configuration, "configuration"),
    "Instance": (sr.Instance, "instance"),
    "InstanceDetail": (sr.Instance, "instance"),
    "InstanceRequest": (sr.InstanceRequest, "instanceRequest"),
    "Destination": (sr.Destination, "destination"),
}


def answer(data: Any) -> Response:
    from multidict import CIMultiDict, CIMultiDictProxy

    return Response(
        method="GET",
        url="/api/v1/x",
        status=200,
        headers=CIMultiDictProxy(CIMultiDict()),
        data=data,
        request_id=None,
    )


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_the_sdk_decodes_accepts_the_examples(name: str) -> None:
    model, envelope = MODELS[name]
    examples = SCHEMAS[name]["examples"]
    assert examples
    for example in examples:
        for body in (example, {envelope: example}):
            decoded = answer(body).object(model, envelope)
            assert decoded.id == example["id"]
            assert decoded.raw == example
        plural = envelope + "s" if not envelope.endswith("s") else envelope
        listed = answer({plural: [example, example]}).list(model, plural)
        assert [m.id for m in listed] == [example["id"]] * 2
    # Unknown properties are allowed by the description and kept by the SDK.
    grown = {**examples[0], "addedLater": {"x": 1}}
    assert validator(name).is_valid(grown)
    assert answer(grown).object(model, envelope).raw["addedLater"] == {"x": 1}


def test_the_overrides_examples_decode() -> None:
    for example in SCHEMAS["Overrides"]["examples"]:
        assert answer(example).overrides() == example
        assert answer({"overrides": example}).overrides() == example


def test_the_sdk_sends_bodies_the_description_and_the_emulator_accept() -> None:
    settings_ = [
        sr.InstanceSettings(name="cam-1", overrides={"htmloverlay-1": {"url": "https://x.test"}}),
        sr.InstanceSettings(name="cam-2"),
    ]
    body = launch_body(settings_)
    assert validator("LaunchRequest").is_valid(body)
    parsed = parse_launch(json.dumps(body).encode(), SEEDS[0])
    assert [spec.name for spec in parsed] == ["cam-1", "cam-2"]
    for example in SCHEMAS["LaunchRequest"]["examples"]:
        parse_launch(json.dumps(example).encode(), SEEDS[0])
    for outputs in ("LIVE", "OFFLINE"):
        assert validator("OutputsRequest").is_valid({"outputs": outputs})
        assert parse_outputs(json.dumps({"outputs": outputs}).encode()) == outputs


# --- served by the emulator ------------------------------------------------------------------


async def test_the_emulator_serves_it_without_a_key_and_without_faults() -> None:
    async with Emulator(clock="virtual") as emu, aiohttp.ClientSession() as session:
        emu.faults.set_rate(Fault.HTTP_503, 1.0)
        url = f"{emu.url}/api/v1/openapi.json"
        async with session.get(url) as resp:  # no Authorization header at all
            assert resp.status == 200
            assert resp.content_type == "application/json"
            served = await resp.json()
        assert served["servers"] == [{"url": f"{emu.url}/api/v1", "description": "this emulator"}]
        assert {k: v for k, v in served.items() if k != "servers"} == {
            k: v for k, v in DOCUMENT.items() if k != "servers"
        }
        assert emu.stats.total == 0
        assert emu.stats.injected() == 0
        # Serving names the emulator on a copy: the shipped document stays as it is.
        assert openapi_document()["servers"] == DOCUMENT["servers"]
        # The API itself still wants the key (and is still faulted).
        async with session.get(f"{emu.url}/api/v1/instances") as resp:
            assert resp.status == 503


# --- schemathesis against a running emulator ---------------------------------------------------


@pytest.fixture(scope="module")
def emulator_url() -> Iterator[str]:
    """An emulator on the real clock in a thread of its own: schemathesis calls are blocking."""
    loop = asyncio.new_event_loop()
    emu = Emulator(api_key=KEY, configurations=SEEDS, boot_time=0.05, seed=3)
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(emu.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, name="emulator", daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield emu.url
    finally:
        asyncio.run_coroutine_threadsafe(emu.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_schemathesis_finds_the_emulator_true_to_the_description(emulator_url: str) -> None:
    """Examples, valid and invalid requests for every operation: no 5xx, every answer of a
    documented status and content type matching its schema, invalid requests refused
    with 400/404/405 and a JSON error."""
    served = requests.get(f"{emulator_url}/api/v1/openapi.json", timeout=5).json()
    # Without the security requirement schemathesis spends its invalid cases on parameters
    # and bodies instead of on dropping the credentials (which test_emulator_http covers).
    del served["security"]
    schema = schemathesis.openapi.from_dict(served)
    base_url = f"{emulator_url}/api/v1"
    statuses: Counter[tuple[str, int]] = Counter()
    nothing_to_spoil: set[str] = set()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 15

    def exercise(case: Any, mode: GenerationMode) -> None:
        # Ours replace the credentials schemathesis makes up (it cannot know the key).
        response = case.call(base_url=base_url, headers=AUTH, timeout=5)
        case.validate_response(response, checks=CHECKS, headers=AUTH)
        statuses[mode.value, response.status_code] += 1
        detail = (case.method, case.formatted_path, case.query, case.headers, response.status_code)
        if response.status_code >= 400:
            content_type = response.headers.get("content-type", [""])[0]
            assert content_type.startswith("application/json"), detail
            assert set(response.json()["error"]) == {"code", "message"}, detail
        if mode is GenerationMode.NEGATIVE and response.status_code >= 400:
            # Refused as malformed; whether a 2xx was wrong is negative_data_rejection's call
            # (a case spoilt only in its credentials is made whole by ours). A case that
            # drops the credentials altogether is refused as unauthorised.
            sent = response.request.headers.get("Authorization")
            expected = (400, 404, 405) if sent == AUTH["Authorization"] else (401,)
            assert response.status_code in expected, (*detail, sent)

    for operation in operations:
        for strategy in schema.get_strategies_from_examples(operation):
            run_examples(strategy, lambda case: exercise(case, GenerationMode.POSITIVE), 3)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)
            count = EXAMPLES_PER_MODE
            if mode is GenerationMode.NEGATIVE and operation.body:
                count *= 3  # bodies are where most ways to be wrong are
            try:
                run_examples(strategy, lambda case, mode=mode: exercise(case, mode), count)
            except Unsatisfiable:
                if mode is GenerationMode.POSITIVE:
                    raise
                nothing_to_spoil.add(f"{operation.method.upper()} {operation.path}")

    assert statuses["positive", 201] >= 1, statuses  # the example launch really launched
    refused = sum(n for (mode, s), n in statuses.items() if mode == "negative" and s >= 400)
    assert refused >= 40, statuses
    assert statuses["negative", 400] >= 10, statuses
    # Hypothesis gives up on operations with little to spoil (no body, one string in
    # the path) once it finds no new invalid case; the body operations must have had some.
    assert not nothing_to_spoil & {
        "POST /configurations/{configurationId}/instances",
        "PUT /configurations/{configurationId}/instances",
        "PATCH /instances/{instanceId}/overrides",
    }
    assert not any(status >= 500 for _, status in statuses)


def run_examples(strategy: Any, test: Any, count: int) -> None:
    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        test(case)

    run()


def test_wrong_methods_and_unknown_paths_are_json_errors(emulator_url: str) -> None:
    with requests.Session() as session:
        for path, item in DOCUMENT["paths"].items():
            concrete = path.replace("{configurationId}", "cfg-morning-show").replace(
                "{instanceId}", "inst-x"
            )
            concrete = concrete.replace("{requestId}", "ireq-x")
            for method in METHODS:
                if method in item:
                    continue
                r = session.request(method, f"{emulator_url}/api/v1{concrete}", headers=AUTH)
                assert r.status_code == 405, (method, path)
                allowed = {m.strip().lower() for m in r.headers["Allow"].split(",")}
                assert {m for m in METHODS if m in item} <= allowed
                assert r.json()["error"]["code"] == "method_not_allowed"
        for path in ("/nope", "/instances/a/b/c", "/configurations//instances"):
            r = session.get(f"{emulator_url}/api/v1{path}", headers=AUTH)
            assert r.status_code == 404
            assert r.json()["error"]["code"] == "not_found"
        r = session.patch(
            f"{emulator_url}/api/v1/instances/inst-x/overrides", data=b"{", headers=AUTH
        )
        assert r.status_code in (400, 404)
        assert "error" in r.json()
