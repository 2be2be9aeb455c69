"""JSON in: the API's field names, envelopes, empty lists, and a tolerant reader.

This is the only module that knows the API's JSON field names. Reading is tolerant, as a
client of an API that publishes no schema must be:

- Only an item without a string ``id`` is unusable. ``decode_list`` leaves such items out
  and says so in one WARNING line (how many and why, never a value); ``decode_object``
  raises ``DecodeFailure`` (there is nothing else to return), which the transport turns
  into ``ResponseDecodeError``.
- A field of the wrong shape reads as its default; ``raw`` keeps what was sent.
- Numbers as numeric strings or integral floats are read. Timestamps are ISO 8601 (``Z``
  or an offset; none means UTC), epoch seconds or milliseconds (told apart by size: from
  1e11 on, milliseconds), a string of digits (an epoch) or an RFC 1123 date; anything
  else is ``None``.
- States and outputs are read in any case; the lifecycle state comes from ``state`` when
  it is a string, else ``status``, else ``state.state`` / ``state.status``, else UNKNOWN.
- Empty lists arrive as ``null``, ``{}``, ``{"instances": null}`` or an envelope holding
  only pagination keys; envelopes may carry other keys (``next``, ``nextCursor``...).

Speed: a poller may decode ten thousand instances a tick, so each model's decoder is
generated once from its attrs fields as straight-line code that reads each key once and
fills the frozen model's slots directly; ``raw`` is the parsed dict itself, never a copy.
The source of each generated decoder is registered with ``linecache`` so that tracebacks
through it show its lines.
"""

from __future__ import annotations

import email.utils
import json
import linecache
import logging
import math
import re
import typing
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import attrs

from . import _models
from ._models import (
    Configuration,
    Destination,
    Element,
    ElementState,
    Instance,
    InstanceRequest,
    InstanceState,
    Outputs,
    Overrides,
)
from ._secret import SecretStr


def _stdlib_loads(raw: bytes) -> Any:
    # json.loads(bytes) would also accept UTF-16 and UTF-32; JSON on the wire is UTF-8
    # (RFC 8259), and orjson agrees, so both parsers refuse the same bodies.
    return json.loads(raw.decode("utf-8"))


try:  # orjson is optional: faster than json when it is installed.
    import orjson as _orjson

    json_loads: Callable[[bytes], Any] = _orjson.loads
except ImportError:  # pragma: no cover - depends on the environment
    json_loads = _stdlib_loads

__all__ = [
    "DecodeFailure",
    "decode_list",
    "decode_object",
    "decode_overrides",
    "json_loads",
    "list_items",
    "make_model_decoder",
]

_M = TypeVar("_M")
_CAMEL = re.compile(r"_([a-z])")
_log = logging.getLogger("streamrun_async")

MODELS: tuple[type[Any], ...] = (Element, Configuration, Instance, InstanceRequest, Destination)
_OVERRIDES_TYPES = (Overrides, Mapping[str, Mapping[str, Any]])
# Keys beside a list's items that say nothing about the items themselves.
_PAGING_KEYS = frozenset(
    {
        "next",
        "nextPage",
        "nextCursor",
        "nextPageToken",
        "cursor",
        "previous",
        "prev",
        "links",
        "pagination",
        "page",
        "pageSize",
        "perPage",
        "total",
        "totalCount",
        "count",
        "limit",
        "offset",
        "hasMore",
        "meta",
    }
)
# Epoch numbers from here on are milliseconds: 1e11 seconds is the year 5138, 1e11 ms 1973.
_EPOCH_MS_FROM = 1e11


class DecodeFailure(ValueError):
    """An answer whose shape the SDK cannot use."""


# Fields whose JSON name is not their camelCase name.
_RENAMED = {"stream_key": "streamkey"}


def _camel(name: str) -> str:
    return _CAMEL.sub(lambda m: m.group(1).upper(), name)


def _json_name(name: str) -> str:
    return _RENAMED.get(name) or _camel(name)


# --- readers of one value: each returns the value read, or None ------------------------------


def _epoch(value: float) -> datetime | None:
    if not math.isfinite(value):
        return None
    if abs(value) >= _EPOCH_MS_FROM:
        value /= 1000
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _timestamp(value: object) -> datetime | None:
    """ISO 8601, epoch seconds or milliseconds (numbers or digits), RFC 1123; else None."""
    if type(value) is str:
        if value.isascii() and value.isdigit():
            return _epoch(int(value))
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return _other_time_text(value)
        return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    if type(value) is int or type(value) is float:
        return _epoch(value)
    return None


