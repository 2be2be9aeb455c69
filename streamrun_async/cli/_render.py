"""Turning SDK models into JSON for ``--json`` and into rich tables for people.

Cells are built as ``Text`` objects, never markup strings: names and overrides come
from users, and a name like ``[bold]`` must print as itself.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs
from rich.table import Table
from rich.text import Text

from streamrun_async import (
    Configuration,
    Destination,
    Instance,
    InstanceRequest,
    InstanceState,
)

__all__ = [
    "configuration_detail",
    "configurations_table",
    "destinations_table",
    "dumps",
    "duration",
    "instance_detail",
    "instances_table",
    "one_line",
    "overrides_table",
    "request_detail",
    "state_text",
    "to_jsonable",
]

_STATE_STYLES = {
    InstanceState.RUNNING: "green",
    InstanceState.QUEUED: "yellow",
    InstanceState.STARTING: "cyan",
    InstanceState.PREVIEW: "magenta",
}


def to_jsonable(value: Any) -> Any:
    """A JSON-ready copy of an SDK model (snake_case fields, ``raw`` left out) or value."""
    if attrs.has(type(value)):
        return {
            field.name: to_jsonable(getattr(value, field.name))
            for field in attrs.fields(type(value))
            if field.name != "raw"
        }
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, BaseException):
        return {"type": type(value).__name__, "message": one_line(value)}
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(item) for item in value]
    return value


def dumps(value: Any) -> str:
    """Indented JSON of ``value`` (models included), for stdout."""
    return json.dumps(to_jsonable(value), indent=2, ensure_ascii=False)


def one_line(error: BaseException) -> str:
    """The error's message on one line: the CLI promises one line per error."""
    return " ".join(str(error).split()) or type(error).__name__


def duration(seconds: float | None) -> str:
    """``1.52 s``, or ``-`` when unknown."""
    return "-" if seconds is None else f"{seconds:.2f} s"


def _age(moment: datetime | None, now: datetime | None = None) -> str:
    """``42s``, ``3m07s``, ``2h05m`` since ``moment``."""
    if moment is None:
        return "-"
    seconds = max(0, int(((now or datetime.now(UTC)) - moment).total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _text(value: object) -> Text:
    """A plain cell (no markup): ``-`` for None."""
    return Text("-" if value is None else str(value))


def state_text(state: InstanceState | str | None) -> Text:
    """A state, coloured (colour only shows on terminals)."""
    if state is None:
        return Text("-")
    style = _STATE_STYLES.get(state, "red") if isinstance(state, InstanceState) else ""
    return Text(str(state), style=style)


def _table(*columns: str, title: str | None = None) -> Table:
    """A table whose long cells wrap instead of being cut."""
    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _details(rows: Iterable[tuple[str, Text | str]]) -> Table:
    """A two-column key/value grid for one object."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for key, value in rows:
        grid.add_row(key, value if isinstance(value, Text) else Text(value))
    return grid


def configurations_table(configurations: Iterable[Configuration]) -> Table:
    """ID, name and element ids of each configuration."""
    table = _table("ID", "NAME", "ELEMENTS")
    for cfg in configurations:
        table.add_row(_text(cfg.id), _text(cfg.name), Text(", ".join(e.id for e in cfg.elements)))
    return table


def configuration_detail(cfg: Configuration) -> Table:
    """One configuration with a table of its elements."""
    elements = _table("ELEMENT", "TYPE", "TITLE")
    for element in cfg.elements:
        elements.add_row(_text(element.id), _text(element.type), _text(element.title))
    grid = _details(
        [
            ("id", cfg.id),
            ("name", cfg.name or "-"),
            ("created", cfg.created_at.isoformat() if cfg.created_at else "-"),
        ]
    )
    grid.add_row("elements", elements)
    return grid


def instances_table(instances: Iterable[Instance], *, title: str | None = None) -> Table:
    """One row per instance: id, name, configuration, state, outputs, age."""
    table = _table("ID", "NAME", "CONFIGURATION", "STATE", "OUTPUTS", "AGE", title=title)
    now = datetime.now(UTC)
    for inst in instances:
        table.add_row(
            _text(inst.id),
            _text(inst.name),
            _text(inst.configuration_id),
            state_text(inst.state),
            _text(inst.outputs),
            Text(_age(inst.created_at, now)),
        )
    return table


def instance_detail(inst: Instance) -> Table:
    """One instance, its overrides included."""
    grid = _details(
        [
            ("id", inst.id),
            ("name", inst.name or "-"),
            ("configuration", inst.configuration_id or "-"),
            ("state", state_text(inst.state)),
            ("outputs", str(inst.outputs or "-")),
            ("request", inst.request_id or "-"),
            ("created", inst.created_at.isoformat() if inst.created_at else "-"),
        ]
    )
    if inst.overrides:
        grid.add_row("overrides", overrides_table(inst.overrides))
    return grid


def request_detail(request: InstanceRequest) -> Table:
    """One instance request."""
    return _details(
        [
            ("id", request.id),
            ("state", state_text(request.state)),
            ("configuration", request.configuration_id or "-"),
            ("instances", ", ".join(request.instance_ids) or "-"),
            ("created", request.created_at.isoformat() if request.created_at else "-"),
        ]
    )


def overrides_table(overrides: Mapping[str, Mapping[str, Any]]) -> Table:
    """One row per element setting; values shown as JSON."""
    table = _table("ELEMENT", "SETTING", "VALUE")
    for element, settings in overrides.items():
        for key, value in settings.items():
            table.add_row(Text(element), Text(key), Text(json.dumps(value, ensure_ascii=False)))
    return table


def destinations_table(destinations: Iterable[Destination]) -> Table:
    """ID, name and platform of each destination."""
    table = _table("ID", "NAME", "PLATFORM")
    for dst in destinations:
        table.add_row(_text(dst.id), _text(dst.name), _text(dst.platform))
    return table
