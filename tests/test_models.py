"""Models, open enums, decoding and id quoting, without any HTTP."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import streamrun_async as sr
from streamrun_async._converter import (
    DecodeFailure,
    decode_list,
    decode_object,
    decode_overrides,
)
from streamrun_async._http import path_segment
from streamrun_async._models import _CACHE_LIMIT

# --- open enums ------------------------------------------------------------------------------


KNOWN_STATES = {
    "QUEUED",
    "STARTING",
    "RUNNING",
    "PREVIEW",
    "STOPPING",
    "STOPPED",
    "FAILED",
    "ERROR",
    "UNKNOWN",
}


def test_known_states() -> None:
    assert {m.value for m in sr.InstanceState} == KNOWN_STATES
    for name in KNOWN_STATES - {"UNKNOWN"}:
        state = sr.InstanceState(name)
        assert state is sr.InstanceState[name]
        assert not state.is_unknown
        assert str(state) == name
    assert {sr.Outputs.LIVE.value, sr.Outputs.OFFLINE.value} == {"LIVE", "OFFLINE"}


def test_unknown_state_keeps_its_text() -> None:
    state = sr.InstanceState("HIBERNATING")
    assert state.is_unknown
    assert str(state) == "HIBERNATING"
    assert state.value == "HIBERNATING"
    assert state == "HIBERNATING"
    assert f"{state}" == "HIBERNATING"
    assert state.name == "UNKNOWN"
    assert "HIBERNATING" in repr(state)
    assert state is sr.InstanceState("HIBERNATING")
    assert state != sr.InstanceState("MIGRATING")
    assert hash(state) == hash("HIBERNATING")
    assert sr.InstanceState.UNKNOWN.is_unknown
    # The known members are untouched by unknown text.
    assert list(sr.InstanceState).count(sr.InstanceState.RUNNING) == 1
    assert "HIBERNATING" not in [m.value for m in sr.InstanceState]


@given(st.text(min_size=1) | st.sampled_from(sorted(KNOWN_STATES)).map(str.lower))
def test_any_state_text_decodes_and_round_trips(text: str) -> None:
    state = sr.InstanceState(text)
    known = text.isascii() and text.upper() in KNOWN_STATES - {"UNKNOWN"}
    assert state.is_unknown == (not known)
    assert str(state) == (text.upper() if known or text.upper() == "UNKNOWN" else text)
    assert state == sr.InstanceState(text)


def test_unknown_texts_remembered_are_bounded() -> None:
    cache = sr.InstanceState._value2member_map_
    before = dict(cache)
    try:
        texts = [f"STATE-{n}" for n in range(_CACHE_LIMIT + 10)]
        states = [sr.InstanceState(t) for t in texts]
        assert len(cache) <= _CACHE_LIMIT
        # Past the bound, texts still decode, equal to themselves, keeping their text.
        assert [str(s) for s in states] == texts
        assert sr.InstanceState(texts[-1]) == states[-1]
        assert sr.InstanceState("running") is sr.InstanceState.RUNNING
    finally:
        cache.clear()
        cache.update(before)


def test_state_survives_pickle() -> None:
    assert pickle.loads(pickle.dumps(sr.InstanceState.RUNNING)) is sr.InstanceState.RUNNING


@pytest.mark.parametrize("value", [None, 3, b"RUNNING"])
def test_non_text_state_is_refused(value: Any) -> None:
    with pytest.raises(ValueError, match="not a valid InstanceState"):
        sr.InstanceState(value)


# --- models ------------------------------------------------------------------------------------


def test_models_are_frozen_with_optional_fields_defaulting_to_none() -> None:
    instance = sr.Instance(id="i", state=sr.InstanceState.RUNNING)
    assert instance.configuration_id is None
    assert instance.name is None
    assert instance.outputs is None
    assert instance.created_at is None
    assert instance.element_states == {}
    assert instance.stream_key is None
    assert instance.raw == {}
    assert sr.Instance(id="i").state is sr.InstanceState.UNKNOWN
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        instance.id = "j"  # type: ignore[misc]
    assert sr.Destination(id="d").name is None
    assert sr.InstanceRequest(id="r").state is sr.InstanceState.QUEUED
    assert sr.Configuration(id="c").elements == ()
    assert sr.Element(id="e").settings == {}


def test_raw_is_not_part_of_equality_or_repr() -> None:
    a = decode_object({"id": "d", "name": "n", "extra": 1}, sr.Destination, "destination")
    b = decode_object({"id": "d", "name": "n", "extra": 2}, sr.Destination, "destination")
    assert a == b
    assert a.raw != b.raw
    assert "extra" not in repr(a)


def test_instance_settings() -> None:
    settings = sr.InstanceSettings(name="cam-1", overrides={"htmloverlay-1": {"url": "u"}})
    assert settings.to_json() == {"name": "cam-1", "overrides": {"htmloverlay-1": {"url": "u"}}}
    assert sr.InstanceSettings(name="cam-2").to_json() == {"name": "cam-2", "overrides": {}}


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"name": ""}, sr.InvalidArgumentError),
        ({"name": "   "}, sr.InvalidArgumentError),
        ({"name": None}, sr.InvalidArgumentTypeError),
        ({"name": 3}, sr.InvalidArgumentTypeError),
        ({"name": "a", "overrides": {"x": 1}}, sr.InvalidArgumentTypeError),
        ({"name": "a", "overrides": {"x": {"y": {1, 2}}}}, sr.InvalidArgumentTypeError),
        ({"name": "a", "overrides": {"x": {"y": float("nan")}}}, sr.InvalidArgumentTypeError),
        ({"name": "a", "overrides": [("x", {})]}, sr.InvalidArgumentTypeError),
    ],
)
def test_instance_settings_refuse_bad_input(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        sr.InstanceSettings(**kwargs)


# --- decoding ----------------------------------------------------------------------------------


def test_decode_object_bare_and_enveloped() -> None:
    bare = {"id": "r", "state": "RUNNING", "future": [1]}
    for data in (bare, {"instanceRequest": bare}, {"request": bare}):
        request = decode_object(data, sr.InstanceRequest, "instanceRequest")
        assert request.id == "r"
        assert request.state is sr.InstanceState.RUNNING
        assert request.raw == bare


def test_decode_object_envelope_with_extra_keys() -> None:
    inner = {"id": "c", "name": "n"}
    config = decode_object({"configuration": inner, "meta": {}}, sr.Configuration, "configuration")
    assert config.raw == inner


@pytest.mark.parametrize(
    "data",
    [None, [], "c", 5, {}, {"a": {"id": "x"}, "b": {"id": "y"}}, {"configuration": "c"}],
)
def test_decode_object_wrong_shapes(data: Any) -> None:
    with pytest.raises(DecodeFailure):
        decode_object(data, sr.Configuration, "configuration")


def test_decode_list_bare_and_enveloped() -> None:
    items = [{"id": "d1"}, {"id": "d2", "name": "YouTube"}]
    for data in (
        items,
        {"destinations": items},
        {"items": items},
        {"destinations": items, "n": 2},
        {"destinations": items, "next": "/api/v1/destinations?page=2"},
        {"data": items, "nextCursor": "abc", "links": [{"rel": "next"}]},
    ):
        assert [d.id for d in decode_list(data, sr.Destination, "destinations")] == ["d1", "d2"]


@pytest.mark.parametrize("data", [{"id": "d"}, {"a": [], "b": []}, "x", 5, {"destinations": 3}])
def test_decode_list_wrong_shapes(data: Any) -> None:
    with pytest.raises(DecodeFailure):
        decode_list(data, sr.Destination, "destinations")


def test_decode_overrides() -> None:
    inner = {"switch-1": {"input": "x"}}
    assert decode_overrides(inner) == inner
    assert decode_overrides({"overrides": inner}) == inner
    assert decode_overrides({}) == {}
    assert decode_overrides(None) == {}
    assert decode_overrides({"overrides": None}) == {}
    for bad in ([], "x", {"overrides": []}):
        with pytest.raises(DecodeFailure):
            decode_overrides(bad)


def test_decode_overrides_leaves_out_odd_entries_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("WARNING", logger="streamrun_async"):
        assert decode_overrides({"switch-1": {"input": "x"}, "odd-1": 1}) == {
            "switch-1": {"input": "x"}
        }
    assert [r.getMessage() for r in caplog.records] == [
        "left out 1 override(s) whose settings are not an object"
    ]


def test_camel_case_fields_decode_to_snake_case() -> None:
    request = decode_object(
        {
            "id": "r",
            "configurationId": "c",
            "instanceIds": ["a"],
            "numberOfInstances": 1,
            "createdAt": "2026-05-01T10:00:00+02:00",
        },
        sr.InstanceRequest,
        "instanceRequest",
    )
    assert request.configuration_id == "c"
    assert request.instance_ids == ("a",)
    assert request.number_of_instances == 1
    assert request.created_at is not None
    assert request.created_at.utcoffset() is not None


# --- id quoting --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("inst-1", "inst-1"),
        ("a/b", "a%2Fb"),
        ("...", "..."),
        ("?x", "%3Fx"),
        ("#y", "%23y"),
        ("a b", "a%20b"),
        ("é", "%C3%A9"),
        ("%2F", "%252F"),
        ("a.b", "a.b"),
    ],
)
def test_path_segment_quotes_one_segment(value: str, quoted: str) -> None:
    assert path_segment(value, "id") == quoted


@given(st.text(min_size=1).filter(lambda v: v not in (".", "..")))
def test_path_segment_is_always_exactly_one_safe_segment(value: str) -> None:
    segment = path_segment(value, "id")
    assert unquote(segment) == value
    assert not set(segment) & set("/?#\\ ")
    assert segment not in (".", "..")  # dot segments, which servers resolve
    assert segment.isascii()


@pytest.mark.parametrize(
    ("value", "error"),
    [("", ValueError), (".", ValueError), ("..", ValueError), (None, TypeError), (1, TypeError)],
)
def test_path_segment_refuses_non_ids(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        path_segment(value, "instance_id")
    assert isinstance(info.value, sr.StreamrunError)
    assert "instance_id" in str(info.value)


# --- the public surface ------------------------------------------------------------------------


def test_error_tree() -> None:
    assert issubclass(sr.APITimeoutError, sr.APIConnectionError)
    assert issubclass(sr.APITimeoutError, TimeoutError)
    assert issubclass(sr.NoCapacityError, sr.BadRequestError)
    for cls in (
        sr.BadRequestError,
        sr.AuthenticationError,
        sr.PermissionDeniedError,
        sr.NotFoundError,
        sr.ConflictError,
        sr.RateLimitError,
        sr.ServerError,
    ):
        assert issubclass(cls, sr.APIStatusError)
    for cls in (sr.APIConnectionError, sr.APIStatusError, sr.ResponseDecodeError):
        assert issubclass(cls, sr.APIError)
    assert issubclass(sr.APIError, sr.StreamrunError)
    assert issubclass(sr.InvalidArgumentError, ValueError)
    assert issubclass(sr.InvalidArgumentTypeError, TypeError)
    assert issubclass(sr.MissingAPIKeyError, sr.InvalidArgumentError)
    assert issubclass(sr.InsecureTransportError, sr.InvalidArgumentError)
    assert issubclass(sr.ClientClosedError, RuntimeError)


def test_public_names_are_exported() -> None:
    for name in sr.__all__:
        assert getattr(sr, name) is not None


def test_the_package_lists_of_public_names_agree() -> None:
    """Lazily loaded names are imported for type checkers (under TYPE_CHECKING) and listed
    in ``__all__``, and so is every name imported at once: the lists cannot drift apart."""
    tree = ast.parse(Path(sr.__file__).read_text())
    typed: set[str] = set()
    eager: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for found in ast.walk(node):
                if isinstance(found, ast.ImportFrom):
                    typed |= {alias.asname or alias.name for alias in found.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 1:
            eager |= {alias.asname or alias.name for alias in node.names}
    assert typed == set(sr._LAZY)
    assert sorted(sr.__all__) == sorted(eager | typed)
    assert "tenacity" not in repr(vars(sr.RetryPolicy))
    assert isinstance(sr.__version__, str)
