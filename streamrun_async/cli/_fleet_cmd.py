"""``streamrun apply`` and ``streamrun diff``: a fleet declared in a file.

Exit status: 0 when nothing needs changing, 3 when ``apply`` changed something (or
``diff`` / ``apply --dry-run`` found changes to make), 1 when a change failed or the API
could not be read, 2 for a bad command line or a bad fleet file (refused before any
request, with its file, line and key).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.text import Text

from streamrun_async import (
    Fleet,
    FleetAction,
    FleetActionKind,
    FleetFileError,
    FleetPlan,
    FleetReport,
    Instance,
    LaunchReport,
    StreamrunClient,
)

from ._leftovers import left_behind
from ._render import Rows, one_line
from ._runtime import Runtime, call, follow_up

__all__ = ["EXIT_CHANGES", "apply", "diff"]

_F = TypeVar("_F", bound=Callable[..., Any])

EXIT_CHANGES = 3
_VERBS = {
    FleetActionKind.LAUNCH: "launch",
    FleetActionKind.UPDATE: "update",
    FleetActionKind.SET_OUTPUTS: "set outputs",
    FleetActionKind.STOP: "stop",
    FleetActionKind.KEEP: "keep",
}


def _fleet_options(command: _F) -> _F:
    for option in reversed(
        [
            click.option(
                "-f",
                "--file",
                "path",
                required=True,
                type=click.Path(dir_okay=False, path_type=Path),
                help="The fleet file: .toml, or .yaml/.yml with PyYAML installed.",
            ),
            click.option(
                "--prune",
                is_flag=True,
                help="Also stop the owner's instances the file no longer declares "
                "(named <owner>/..., never others).",
            ),
            click.option(
                "--hourly-rate",
                type=click.FloatRange(min=0),
                metavar="USD",
                help="Cost of a RUNNING instance-hour for the estimate "
                "(default: the file's hourly_rate, else 0.39).",
            ),
        ]
    ):
        command = option(command)
    return command


def _read(path: Path) -> Fleet:
    """The fleet, or a usage error naming the file, line and key."""
    try:
        return Fleet.from_file(path)
    except FleetFileError as error:
        raise click.UsageError(one_line(error)) from None


def _detail(action: FleetAction) -> str:
    if action.kind is FleetActionKind.UPDATE:
        return ", ".join(
            f"{element}.{key}" for element, settings in action.changes.items() for key in settings
        )
    if action.kind is FleetActionKind.SET_OUTPUTS:
        return f"all of the configuration's instances {action.changes['outputs']}"
    if action.kind is FleetActionKind.LAUNCH and action.changes:
        return f"overrides: {', '.join(action.changes)}"
    return ""


def plan_rows(plan: FleetPlan) -> Rows:
    """One row per action, KEEP included (``-o ids``: the instances touched)."""
    rows = Rows(("ACTION", "CONFIGURATION", "NAME", "INSTANCE", "DETAIL"))
    for action in plan.actions:
        verb = _VERBS[action.kind]
        rows.add(
            Text(verb),
            Text(action.configuration_id),
            Text(action.name or "-"),
            Text(action.instance_id or "-"),
            Text(_detail(action)),
            id=action.instance_id if action.kind is not FleetActionKind.KEEP else None,
        )
    return rows


def summary(plan: FleetPlan) -> str:
    """``2 to launch, 1 to update, ...; cost per hour $0.78 now, $1.17 after (at $0.39)``."""
    counts = [
        f"{plan.count(kind)} to {_VERBS[kind]}"
        for kind in (
            FleetActionKind.LAUNCH,
            FleetActionKind.UPDATE,
            FleetActionKind.SET_OUTPUTS,
            FleetActionKind.STOP,
        )
    ]
    kept = plan.count(FleetActionKind.KEEP)
    text = f"{', '.join(counts)}, {kept} as declared"
    text += (
        f"; estimated cost per hour (all RUNNING): ${plan.cost_per_hour_now:.2f} now, "
        f"${plan.cost_per_hour_after:.2f} after, at ${plan.hourly_rate:.2f}/instance-hour"
    )
    if plan.unpruned:
        text += f"; {plan.unpruned} owned instance(s) not declared stay (--prune stops them)"
    return text


def _plan_json(plan: FleetPlan) -> dict[str, Any]:
    return {
        "owner": plan.fleet.owner,
        "prune": plan.prune,
        "changes": len(plan.changes),
        "actions": [
            {
                "action": action.kind.value,
                "configuration_id": action.configuration_id,
                "name": action.name,
                "instance_id": action.instance_id,
                "changes": dict(action.changes),
            }
            for action in plan.actions
        ],
        "hourly_rate": plan.hourly_rate,
        "cost_per_hour_now": plan.cost_per_hour_now,
        "cost_per_hour_after": plan.cost_per_hour_after,
        "owned_not_declared_kept": plan.unpruned,
    }


def _ttl_note(rt: Runtime, fleet: Fleet, guarded: bool) -> None:
    if not any(item.ttl is not None for cfg in fleet.configurations for item in cfg.instances):
        return
    if guarded:
        rt.note(
            f"ttls are leases of owner {fleet.owner}: `streamrun reap --owner {fleet.owner}` "
            "from cron stops what outlives them once this command has ended"
        )
    else:
        rt.note("note: ttl is read and checked, but enforced only with --guard (leases)")


def _show_plan(rt: Runtime, plan: FleetPlan, path: Path) -> None:
    if rt.json_output:
        rt.print_json(_plan_json(plan))
        return
    rt.show(plan, plan_rows)
    rt.note(summary(plan))
    if not plan.has_changes:
        rt.note(f"nothing to change: the account already runs {path}")


@click.command(short_help="Show what `apply` would change (exit 3 if anything).")
@_fleet_options
@click.pass_obj
def diff(rt: Runtime, path: Path, prune: bool, hourly_rate: float | None) -> None:
    """Show what `streamrun apply -f FILE` would launch, update, set and stop; change nothing.

    \b
    streamrun diff -f examples/fleet.toml --prune
    Exit status: 0 nothing to change, 3 changes pending, 1 API error, 2 bad file.
    """
    _diff(rt, _read(path), path, prune, hourly_rate)


def _diff(rt: Runtime, fleet: Fleet, path: Path, prune: bool, hourly_rate: float | None) -> None:
    """Plan, show, and exit 3 when there is anything to change."""

    async def main(client: StreamrunClient) -> FleetPlan:
        report = await client.apply(fleet, prune=prune, dry_run=True, hourly_rate=hourly_rate)
        return report.plan

    plan = call(rt, main)
    _ttl_note(rt, fleet, guarded=False)
    _show_plan(rt, plan, path)
    if plan.has_changes:
        raise click.exceptions.Exit(EXIT_CHANGES)


@click.command(short_help="Make the account run the fleet declared in a file.")
@_fleet_options
@click.option("--dry-run", is_flag=True, help="Only show the plan (as `diff`).")
@click.option("--wait", is_flag=True, help="Wait until launched instances are RUNNING.")
@click.option(
    "--guard",
    "guarded",
    is_flag=True,
    help="Launch through a guard of the file's owner: each ttl becomes a lease (local "
    "SQLite store), enforced by `streamrun reap --owner OWNER`.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=900.0,
    show_default=True,
    metavar="S",
    help="Seconds the launches (and --wait) may take in all.",
)
@click.pass_obj
def apply(
    rt: Runtime,
    path: Path,
    prune: bool,
    hourly_rate: float | None,
    dry_run: bool,
    wait: bool,
    guarded: bool,
    timeout: float,
) -> None:
    """Launch what FILE declares and is missing, update overrides, set outputs, prune.

    \b
    Instances are launched as <owner>/<name>, each exactly once (launch_many); that
    prefix is how --prune knows what this owner launched. A second apply of the same
    file changes nothing and says so.
    \b
    streamrun apply -f examples/fleet.toml
    streamrun apply -f fleet.toml --prune --dry-run
    Exit status: 0 nothing to change, 3 changes made (or pending with --dry-run),
    1 a change failed or the API could not be read, 2 bad file.
    """
    fleet = _read(path)
    if dry_run:
        _diff(rt, fleet, path, prune, hourly_rate)
        return
    launched = LaunchReport()
    rt.interrupt_note = lambda: _after_interrupt(rt, launched, path)

    async def main(client: StreamrunClient) -> FleetReport:
        with rt.status(f"applying {path}..."):
            report = await client.apply(
                fleet,
                prune=prune,
                hourly_rate=hourly_rate,
                wait=wait,
                timeout=timeout,
                launch_report=launched,
            )
        return report

    guard = None
    if guarded:
        from streamrun_async import Guard

        guard = Guard(owner=fleet.owner)
    report = call(rt, main, guard=guard)
    _ttl_note(rt, fleet, guarded=report.ttl_enforced)
    _print_report(rt, report, path)
    if not report.ok:
        raise click.exceptions.Exit(1)
    if report.changed:
        raise click.exceptions.Exit(EXIT_CHANGES)


def _lister(cfg: str) -> Callable[[StreamrunClient], Awaitable[list[Instance]]]:
    """A follow-up call that lists one configuration's instances."""
    return lambda client: client.configurations.list_instances(cfg)


