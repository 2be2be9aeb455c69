"""JSON in and out: the one cattrs converter, camelCase names, envelopes, unknown values.

This is the only module that knows the API's JSON field names. Decoding is tolerant where
the API may grow (unknown keys kept in ``raw``, unknown enum text kept) and strict where a
value would be wrong (an id that is not a string): such answers raise ``DecodeFailure``,
which the transport turns into ``ResponseDecodeError`` with the body attached.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

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

try:  # orjson is optional: about twice as fast as json when it is installed.
    import orjson as _orjson

    json_loads: Callable[[bytes], Any] = _orjson.loads
except ImportError:  # pragma: no cover - depends on the environment
    json_loads = json.loads

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


class DecodeFailure(ValueError):
    """An answer whose shape the SDK cannot use."""


def _camel(name: str) -> str:
    return _CAMEL.sub(lambda m: m.group(1).upper(), name)


def _strict_str(value: object, _: object) -> str:
    if not isinstance(value, str):
        raise DecodeFailure(f"expected a string, got {type(value).__name__}")
    return value


def _datetime(value: object, _: object) -> datetime:
    if not isinstance(value, str):
        raise DecodeFailure(f"expected an ISO 8601 timestamp, got {type(value).__name__}")
    return datetime.fromisoformat(value)


def _overrides(value: object, _: object) -> Overrides:
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise DecodeFailure("overrides must be an object of objects")
    return value


def configure_converter(converter: cattrs.Converter) -> None:
    """Teach ``converter`` the API's models: camelCase keys, strict ids, open enums.

    Split from :func:`make_converter` so that users and tests can extend a converter.
    """
    converter.register_structure_hook(str, _strict_str)
    converter.register_structure_hook(datetime, _datetime)
    for enum_type in (InstanceState, Outputs):
        converter.register_structure_hook(enum_type, lambda v, t: t(_strict_str(v, t)))
    converter.register_structure_hook_func(
        lambda t: t == Overrides or t == Mapping[str, Mapping[str, Any]], _overrides
    )
    for model in MODELS:
        renames: dict[str, Any] = {
            f.name: override(rename=_camel(f.name)) for f in attrs.fields(model) if f.init
        }
        structure = make_dict_structure_fn(model, converter, **renames)
        converter.register_structure_hook(model, _keep_raw(structure))


def _keep_raw(structure: Callable[[Any, Any], _M]) -> Callable[[Any, Any], _M]:
    def hook(data: Any, cls: Any) -> _M:
        if not isinstance(data, dict):
            raise DecodeFailure(f"expected a JSON object, got {type(data).__name__}")
        model = structure(data, cls)
        # raw is init=False on the frozen models: set once here, so no field is ever lost.
        object.__setattr__(model, "raw", data)
        return model

    return hook


def make_converter() -> cattrs.Converter:
    """A new converter for the API's models (never the global one)."""
    converter = cattrs.Converter(detailed_validation=False, forbid_extra_keys=False)
    configure_converter(converter)
    return converter


CONVERTER = make_converter()


def _structure(data: Any, cls: type[_M]) -> _M:
    try:
        return CONVERTER.structure(data, cls)
    except DecodeFailure:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, cattrs.BaseValidationError) as exc:
        detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
        raise DecodeFailure(f"cannot decode {cls.__name__}: {detail}") from exc


def decode_object(data: Any, cls: type[_M], envelope: str) -> _M:
    """Decode one model from a bare object or ``{envelope: {...}}``."""
    if isinstance(data, dict) and "id" not in data:
        inner = data.get(envelope)
        if inner is None and len(data) == 1:
            (inner,) = data.values()
        if isinstance(inner, dict):
            data = inner
    return _structure(data, cls)


def decode_list(data: Any, cls: type[_M], envelope: str) -> list[_M]:
    """Decode models from a bare array or an object holding it under one key."""
    if isinstance(data, dict):
        inner = data.get(envelope)
        if not isinstance(inner, list) and len(data) == 1:
            (inner,) = data.values()
        data = inner
    if not isinstance(data, list):
        raise DecodeFailure(f"expected a JSON array of {cls.__name__} or an envelope holding one")
    return [_structure(item, cls) for item in data]


def decode_overrides(data: Any) -> Overrides:
    """Decode overrides from a bare object or ``{"overrides": {...}}``."""
    if (
        isinstance(data, dict)
        and set(data) == {"overrides"}
        and isinstance(data["overrides"], dict)
    ):
        data = data["overrides"]
    return _overrides(data, None)
