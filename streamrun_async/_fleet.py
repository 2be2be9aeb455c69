"""Fleets declared in a file: ``sr.Fleet``, and the plan and report of ``client.apply``.

A fleet file names an owner, configurations (by id or by name), the instances each
should run (name, overrides, ttl) and whether their outputs should be LIVE or OFFLINE::

    owner = "studio-a"
    hourly_rate = 0.39

    [[configurations]]
    id = "cfg-123"
    outputs = "LIVE"

    [[configurations.instances]]
    name = "cam-1"
    ttl = "4h"
    overrides = { "htmloverlay-1" = { url = "https://example.com/a" } }

**Ownership.** The API has no labels, so ownership is recorded in the instance's name:
the instance ``cam-1`` of owner ``studio-a`` is launched as ``studio-a/cam-1``. Pruning
stops only live instances whose name starts with ``<owner>/`` and that the file no longer
declares; an instance launched any other way is never touched. This is a convention, not
a lock: anyone who launches a name with that prefix makes it the owner's, and a server
that does not echo names as sent makes ownership invisible (nothing is then pruned).

**ttl** is read and checked (``"90s"``, ``"30m"``, ``"4h"``, ``"1h30m"``, ``"2d"``, or
seconds). With a guarded client (``StreamrunClient(guard=sr.Guard(owner=...))``) each
launch's ttl becomes its lease, which the guard (or ``streamrun reap`` from cron) enforces;
without a guard it is kept on :class:`FleetInstance` only (``report.ttl_enforced`` False).
The ttl of an instance that already runs is not changed by a later apply.

Planning only reads; applying launches through ``launch_many`` (exactly once per name),
patches overrides that differ, sets outputs, and with ``prune=True`` stops what the owner
no longer declares. A second apply of the same file finds nothing to change, except
outputs against a server that does not report them (they are then set on every apply).
"""

from __future__ import annotations

import contextlib
import enum
import math
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from ._exceptions import InvalidArgumentError, NotFoundError, StreamrunError
from ._models import Instance, InstanceSettings, Outputs, Overrides, check_overrides

if TYPE_CHECKING:
    from ._bulk import LaunchReport
    from ._client import StreamrunClient

__all__ = [
    "DEFAULT_HOURLY_RATE",
    "Fleet",
    "FleetAction",
    "FleetActionKind",
    "FleetConfiguration",
    "FleetFileError",
    "FleetInstance",
    "FleetPlan",
    "FleetReport",
    "apply_fleet",
    "plan_fleet",
]

DEFAULT_HOURLY_RATE = 0.39
"""Streamrun's example list price per RUNNING instance-hour, add-ons not included."""

_OWNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_TTL = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_TOP_KEYS = ("owner", "hourly_rate", "configurations")
_CONFIGURATION_KEYS = ("id", "name", "outputs", "instances")
_INSTANCE_KEYS = ("name", "overrides", "ttl")

KeyPath = tuple[str | int, ...]
"""Where a value sits in a fleet file: ``("configurations", 0, "instances", 1, "name")``."""


class FleetFileError(InvalidArgumentError):
    """A fleet file refused before any request: ``path``, ``line`` and ``key`` say where."""

    def __init__(self, message: str, *, path: str, line: int | None, key: str | None) -> None:
        where = path if line is None else f"{path}:{line}"
        super().__init__(f"{where}: {key + ': ' if key else ''}{message}")
        self.path = path
        self.line = line
        self.key = key


def parse_ttl(value: object) -> float:
    """``"4h"``, ``"1h30m"``, ``"90s"``, ``"2d"`` or a number of seconds, as seconds (> 0)."""
    if isinstance(value, bool):
        raise ValueError('a ttl is a duration such as "4h", "30m" or seconds, not a boolean')
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and value and (found := _TTL.fullmatch(value.strip())):
        days, hours, minutes, secs = (int(part or 0) for part in found.groups())
        seconds = float(((days * 24 + hours) * 60 + minutes) * 60 + secs)
    else:
        raise ValueError(f'{value!r} is not a duration such as "4h", "1h30m", "90s"')
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError("a ttl must be a positive duration")
    return seconds


