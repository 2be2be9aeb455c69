"""The tolerant reader: odd fields and items never cost the caller the whole answer.

Decoding runs through both ways a decoder can build a model (in place, the fast path, and
through the frozen model's slot descriptors), which must agree.
"""

from __future__ import annotations

import logging
import pickle
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from aiohttp import web
from conftest import API_KEY, LocalServer
from hypothesis import given, settings
from hypothesis import strategies as st

import streamrun_async as sr
from streamrun_async import _converter
from streamrun_async._converter import (
    MODELS,
    DecodeFailure,
    decode_list,
    decode_object,
    make_model_decoder,
)
from streamrun_async._models import secret_values

KEY = "sk-live-4f9c1d2e"  # a stream key: must never show in a repr, log line or message
TOP_KEY = "sk-top-77aa01"

Decode = Callable[[dict[str, Any], type[Any]], Any]


@pytest.fixture(params=["in_place", "descriptors"])
def decode(request: pytest.FixtureRequest) -> Decode:
    """Decode one object with a decoder built either way."""
    in_place = request.param == "in_place"
    decoders: dict[type[Any], Callable[[Any], Any]] = {}

    def run(data: dict[str, Any], cls: type[Any]) -> Any:
        if cls not in decoders:
            decoders[cls] = make_model_decoder(cls, in_place=in_place)
        return decoders[cls](data)

    return run


def detail(**extra: Any) -> dict[str, Any]:
    """``GET /instances/{id}`` as the observed dialect answers it: ``state`` an object."""
    return {
        "id": "inst-1",
        "status": "RUNNING",
        "streamkey": TOP_KEY,
        "state": {
            "elements": [
                {"id": "inputstream-1", "state": {"streamkey": KEY, "fps": 29.97}},
                {"id": "htmloverlay-1", "state": {"loaded": True}},
            ]
        },
        **extra,
    }


# --- states ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("enum", "text", "member"),
    [
        (sr.InstanceState, "running", sr.InstanceState.RUNNING),
        (sr.InstanceState, "Running", sr.InstanceState.RUNNING),
        (sr.InstanceState, "rUnNiNg", sr.InstanceState.RUNNING),
        (sr.InstanceState, "stopping", sr.InstanceState.STOPPING),
        (sr.InstanceState, "error", sr.InstanceState.ERROR),
        (sr.Outputs, "live", sr.Outputs.LIVE),
        (sr.Outputs, "Offline", sr.Outputs.OFFLINE),
    ],
)
def test_states_and_outputs_are_read_in_any_case(
    decode: Decode, enum: type[Any], text: str, member: Any
) -> None:
    assert enum(text) is member
    key = "state" if enum is sr.InstanceState else "outputs"
    assert getattr(decode({"id": "i", key: text}, sr.Instance), key) is member


def test_non_ascii_look_alikes_are_not_known_states() -> None:
    # A dotless i upper-cases to "I": a server's "runn\u0131ng" is not RUNNING.
    state = sr.InstanceState("runn\u0131ng")
    assert state.is_unknown
    assert str(state) == "runn\u0131ng"


