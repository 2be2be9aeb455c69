"""JSON in and out: the cattrs converter, camelCase names, envelopes, unknown values.

This is the only module that knows the API's JSON field names. Decoding is tolerant where
the API may grow (unknown keys kept in ``raw``, unknown enum text kept) and strict where a
value would be wrong (an id that is not a string, a count that is not an integer): such
answers raise ``DecodeFailure``, which the transport turns into ``ResponseDecodeError``.

Each model's structure hook is generated once from its attrs fields, as straight-line
code that checks each value's type and fills the frozen model's slots directly. It is
registered on a cattrs converter like any hook, so users can replace or extend it; it is
about three times faster than cattrs' generic generated hooks, which matters when a
poller decodes ten thousand instances a tick.
"""

from __future__ import annotations

import functools
import json
import re
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from ._models import (
    Configuration,
    Destination,
    Element,
    Instance,
    InstanceRequest,
    InstanceState,
    Outputs,
    Overrides,
)

if TYPE_CHECKING:
    import cattrs


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
    "configure_converter",
    "decode_list",
    "decode_object",
    "decode_overrides",
    "json_loads",
    "make_converter",
]

_M = TypeVar("_M")
_CAMEL = re.compile(r"_([a-z])")

MODELS: tuple[type[Any], ...] = (Element, Configuration, Instance, InstanceRequest, Destination)
_OVERRIDES_TYPES = (Overrides, Mapping[str, Mapping[str, Any]])


class DecodeFailure(ValueError):
    """An answer whose shape the SDK cannot use."""


def _camel(name: str) -> str:
    return _CAMEL.sub(lambda m: m.group(1).upper(), name)


def _wrong(key: str, expected: str, value: object) -> DecodeFailure:
    return DecodeFailure(f"{key!r} must be {expected}, got {type(value).__name__}")


def _str_tuple(key: str, value: object) -> tuple[str, ...]:
    if value.__class__ is not list or not all(v.__class__ is str for v in value):
        raise _wrong(key, "an array of strings", value)
    return tuple(value)


def _overrides(key: str, value: object) -> Overrides:
    if value.__class__ is not dict:
        raise _wrong(key, "an object of objects", value)
    for settings in value.values():
        if settings.__class__ is not dict:
            raise _wrong(key, "an object of objects", value)
    return value


def _check(key: str, kind: str, expected: str) -> list[str]:
    return [
        f"        if v.__class__ is not {kind}:",
        f"            raise _wrong({key!r}, {expected!r}, v)",
    ]


def _field_code(
    converter: cattrs.Converter, n: int, key: str, field_type: Any, namespace: dict[str, Any]
) -> list[str]:
    """Generated lines that check (and convert) one present, non-null JSON value ``v``."""
    if field_type is str:
        return _check(key, "str", "a string")
    if field_type is int:
        # int() would take "5", 2.7 and true: a count must arrive as a JSON integer.
        return _check(key, "int", "an integer")
    if field_type is datetime:
        return [*_check(key, "str", "an ISO 8601 timestamp"), "        v = _fromiso(v)"]
    if field_type in (InstanceState, Outputs):
        namespace[f"_known{n}"] = field_type._value2member_map_
        namespace[f"_enum{n}"] = field_type
        # A dict lookup first: calling the enum class costs ten times as much.
        return [*_check(key, "str", "a string"), f"        v = _known{n}.get(v) or _enum{n}(v)"]
    if field_type == tuple[str, ...]:
        namespace[f"_conv{n}"] = _str_tuple
    elif field_type in _OVERRIDES_TYPES:
        namespace[f"_conv{n}"] = _overrides
    elif typing.get_origin(field_type) is tuple and typing.get_args(field_type)[1:] == (...,):
        item_type = typing.get_args(field_type)[0]
        item_hook = converter.get_structure_hook(item_type)

        def items(key: str, value: object) -> tuple[Any, ...]:
            if value.__class__ is not list:
                raise _wrong(key, "an array", value)
            return tuple(item_hook(item, item_type) for item in value)

        namespace[f"_conv{n}"] = items
    else:
        raise TypeError(f"no JSON structurer for {field_type!r}")
    return [f"        v = _conv{n}({key!r}, v)"]


