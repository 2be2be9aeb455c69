"""Resume tokens: round trip, size, cost of reading, and every bad token refused cleanly."""

from __future__ import annotations

import base64
import json
import secrets
import zlib

import pytest

import streamrun_async as sr
from streamrun_async.watch import MAX_TOKEN_BYTES, InstanceWatch, decode_token, encode_token

S = sr.InstanceState


def pack(payload: object, raw: bytes | None = None) -> str:
    data = raw if raw is not None else json.dumps(payload).encode()
    return base64.urlsafe_b64encode(zlib.compress(data)).decode().rstrip("=")


def test_round_trip_keeps_configurations_and_states() -> None:
    states = {"i1": S.RUNNING, "i2": S("HIBERNATING")}
    assert decode_token(encode_token(frozenset({"c1"}), states)) == (frozenset({"c1"}), states)
    assert decode_token(encode_token(None, {})) == (None, {})


def test_size_per_instance_is_as_documented() -> None:
    states = {f"inst-{secrets.token_hex(8)}": S.RUNNING for _ in range(2000)}
    assert len(encode_token(None, states)) / len(states) < 16  # "about 15 bytes"


@pytest.mark.parametrize(
    "token",
    [
        "not-a-token",
        "",
        "%%%",
        pack(None, raw=b"\xff\xfe not json"),
        pack([1, 2]),
        pack({"v": 2, "c": None, "s": {}}),
        pack({"v": 1, "c": "cfg", "s": {}}),
        pack({"v": 1, "c": [1], "s": {}}),
        pack({"v": 1, "c": None, "s": []}),
        pack({"v": 1, "c": None, "s": {"i": 5}}),
        pack({"v": 1, "c": None, "s": {"": "RUNNING"}}),
        pack(None, raw=b"[" * 100_000 + b"]" * 100_000),  # deep nesting
        pack(None, raw=b" " * (MAX_TOKEN_BYTES + 1)),  # inflates beyond 1 MiB
        pack({"v": 1, "c": None, "s": {}})[:-6],  # cut short
    ],
)
def test_bad_tokens_raise_invalid_argument_error_only(token: str) -> None:
    with pytest.raises(sr.InvalidArgumentError, match="resume token"):
        decode_token(token)


def test_a_tiny_bomb_is_refused_without_inflating_it() -> None:
    bomb = base64.urlsafe_b64encode(zlib.compress(b"0" * (64 << 20), 9)).decode()
    assert len(bomb) < 200_000
    with pytest.raises(sr.InvalidArgumentError, match="1048576"):
        decode_token(bomb)


def test_a_token_of_other_configurations_is_refused_by_the_new_watch() -> None:
    token = encode_token(frozenset({"c1"}), {"i1": S.RUNNING})
    poller = object()  # never reached: the token is judged first
    with pytest.raises(sr.InvalidArgumentError, match="c1"):
        InstanceWatch(poller, ["c2"], resume=token)  # type: ignore[arg-type]
    account = encode_token(None, {"i1": S.RUNNING})
    with pytest.raises(sr.InvalidArgumentError, match="whole account"):
        InstanceWatch(poller, ["c2"], resume=account)  # type: ignore[arg-type]
    # Same configurations, or none given (taken from the token): fine.
    assert InstanceWatch(poller, ["c1"], resume=token).token == token  # type: ignore[arg-type]
    assert InstanceWatch(poller, None, resume=token).token == token  # type: ignore[arg-type]