@pytest.mark.parametrize(
    ("text", "terminal", "can_run"),
    [
        ("QUEUED", False, True),
        ("STARTING", False, True),
        ("RUNNING", False, True),
        ("PREVIEW", False, True),
        ("UNKNOWN", False, True),
        ("STOPPING", False, False),
        ("STOPPED", True, False),
        ("FAILED", True, False),
        ("ERROR", True, False),
        ("terminated", True, False),
        ("DELETED", True, False),
        ("CANCELLED", True, False),
        ("canceled", True, False),
        ("STOPPED_IDLE", True, False),
        ("stopped-by-user", True, False),
        ("ENDED", True, False),
        ("TERMINATING", False, False),
        ("HIBERNATING", False, True),
        ("BOOTING", False, True),
    ],
)
def test_terminal_states_and_states_that_can_still_run(
    text: str, terminal: bool, can_run: bool
) -> None:
    state = sr.InstanceState(text)
    assert state.is_terminal is terminal
    assert state.can_become_running is can_run


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"state": "running"}, "RUNNING"),
        ({"state": "QUEUED", "status": "RUNNING"}, "QUEUED"),  # a string state wins
        ({"state": None, "status": "starting"}, "STARTING"),
        ({"status": "RUNNING"}, "RUNNING"),
        ({"state": {"elements": []}, "status": "PREVIEW"}, "PREVIEW"),
        ({"state": {"status": "STOPPING"}, "status": "RUNNING"}, "RUNNING"),
        ({"state": {"state": "running"}}, "RUNNING"),
        ({"state": {"status": "queued"}}, "QUEUED"),
        ({"state": {"state": "RUNNING", "status": "QUEUED"}}, "RUNNING"),
        ({"state": ""}, "UNKNOWN"),
        ({"state": "", "status": "RUNNING"}, "RUNNING"),
        ({"state": 3}, "UNKNOWN"),
        ({"state": ["RUNNING"]}, "UNKNOWN"),
        ({"state": {"elements": []}}, "UNKNOWN"),
        ({"state": None}, "UNKNOWN"),
        ({}, "UNKNOWN"),
        ({"state": "HIBERNATING"}, "HIBERNATING"),
    ],
)
def test_the_lifecycle_state_is_found_wherever_it_is(
    decode: Decode, data: dict[str, Any], expected: str
) -> None:
    for cls in (sr.Instance, sr.InstanceRequest):
        body = {"id": "x", **data}
        model = decode(body, cls)
        assert str(model.state) == expected
        assert model.raw is body


# --- fields of the wrong shape -------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "key", "sent", "field", "read"),
    [
        (sr.Instance, "name", 5, "name", None),
        (sr.Instance, "configurationId", 7, "configuration_id", None),
        (sr.Instance, "requestId", {"id": "r"}, "request_id", None),
        (sr.Instance, "outputs", 1, "outputs", None),
        (sr.Instance, "outputs", "live", "outputs", sr.Outputs.LIVE),
        (sr.Instance, "outputs", "DRAINING", "outputs", sr.Outputs("DRAINING")),
        (sr.Instance, "createdAt", "yesterday", "created_at", None),
        (sr.Instance, "createdAt", True, "created_at", None),
        (sr.Instance, "overrides", {"a": 1}, "overrides", None),
        (sr.Instance, "overrides", [], "overrides", None),
        (sr.Instance, "overrides", {"a": {"b": 1}}, "overrides", {"a": {"b": 1}}),
        (sr.Instance, "streamkey", 5, "stream_key", None),
        (sr.Instance, "streamkey", "", "stream_key", None),
        (sr.InstanceRequest, "instanceIds", ["a", 1], "instance_ids", ()),
        (sr.InstanceRequest, "instanceIds", "a", "instance_ids", ()),
        (sr.InstanceRequest, "instanceIds", ["a", "b"], "instance_ids", ("a", "b")),
        (sr.InstanceRequest, "numberOfInstances", "5", "number_of_instances", 5),
        (sr.InstanceRequest, "numberOfInstances", " 5 ", "number_of_instances", 5),
        (sr.InstanceRequest, "numberOfInstances", 5.0, "number_of_instances", 5),
        (sr.InstanceRequest, "numberOfInstances", "5.0", "number_of_instances", 5),
        (sr.InstanceRequest, "numberOfInstances", 5.5, "number_of_instances", None),
        (sr.InstanceRequest, "numberOfInstances", "five", "number_of_instances", None),
        (sr.InstanceRequest, "numberOfInstances", True, "number_of_instances", None),
        (sr.InstanceRequest, "numberOfInstances", "nan", "number_of_instances", None),
        (sr.InstanceRequest, "numberOfInstances", 10**400, "number_of_instances", 10**400),
        (sr.Configuration, "elements", "x", "elements", ()),
        (sr.Configuration, "name", ["n"], "name", None),
        (sr.Element, "settings", [], "settings", {}),
        (sr.Element, "settings", {"url": "u"}, "settings", {"url": "u"}),
        (sr.Element, "type", 3, "type", None),
        (sr.Destination, "platform", 3, "platform", None),
        (sr.Destination, "platform", "youtube", "platform", "youtube"),
    ],
)
def test_a_field_of_the_wrong_shape_reads_as_its_default_and_stays_in_raw(
    decode: Decode, cls: type[Any], key: str, sent: Any, field: str, read: Any
) -> None:
    data = {"id": "x", key: sent}
    model = decode(data, cls)
    assert getattr(model, field) == read
    assert model.raw is data  # the parsed object itself, never a copy
    assert model.raw[key] is sent


