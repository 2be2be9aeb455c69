"""The resources of the API as frozen attrs classes.

Models know nothing of HTTP or JSON field names (``_converter`` does). Decoded models keep
the whole JSON object they came from in ``raw``, so fields the API adds later are never lost.
Models have no ``__weakref__`` slot: that lets the decoder build them fast (see
``_converter._builder``).
"""

from __future__ import annotations

import enum
import functools
import json
import math
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Self

import attrs

from ._exceptions import InvalidArgumentError, InvalidArgumentTypeError
from ._secret import SecretStr

__all__ = [
    "Configuration",
    "Destination",
    "Element",
    "ElementState",
    "Instance",
    "InstanceRequest",
    "InstanceSettings",
    "InstanceState",
    "Outputs",
    "Overrides",
    "check_overrides",
    "check_timeout",
    "check_ttl",
    "is_stream_key_field",
    "secret_values",
]

Overrides = dict[str, dict[str, Any]]
"""Element id -> that element's settings, e.g. ``{"htmloverlay-1": {"url": "https://..."}}``."""


_CACHE_LIMIT = 1024
"""How many distinct texts an open enum remembers; past it, new texts still decode."""


class _OpenStrEnum(enum.StrEnum):
    """A string enum that never refuses text: any case of a member's value finds it, and
    unknown text becomes an ``UNKNOWN`` twin.

    ``InstanceState("running") is InstanceState.RUNNING``; ``InstanceState("HIBERNATING")``
    is a member named ``UNKNOWN`` whose value (and ``str``) is ``"HIBERNATING"``;
    ``is_unknown`` tells it apart from the known members.
    """

    @classmethod
    def _missing_(cls, value: object) -> Self | None:
        if not isinstance(value, str):
            return None
        # ASCII only: str.upper() maps some non-ASCII letters onto ASCII ones.
        member = cls._member_map_.get(value.upper()) if value.isascii() else None
        if member is None:
            member = str.__new__(cls, value)
            member._name_ = "UNKNOWN"
            member._value_ = value
        cache = cls._value2member_map_
        if len(cache) >= _CACHE_LIMIT:
            return member  # type: ignore[return-value]
        # Cached so that the same text always gives the same (identical) member, found by
        # the decoder's dict lookup without calling the class.
        return cache.setdefault(value, member)  # type: ignore[return-value]

    @property
    def is_unknown(self) -> bool:
        """True for a value this version of the SDK does not know."""
        return self._name_ == "UNKNOWN"


# Words that mean "ended for good", alone or first in a longer state (STOPPED_IDLE,
# FAILED_TO_START, TERMINATED_BY_USER...); and those that mean "ending".
_ENDED_WORDS = frozenset(
    {
        "STOPPED",
        "FAILED",
        "ERROR",
        "ERRORED",
        "TERMINATED",
        "DELETED",
        "CANCELLED",
        "CANCELED",
        "ENDED",
        "FINISHED",
        "COMPLETED",
        "DONE",
        "KILLED",
        "EXITED",
        "CRASHED",
        "DESTROYED",
        "REMOVED",
        "EXPIRED",
    }
)
_ENDING_WORDS = frozenset(
    {"STOPPING", "TERMINATING", "DELETING", "CANCELLING", "CANCELING", "ENDING", "SHUTTING"}
)
_WORD = re.compile(r"[A-Z]+")


@functools.lru_cache(maxsize=_CACHE_LIMIT)
def _first_word(text: str) -> str:
    match = _WORD.match(text.upper()) if text.isascii() else None
    return match.group() if match else ""


class InstanceState(_OpenStrEnum):
    """The state of an instance or an instance request, read in any case.

    Only ``RUNNING`` is billed. States the SDK does not know decode to an ``UNKNOWN``
    member that keeps the server's text: ``state.is_unknown``, ``str(state)``.
    ``is_terminal``: the instance has ended and can never run again; ``can_become_running``
    is false for those and for ``STOPPING``.
    """

    QUEUED = "QUEUED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    PREVIEW = "PREVIEW"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    FAILED = "FAILED"
    ERROR = "ERROR"
    UNKNOWN = "UNKNOWN"

    @property
    def is_terminal(self) -> bool:
        """True for STOPPED, FAILED, ERROR and unknown text meaning ended (TERMINATED,
        DELETED, CANCELLED, STOPPED_IDLE...)."""
        return _first_word(self._value_) in _ENDED_WORDS

    @property
    def can_become_running(self) -> bool:
        """False when RUNNING can no longer follow: terminal states and STOPPING."""
        word = _first_word(self._value_)
        return word not in _ENDED_WORDS and word not in _ENDING_WORDS