def _other_time_text(text: str) -> datetime | None:
    number = _number(text)
    if number is not None:
        return _epoch(number)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _number(value: object) -> float | None:
    """A finite number from a JSON number or a numeric string (not a boolean)."""
    if type(value) is not str and type(value) is not int and type(value) is not float:
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _integer(value: object) -> int | None:
    """An integer from a JSON integer, an integral float or a numeric string."""
    if type(value) is int:
        return value
    number = _number(value)
    return int(number) if number is not None and number.is_integer() else None


def _str_tuple(value: object, default: tuple[str, ...]) -> tuple[str, ...]:
    if type(value) is list and all(type(v) is str for v in value):
        return tuple(value)
    return default


def _secret(value: object) -> SecretStr | None:
    return SecretStr(value) if type(value) is str and value else None


def _text(value: object) -> str | None:
    return value if type(value) is str and value else None


def _keyed_items(value: object) -> list[Any]:
    """The items of an array, or of an object keyed by id (the id taken from the key when
    the item lacks a string one)."""
    if type(value) is list:
        return value
    if type(value) is not dict:
        return []
    return [
        {**item, "id": key} if type(item) is dict and type(item.get("id")) is not str else item
        for key, item in value.items()
    ]


def _element_states(value: object) -> dict[str, ElementState]:
    states: dict[str, ElementState] = {}
    for item in _keyed_items(value):
        if type(item) is not dict or type(item.get("id")) is not str:
            continue
        runtime = item.get("state")
        if type(runtime) is not dict:
            runtime = {}
        key = runtime.get("streamkey", runtime.get("streamKey"))
        if key is None:
            key = item.get("streamkey", item.get("streamKey"))
        element = ElementState(item["id"], _secret(key), _number(runtime.get("fps")))
        _set_element_raw(element, item)
        states[element.id] = element
    return states


_set_element_raw = vars(ElementState)["raw"].__set__


def _lifecycle(d: dict[str, Any], state: object) -> tuple[InstanceState, dict[str, ElementState]]:
    """The state (and element states) when ``state`` is not a non-empty string."""
    text = _text(d.get("status"))
    elements: dict[str, ElementState] = {}
    if type(state) is dict:
        if text is None:
            text = _text(state.get("state")) or _text(state.get("status"))
        elements = _element_states(state.get("elements"))
    return (InstanceState(text) if text else InstanceState.UNKNOWN), elements


# --- generated model decoders ----------------------------------------------------------------


def _report(dropped: list[object], what: str, where: str) -> None:
    """One WARNING line for items left out: how many and why, never their values."""
    reasons: dict[str, int] = {}
    for item in dropped:
        if type(item) is not dict:
            reason = "not an object"
        elif item.get("id") is None:
            reason = "without an id"
        elif type(item["id"]) is not str:
            reason = "with an id that is not a string"
        else:
            reason = "that could not be read"
        reasons[reason] = reasons.get(reason, 0) + 1
    why = ", ".join(f"{count} {reason}" for reason, count in reasons.items())
    _log.warning("left out %d %s item(s) of %s: %s", len(dropped), what, where, why)


def _decode_items(
    items: Iterable[object], decoder: Callable[[Any], Any], what: str, where: str
) -> list[Any]:
    items = items if isinstance(items, list) else list(items)
    try:
        decoded = [m for m in map(decoder, items) if m is not None]
    except Exception:  # a reader's bug must not cost the whole answer: find the item
        decoded, dropped = [], []
        for item in items:
            try:
                model = decoder(item)
            except Exception:
                model = None
            if model is None:
                dropped.append(item)
            else:
                decoded.append(model)
        _report(dropped, what, where)
        return decoded
    if len(decoded) != len(items):
        decoded_ids = {id(m.raw) for m in decoded}
        _report([i for i in items if id(i) not in decoded_ids], what, where)
    return decoded


def _elements(value: object) -> tuple[Element, ...]:
    return tuple(
        _decode_items(_keyed_items(value), _decoder(Element), "Element", "a Configuration")
    )


def _builder(model: type[Any]) -> type[Any] | None:
    """A plain class with exactly the model's slots, or None if CPython will not let one
    become the other.

    A frozen attrs model refuses attribute stores, so filling one costs a descriptor call
    per field (most of a decode's time). The builder takes plain stores, which CPython
    specialises into direct slot writes; assigning ``__class__`` then makes it the model,
    which CPython allows between classes of identical layout (hence the models have no
    ``__weakref__`` slot). The model is frozen from then on, like any other.
    """
    builder = type(f"_{model.__name__}Builder", (), {"__slots__": model.__slots__})
    probe: Any = object.__new__(builder)
    try:
        probe.__class__ = model
    except TypeError:
        return None
    return builder


