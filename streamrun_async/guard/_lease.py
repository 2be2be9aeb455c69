"""The lease: a durable promise that an instance is stopped by a deadline.

A lease is written before its launch is sent and names what the launch will create: the
owner, the process that launched it, the configuration and the instance name. The request
id and the instance id are filled in once known. Deadlines are wall-clock seconds since
the epoch, stored with the lease, so a lease outlives its process: whoever reads the store
later (a restarted bot, ``streamrun reap`` from cron) enforces it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

from .._exceptions import InvalidArgumentError, InvalidArgumentTypeError
from .._models import check_ttl

__all__ = ["Lease", "check_owner", "check_ttl", "names_match"]

_MAX_OWNER = 128


def check_owner(owner: object) -> str:
    """An owner name: printable text without spaces, at most 128 characters."""
    if not isinstance(owner, str):
        raise InvalidArgumentTypeError(f"owner must be a str, got {type(owner).__name__}")
    if not owner or len(owner) > _MAX_OWNER or not owner.isprintable() or owner.split() != [owner]:
        raise InvalidArgumentError(
            f"owner must be 1-{_MAX_OWNER} printable characters without spaces, got {owner!r}"
        )
    return owner


def names_match(leased: str, listed: str | None) -> bool:
    """Whether an instance listed under ``listed`` is the one launched as ``leased``.

    Servers may echo names in another case or cut long ones short, so a case-insensitive
    match, or a listed name that is a prefix of the leased one, counts.
    """
    if not listed:
        return False
    if listed == leased:
        return True
    folded, listed_folded = leased.casefold(), listed.casefold()
    return folded == listed_folded or (len(listed) >= 8 and folded.startswith(listed_folded))


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


@attrs.frozen(kw_only=True)
class Lease:
    """One leased instance. Times are wall-clock seconds since the epoch (UTC).

    ``name`` is the instance name launched (None for a default launch); ``expires_at``
    None means no deadline (the lease still counts toward the budget).
    ``request_id`` and ``instance_id`` are None until known.
    """

    id: str
    owner: str
    host: str
    pid: int
    configuration_id: str
    name: str | None
    created_at: float
    expires_at: float | None
    request_id: str | None = None
    instance_id: str | None = None
    seen_at: float | None = None
    """When a list first showed the instance (until then its absence proves nothing)."""

    def __repr__(self) -> str:
        who = self.name if self.name is not None else self.instance_id or self.id
        return (
            f"<Lease {who!r} of {self.owner!r} on {self.configuration_id!r} "
            f"expires {_when(self.expires_at)}>"
        )

    def expired(self, now: float) -> bool:
        """True once ``now`` (wall seconds) reaches the deadline."""
        return self.expires_at is not None and now >= self.expires_at

    def remaining(self, now: float) -> float | None:
        """Seconds left before the deadline (0 once expired), None without one."""
        return None if self.expires_at is None else max(0.0, self.expires_at - now)

    @property
    def expires(self) -> datetime | None:
        """The deadline as an aware datetime, None without one."""
        return None if self.expires_at is None else datetime.fromtimestamp(self.expires_at, UTC)

    @property
    def created(self) -> datetime:
        """When the lease was written, as an aware datetime."""
        return datetime.fromtimestamp(self.created_at, UTC)

    def matches(self, key: str) -> bool:
        """Whether ``key`` names this lease: its instance name, instance id or lease id."""
        return key in (self.name, self.instance_id, self.id)

    def to_json(self) -> str:
        """The lease as one JSON object, as stores keep it."""
        return json.dumps(attrs.asdict(self), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> Lease:
        """A lease from :meth:`to_json`; ValueError for anything else."""
        data = json.loads(text)
        if not isinstance(data, Mapping):
            raise ValueError("a lease must be a JSON object")
        return cls.from_mapping(data)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Lease:
        """A lease from a mapping of its fields; ValueError when one is missing or wrong."""
        try:
            # Optional fields may be missing: a store written by an older version lacks them.
            lease = cls(
                **{
                    field.name: data[field.name]
                    if field.default is attrs.NOTHING
                    else data.get(field.name, field.default)
                    for field in attrs.fields(cls)
                }
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a lease: {exc}") from None
        checks = (
            isinstance(lease.id, str),
            isinstance(lease.owner, str),
            isinstance(lease.configuration_id, str),
            isinstance(lease.pid, int),
            isinstance(lease.created_at, (int, float)),
            lease.expires_at is None or isinstance(lease.expires_at, (int, float)),
            lease.seen_at is None or isinstance(lease.seen_at, (int, float)),
        )
        if not all(checks):
            raise ValueError("not a lease: a field has the wrong type")
        return lease
