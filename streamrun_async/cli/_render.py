"""Turning SDK models into JSON for ``-o json`` and into tables for people.

A command builds a view (``Rows`` for a table, ``Details`` for one object) as data; the
runtime renders it for where stdout goes: a rich table on a terminal, plain aligned text
without box drawing in a pipe, one id per line with ``-o ids``. Cells are ``Text``
objects, never markup strings: names and overrides come from users, and a name like
``[bold]`` must print as itself.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
from rich.console import Group, RenderableType
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
    "Details",
    "Rows",
    "View",
    "configuration_detail",
    "configurations_table",
    "destinations_table",
    "dumps",
    "duration",
    "instance_detail",
    "instances_table",
    "one_line",
    "overrides_table",
    "plain",
    "request_detail",
    "rich_view",
    "state_text",
    "to_jsonable",
]

_STATE_STYLES = {
    InstanceState.RUNNING: "green",
    InstanceState.QUEUED: "yellow",
    InstanceState.STARTING: "cyan",
    InstanceState.PREVIEW: "magenta",
}

Cell = str | Text
_ID_COLUMNS = frozenset({"ID", "INSTANCE", "REQUEST", "CONFIGURATION"})


def to_jsonable(value: Any) -> Any:
    """A JSON-ready copy of an SDK model (snake_case fields, ``raw`` left out) or value.

    Secrets (``SecretStr`` stream keys) keep their mask: ``str()`` of a secret is masked.
    """
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
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def dumps(value: Any) -> str:
    """Indented JSON of ``value`` (models included), for stdout."""
    return json.dumps(to_jsonable(value), indent=2, ensure_ascii=False)


def one_line(error: BaseException) -> str:
    """The error's message on one line: the CLI promises one line per error."""
    return " ".join(str(error).split()) or type(error).__name__


def duration(seconds: float | None) -> str:
    """A duration rounded for people: ``0.4s``, ``12s``, ``3m07s``, ``2h05m``; ``-`` if unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _age(moment: datetime | None, now: datetime) -> str:
    """How long ago ``moment`` was, rounded."""
    if moment is None:
        return "-"
    return duration(max(0.0, (now - moment).total_seconds()))


def _text(value: object) -> Text:
    """A plain cell (no markup): ``-`` for None."""
    return Text("-" if value is None else str(value))


def state_text(state: InstanceState | str | None) -> Text:
    """A state, coloured (colour only shows on terminals)."""
    if state is None:
        return Text("-")
    style = _STATE_STYLES.get(state, "red") if isinstance(state, InstanceState) else ""
    return Text(str(state), style=style)


@attrs.define
class Rows:
    """A table as data. ``wide`` columns show only with ``-o wide``; ``ids`` feed ``-o ids``."""

    columns: tuple[str, ...]
    wide: tuple[str, ...] = ()
    title: str | None = None
    caption: str | None = None
    rows: list[tuple[Cell, ...]] = attrs.Factory(list)
    ids: list[str] = attrs.Factory(list)

    def add(self, *cells: Cell, id: str | None = None) -> None:
        """One row: a cell per column, then one per wide column."""
        if len(cells) != len(self.columns) + len(self.wide):
            raise ValueError(f"{len(cells)} cells for {self.columns + self.wide}")
        self.rows.append(cells)
        if id is not None:
            self.ids.append(id)

    def shown(self, wide: bool) -> tuple[tuple[str, ...], list[tuple[Cell, ...]]]:
        """The columns and rows to show."""
        if wide:
            return self.columns + self.wide, self.rows
        keep = len(self.columns)
        return self.columns, [row[:keep] for row in self.rows]


@attrs.define
class Details:
    """One object as ``key value`` lines; a value may be a nested table."""

    items: list[tuple[str, Cell | Rows]]
    id: str | None = None


View = Rows | Details


def rich_view(view: View, *, wide: bool = False) -> RenderableType:
    """``view`` as a rich renderable, for terminals. Id-like columns never wrap."""
    if isinstance(view, Rows):
        columns, rows = view.shown(wide)
        table = Table(
            title=view.title, caption=view.caption, title_justify="left", header_style="bold"
        )
        for column in columns:
            # Ids must stay whole to be copied: they never wrap, other columns fold instead.
            no_wrap = column in _ID_COLUMNS
            table.add_column(column, no_wrap=no_wrap, overflow="fold")
        for row in rows:
            table.add_row(*(cell if isinstance(cell, Text) else Text(cell) for cell in row))
        return table
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for key, value in view.items:
        if isinstance(value, Rows):
            grid.add_row(key, rich_view(value, wide=wide))
        else:
            grid.add_row(key, value if isinstance(value, Text) else Text(value))
    return Group(grid)


def _plain_cell(cell: Cell) -> str:
    """A cell's text on one line."""
    text = cell.plain if isinstance(cell, Text) else cell
    return " ".join(text.split()) or "-"