@attrs.frozen
class FleetInstance:
    """One declared instance: its name in the file, overrides and ttl (seconds, not enforced)."""

    name: str
    overrides: Overrides = attrs.field(factory=dict, hash=False)
    ttl: float | None = None


@attrs.frozen
class FleetConfiguration:
    """One configuration of a fleet, by ``id`` or by ``name`` (resolved when planning)."""

    id: str | None
    name: str | None = None
    outputs: Outputs | None = None
    instances: tuple[FleetInstance, ...] = ()
    line: int | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class Fleet:
    """A declared fleet. ``Fleet.from_file("fleet.toml")``; then ``await client.apply(fleet)``."""

    owner: str
    configurations: tuple[FleetConfiguration, ...]
    hourly_rate: float | None = None
    source: str = attrs.field(default="<fleet>", eq=False)

    def launched_name(self, name: str) -> str:
        """The name an instance of this fleet is launched with: ``<owner>/<name>``."""
        return f"{self.owner}/{name}"

    def owns(self, instance_name: str | None) -> bool:
        """True when the name carries this owner's prefix."""
        return instance_name is not None and instance_name.startswith(f"{self.owner}/")

    @classmethod
    def from_file(cls, path: str | Path) -> Fleet:
        """Read a ``.toml`` file (or ``.yaml``/``.yml`` with PyYAML installed).

        Refuses unknown keys, duplicate names and wrong types with :class:`FleetFileError`
        naming the file, line and key.
        """
        where = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise FleetFileError(
                error.strerror or str(error), path=where, line=None, key=None
            ) from None
        if where.endswith((".yaml", ".yml")):
            data, lines = _load_yaml(text, where)
        else:
            data, lines = _load_toml(text, where)
        return cls.from_mapping(data, source=where, lines=lines)

    @classmethod
    def from_mapping(
        cls,
        data: Mapping[str, Any],
        *,
        source: str = "<fleet>",
        lines: Callable[[KeyPath], int | None] | None = None,
    ) -> Fleet:
        """Build a fleet from parsed data, checking it as :meth:`from_file` does."""
        return _Reader(source, lines or (lambda _: None)).fleet(data)


def _load_toml(text: str, where: str) -> tuple[dict[str, Any], Callable[[KeyPath], int | None]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        found = re.search(r"line (\d+)", str(error))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(error))
        raise FleetFileError(
            message, path=where, line=int(found.group(1)) if found else None, key=None
        ) from None
    return data, _toml_lines(text)


def _toml_lines(text: str) -> Callable[[KeyPath], int | None]:
    """Where each table and key of a fleet file starts (for error messages)."""
    found: dict[KeyPath, int] = {}
    section: KeyPath = ()
    counters: dict[str, int] = {}
    key_line = re.compile(r"""\s*(?:"([^"]+)"|'([^']+)'|([A-Za-z0-9_-]+))\s*=""")
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("[["):
            name = stripped.strip("[] \t").split("#", 1)[0].strip()
            counters[name] = counters.get(name, -1) + 1
            if name == "configurations":
                counters.pop("configurations.instances", None)
                section = ("configurations", counters[name])
            elif name == "configurations.instances":
                section = (
                    "configurations",
                    counters.get("configurations", 0),
                    "instances",
                    counters[name],
                )
            else:
                section = (name, counters[name])
            found.setdefault(section, number)
        elif stripped.startswith("["):
            section = tuple(stripped.strip("[] \t").split("#", 1)[0].strip().split("."))
            found.setdefault(section, number)
        elif match := key_line.match(line):
            key = next(part for part in match.groups() if part)
            found.setdefault((*section, key), number)

    return _line_finder(found)


def _line_finder(found: Mapping[KeyPath, int]) -> Callable[[KeyPath], int | None]:
    """The line of a key path, else of its nearest parent that has one."""

    def line_of(path: KeyPath) -> int | None:
        for end in range(len(path), -1, -1):
            if path[:end] in found:
                return found[path[:end]]
        return None

    return line_of


