"""The resources of the API as frozen attrs classes.

Models know nothing of HTTP or JSON field names (``_converter`` does). Decoded models keep
the whole JSON object they came from in ``raw``, so fields the API adds later are never lost.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Self

import attrs

from ._exceptions import InvalidArgumentError, InvalidArgumentTypeError

__all__ = [
    "Configuration",
    "Destination",
    "Element",
    "Instance",
    "InstanceRequest",
    "InstanceSettings",
    "InstanceState",
    "Outputs",
    "Overrides",
]

Overrides = dict[str, dict[str, Any]]
"""Element id -> that element's settings, e.g. ``{"htmloverlay-1": {"url": "https://..."}}``."""


class _OpenStrEnum(enum.StrEnum):
    """A string enum that never refuses a value: unknown text becomes an ``UNKNOWN`` twin.

    ``InstanceState("HIBERNATING")`` is a member named ``UNKNOWN`` whose value (and ``str``)
    is ``"HIBERNATING"``; ``is_unknown`` tells it apart from the known members.
    """

    @classmethod
    def _missing_(cls, value: object) -> Self | None:
        if not isinstance(value, str):
            return None
        member = str.__new__(cls, value)
        member._name_ = "UNKNOWN"
        member._value_ = value
        # Cached so that the same text always gives the same (identical) member.
        return cls._value2member_map_.setdefault(value, member)  # type: ignore[return-value]

    @property
    def is_unknown(self) -> bool:
        """True for a value this version of the SDK does not know."""
        return self._name_ == "UNKNOWN"


class InstanceState(_OpenStrEnum):
    """The state of an instance or an instance request.

    Only ``RUNNING`` is billed. States the SDK does not know decode to an ``UNKNOWN``
    member that keeps the server's text: ``state.is_unknown``, ``str(state)``.
    """

    QUEUED = "QUEUED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    PREVIEW = "PREVIEW"
    UNKNOWN = "UNKNOWN"


class Outputs(_OpenStrEnum):
    """Whether an instance's outputs stream to their destinations."""

    LIVE = "LIVE"
    OFFLINE = "OFFLINE"


def _raw_field() -> Any:
    return attrs.field(init=False, factory=dict, repr=False, eq=False)


@attrs.frozen
class Element:
    """One element of a configuration's graph, e.g. ``htmloverlay-1``."""

    id: str
    title: str | None = None
    type: str | None = None
    raw: Mapping[str, Any] = _raw_field()


@attrs.frozen
class Configuration:
    """A streaming configuration: a graph of elements that instances run."""

    id: str
    name: str | None = None
    elements: tuple[Element, ...] = ()
    created_at: datetime | None = None
    raw: Mapping[str, Any] = _raw_field()


@attrs.frozen
class Instance:
    """A cloud server running a configuration."""

    id: str
    state: InstanceState
    configuration_id: str | None = None
    name: str | None = None
    request_id: str | None = None
    outputs: Outputs | None = None
    created_at: datetime | None = None
    overrides: Mapping[str, Mapping[str, Any]] | None = attrs.field(default=None, hash=False)
    raw: Mapping[str, Any] = _raw_field()


@attrs.frozen
class InstanceRequest:
    """A launch request, QUEUED until every one of its instances has a server."""

    id: str
    state: InstanceState = InstanceState.QUEUED
    configuration_id: str | None = None
    instance_ids: tuple[str, ...] = ()
    number_of_instances: int | None = None
    created_at: datetime | None = None
    raw: Mapping[str, Any] = _raw_field()


@attrs.frozen
class Destination:
    """A platform to stream to (Twitch, YouTube, Kick, custom RTMP...)."""

    id: str
    name: str | None = None
    platform: str | None = None
    raw: Mapping[str, Any] = _raw_field()


def check_overrides(value: object, what: str = "overrides") -> Overrides:
    """Validate overrides (element id -> JSON object) and return a deep copy.

    Refused before sending: non-string element ids, non-object settings, anything that
    is not JSON serialisable.
    """
    if not isinstance(value, Mapping):
        raise InvalidArgumentTypeError(
            f"{what} must map element ids to objects, got {type(value).__name__}"
        )
    for element, settings in value.items():
        if not isinstance(element, str) or not element:
            raise InvalidArgumentError(f"{what}: element ids must be non-empty strings")
        if not isinstance(settings, Mapping):
            raise InvalidArgumentTypeError(
                f"{what}[{element!r}] must be an object of settings, got {type(settings).__name__}"
            )
    try:
        # A JSON round trip both proves the value serialisable and deep-copies it, so
        # later changes to the caller's dicts cannot alter what is sent.
        copied: Overrides = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentTypeError(f"{what} are not JSON serialisable: {exc}") from None
    return copied


def _check_name(_: object, __: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str):
        raise InvalidArgumentTypeError(f"an instance name must be a str, got {value!r}")
    if not value.strip():
        raise InvalidArgumentError("an instance name must not be empty")


@attrs.frozen
class InstanceSettings:
    """The name and per-element overrides of one instance to launch.

    ``InstanceSettings(name="cam-1", overrides={"htmloverlay-1": {"url": "https://x"}})``
    """

    name: str = attrs.field(validator=_check_name)
    overrides: Overrides = attrs.field(factory=dict, converter=check_overrides, hash=False)

    def to_json(self) -> dict[str, Any]:
        """The camelCase body item the launch endpoint takes."""
        return {"name": self.name, "overrides": self.overrides}
