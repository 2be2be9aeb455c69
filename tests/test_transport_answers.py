"""Any 2xx to a stop or restart is success; stream keys are scrubbed from what errors quote."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aioresponses import aioresponses
from conftest import API, API_KEY, LocalServer

import streamrun_async as sr
from streamrun_async._http import Secrets
from streamrun_async._secret import SecretStr

Server = Callable[..., Awaitable[LocalServer]]
NO_RETRY = sr.RetryPolicy.disabled()

# (status, content type, body)
SUCCESSES = [
    (200, "text/plain", "OK"),
    (200, "text/html", "<html>stopped</html>"),
    (200, "application/json", '{"stopped": true}'),
    (200, "application/json", "not json at all"),
    (202, "application/json", ""),
    (204, None, None),
]

STOPS: list[tuple[str, Callable[[sr.StreamrunClient], Awaitable[Any]]]] = [
    ("instances.stop", lambda c: c.instances.stop("inst-1")),
    ("instances.stop_all", lambda c: c.instances.stop_all()),
    ("configurations.stop_instances", lambda c: c.configurations.stop_instances("cfg-1")),
    ("configurations.set_outputs", lambda c: c.configurations.set_outputs("cfg-1", "LIVE")),
    ("instances.restart", lambda c: c.instances.restart("inst-1")),
]


@pytest.mark.parametrize("call", [pytest.param(c, id=n) for n, c in STOPS])
@pytest.mark.parametrize(
    ("status", "content_type", "body"),
    [pytest.param(*s, id=f"{s[0]}-{s[2]!r}") for s in SUCCESSES],
)
async def test_any_2xx_to_a_stop_or_restart_is_success(
    local_server: Server,
    call: Callable[[sr.StreamrunClient], Awaitable[Any]],
    status: int,
    content_type: str | None,
    body: str | None,
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, text=body, content_type=content_type)

    server = await local_server(handler)
    async with sr.StreamrunClient(API_KEY, base_url=server.url, retry=NO_RETRY) as c:
        assert await call(c) is None
    assert len(server.requests) == 1


async def test_a_restart_answered_with_the_instance_returns_it(
    local_server: Server,
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response({"instance": {"id": "inst-1", "state": "queued"}})

    server = await local_server(handler)
    async with sr.StreamrunClient(API_KEY, base_url=server.url, retry=NO_RETRY) as c:
        restarted = await c.instances.restart("inst-1")
    assert restarted is not None
    assert (restarted.id, restarted.state) == ("inst-1", sr.InstanceState.QUEUED)


# --- stream keys are scrubbed like the API key ------------------------------------------------

INPUT_KEY = "live_in_9f8e7d6c5b4a"
TOP_KEY = "top_key_0a1b2c3d4e5f"
NEVER_DECODED = "raw_key_77aa88bb99cc"
DETAIL = {
    "id": "inst-1",
    "streamkey": TOP_KEY,
    "state": {
        "state": "RUNNING",
        "elements": [{"id": "inputstream-1", "state": {"streamkey": INPUT_KEY, "fps": 30}}],
    },
}


def leaked(text: str) -> list[str]:
    return [key for key in (INPUT_KEY, TOP_KEY, NEVER_DECODED, API_KEY) if key in text]


def everything_about(error: BaseException) -> str:
    parts = [str(error), repr(error), repr(getattr(error, "body", None))]
    parts.append(json.dumps(getattr(error, "body", None), default=repr))
    return "\n".join(parts)


@pytest.mark.parametrize("status", [400, 500, 404])
@pytest.mark.parametrize("form", ["text", "json", "json-escaped"])
async def test_error_bodies_echoing_stream_keys_are_scrubbed(
    mock_api: aioresponses, caplog: pytest.LogCaptureFixture, status: int, form: str
) -> None:
    echo = f"cannot restart: input key {INPUT_KEY}, instance key {TOP_KEY}, {API_KEY}"
    if form == "text":
        body = echo
    elif form == "json":
        body = json.dumps({"error": {"message": echo, "detail": {"keys": [INPUT_KEY]}}})
    else:  # "\/" and "\u00xx" escapes hide a key from a text search of the raw body
        body = json.dumps({"error": echo}).replace("_", "\\u005f")
    mock_api.get(f"{API}/instances/inst-1", payload=DETAIL)
    mock_api.post(f"{API}/instances/inst-1/restart", status=status, body=body)
    caplog.set_level(logging.DEBUG, logger="streamrun_async")
    async with sr.StreamrunClient(API_KEY, retry=NO_RETRY) as c:
        instance = await c.instances.get("inst-1")
        decoded = instance.element_states["inputstream-1"].stream_key
        assert decoded is not None
        assert decoded.get_secret_value() == INPUT_KEY
        with pytest.raises(sr.APIStatusError) as info:
            await c.instances.restart("inst-1")
    text = everything_about(info.value)
    assert leaked(text) == []
    assert text.count("[REDACTED]") >= 2
    assert leaked(caplog.text) == []


async def test_a_stream_key_field_is_scrubbed_even_before_it_was_decoded(
    mock_api: aioresponses,
) -> None:
    body = {"error": "bad input", "input": {"id": "inputstream-1", "streamKey": NEVER_DECODED}}
    mock_api.post(f"{API}/instances/inst-1/restart", status=409, payload=body)
    async with sr.StreamrunClient(API_KEY, retry=NO_RETRY) as c:
        with pytest.raises(sr.ConflictError) as info:
            await c.instances.restart("inst-1")
    assert leaked(everything_about(info.value)) == []
    assert info.value.body["input"] == {"id": "inputstream-1", "streamKey": "[REDACTED]"}


async def test_decode_errors_quoting_a_stream_key_are_scrubbed(mock_api: aioresponses) -> None:
    mock_api.get(f"{API}/instances", payload={"instances": [DETAIL]})
    mock_api.get(f"{API}/instances/inst-1/overrides", body=f"<html>{INPUT_KEY}</html>")
    mock_api.get(f"{API}/configurations/cfg-1", payload=[{"key": TOP_KEY}])
    async with sr.StreamrunClient(API_KEY, retry=NO_RETRY) as c:
        await c.instances.list()  # learns the keys from a list too
        with pytest.raises(sr.ResponseDecodeError) as not_json:
            await c.instances.get_overrides("inst-1")
        with pytest.raises(sr.ResponseDecodeError) as wrong_shape:
            await c.configurations.get("cfg-1")
    assert leaked(everything_about(not_json.value)) == []
    assert leaked(everything_about(wrong_shape.value)) == []
    assert "[REDACTED]" in not_json.value.body


async def test_clients_do_not_share_what_they_learned(mock_api: aioresponses) -> None:
    # Each client scrubs what it decoded; a second client knows nothing of the first's keys,
    # and neither holds more than a bounded number of them.
    mock_api.get(f"{API}/instances/inst-1", payload=DETAIL)
    async with (
        sr.StreamrunClient(API_KEY, retry=NO_RETRY) as first,
        sr.StreamrunClient(API_KEY, retry=NO_RETRY) as second,
    ):
        await first.instances.get("inst-1")
        assert first._transport.secrets.text(INPUT_KEY) == "[REDACTED]"
        assert second._transport.secrets.text(INPUT_KEY) == INPUT_KEY


def test_the_known_secrets_are_bounded() -> None:
    secrets = Secrets(API_KEY)
    many = [
        sr.Instance(
            id=f"i{n}", state=sr.InstanceState.RUNNING, stream_key=SecretStr(f"key-{n:08d}")
        )
        for n in range(10_050)
    ]
    secrets.learn(many)
    assert "10000 stream keys" in repr(secrets)
    # The oldest are forgotten first; the newest are scrubbed.
    assert secrets.text("key-00000000") == "key-00000000"
    assert secrets.text("key-00010049") == "[REDACTED]"
    # Too short to scrub without garbling every message.
    secrets.learn([sr.Instance(id="s", state=sr.InstanceState.RUNNING, stream_key=SecretStr("ab"))])
    assert secrets.text("tab") == "tab"
