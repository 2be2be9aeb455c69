"""``streamrun watch``: the account's instances in a table that follows their changes.

Three renderings of the same stream of changes: a live rich table on a terminal, one
plain line per change in a pipe or log, one JSON object per line with ``--json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator
from datetime import datetime

import click
from rich.console import Group, RenderableType
from rich.live import Live
from rich.text import Text

from streamrun_async import ChangeKind, Instance, InstanceChange, PollPolicy, StreamrunClient

from ._render import instances_table, rich_view
from ._runtime import Runtime, call, json_option

__all__ = ["watch"]

_RECENT = 6  # changes listed under the live table
_REFRESH = 0.25  # seconds between repaints at most; a burst of changes costs one
_AGE_REFRESH = 1.0  # repaint this often anyway, so ages move


class _Fleet:
    """The instances as last seen, and the latest changes."""

    def __init__(self) -> None:
        self.instances: dict[str, Instance] = {}
        self.recent: deque[tuple[str, InstanceChange]] = deque(maxlen=_RECENT)
        self.changes = 0

    def apply(self, change: InstanceChange) -> None:
        """Take one change into the fleet and the recent list."""
        inst = change.instance
        if change.kind is ChangeKind.REMOVED:
            self.instances.pop(inst.id, None)
        else:
            self.instances[inst.id] = inst
        self.recent.append((datetime.now().strftime("%H:%M:%S"), change))
        self.changes += 1

    def counts(self) -> str:
        """``3 instance(s): 2 QUEUED, 1 RUNNING``."""
        by_state: dict[str, int] = {}
        for inst in self.instances.values():
            by_state[str(inst.state)] = by_state.get(str(inst.state), 0) + 1
        parts = [f"{n} {state}" for state, n in sorted(by_state.items())]
        return f"{len(self.instances)} instance(s)" + (f": {', '.join(parts)}" if parts else "")


def describe_change(change: InstanceChange) -> str:
    """``ADDED   inst-1 (cam-1, cfg-a) QUEUED`` / ``CHANGED ... QUEUED -> RUNNING``."""
    inst = change.instance
    who = f"{inst.id} ({inst.name or '-'}, {inst.configuration_id or '-'})"
    if change.kind is ChangeKind.CHANGED and change.previous != inst.state:
        what = f"{change.previous} -> {inst.state}"
    elif change.kind is ChangeKind.REMOVED:
        what = f"gone (was {change.previous})"
    else:
        what = str(inst.state)
    return f"{change.kind.value:<7} {who} {what}"


class _LiveTable:
    """A rich Live table repainted from the loop (no refresh thread touching our dicts)."""

    def __init__(self, rt: Runtime, fleet: _Fleet, scope: str) -> None:
        self._fleet = fleet
        self._scope = scope
        self._live = Live(console=rt.out, auto_refresh=False, transient=False)
        self._dirty = True

    def changed(self, change: InstanceChange) -> None:
        """Note a change; the next repaint shows it (bursts cost one repaint)."""
        self._dirty = True

    def _render(self) -> RenderableType:
        """The table, sorted by configuration and name, and the latest changes."""
        fleet = self._fleet
        ordered = sorted(
            fleet.instances.values(),
            key=lambda i: (i.configuration_id or "", i.name or "", i.id),
        )
        table = instances_table(ordered, title=f"Instances of {self._scope}")
        table.caption = f"{fleet.counts()} - Ctrl-C to stop watching (nothing is stopped)"
        lines = [
            Text(f"{at}  {describe_change(change)}", style="dim") for at, change in fleet.recent
        ]
        return Group(rich_view(table), *lines)

    async def _repaint(self) -> None:
        """Repaint when something changed, and every second anyway so ages move."""
        last = 0.0
        while True:
            now = time.monotonic()
            if self._dirty or now - last >= _AGE_REFRESH:
                self._dirty = False
                last = now
                self._live.update(self._render(), refresh=True)
            await asyncio.sleep(_REFRESH)

    @contextlib.asynccontextmanager
    async def showing(self) -> AsyncIterator[None]:
        """Show the table while the body runs; leave its last state on screen."""
        with self._live:
            task = asyncio.create_task(self._repaint())
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                self._live.update(self._render(), refresh=True)


@click.command(short_help="Watch instances change state, in a live table.")
@click.option(
    "--configuration",
    "configuration_ids",
    multiple=True,
    metavar="ID",
    help="Watch only this configuration (repeat for several; default: the whole account).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="S",
    help="Stop watching after S seconds (default: until Ctrl-C).",
)
@json_option
@click.pass_obj
def watch(rt: Runtime, configuration_ids: tuple[str, ...], timeout: float | None) -> None:
    """Watch instances come, change state and go, in a live table.

    Off a terminal, one line per change; with --json, one JSON object per line.
    """
    fleet = _Fleet()
    scope = ", ".join(configuration_ids) if configuration_ids else "the account"
    rt.interrupt_note = lambda: (
        f"stopped watching; the {len(fleet.instances)} instance(s) seen keep running "
        "(watching never stops anything)"
    )
    live = not rt.json_output and rt.out.is_terminal

    def emit(change: InstanceChange) -> None:
        if rt.json_output:
            rt.print_json_line(
                {
                    "kind": change.kind.value,
                    "previous": change.previous,
                    "instance": change.instance,
                }
            )
        elif not live:
            click.echo(f"{datetime.now():%H:%M:%S}  {describe_change(change)}")

    async def follow(client: StreamrunClient, table: _LiveTable | None) -> None:
        async with client.instances.watch(list(configuration_ids) or None) as changes:
            async for change in changes:
                fleet.apply(change)
                emit(change)
                if table is not None:
                    table.changed(change)

    async def main(client: StreamrunClient) -> None:
        if not live:
            rt.note(f"watching {scope} (Ctrl-C to stop)")
        table = _LiveTable(rt, fleet, scope) if live else None
        showing = table.showing() if table is not None else contextlib.nullcontext()
        async with showing:
            try:
                async with asyncio.timeout(timeout) as deadline:
                    await follow(client, table)
            except TimeoutError:
                # Only our own deadline ends a watch quietly; an API timeout is an error.
                if not deadline.expired():
                    raise
                # ...and only if the server answered: a watch that saw nothing because
                # every poll failed ends with the poll's error, not with "0 changes".
                failing = client._poller.pacer.failing()
                if failing is not None:
                    raise failing from None
        if not live:
            rt.note(f"stopped watching after {fleet.changes} change(s); {fleet.counts()}")

    # Failed polls end the watch after at most its own timeout (the poller's default,
    # 120 s, would outlast a short --timeout).
    give_up = None if timeout is None else min(timeout, PollPolicy().give_up_after)
    call(rt, main, give_up_after=give_up)