# --- timestamps ----------------------------------------------------------------------------

WHEN = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("sent", "read"),
    [
        ("2026-05-01T10:00:00Z", WHEN),
        ("2026-05-01T10:00:00.000Z", WHEN),
        ("2026-05-01T12:00:00+02:00", WHEN),
        ("2026-05-01T10:00:00", WHEN),  # no offset: UTC
        (1777629600, WHEN),
        (1777629600.0, WHEN),
        (1777629600000, WHEN),
        (1777629600500, WHEN + timedelta(milliseconds=500)),
        ("1777629600", WHEN),
        ("1777629600000", WHEN),
        ("1777629600.5", WHEN + timedelta(milliseconds=500)),
        ("Fri, 01 May 2026 10:00:00 GMT", WHEN),
        ("Fri, 01 May 2026 12:00:00 +0200", WHEN),
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
        ("soon", None),
        ("2026-13-45T10:00:00Z", None),
        ("", None),
        (True, None),
        ([2026, 5, 1], None),
        ({"seconds": 1}, None),
        (10**30, None),
        ("1e400", None),
    ],
)
def test_timestamps_in_every_known_form(decode: Decode, sent: Any, read: datetime | None) -> None:
    for cls in (sr.Instance, sr.InstanceRequest, sr.Configuration):
        model = decode({"id": "x", "createdAt": sent}, cls)
        assert model.created_at == read
        if read is not None:
            assert model.created_at.utcoffset() is not None


def test_an_offset_is_kept() -> None:
    model = decode_object({"id": "x", "createdAt": "2026-05-01T12:00:00+02:00"}, sr.Instance, "")
    assert model.created_at.utcoffset() == timezone(timedelta(hours=2)).utcoffset(None)


# --- lists ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {},
        {"instances": None},
        {"instances": []},
        {"instances": {}},
        {"items": None},
        {"next": None},
        {"nextCursor": None, "total": 0},
        {"instances": [], "next": None},
    ],
)
def test_empty_lists_in_every_form(data: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="streamrun_async"):
        assert decode_list(data, sr.Instance, "instances") == []
    assert caplog.records == []


@pytest.mark.parametrize("paging", ["next", "nextPage", "nextCursor", "cursor", "total"])
def test_an_envelope_may_carry_pagination_beside_the_items(paging: str) -> None:
    items = [{"id": "a", "state": "RUNNING"}, {"id": "b", "state": "QUEUED"}]
    for data in ({"instances": items, paging: "p2"}, {"items": items, paging: "p2"}):
        assert [i.id for i in decode_list(data, sr.Instance, "instances")] == ["a", "b"]


def test_items_without_a_string_id_are_left_out_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    items: list[Any] = [
        {"id": "a", "state": "RUNNING"},
        {"id": 17, "name": "int-id-name"},
        {"name": "nameless-and-idless"},
        {"id": None},
        "inst-as-text",
        {"id": "b", "createdAt": "nonsense", "state": {"weird": True}, "outputs": 4},
        {"id": ["c"]},
    ]
    with caplog.at_level(logging.DEBUG, logger="streamrun_async"):
        decoded = decode_list({"instances": items}, sr.Instance, "instances")
    assert [i.id for i in decoded] == ["a", "b"]
    assert decoded[1].created_at is None
    assert decoded[1].state is sr.InstanceState.UNKNOWN
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    message = caplog.records[0].getMessage()
    assert message == (
        "left out 5 Instance item(s) of a list: 2 with an id that is not a string, "
        "2 without an id, 1 not an object"
    )
    for value in ("17", "int-id-name", "nameless", "inst-as-text", "['c']"):
        assert value not in message


