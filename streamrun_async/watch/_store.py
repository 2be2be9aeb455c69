"""The store: the last instance list, by id, by configuration and by request, and the
diff of each new list against it.

Pure: no I/O, no clock (each update says when its list was taken). Items are compared
as the parsed JSON they arrived as; only items whose JSON changed are decoded into new
models, so an unchanged list of ten thousand instances costs a dict comparison per item
and keeps every model it had.

Eventual consistency: an instance missing from a list stays in the store (as last seen)
until it was missing from at least two consecutive lists spanning ``grace`` seconds;
only then is it REMOVED. A list that covers some configurations only (a per-configuration
list) says nothing about instances of the others, which it drops without a REMOVED.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

import attrs

from .._models import Instance

__all__ = ["ChangeKind", "Diff", "InstanceChange", "Store"]

Decode = Callable[[list[Any]], list[Instance]]
"""Decodes raw instance objects (a list of parsed JSON dicts) into models."""


class ChangeKind(enum.Enum):
    """What happened to an instance between two observations."""

    ADDED = "ADDED"
    CHANGED = "CHANGED"
    REMOVED = "REMOVED"


@attrs.frozen
class InstanceChange:
    """One observed change: the instance now (as last seen, for REMOVED), the state before."""

    kind: ChangeKind
    instance: Instance
    previous: Any = None  # InstanceState | None; Any keeps attrs' repr of unknown texts


@attrs.frozen
class Diff:
    """What one list changed in the store."""

    added: list[Instance]
    changed: list[tuple[Instance, Instance]]  # (now, before)
    removed: list[Instance]
    taken: float
    covered: frozenset[str] | None  # configurations the list covered (None: all)

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def changes(self) -> Iterable[InstanceChange]:
        """The diff as InstanceChange records (REMOVED, then CHANGED, then ADDED)."""
        for gone in self.removed:
            yield InstanceChange(ChangeKind.REMOVED, gone, gone.state)
        for now, before in self.changed:
            yield InstanceChange(ChangeKind.CHANGED, now, before.state)
        for new in self.added:
            yield InstanceChange(ChangeKind.ADDED, new, None)


class Store:
    """The last snapshot of the instance list and its indexes."""

    def __init__(self, decode: Decode, *, grace: float) -> None:
        self._decode = decode
        self._grace = grace
        self._raw: dict[str, Any] = {}
        self._models: dict[str, Instance] = {}
        # Only for instances that need it: where a per-configuration list put an instance
        # that does not say its configuration, and since when an instance is missing.
        self._listed_in: dict[str, str] = {}
        self._missing: dict[str, tuple[float, int]] = {}
        self._by_request: dict[str, set[str]] = {}
        self._request_configs: dict[str, str] = {}
        self.taken: float | None = None
        self.covered: frozenset[str] | None = None
        self.lists = 0
        self.generation = 0
        """Bumped whenever a request's configuration is learned (scopes may widen)."""
        self.view: Mapping[str, Instance] = MappingProxyType(self._models)
        """A read-only live view of the snapshot, id -> Instance."""

    def __len__(self) -> int:
        return len(self._models)

    def get(self, instance_id: str) -> Instance | None:
        """The instance as last listed (kept during its absence grace), if known."""
        return self._models.get(instance_id)

    def covers(self, configuration_id: str | None) -> bool:
        """True when the last list covered this configuration (None: the whole account)."""
        if self.taken is None:
            return False
        if self.covered is None:
            return True
        return configuration_id is not None and configuration_id in self.covered

    def configuration_of(self, instance: Instance) -> str | None:
        """The instance's configuration: its own field, else where it was listed, else its
        request's (learned from siblings or from requests the poller knows)."""
        if instance.configuration_id is not None:
            return instance.configuration_id
        found = self._listed_in.get(instance.id)
        if found is None and instance.request_id is not None:
            found = self._request_configs.get(instance.request_id)
        return found

    def learn_request(self, request_id: str, configuration_id: str | None) -> None:
        """Record a request's configuration (from a launch answer or a fetch)."""
        if configuration_id is not None and request_id not in self._request_configs:
            self._request_configs[request_id] = configuration_id
            self.generation += 1

    def members(self, request_id: str, instance_ids: Iterable[str] = ()) -> list[Instance]:
        """The listed instances of a request: those naming it, and those it names."""
        ids = set(self._by_request.get(request_id, ()))
        ids.update(i for i in instance_ids if i in self._models)
        return [self._models[i] for i in ids]

    def has_missing(self) -> bool:
        """True while some instance is missing but within its grace."""
        return bool(self._missing)

    def update(
        self,
        lists: Mapping[str | None, list[Any]],
        taken: float,
    ) -> Diff:
        """Take the answers of one tick's list calls, keyed by configuration (None: the
        account-wide list); return what changed."""
        covered = None if None in lists else frozenset(k for k in lists if k is not None)
        old_raw, models = self._raw, self._models
        new_raw: dict[str, Any] = {}
        changed_raw: list[Any] = []
        for listed_in, items in lists.items():
            for item in items:
                if item.__class__ is not dict:
                    continue
                key = item.get("id")
                if key.__class__ is not str or key in new_raw:
                    continue
                new_raw[key] = item
                if listed_in is not None and "configurationId" not in item:
                    self._listed_in[key] = listed_in
                if old_raw.get(key) != item:
                    changed_raw.append(item)
        added: list[Instance] = []
        changed: list[tuple[Instance, Instance]] = []
        decoded = self._decode(changed_raw) if changed_raw else []
        for model in decoded:
            before = models.get(model.id)
            models[model.id] = model
            if before is None:
                added.append(model)
                self._index(model)
            else:
                if before.request_id != model.request_id:
                    self._unindex(before)
                    self._index(model)
                changed.append((model, before))
        # Items the decoder dropped (with its warning) are not kept either.
        if len(decoded) != len(changed_raw):
            kept = {m.id for m in decoded}
            for item in changed_raw:
                if item["id"] not in kept:
                    del new_raw[item["id"]]
                    self._drop(item["id"])
        removed: list[Instance] = []
        missing = self._missing
        still_missing: list[str] = []
        if len(models) > len(new_raw):  # some known instance was not listed
            for key in [k for k in models if k not in new_raw]:
                model = models[key]
                if covered is not None and self.configuration_of(model) not in covered:
                    # Not covered by these lists: nothing is known of it now.
                    self._drop(key)
                    continue
                since, count = missing.get(key, (taken, 0))
                count += 1
                if count >= 2 and taken - since >= self._grace:
                    removed.append(model)
                    self._drop(key)
                else:
                    missing[key] = (since, count)
                    new_raw[key] = old_raw[key]
                    still_missing.append(key)
        if len(missing) != len(still_missing):
            for key in set(missing).difference(still_missing):
                del missing[key]  # listed again
        self._raw = new_raw
        self.taken = taken
        self.covered = covered
        self.lists += 1
        return Diff(added, changed, removed, taken, covered)

    def _index(self, model: Instance) -> None:
        request_id = model.request_id
        if request_id is not None:
            self._by_request.setdefault(request_id, set()).add(model.id)
            configuration_id = self.configuration_of(model)
            if configuration_id is not None and request_id not in self._request_configs:
                self._request_configs[request_id] = configuration_id
                self.generation += 1

    def _unindex(self, model: Instance) -> None:
        request_id = model.request_id
        if request_id is not None:
            ids = self._by_request.get(request_id)
            if ids is not None:
                ids.discard(model.id)
                if not ids:
                    del self._by_request[request_id]

    def _drop(self, key: str) -> None:
        model = self._models.pop(key, None)
        if model is not None:
            self._unindex(model)
        self._listed_in.pop(key, None)
        self._missing.pop(key, None)

    def clear(self) -> None:
        """Forget everything (the client closed)."""
        self._raw = {}
        self._models.clear()
        self._listed_in.clear()
        self._missing.clear()
        self._by_request.clear()
        self.taken = None