def plain(view: View, *, wide: bool = False, indent: str = "") -> str:
    """``view`` as plain aligned text: no box drawing, no colours, never wrapped."""
    lines: list[str] = []
    if isinstance(view, Rows):
        columns, rows = view.shown(wide)
        cells = [list(columns)] + [[_plain_cell(c) for c in row] for row in rows]
        widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
        if view.title:
            lines.append(indent + view.title)
        for line in cells:
            padded = "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True))
            lines.append(indent + padded.rstrip())
        if view.caption:
            lines.append(indent + view.caption)
        return "\n".join(lines)
    width = max((len(key) for key, _ in view.items), default=0)
    for key, value in view.items:
        if isinstance(value, Rows):
            lines.append(indent + key)
            lines.append(plain(value, wide=wide, indent=indent + "  "))
        else:
            lines.append(f"{indent}{key.ljust(width)}  {_plain_cell(value)}".rstrip())
    return "\n".join(lines)


def configurations_table(configurations: Iterable[Configuration]) -> Rows:
    """ID, name and element ids of each configuration."""
    rows = Rows(("ID", "NAME", "ELEMENTS"), wide=("CREATED",))
    for cfg in configurations:
        rows.add(
            _text(cfg.id),
            _text(cfg.name),
            Text(", ".join(e.id for e in cfg.elements)),
            _text(cfg.created_at.isoformat() if cfg.created_at else None),
            id=cfg.id,
        )
    return rows


def configuration_detail(cfg: Configuration) -> Details:
    """One configuration with a table of its elements."""
    elements = Rows(("ELEMENT", "TYPE", "TITLE"))
    for element in cfg.elements:
        elements.add(_text(element.id), _text(element.type), _text(element.title))
    return Details(
        [
            ("id", cfg.id),
            ("name", cfg.name or "-"),
            ("created", cfg.created_at.isoformat() if cfg.created_at else "-"),
            ("elements", elements),
        ],
        id=cfg.id,
    )


def instances_table(instances: Iterable[Instance], *, title: str | None = None) -> Rows:
    """One row per instance: id, name, configuration, state, outputs, age."""
    rows = Rows(
        ("ID", "NAME", "CONFIGURATION", "STATE", "OUTPUTS", "AGE"),
        wide=("REQUEST", "CREATED"),
        title=title,
    )
    now = datetime.now(UTC)
    for inst in instances:
        rows.add(
            _text(inst.id),
            _text(inst.name),
            _text(inst.configuration_id),
            state_text(inst.state),
            _text(inst.outputs),
            Text(_age(inst.created_at, now)),
            _text(inst.request_id),
            _text(inst.created_at.isoformat() if inst.created_at else None),
            id=inst.id,
        )
    return rows


def instance_detail(inst: Instance) -> Details:
    """One instance, its overrides included."""
    items: list[tuple[str, Cell | Rows]] = [
        ("id", inst.id),
        ("name", inst.name or "-"),
        ("configuration", inst.configuration_id or "-"),
        ("state", state_text(inst.state)),
        ("outputs", str(inst.outputs or "-")),
        ("request", inst.request_id or "-"),
        ("created", inst.created_at.isoformat() if inst.created_at else "-"),
    ]
    if inst.overrides:
        items.append(("overrides", overrides_table(inst.overrides)))
    return Details(items, id=inst.id)


def request_detail(request: InstanceRequest) -> Details:
    """One instance request."""
    return Details(
        [
            ("id", request.id),
            ("state", state_text(request.state)),
            ("configuration", request.configuration_id or "-"),
            ("instances", ", ".join(request.instance_ids) or "-"),
            ("created", request.created_at.isoformat() if request.created_at else "-"),
        ],
        id=request.id,
    )


def overrides_table(overrides: Mapping[str, Mapping[str, Any]]) -> Rows:
    """One row per element setting; values shown as JSON."""
    rows = Rows(("ELEMENT", "SETTING", "VALUE"))
    for element, settings in overrides.items():
        for key, value in settings.items():
            rows.add(Text(element), Text(key), Text(json.dumps(value, ensure_ascii=False)))
    rows.ids = list(overrides)  # -o ids: the element ids
    return rows


def destinations_table(destinations: Sequence[Destination]) -> Rows:
    """ID, name and platform of each destination."""
    rows = Rows(("ID", "NAME", "PLATFORM"))
    for dst in destinations:
        rows.add(_text(dst.id), _text(dst.name), _text(dst.platform), id=dst.id)
    return rows