def make_model_decoder(model: type[_M], *, in_place: bool = True) -> Callable[[Any], _M | None]:
    """Generate the decoder of one model: ``decoder(obj)`` is the model, or ``None`` when
    ``obj`` is not an object with a string ``id``. Never raises for odd field values.

    ``in_place=False`` fills the frozen model through its slot descriptors (slower), as
    does a model whose layout cannot be built by a plain class (see ``_builder``).
    """
    # The package reports itself as its public classes' module (see __init__), so their
    # annotations are resolved in the module that wrote them.
    hints = typing.get_type_hints(model, localns=vars(_models))
    fields = attrs.fields(typing.cast("type[attrs.AttrsInstance]", model))
    builder = _builder(model) if in_place else None
    namespace: dict[str, Any] = {
        "_new": object.__new__,
        "_model": model,
        "_builder": builder,
        "_timestamp": _timestamp,
        "_fromiso": datetime.fromisoformat,
        "_UTC": UTC,
        "_integer": _integer,
        "_number": _number,
        "_str_tuple": _str_tuple,
        "_secret": _secret,
        "_lifecycle": _lifecycle,
        "_elements": _elements,
        "_known_state": InstanceState._value2member_map_,
        "_state": InstanceState,
    }

    def store(name: str, value: str) -> str:
        if builder is not None:
            return f"    o.{name} = {value}"
        namespace[f"_set_{name}"] = vars(model)[name].__set__
        return f"    _set_{name}(o, {value})"

    lines = [
        "def decode(d):",
        "    if d.__class__ is not dict:",
        "        return None",
        "    get = d.get",
        "    v = get('id')",
        "    if v.__class__ is not str:",
        "        return None",
        f"    o = _new({'_model' if builder is None else '_builder'})",
        store("id", "v"),
    ]
    with_elements = any(f.name == "element_states" for f in fields)
    for n, field in enumerate(fields):
        if field.name in ("id", "raw", "element_states"):
            continue  # element states are read with the state, from the same object
        field_type = hints[field.name]
        if type(None) in typing.get_args(field_type):
            field_type = next(a for a in typing.get_args(field_type) if a is not type(None))
        if isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
            namespace[f"_default{n}"] = field.default.factory
            default = f"_default{n}()"
        else:
            namespace[f"_default{n}"] = field.default
            default = f"_default{n}"
        key = _json_name(field.name)
        lines += _field_lines(n, key, field_type, default, namespace, elements=with_elements)
        if field_type is InstanceState and with_elements:
            lines.append(store("element_states", "e"))
        lines.append(store(field.name, "v"))
    lines.append(store("raw", "d"))
    if builder is not None:
        lines.append("    o.__class__ = _model")
    lines.append("    return o")
    source = "\n".join(lines) + "\n"
    filename = f"<streamrun_async decoder of {model.__qualname__}>"
    # Registered like a file so that tracebacks through the decoder show its lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)
    decoder: Callable[[Any], _M | None] = namespace["decode"]
    return decoder


def _field_lines(
    n: int, key: str, field_type: Any, default: str, ns: dict[str, Any], *, elements: bool
) -> list[str]:
    """Generated lines that leave field ``n``'s value, read from ``d``, in ``v``."""
    get = [f"    v = get({key!r})"]
    if field_type is str:
        return [*get, "    if v.__class__ is not str:", f"        v = {default}"]
    if field_type is InstanceState:
        # Element states sit in a ``state`` object: with ``elements``, they are left in ``e``.
        return [
            *get,
            "    if v.__class__ is str and v:",
            "        v = _known_state.get(v) or _state(v)",
            *(["        e = {}"] if elements else []),
            "    else:",
            f"        {'v, e = _lifecycle(d, v)' if elements else 'v = _lifecycle(d, v)[0]'}",
        ]
    if field_type is Outputs:
        ns[f"_known{n}"] = field_type._value2member_map_
        ns[f"_enum{n}"] = field_type
        return [
            *get,
            "    if v is not None:",
            "        if v.__class__ is str:",
            f"            v = _known{n}.get(v) or _enum{n}(v)",
            "        else:",
            f"            v = {default}",
        ]
    if field_type is datetime:
        # Inline for the common case, an ISO 8601 date with dashes (never all digits).
        return [
            *get,
            "    if v.__class__ is str and v[4:5] == '-':",
            "        try:",
            "            v = _fromiso(v)",
            "        except ValueError:",
            "            v = None",
            "        else:",
            "            if v.tzinfo is None:",
            "                v = v.replace(tzinfo=_UTC)",
            "    elif v is not None:",
            "        v = _timestamp(v)",
        ]
    if field_type is int:
        return [*get, "    if v.__class__ is not int:", "        v = _integer(v)"]
    if field_type is float:
        return [*get, "    if v is not None:", "        v = _number(v)"]
    if field_type is SecretStr:
        return [*get, "    if v is not None:", "        v = _secret(v)"]
    if field_type == tuple[str, ...]:
        return [*get, f"    v = {default} if v is None else _str_tuple(v, {default})"]
    if field_type in _OVERRIDES_TYPES:
        return [
            *get,
            "    if v.__class__ is dict:",
            "        for s in v.values():",
            "            if s.__class__ is not dict:",
            "                v = None",
            "                break",
            "    else:",
            "        v = None",
        ]
    if field_type == Mapping[str, Any]:
        return [*get, "    if v.__class__ is not dict:", f"        v = {default}"]
    if field_type == tuple[Element, ...]:
        return [*get, f"    v = {default} if v is None else _elements(v)"]
    raise TypeError(f"no JSON reader for {field_type!r}")