def test_the_warning_counts_each_reason() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logger = logging.getLogger("streamrun_async")
    logger.addHandler(handler)
    try:
        decode_list([{"id": 1}, {"id": 2.5}, {}, {"x": 1}, 3, {"id": "ok"}], sr.Destination, "")
    finally:
        logger.removeHandler(handler)
    assert [r.getMessage() for r in records] == [
        "left out 5 Destination item(s) of a list: 2 with an id that is not a string, "
        "2 without an id, 1 not an object"
    ]


def test_a_list_that_reads_whole_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="streamrun_async"):
        decode_list([{"id": "a"}, {"id": "b", "state": 5}], sr.Instance, "instances")
    assert caplog.records == []


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"id": 5, "state": "RUNNING"}, "'id' must be a string, got a number"),
        ({"state": "RUNNING"}, "missing field 'id'"),
        ({"instance": {"id": True}}, "'id' must be a string, got a boolean"),
        ([{"id": "x"}], "expected a JSON object for Instance, got an array"),
        (None, "expected a JSON object for Instance, got null"),
    ],
)
def test_one_object_without_a_string_id_is_a_decode_failure(data: Any, reason: str) -> None:
    with pytest.raises(DecodeFailure) as info:
        decode_object(data, sr.Instance, "instance")
    assert reason in str(info.value)


def test_one_object_with_odd_fields_decodes() -> None:
    data = {"id": "i", "state": 3, "createdAt": 17.5, "overrides": "x", "name": None}
    instance = decode_object({"instance": data}, sr.Instance, "instance")
    assert instance.id == "i"
    assert instance.state is sr.InstanceState.UNKNOWN
    assert instance.created_at == datetime(1970, 1, 1, 0, 0, 17, 500000, tzinfo=UTC)
    assert instance.overrides is None
    assert instance.raw is data


# --- configurations ------------------------------------------------------------------------


def test_elements_as_a_list_with_settings(decode: Decode) -> None:
    data = {
        "id": "c",
        "elements": [
            {"id": "htmloverlay-1", "type": "htmloverlay", "settings": {"url": "https://x"}},
            {"id": "outputstream-1", "type": "outputstream", "settings": {"destinations": ["d"]}},
            {"type": "no-id"},
            "not-an-element",
        ],
    }
    config = decode(data, sr.Configuration)
    assert [e.id for e in config.elements] == ["htmloverlay-1", "outputstream-1"]
    assert config.elements[0].settings == {"url": "https://x"}
    assert config.elements[1].settings["destinations"] == ["d"]
    assert config.elements[0].raw is data["elements"][0]


def test_elements_as_an_object_keyed_by_id(decode: Decode) -> None:
    data = {
        "id": "c",
        "elements": {
            "htmloverlay-1": {"type": "htmloverlay", "settings": {"url": "u"}},
            "switch-1": {"id": "switch-1", "type": "switch"},
            "inputstream-1": {"id": 3, "type": "inputstream"},
            "odd": 5,
        },
    }
    config = decode(data, sr.Configuration)
    assert [(e.id, e.type) for e in config.elements] == [
        ("htmloverlay-1", "htmloverlay"),
        ("switch-1", "switch"),
        ("inputstream-1", "inputstream"),
    ]
    assert config.elements[0].settings == {"url": "u"}
    assert config.elements[1].raw is data["elements"]["switch-1"]


# --- runtime state and stream keys -----------------------------------------------------------


def test_element_states_and_stream_keys_from_the_detail(decode: Decode) -> None:
    instance = decode(detail(), sr.Instance)
    assert instance.state is sr.InstanceState.RUNNING
    assert set(instance.element_states) == {"inputstream-1", "htmloverlay-1"}
    element = instance.element_states["inputstream-1"]
    assert isinstance(element, sr.ElementState)
    assert element.id == "inputstream-1"
    assert element.stream_key == sr.SecretStr(KEY)
    assert element.stream_key is not None
    assert element.stream_key.get_secret_value() == KEY
    assert element.fps == 29.97
    assert element.raw == detail()["state"]["elements"][0]
    overlay = instance.element_states["htmloverlay-1"]
    assert overlay.stream_key is None
    assert overlay.fps is None
    assert instance.stream_key == sr.SecretStr(TOP_KEY)