class Outputs(_OpenStrEnum):
    """Whether an instance's outputs stream to their destinations (read in any case)."""

    LIVE = "LIVE"
    OFFLINE = "OFFLINE"


def _raw_field() -> Any:
    return attrs.field(init=False, factory=dict, repr=False, eq=False)


@attrs.frozen(weakref_slot=False)
class Element:
    """One element of a configuration's graph, e.g. ``htmloverlay-1``.

    ``settings``: the element's saved editor settings (an overlay's ``url``, an output's
    ``destinations``...), as the API sends them.
    """

    id: str
    title: str | None = None
    type: str | None = None
    settings: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    raw: Mapping[str, Any] = _raw_field()


@attrs.frozen(weakref_slot=False)
class Configuration:
    """A streaming configuration: a graph of elements that instances run."""

    id: str
    name: str | None = None
    elements: tuple[Element, ...] = ()
    created_at: datetime | None = None
    raw: Mapping[str, Any] = _raw_field()


@attrs.frozen(weakref_slot=False)
class ElementState:
    """The runtime state of one element of a running instance (``GET /instances/{id}``).

    ``stream_key``: the key an encoder publishes into this input with (a secret: shown
    masked); ``fps``: frames per second when the server gives it (it can be stale).
    """

    id: str
    stream_key: SecretStr | None = None
    fps: float | None = None
    raw: Mapping[str, Any] = _raw_field()


INGEST_HOST = "ingest.streamrun.io"
"""The ingest server nearest to the encoder; ``ingest-ipv6.streamrun.io`` over IPv6."""


@attrs.frozen(weakref_slot=False)
class Instance:
    """A cloud server running a configuration.

    ``element_states`` and ``stream_key`` come only with ``instances.get()`` (lists do not
    carry them). Stream keys are :class:`SecretStr`: masked in ``str``/``repr``. ``raw`` is
    the server's object as sent, so it holds them in plain text: never log ``raw``.
    """

    id: str
    state: InstanceState = InstanceState.UNKNOWN
    configuration_id: str | None = None
    name: str | None = None
    request_id: str | None = None
    outputs: Outputs | None = None
    created_at: datetime | None = None
    overrides: Mapping[str, Mapping[str, Any]] | None = attrs.field(default=None, hash=False)
    element_states: Mapping[str, ElementState] = attrs.field(factory=dict, hash=False)
    stream_key: SecretStr | None = None
    raw: Mapping[str, Any] = _raw_field()

    def ingest_url(
        self, element_id: str, protocol: str = "rtmp", *, host: str = INGEST_HOST
    ) -> SecretStr:
        """The URL an encoder publishes into input ``element_id`` with, as a :class:`SecretStr`.

        ``rtmp://ingest.streamrun.io/<element-id>/<streamkey>`` or
        ``srt://ingest.streamrun.io:8890?streamid=publish:<streamkey>``. Raises
        ``InvalidArgumentError`` for another protocol, an element this instance does not
        list, or one without a stream key (lists carry none: use ``instances.get()``).
        """
        if not isinstance(element_id, str):
            raise InvalidArgumentTypeError(
                f"element_id must be a str, got {type(element_id).__name__}"
            )
        if protocol not in ("rtmp", "srt"):
            raise InvalidArgumentError(f'protocol must be "rtmp" or "srt", got {protocol!r}')
        element = self.element_states.get(element_id)
        if element is None:
            known = ", ".join(sorted(self.element_states)) or "none (only instances.get() has them)"
            raise InvalidArgumentError(
                f"instance {self.id!r} has no element {element_id!r}; elements: {known}"
            )
        if element.stream_key is None:
            raise InvalidArgumentError(f"element {element_id!r} of {self.id!r} has no stream key")
        key = element.stream_key.get_secret_value()
        if protocol == "rtmp":
            return SecretStr(f"rtmp://{host}/{element_id}/{key}")
        return SecretStr(f"srt://{host}:8890?streamid=publish:{key}")