_DECODERS: dict[type[Any], Callable[[Any], Any]] = {}


def _decoder(cls: type[_M]) -> Callable[[Any], _M | None]:
    # Generated on first use, not at import: most programs decode few of the models.
    decoder = _DECODERS.get(cls)
    if decoder is None:
        decoder = _DECODERS[cls] = make_model_decoder(cls)
    return decoder


# --- answers ---------------------------------------------------------------------------------


def decode_object(data: Any, cls: type[_M], envelope: str) -> _M:
    """Decode one model from a bare object or ``{envelope: {...}}``."""
    if data.__class__ is dict and "id" not in data:
        inner = data.get(envelope)
        if inner is None and len(data) == 1:
            (inner,) = data.values()
        if inner.__class__ is dict:
            data = inner
    try:
        model: _M | None = _decoder(cls)(data)
    except Exception as exc:  # a reader's bug: still a decode failure, with its cause
        raise DecodeFailure(f"cannot decode {cls.__name__}: {type(exc).__name__}") from exc
    if model is not None:
        return model
    if data.__class__ is not dict:
        raise DecodeFailure(f"expected a JSON object for {cls.__name__}, got {_json_type(data)}")
    if "id" not in data:
        raise DecodeFailure(f"cannot decode {cls.__name__}: missing field 'id'")
    raise DecodeFailure(
        f"cannot decode {cls.__name__}: 'id' must be a string, got {_json_type(data['id'])}"
    )


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def list_items(data: Any, cls: type[Any], envelope: str) -> list[Any]:
    """The raw items of a list of ``cls``: a bare array, or the array an object holds (under
    ``envelope`` or as its only array beside paging keys); ``None`` and empty envelopes are
    ``[]``. Raises DecodeFailure for anything else. Nothing is decoded."""
    if type(data) is list:
        return data
    if data is None:
        return []
    if type(data) is dict:
        if envelope in data:
            inner = data[envelope]
            if type(inner) is list:
                return inner
            if inner is None or inner == {}:
                return []
        else:
            rest = [v for k, v in data.items() if k not in _PAGING_KEYS]
            arrays = [v for v in rest if type(v) is list]
            if len(arrays) == 1:
                return arrays[0]
            if not arrays and all(v is None for v in rest):
                return []  # {}, {"items": null}, or only pagination keys
    raise DecodeFailure(
        f"expected a JSON array of {cls.__name__} or an envelope holding one, "
        f"got {_json_type(data)}"
    )


def decode_list(data: Any, cls: type[_M], envelope: str) -> list[_M]:
    """Decode models from a bare array or an object holding it (under ``envelope`` or its
    only array), leaving out items without a string id (one WARNING line says how many)."""
    return _decode_items(list_items(data, cls, envelope), _decoder(cls), cls.__name__, "a list")


def decode_overrides(data: Any) -> Overrides:
    """Decode overrides from a bare object or ``{"overrides": {...}}``; entries whose
    settings are not an object are left out (one WARNING line says how many)."""
    if data.__class__ is dict and set(data) == {"overrides"}:
        data = data["overrides"]
    if data is None:
        return {}
    if data.__class__ is not dict:
        raise DecodeFailure(f"expected a JSON object of overrides, got {_json_type(data)}")
    kept = {k: v for k, v in data.items() if v.__class__ is dict}
    if len(kept) != len(data):
        _log.warning(
            "left out %d override(s) whose settings are not an object", len(data) - len(kept)
        )
    return kept