@pytest.mark.parametrize(
    ("elements", "expected"),
    [
        ([{"id": "in-1", "state": {"streamKey": KEY, "fps": "30"}}], {"in-1": (KEY, 30.0)}),
        ([{"id": "in-1", "streamkey": KEY}], {"in-1": (KEY, None)}),
        ([{"id": "in-1", "state": "RUNNING"}], {"in-1": (None, None)}),
        ([{"id": "in-1", "state": {"streamkey": 7, "fps": True}}], {"in-1": (None, None)}),
        ({"in-1": {"state": {"streamkey": KEY}}}, {"in-1": (KEY, None)}),
        ([{"state": {"streamkey": KEY}}, 4, None], {}),
        ("elements", {}),
        (None, {}),
    ],
)
def test_element_states_are_read_tolerantly(
    decode: Decode, elements: Any, expected: dict[str, tuple[str | None, float | None]]
) -> None:
    instance = decode({"id": "i", "state": {"state": "RUNNING", "elements": elements}}, sr.Instance)
    got = {
        element_id: (
            None if e.stream_key is None else e.stream_key.get_secret_value(),
            e.fps,
        )
        for element_id, e in instance.element_states.items()
    }
    assert got == expected


def test_list_items_carry_no_element_states() -> None:
    (instance,) = decode_list({"instances": [{"id": "i", "state": "RUNNING"}]}, sr.Instance, "")
    assert instance.element_states == {}
    assert instance.stream_key is None


def test_ingest_urls() -> None:
    instance = decode_object(detail(), sr.Instance, "instance")
    rtmp = instance.ingest_url("inputstream-1")
    assert isinstance(rtmp, sr.SecretStr)
    assert rtmp.get_secret_value() == f"rtmp://ingest.streamrun.io/inputstream-1/{KEY}"
    srt = instance.ingest_url("inputstream-1", protocol="srt")
    assert srt.get_secret_value() == f"srt://ingest.streamrun.io:8890?streamid=publish:{KEY}"
    ipv6 = instance.ingest_url("inputstream-1", host="ingest-ipv6.streamrun.io")
    assert ipv6.get_secret_value() == f"rtmp://ingest-ipv6.streamrun.io/inputstream-1/{KEY}"
    assert KEY not in str(rtmp) + repr(rtmp) + f"{srt}"


@pytest.mark.parametrize(
    ("instance", "args", "error", "words"),
    [
        (detail(), ("switch-9",), sr.InvalidArgumentError, "no element 'switch-9'"),
        (detail(), ("htmloverlay-1",), sr.InvalidArgumentError, "has no stream key"),
        (detail(), ("inputstream-1", "webrtc"), sr.InvalidArgumentError, "protocol"),
        (detail(), (5,), sr.InvalidArgumentTypeError, "element_id must be a str"),
        (
            {"id": "inst-1", "state": "RUNNING"},
            ("inputstream-1",),
            sr.InvalidArgumentError,
            "instances.get()",
        ),
    ],
)
def test_ingest_url_refuses_what_it_cannot_build(
    instance: dict[str, Any], args: tuple[Any, ...], error: type[Exception], words: str
) -> None:
    model = decode_object(instance, sr.Instance, "instance")
    with pytest.raises(error) as info:
        model.ingest_url(*args)
    assert isinstance(info.value, sr.StreamrunError)
    assert words in str(info.value)
    assert KEY not in str(info.value)
    assert TOP_KEY not in str(info.value)


def test_stream_keys_never_show_in_reprs_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    instance = decode_object(detail(), sr.Instance, "instance")
    element = instance.element_states["inputstream-1"]
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info(
            "got %s and %r and %s", instance, element, element.stream_key
        )
    shown = [
        repr(instance),
        str(instance),
        repr(element),
        repr(instance.element_states),
        f"{instance.stream_key}",
        f"{element.stream_key!s:>20}",
        f"{element.stream_key:>20}",
        repr(attrs.evolve(instance, name="x")),
        caplog.text,
    ]
    for text in shown:
        assert KEY not in text
        assert TOP_KEY not in text