def _after_interrupt(rt: Runtime, launched: LaunchReport, path: Path) -> str:
    """What an interrupted apply launched, per configuration, and how to stop just that."""
    lines: list[str] = []
    for cfg in sorted({item.configuration_id for item in launched.items.values()}):
        part = LaunchReport(
            items={n: i for n, i in launched.items.items() if i.configuration_id == cfg}
        )
        lines += left_behind(cfg, part, follow_up(rt, _lister(cfg)))
    lines.append(
        f"`streamrun diff -f {path}` shows what is left to do; applying again launches "
        "nothing twice"
    )
    return "\n".join(lines)


def _print_report(rt: Runtime, report: FleetReport, path: Path) -> None:
    plan = report.plan
    if rt.json_output:
        out = _plan_json(plan)
        out["done"] = [
            {
                "action": a.kind.value,
                "configuration_id": a.configuration_id,
                "name": a.name,
                "instance_id": a.instance_id,
            }
            for a in report.done
        ]
        out["failed"] = [
            {"action": a.kind.value, "name": a.name, "error": error} for a, error in report.failed
        ]
        out["wait_error"] = report.wait_error
        rt.print_json(out)
    elif report.done:
        rows = Rows(("DONE", "CONFIGURATION", "NAME", "INSTANCE", "DETAIL"))
        for action in report.done:
            rows.add(
                Text(_VERBS[action.kind]),
                Text(action.configuration_id),
                Text(action.name or "-"),
                Text(action.instance_id or "-"),
                Text(_detail(action)),
                id=action.instance_id,
            )
        rt.show(rows, lambda view: view)
    rt.note("planned: " + summary(plan))
    if not plan.has_changes:
        rt.note(f"nothing to change: the account already runs {path}")
    for action, error in report.failed:
        what = f"{_VERBS[action.kind]} {action.name or action.configuration_id}"
        rt.error(f"{what}: {one_line(error)}")
    if report.wait_error is not None:
        rt.error(f"not every launched instance was RUNNING in time: {one_line(report.wait_error)}")