def make_model_hook(converter: cattrs.Converter, model: type[_M]) -> Callable[[Any, Any], _M]:
    """Generate the structure hook of one model (``raw`` keeps the whole object)."""
    hints = typing.get_type_hints(model)
    namespace: dict[str, Any] = {
        "_new": object.__new__,
        "_model": model,
        "_wrong": _wrong,
        "_failure": DecodeFailure,
        "_absent": object(),
        "_name": model.__name__,
        "_set_raw": vars(model)["raw"].__set__,
        "_fromiso": datetime.fromisoformat,
    }
    lines = [
        "def structure(d, _cls):",
        "    if d.__class__ is not dict:",
        "        raise _wrong(_name, 'a JSON object', d)",
        "    get = d.get",
        "    o = _new(_model)",
    ]
    fields = attrs.fields(typing.cast("type[attrs.AttrsInstance]", model))
    for n, field in enumerate(f for f in fields if f.init):
        key = _camel(field.name)
        field_type = hints[field.name]
        optional = type(None) in typing.get_args(field_type)
        if optional:
            field_type = next(a for a in typing.get_args(field_type) if a is not type(None))
        required = field.default is attrs.NOTHING
        namespace[f"_set{n}"] = vars(model)[field.name].__set__
        if optional and field.default is None:
            # The common case, cheapest: absent and null both mean None.
            lines += [f"    v = get({key!r})", "    if v is not None:"]
        else:
            lines += [f"    v = get({key!r}, _absent)", "    if v is _absent:"]
            if required:
                namespace[f"_msg{n}"] = f"cannot decode {model.__name__}: missing field {key!r}"
                lines.append(f"        raise _failure(_msg{n})")
            else:
                namespace[f"_default{n}"] = field.default
                lines.append(f"        v = _default{n}")
            if optional:
                lines += ["    elif v is None:", "        pass"]
            lines.append("    else:")
        lines += _field_code(converter, n, key, field_type, namespace)
        lines.append(f"    _set{n}(o, v)")
    lines += ["    _set_raw(o, d)", "    return o"]
    exec("\n".join(lines), namespace)
    hook: Callable[[Any, Any], _M] = namespace["structure"]
    return hook


def configure_converter(converter: cattrs.Converter) -> None:
    """Register the API models' structure hooks on ``converter``.

    Split from :func:`make_converter` so that users and tests can extend a converter.
    """
    for model in MODELS:
        converter.register_structure_hook(model, make_model_hook(converter, model))


def make_converter() -> cattrs.Converter:
    """A new converter for the API's models (never the global one)."""
    import cattrs

    converter = cattrs.Converter(detailed_validation=False, forbid_extra_keys=False)
    configure_converter(converter)
    return converter


@functools.cache
def _hook(cls: type[Any]) -> Callable[[Any, Any], Any]:
    # Built on first use: generating the hooks (and importing cattrs) at import time would
    # slow down every program that imports the SDK.
    return _default_converter().get_structure_hook(cls)


@functools.cache
def _default_converter() -> cattrs.Converter:
    return make_converter()


def _structure_all(items: list[Any], cls: type[_M]) -> list[_M]:
    hook: Callable[[Any, Any], _M] = _hook(typing.cast(Any, cls))
    try:
        return [hook(item, cls) for item in items]
    except DecodeFailure:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DecodeFailure(f"cannot decode {cls.__name__}: {exc}") from exc


def decode_object(data: Any, cls: type[_M], envelope: str) -> _M:
    """Decode one model from a bare object or ``{envelope: {...}}``."""
    if isinstance(data, dict) and "id" not in data:
        inner = data.get(envelope)
        if inner is None and len(data) == 1:
            (inner,) = data.values()
        if isinstance(inner, dict):
            data = inner
    return _structure_all([data], cls)[0]


def decode_list(data: Any, cls: type[_M], envelope: str) -> list[_M]:
    """Decode models from a bare array or an object holding it under one key."""
    if isinstance(data, dict):
        inner = data.get(envelope)
        if not isinstance(inner, list) and len(data) == 1:
            (inner,) = data.values()
        data = inner
    if not isinstance(data, list):
        raise DecodeFailure(f"expected a JSON array of {cls.__name__} or an envelope holding one")
    return _structure_all(data, cls)


def decode_overrides(data: Any) -> Overrides:
    """Decode overrides from a bare object or ``{"overrides": {...}}``."""
    if (
        isinstance(data, dict)
        and set(data) == {"overrides"}
        and isinstance(data["overrides"], dict)
    ):
        data = data["overrides"]
    return _overrides("overrides", data)