def test_secret_values_finds_every_stream_key() -> None:
    # Fields the decoder does not read are found by name, in any spelling.
    data = detail(extras={"nested": [{"StreamKey": "sk-nested"}, {"stream_key": "sk-snake"}]})
    instance = decode_object(data, sr.Instance, "instance")
    every = {KEY, TOP_KEY, "sk-nested", "sk-snake"}
    assert set(secret_values(instance)) == every
    assert set(secret_values([instance, sr.Instance(id="x")])) == every
    assert set(secret_values(instance.element_states["inputstream-1"])) == {KEY}
    made = sr.Instance(
        id="x",
        element_states={"in-1": sr.ElementState(id="in-1", stream_key=sr.SecretStr("sk-made"))},
    )
    assert secret_values(made) == ("sk-made",)
    assert secret_values(decode_object({"id": "d"}, sr.Destination, "")) == ()
    assert secret_values(None) == ()


# --- SecretStr -------------------------------------------------------------------------------


def test_secret_str() -> None:
    secret = sr.SecretStr(KEY)
    assert secret.get_secret_value() == KEY
    for shown in (str(secret), repr(secret), f"{secret}", f"{secret!r}", f"{secret:^30}"):
        assert KEY not in shown
        assert "*" in shown
    assert str(sr.SecretStr("a")) == str(sr.SecretStr("a much longer key"))  # no length shown
    assert secret == sr.SecretStr(KEY)
    assert secret != sr.SecretStr("other")
    assert secret != KEY  # never equal to plain text
    assert hash(secret) == hash(sr.SecretStr(KEY))
    assert len({secret, sr.SecretStr(KEY), sr.SecretStr("other")}) == 2
    restored = pickle.loads(pickle.dumps(secret))
    assert restored == secret
    with pytest.raises(sr.InvalidArgumentTypeError):
        sr.SecretStr(5)  # type: ignore[arg-type]


# --- the decoders themselves ---------------------------------------------------------------


def test_models_built_in_place_are_frozen_models() -> None:
    instance = decode_object(detail(name="n"), sr.Instance, "instance")
    assert type(instance) is sr.Instance
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        instance.name = "other"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(instance)) == instance
    evolved = attrs.evolve(instance, name="m")
    assert evolved.name == "m"
    assert evolved.element_states == instance.element_states
    assert instance == sr.Instance(
        id="inst-1",
        state=sr.InstanceState.RUNNING,
        name="n",
        element_states=instance.element_states,
        stream_key=sr.SecretStr(TOP_KEY),
    )


def test_both_ways_of_building_agree() -> None:
    bodies = [
        detail(),
        {"id": "i", "state": "queued", "createdAt": 1, "overrides": {"a": {}}, "outputs": "LIVE"},
    ]
    for cls in MODELS:
        fast, slow = make_model_decoder(cls), make_model_decoder(cls, in_place=False)
        for body in bodies:
            built, through_descriptors = fast(body), slow(body)
            assert built == through_descriptors
            assert type(built) is type(through_descriptors) is cls
            assert built.raw is through_descriptors.raw is body


@attrs.frozen  # keeps its __weakref__ slot, so no plain class can become it
class WeakReferable:
    id: str
    name: str | None = None
    raw: Any = attrs.field(init=False, factory=dict, repr=False, eq=False)


def test_a_model_no_plain_class_can_become_is_built_through_its_descriptors() -> None:
    assert _converter._builder(WeakReferable) is None
    assert _converter._builder(sr.Instance) is not None
    data = {"id": "w", "name": "n", "extra": 1}
    model = make_model_decoder(WeakReferable)(data)
    assert model == WeakReferable(id="w", name="n")
    assert model.raw is data