def _load_yaml(text: str, where: str) -> tuple[dict[str, Any], Callable[[KeyPath], int | None]]:
    try:
        import yaml
    except ImportError:
        raise FleetFileError(
            "reading YAML needs PyYAML (pip install pyyaml); TOML needs nothing",
            path=where,
            line=None,
            key=None,
        ) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise FleetFileError(
            str(getattr(error, "problem", None) or error),
            path=where,
            line=None if mark is None else mark.line + 1,
            key=None,
        ) from None
    found: dict[KeyPath, int] = {}

    def visit(current: Any, path: KeyPath) -> None:
        found.setdefault(path, current.start_mark.line + 1)
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                found.setdefault((*path, str(key.value)), key.start_mark.line + 1)
                visit(value, (*path, str(key.value)))
        elif isinstance(current, yaml.SequenceNode):
            for index, value in enumerate(current.value):
                visit(value, (*path, index))

    if node is not None:
        visit(node, ())

    return (data if data is not None else {}), _line_finder(found)


def _dotted(path: KeyPath) -> str:
    """``configurations[0].instances[1].name``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


class _Reader:
    """Checks parsed fleet data, naming the file, line and key of the first problem."""

    def __init__(self, source: str, lines: Callable[[KeyPath], int | None]) -> None:
        self.source = source
        self.lines = lines

    def error(self, path: KeyPath, message: str) -> FleetFileError:
        return FleetFileError(
            message, path=self.source, line=self.lines(path), key=_dotted(path) or None
        )

    def table(self, value: object, path: KeyPath, allowed: Sequence[str]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error(path, f"must be a table, not {_type_name(value)}")
        for key in value:
            if key not in allowed:
                raise self.error(
                    (*path, str(key)), f"unknown key (expected one of: {', '.join(allowed)})"
                )
        return value

    def text(self, value: object, path: KeyPath) -> str:
        if not isinstance(value, str):
            raise self.error(path, f"must be a string, not {_type_name(value)}")
        if not value.strip() or value != value.strip():
            raise self.error(path, "must be non-empty, without leading or trailing spaces")
        return value

    def array(self, value: object, path: KeyPath) -> list[Any]:
        if not isinstance(value, list):
            raise self.error(path, f"must be an array of tables, not {_type_name(value)}")
        return value

    def fleet(self, data: Mapping[str, Any]) -> Fleet:
        data = self.table(data, (), _TOP_KEYS)
        if "owner" not in data:
            raise self.error((), "owner is required: it is what --prune may touch")
        owner = self.text(data["owner"], ("owner",))
        if not _OWNER.fullmatch(owner):
            raise self.error(("owner",), "letters, digits, '.', '_' and '-' only (no '/')")
        rate = data.get("hourly_rate")
        if rate is not None and (
            isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate >= 0
        ):
            raise self.error(("hourly_rate",), "must be a number >= 0 (dollars per hour)")
        configurations = []
        names: dict[str, KeyPath] = {}
        targets: dict[str, KeyPath] = {}
        for index, item in enumerate(
            self.array(data.get("configurations", []), ("configurations",))
        ):
            path: KeyPath = ("configurations", index)
            cfg = self.configuration(item, path, names)
            target = f"id:{cfg.id}" if cfg.id is not None else f"name:{cfg.name}"
            if target in targets:
                first = self.lines(targets[target])
                raise self.error(
                    path, f"this configuration is declared twice (first at line {first})"
                )
            targets[target] = path
            configurations.append(cfg)
        return Fleet(
            owner=owner,
            configurations=tuple(configurations),
            hourly_rate=None if rate is None else float(rate),
            source=self.source,
        )

    def configuration(
        self, item: object, path: KeyPath, names: dict[str, KeyPath]
    ) -> FleetConfiguration:
        table = self.table(item, path, _CONFIGURATION_KEYS)
        if ("id" in table) == ("name" in table):
            raise self.error(path, "give exactly one of id or name")
        cfg_id = self.text(table["id"], (*path, "id")) if "id" in table else None
        cfg_name = self.text(table["name"], (*path, "name")) if "name" in table else None
        outputs = None
        if "outputs" in table:
            value = table["outputs"]
            if value not in ("LIVE", "OFFLINE"):
                raise self.error((*path, "outputs"), f'must be "LIVE" or "OFFLINE", not {value!r}')
            outputs = Outputs(value)
        instances = []
        for index, entry in enumerate(self.array(table.get("instances", []), (*path, "instances"))):
            instances.append(self.instance(entry, (*path, "instances", index), names))
        return FleetConfiguration(
            id=cfg_id,
            name=cfg_name,
            outputs=outputs,
            instances=tuple(instances),
            line=self.lines(path),
        )

    def instance(self, entry: object, path: KeyPath, names: dict[str, KeyPath]) -> FleetInstance:
        table = self.table(entry, path, _INSTANCE_KEYS)
        if "name" not in table:
            raise self.error(path, "name is required")
        name = self.text(table["name"], (*path, "name"))
        if name in names:
            first = self.lines((*names[name], "name"))
            raise self.error(
                (*path, "name"),
                f"{name!r} is declared twice (first at line {first}); names are unique in a fleet",
            )
        names[name] = path
        overrides: Overrides = {}
        if "overrides" in table:
            raw = table["overrides"]
            if not isinstance(raw, Mapping):
                raise self.error((*path, "overrides"), "must be a table of element id -> settings")
            for element, settings in raw.items():
                if not isinstance(settings, Mapping):
                    raise self.error(
                        (*path, "overrides", str(element)),
                        f"must be a table of settings, not {_type_name(settings)}",
                    )
            try:
                overrides = check_overrides(raw)
            except StreamrunError as error:
                raise self.error((*path, "overrides"), str(error)) from None
        ttl = None
        if "ttl" in table:
            try:
                ttl = parse_ttl(table["ttl"])
            except ValueError as error:
                raise self.error((*path, "ttl"), str(error)) from None
        return FleetInstance(name=name, overrides=overrides, ttl=ttl)


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "a table"
    return type(value).__name__


# -- planning -------------------------------------------------------------------------


class FleetActionKind(enum.Enum):
    """What applying a fleet does to one instance or configuration."""

    LAUNCH = "LAUNCH"  # declared, not running: launched
    UPDATE = "UPDATE"  # running with other overrides: the declared ones are patched on
    SET_OUTPUTS = "SET_OUTPUTS"  # the configuration's outputs are set LIVE or OFFLINE
    STOP = "STOP"  # owned, no longer declared, and pruning: stopped
    KEEP = "KEEP"  # as declared: nothing to do


@attrs.frozen
class FleetAction:
    """One step of a plan.

    ``name``: the declared name (for STOP, the instance's name as listed); ``changes``:
    for UPDATE the settings patched on (element -> key -> value), for SET_OUTPUTS
    ``{"outputs": "LIVE"}``.
    """

    kind: FleetActionKind
    configuration_id: str
    name: str | None = None
    instance_id: str | None = None
    changes: Mapping[str, Any] = attrs.field(factory=dict, hash=False)


@attrs.frozen
class FleetPlan:
    """What applying a fleet would change, with the estimated cost per hour.

    Costs assume every instance RUNNING (only RUNNING is billed) at ``hourly_rate``.
    """

    fleet: Fleet
    actions: tuple[FleetAction, ...]
    prune: bool
    hourly_rate: float
    owned_now: int
    """Live instances carrying the owner's prefix before applying."""
    unpruned: int
    """Owned instances no longer declared that stay because ``prune`` is off."""

    @property
    def changes(self) -> tuple[FleetAction, ...]:
        """Every action but KEEP."""
        return tuple(a for a in self.actions if a.kind is not FleetActionKind.KEEP)

    @property
    def has_changes(self) -> bool:
        """True when applying would change anything."""
        return bool(self.changes)

    def count(self, kind: FleetActionKind) -> int:
        """How many actions of ``kind``."""
        return sum(1 for action in self.actions if action.kind is kind)

    @property
    def cost_per_hour_now(self) -> float:
        """The owner's live instances today, at the rate."""
        return round(self.owned_now * self.hourly_rate, 4)

    @property
    def cost_per_hour_after(self) -> float:
        """The declared instances, plus owned ones left unpruned, at the rate."""
        declared = sum(len(cfg.instances) for cfg in self.fleet.configurations)
        return round((declared + self.unpruned) * self.hourly_rate, 4)


@attrs.define
class FleetReport:
    """The outcome of ``client.apply``: the plan, what was done and what failed."""

    plan: FleetPlan
    dry_run: bool = False
    ttl_enforced: bool = False
    """True when the launches' ttls became leases of the client's guard."""
    done: list[FleetAction] = attrs.Factory(list)
    failed: list[tuple[FleetAction, BaseException]] = attrs.Factory(list)
    launch: LaunchReport | None = None

    @property
    def wait_error(self) -> BaseException | None:
        """Why waiting for the launched instances ended early (``wait=True``), if it did."""
        return None if self.launch is None else self.launch.wait_error

    @property
    def ok(self) -> bool:
        """True when nothing failed (waiting included)."""
        return not self.failed and self.wait_error is None

    @property
    def changed(self) -> bool:
        """True when something was changed (never with ``dry_run``)."""
        return bool(self.done)


async def _resolve_ids(client: StreamrunClient, fleet: Fleet) -> list[str]:
    """Each configuration's id; names are looked up in one list call."""
    if all(cfg.id is not None for cfg in fleet.configurations):
        return [cfg.id for cfg in fleet.configurations if cfg.id is not None]
    listed = await client.configurations.list()
    ids: list[str] = []
    for index, cfg in enumerate(fleet.configurations):
        if cfg.id is not None:
            ids.append(cfg.id)
            continue
        found = [c.id for c in listed if c.name == cfg.name]
        if len(found) != 1:
            why = (
                f"names {len(found)} configurations ({', '.join(found)}): use its id"
                if found
                else "names no configuration of the account"
            )
            raise FleetFileError(
                f"{cfg.name!r} {why}",
                path=fleet.source,
                line=cfg.line,
                key=f"configurations[{index}].name",
            )
        ids.append(found[0])
    seen: set[str] = set()
    for index, cfg_id in enumerate(ids):
        if cfg_id in seen:
            raise FleetFileError(
                f"configuration {cfg_id} is declared twice (by id and by name)",
                path=fleet.source,
                line=fleet.configurations[index].line,
                key=f"configurations[{index}]",
            )
        seen.add(cfg_id)
    return ids


def _differences(wanted: Overrides, current: Mapping[str, Mapping[str, Any]]) -> Overrides:
    """The declared settings the instance does not have (settings not declared are left)."""
    patch: Overrides = {}
    for element, settings in wanted.items():
        have = current.get(element) or {}
        for key, value in settings.items():
            if key not in have or have[key] != value:
                patch.setdefault(element, {})[key] = value
    return patch


async def plan_fleet(
    client: StreamrunClient,
    fleet: Fleet,
    *,
    prune: bool = False,
    hourly_rate: float | None = None,
) -> FleetPlan:
    """What applying ``fleet`` would do; only reads."""
    rate = hourly_rate if hourly_rate is not None else fleet.hourly_rate
    rate = DEFAULT_HOURLY_RATE if rate is None else rate
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate < 0:
        raise InvalidArgumentError(f"hourly_rate must be a number >= 0, got {rate!r}")
    ids = await _resolve_ids(client, fleet)
    actions: list[FleetAction] = []
    seen: set[str] = set()
    owned_now = 0
    leftovers: list[Instance] = []
    for cfg_id, cfg in zip(ids, fleet.configurations, strict=True):
        live = [
            # STOPPING or ended: it will never run again, so its name is free.
            i
            for i in await client.configurations.list_instances(cfg_id)
            if i.state.can_become_running
        ]
        seen.update(inst.id for inst in live)
        by_name: dict[str, Instance] = {}
        for inst in live:
            if inst.name is not None:
                by_name.setdefault(inst.name, inst)
        owned_now += sum(1 for inst in live if fleet.owns(inst.name))
        declared = {fleet.launched_name(item.name) for item in cfg.instances}
        leftovers += [i for i in live if fleet.owns(i.name) and i.name not in declared]
        launching = False
        for item in cfg.instances:
            existing = by_name.get(fleet.launched_name(item.name))
            if existing is None:
                actions.append(
                    FleetAction(
                        FleetActionKind.LAUNCH,
                        cfg_id,
                        item.name,
                        changes=item.overrides,
                    )
                )
                launching = True
                continue
            current = existing.overrides
            if current is None and item.overrides:
                current = await client.instances.get_overrides(existing.id)
            patch = _differences(item.overrides, current or {})
            kind = FleetActionKind.UPDATE if patch else FleetActionKind.KEEP
            actions.append(FleetAction(kind, cfg_id, item.name, existing.id, changes=patch))
        if cfg.outputs is not None:
            # The call sets every instance of the configuration, so all of them count.
            stale = any(inst.outputs != cfg.outputs for inst in live)
            new_ones_differ = launching and cfg.outputs is Outputs.LIVE
            if stale or new_ones_differ:
                actions.append(
                    FleetAction(
                        FleetActionKind.SET_OUTPUTS,
                        cfg_id,
                        changes={"outputs": cfg.outputs.value},
                    )
                )
    # Owned instances in configurations the file no longer names.
    everywhere = await client.instances.list()
    for inst in everywhere:
        if inst.id in seen or not fleet.owns(inst.name) or not inst.state.can_become_running:
            continue
        if inst.configuration_id is not None and inst.configuration_id in ids:
            continue
        owned_now += 1
        leftovers.append(inst)
    if prune:
        actions += [
            FleetAction(FleetActionKind.STOP, inst.configuration_id or "-", inst.name, inst.id)
            for inst in leftovers
        ]
    return FleetPlan(
        fleet=fleet,
        actions=tuple(actions),
        prune=prune,
        hourly_rate=float(rate),
        owned_now=owned_now,
        unpruned=0 if prune else len(leftovers),
    )


async def apply_fleet(
    client: StreamrunClient,
    fleet: Fleet,
    *,
    prune: bool = False,
    dry_run: bool = False,
    hourly_rate: float | None = None,
    wait: bool = False,
    timeout: float | None = 900.0,
    launch_report: LaunchReport | None = None,
) -> FleetReport:
    """Plan, then (unless ``dry_run``) launch, update, set outputs and prune, in that order.

    ``launch_report``: the ``launch_many`` report to fill (kept if the call is cancelled).
    """
    plan = await plan_fleet(client, fleet, prune=prune, hourly_rate=hourly_rate)
    guarded = client.guard is not None
    report = FleetReport(plan=plan, dry_run=dry_run, ttl_enforced=guarded)
    if dry_run or not plan.has_changes:
        return report
    launches: dict[str, list[FleetAction]] = {}
    for action in plan.changes:
        if action.kind is FleetActionKind.LAUNCH:
            launches.setdefault(action.configuration_id, []).append(action)
    if launches:
        from ._bulk import LaunchReport

        report.launch = launch_report if launch_report is not None else LaunchReport()
        ttls = {item.name: item.ttl for cfg in fleet.configurations for item in cfg.instances}
        settings = {
            cfg: [
                InstanceSettings(
                    name=fleet.launched_name(a.name or ""),
                    overrides=dict(a.changes),
                    # Without a guard nothing could enforce it: launch_many would refuse it.
                    ttl=ttls.get(a.name or "") if guarded else None,
                )
                for a in actions
            ]
            for cfg, actions in launches.items()
        }
        await client.launch_many(settings, wait=wait, timeout=timeout, report=report.launch)
        for actions in launches.values():
            for action in actions:
                launched_name = fleet.launched_name(action.name or "")
                error = report.launch.failed.get(launched_name)
                if launched_name in report.launch.unknown:
                    error = StreamrunError(f"could not learn whether {launched_name} launched")
                if error is not None:
                    report.failed.append((action, error))
                else:
                    item = report.launch.launched.get(launched_name)
                    instance_id = None if item is None else item.instance_id
                    report.done.append(attrs.evolve(action, instance_id=instance_id))
    for action in plan.changes:
        try:
            if action.kind is FleetActionKind.UPDATE and action.instance_id is not None:
                await client.instances.update_overrides(action.instance_id, dict(action.changes))
            elif action.kind is FleetActionKind.SET_OUTPUTS:
                await client.configurations.set_outputs(
                    action.configuration_id, action.changes["outputs"]
                )
            elif action.kind is FleetActionKind.STOP and action.instance_id is not None:
                with contextlib.suppress(NotFoundError):  # gone already: as pruning wants
                    await client.instances.stop(action.instance_id)
            else:
                continue
        except StreamrunError as error:
            report.failed.append((action, error))
        else:
            report.done.append(action)
    return report