@attrs.frozen(weakref_slot=False)
class InstanceRequest:
    """A launch request, QUEUED until every one of its instances has a server."""

    id: str
    state: InstanceState = InstanceState.QUEUED
    configuration_id: str | None = None
    instance_ids: tuple[str, ...] = ()
    number_of_instances: int | None = None
    created_at: datetime | None = None
    raw: Mapping[str, Any] = _raw_field()


@attrs.frozen(weakref_slot=False)
class Destination:
    """A platform to stream to (Twitch, YouTube, Kick, custom RTMP...); ``platform`` names
    it in the API's words (e.g. ``"youtube"``)."""

    id: str
    name: str | None = None
    platform: str | None = None
    raw: Mapping[str, Any] = _raw_field()


def is_stream_key_field(key: object) -> bool:
    """Whether a JSON field name names a stream key: ``streamkey`` in any case, with or
    without underscores (``streamKey``, ``stream_key``)."""
    return isinstance(key, str) and key.replace("_", "").lower() == "streamkey"


def secret_values(model: object) -> tuple[str, ...]:
    """The plain text of every stream key a decoded model (or a list of them) holds.

    Read from the model's fields and from everywhere in its ``raw`` (fields named as
    :func:`is_stream_key_field` says), so that a transport can scrub them from what it quotes.
    """
    found: dict[str, None] = {}
    pending: list[object] = [model]
    while pending:
        item = pending.pop()
        if isinstance(item, SecretStr):
            found[item.get_secret_value()] = None
        elif isinstance(item, list | tuple):
            pending.extend(item)
        elif isinstance(item, Mapping):
            for key, value in item.items():
                if isinstance(value, str) and is_stream_key_field(key):
                    found[value] = None
                elif isinstance(value, Mapping | list):
                    pending.append(value)
        elif isinstance(item, Instance):
            pending += [item.stream_key, list(item.element_states.values()), item.raw]
        elif isinstance(item, ElementState):
            pending += [item.stream_key, item.raw]
    found.pop("", None)
    return tuple(found)


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


def check_timeout(timeout: float | timedelta) -> float:
    """Seconds of a timeout (a wait's or a request's); refused unless positive."""
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise InvalidArgumentTypeError(f"timeout must be seconds or a timedelta, got {timeout!r}")
    if not seconds > 0:
        raise InvalidArgumentError(f"timeout must be positive, got {timeout!r}")
    return float(seconds)


def check_ttl(ttl: object, what: str = "ttl") -> float | None:
    """A ttl in seconds (``timedelta`` accepted), or None for no deadline; refuses the rest.

    An instance's ttl is read by a guarded client's reaper (``streamrun_async.guard``).
    """
    if ttl is None:
        return None
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise InvalidArgumentTypeError(f"{what} must be seconds or a timedelta, got {ttl!r}")
    if not (seconds > 0 and math.isfinite(seconds)):
        raise InvalidArgumentError(f"{what} must be a positive, finite duration, got {ttl!r}")
    return float(seconds)


@attrs.frozen
class InstanceSettings:
    """The name and per-element overrides of one instance to launch.

    ``InstanceSettings(name="cam-1", overrides={"htmloverlay-1": {"url": "https://x"}})``
    """

    name: str = attrs.field(validator=_check_name)
    overrides: Overrides = attrs.field(factory=dict, converter=check_overrides, hash=False)
    ttl: float | None = attrs.field(default=None, converter=check_ttl, kw_only=True)
    """Seconds until a guarded client's reaper stops this instance (never sent)."""

    def to_json(self) -> dict[str, Any]:
        """The camelCase body item the launch endpoint takes (the ttl stays local)."""
        return {"name": self.name, "overrides": self.overrides}