@pytest.fixture
def broken_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoders generated from now on whose stream key reader has a bug."""

    def buggy(value: object) -> sr.SecretStr | None:
        raise ZeroDivisionError("a bug in a reader")

    monkeypatch.setattr(_converter, "_secret", buggy)
    monkeypatch.setattr(_converter, "_DECODERS", {})


@pytest.mark.usefixtures("broken_secret")
def test_a_generated_decoder_shows_its_lines_in_tracebacks() -> None:
    decoder = make_model_decoder(sr.Instance)
    with pytest.raises(ZeroDivisionError) as info:
        decoder({"id": "i", "streamkey": "k"})
    text = "".join(traceback.format_exception(info.value))
    assert "<streamrun_async decoder of Instance>" in text
    assert "v = _secret(v)" in text


@pytest.mark.usefixtures("broken_secret")
def test_a_reader_bug_costs_only_its_item(caplog: pytest.LogCaptureFixture) -> None:
    items = [{"id": "a"}, {"id": "b", "streamkey": "k"}, {"id": "c"}]
    with caplog.at_level(logging.WARNING, logger="streamrun_async"):
        decoded = decode_list(items, sr.Instance, "instances")
    assert [i.id for i in decoded] == ["a", "c"]
    assert [r.getMessage() for r in caplog.records] == [
        "left out 1 Instance item(s) of a list: 1 that could not be read"
    ]
    with pytest.raises(DecodeFailure, match="ZeroDivisionError") as info:
        decode_object(items[1], sr.Instance, "instance")
    assert isinstance(info.value.__cause__, ZeroDivisionError)


# --- anything at all -----------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)
KEYS = [
    "state",
    "status",
    "name",
    "configurationId",
    "requestId",
    "outputs",
    "createdAt",
    "overrides",
    "streamkey",
    "elements",
    "settings",
    "instanceIds",
    "numberOfInstances",
    "platform",
    "title",
    "type",
]


DECODERS = {
    (m, fast): make_model_decoder(m, in_place=fast) for m in MODELS for fast in (True, False)
}


@given(
    cls=st.sampled_from(MODELS),
    fields=st.dictionaries(st.sampled_from(KEYS) | st.text(), json_values, max_size=6),
    in_place=st.booleans(),
)
@settings(max_examples=150, deadline=None)
def test_any_object_with_a_string_id_decodes(
    cls: type[Any], fields: dict[str, Any], in_place: bool
) -> None:
    data = {**fields, "id": "the-id"}
    model = DECODERS[cls, in_place](data)
    assert type(model) is cls
    assert model.id == "the-id"
    assert model.raw is data
    repr(model)  # every field is set
    assert model == attrs.evolve(model)  # every field compares


# --- through a client ------------------------------------------------------------------------


async def test_a_client_reads_odd_answers_whole(
    local_server: Callable[..., Awaitable[LocalServer]], caplog: pytest.LogCaptureFixture
) -> None:
    """What a user of the live API saw fail: one odd item cost the whole list, and a detail
    answer with ``state`` as an object raised ``ResponseDecodeError``."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/api/v1/instances":
            return web.json_response(
                {
                    "instances": [
                        {"id": "a", "state": "running", "createdAt": 1777629600000},
                        {"id": 42, "state": "RUNNING"},
                        {
                            "id": "b",
                            "state": "QUEUED",
                            "createdAt": "Fri, 01 May 2026 10:00:00 GMT",
                        },
                    ],
                    "next": None,
                }
            )
        if request.path == "/api/v1/configurations":
            return web.json_response({"configurations": None})
        return web.json_response(detail())

    server = await local_server(handler)
    async with sr.StreamrunClient(
        API_KEY, base_url=server.url, retry=sr.RetryPolicy.disabled()
    ) as client:
        with caplog.at_level(logging.WARNING, logger="streamrun_async"):
            listed = await client.instances.list()
        assert [(i.id, i.state, i.created_at) for i in listed] == [
            ("a", sr.InstanceState.RUNNING, WHEN),
            ("b", sr.InstanceState.QUEUED, WHEN),
        ]
        assert [r.getMessage() for r in caplog.records] == [
            "left out 1 Instance item(s) of a list: 1 with an id that is not a string"
        ]
        assert await client.configurations.list() == []
        instance = await client.instances.get("inst-1")
        assert instance.state is sr.InstanceState.RUNNING
        url = instance.ingest_url("inputstream-1")
        assert url.get_secret_value() == f"rtmp://ingest.streamrun.io/inputstream-1/{KEY}"
