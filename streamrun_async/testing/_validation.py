"""Strict parsing of the request bodies the API accepts.

We forbid what the schema does not know (unknown keys, wrong types) so that an SDK that
sends a wrong body fails its tests here instead of in production. Messages name the
exact place, in ``instanceSettings[1].overrides["switch-1"]`` style.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any, cast

from ._errors import ApiError, invalid_request
from ._seed import ConfigurationSeed
from ._snapshot import OutputsState
from ._state import LaunchSpec, Overrides

__all__ = ["parse_launch", "parse_outputs", "parse_overrides_patch"]

_OUTPUTS: tuple[OutputsState, ...] = ("LIVE", "OFFLINE")


def parse_launch(raw: bytes, configuration: ConfigurationSeed) -> list[LaunchSpec]:
    """The instances a launch body asks for; no body at all is one default instance."""
    if not raw:
        return [LaunchSpec(name=None, overrides={})]
    body = _object(_json(raw), "body")
    _keys(body, "body", required=("numberOfInstances", "instanceSettings"))
    number = body["numberOfInstances"]
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise invalid_request(
            f"numberOfInstances must be an integer of at least 1, got {_show(number)}"
        )
    settings = body["instanceSettings"]
    if not isinstance(settings, list):
        raise invalid_request(f"instanceSettings must be an array, got {_type(settings)}")
    if len(settings) != number:
        raise invalid_request(
            f"numberOfInstances is {number} but instanceSettings has {len(settings)}"
            " entries; they must be equal"
        )
    specs = []
    for index, item in enumerate(settings):
        where = f"instanceSettings[{index}]"
        entry = _object(item, where)
        _keys(entry, where, required=("name",), optional=("overrides",))
        name = entry["name"]
        if not isinstance(name, str) or not name.strip():
            raise invalid_request(f"{where}.name must be a non-empty string, got {_show(name)}")
        overrides = _overrides(entry.get("overrides", {}), configuration, f"{where}.overrides")
        specs.append(LaunchSpec(name=name, overrides=overrides))
    return specs


def parse_outputs(raw: bytes) -> OutputsState:
    """The ``{"outputs": "LIVE" | "OFFLINE"}`` body of ``PUT .../instances``."""
    body = _object(_json(_required(raw)), "body")
    _keys(body, "body", required=("outputs",))
    outputs = body["outputs"]
    if outputs not in _OUTPUTS:
        raise invalid_request(f'outputs must be "LIVE" or "OFFLINE", got {_show(outputs)}')
    return cast(OutputsState, outputs)


def parse_overrides_patch(raw: bytes, configuration: ConfigurationSeed) -> Overrides:
    """The element id -> settings object body of ``PATCH .../overrides``."""
    return _overrides(_json(_required(raw)), configuration, "body")


def _overrides(value: object, configuration: ConfigurationSeed, where: str) -> Overrides:
    overrides = _object(value, where)
    for element_id, settings in overrides.items():
        if element_id not in configuration.elements:
            raise invalid_request(
                f"{where}: {element_id!r} is not an element of configuration"
                f" {configuration.id!r} (its elements: {', '.join(configuration.elements)})"
            )
        if not isinstance(settings, dict):
            raise invalid_request(
                f'{where}["{element_id}"] must be an object of settings, got {_type(settings)}'
            )
    return cast(Overrides, overrides)


def _required(raw: bytes) -> bytes:
    if not raw:
        raise invalid_request("a JSON body is required")
    return raw


def _json(raw: bytes) -> object:
    try:
        return cast(object, json.loads(raw))
    except ValueError as exc:  # UnicodeDecodeError is a ValueError too
        raise ApiError(400, "invalid_json", f"request body is not valid JSON: {exc}") from None


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid_request(f"{where} must be a JSON object, got {_type(value)}")
    return value


def _keys(
    value: dict[str, Any],
    where: str,
    *,
    required: Collection[str],
    optional: Collection[str] = (),
) -> None:
    unknown = sorted(set(value) - set(required) - set(optional))
    if unknown:
        allowed = ", ".join(sorted((*required, *optional)))
        raise invalid_request(f"{where}: unknown key {unknown[0]!r} (allowed: {allowed})")
    missing = [key for key in required if key not in value]
    if missing:
        raise invalid_request(f"{where}: missing required key {missing[0]!r}")


def _type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _show(value: object) -> str:
    """A short JSON rendering of a bad value, with its type when that says more."""
    text = json.dumps(value)
    return text if len(text) <= 40 else f"{_type(value)} ({text[:37]}...)"
