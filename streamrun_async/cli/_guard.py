"""``streamrun leases list|extend|release`` and ``streamrun reap``: guardrails from a shell.

``reap`` is what enforces leases when the bot that took them is dead: run it from cron::

    */5 * * * * streamrun reap --owner golive-bot

Leases are read from the same store the bot uses (``--store``, ``STREAMRUN_LEASE_STORE``;
default: the SQLite file in the user's state directory). Listing, extending and releasing
leases needs no API key; reaping does.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from streamrun_async import Lease, LeaseStore, RedisLeaseStore, SQLiteLeaseStore
from streamrun_async.guard import (
    Reaper,
    ReapReport,
    check_known_owner,
    extend_lease,
    release_lease,
)

from ._render import Details, Rows, duration
from ._runtime import Runtime, json_option

__all__ = ["leases", "parse_duration", "reap"]

_T = TypeVar("_T")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")

store_option = click.option(
    "--store",
    "store_location",
    envvar="STREAMRUN_LEASE_STORE",
    show_envvar=True,
    metavar="PATH|URL",
    help="The lease store: an SQLite file, or a redis:// URL "
    "(default: $XDG_STATE_HOME/streamrun/leases.sqlite3).",
)
_owner_option = click.option(
    "--owner", metavar="OWNER", help="Only this owner's leases (default: every owner's)."
)


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``10m``, ``2h``, ``1d`` in seconds; ``click.BadParameter`` otherwise."""
    found = _DURATION.match(text)
    if found is None or float(found.group(1)) <= 0:
        raise click.BadParameter(f"{text!r} is not a positive duration such as 90s, 10m or 2h")
    return float(found.group(1)) * _UNITS[found.group(2) or "s"]


def open_store(location: str | None) -> LeaseStore:
    """The lease store at ``location``: a redis:// URL, an SQLite path, or the default file."""
    if location and location.startswith(("redis://", "rediss://", "unix://")):
        return RedisLeaseStore(location)
    return SQLiteLeaseStore(location or None)


def _with_store(
    rt: Runtime, location: str | None, action: Callable[[LeaseStore], Awaitable[_T]]
) -> _T:
    async def main() -> _T:
        store = open_store(location)
        try:
            return await action(store)
        finally:
            await store.aclose()

    return rt.run(main)


async def _checked_owner(store: LeaseStore, owner: str | None) -> str | None:
    return None if owner is None else await check_known_owner(store, owner)


def _cell(value: str | None) -> str:
    return "-" if value is None else value


def _leases_table(leases: list[Lease]) -> Rows:
    now = time.time()
    table = Rows(
        ("OWNER", "NAME", "CONFIGURATION", "INSTANCE", "EXPIRES"),
        wide=("LEASE", "HOST", "PID", "REQUEST"),
    )
    for lease in leases:
        left = lease.remaining(now)
        if left is None:
            expires = "never"
        elif left > 0:
            expires = f"in {duration(left)}"
        else:
            expires = f"expired {duration(now - (lease.expires_at or now))} ago"
        table.add(
            lease.owner,
            _cell(lease.name),
            lease.configuration_id,
            _cell(lease.instance_id),
            expires,
            lease.id,
            lease.host,
            str(lease.pid),
            _cell(lease.request_id),
            id=lease.id,
        )
    return table


def _lease_detail(lease: Lease) -> Details:
    return Details(
        [
            ("lease", lease.id),
            ("owner", lease.owner),
            ("name", _cell(lease.name)),
            ("configuration", lease.configuration_id),
            ("instance", _cell(lease.instance_id)),
            ("expires", lease.expires.isoformat() if lease.expires else "never"),
        ],
        id=lease.id,
    )


@click.group()
def leases() -> None:
    """The leases guarded clients wrote: each a deadline for one instance."""


@leases.command("list")
@store_option
@_owner_option
@json_option
@click.pass_obj
def leases_list(rt: Runtime, store_location: str | None, owner: str | None) -> None:
    """Every lease in the store, oldest first."""

    async def action(store: LeaseStore) -> list[Lease]:
        return await store.leases(await _checked_owner(store, owner))

    found = _with_store(rt, store_location, action)
    rt.show(found, _leases_table, empty="no leases")


@leases.command("extend")
@click.argument("name_or_id")
@click.option(
    "--by", "by", required=True, metavar="DURATION", help="How much later: 90s, 10m, 2h, 1d."
)
@store_option
@_owner_option
@json_option
@click.pass_obj
def leases_extend(
    rt: Runtime, name_or_id: str, by: str, store_location: str | None, owner: str | None
) -> None:
    """Move the deadline of the lease NAME_OR_ID (instance name or id, or lease id) later."""
    seconds = parse_duration(by)

    async def action(store: LeaseStore) -> Lease:
        checked = await _checked_owner(store, owner)
        return await extend_lease(store, checked, name_or_id, seconds, time.time())

    rt.show(_with_store(rt, store_location, action), _lease_detail)


@leases.command("release")
@click.argument("name_or_id")
@store_option
@_owner_option
@json_option
@click.pass_obj
def leases_release(
    rt: Runtime, name_or_id: str, store_location: str | None, owner: str | None
) -> None:
    """Forget the lease NAME_OR_ID: its instance keeps running, unguarded."""

    async def action(store: LeaseStore) -> Lease:
        return await release_lease(store, await _checked_owner(store, owner), name_or_id)

    rt.show(_with_store(rt, store_location, action), _lease_detail)


def _report_table(report: ReapReport) -> Rows:
    table = Rows(("OUTCOME", "OWNER", "NAME", "INSTANCE", "DETAIL"))
    rows: list[tuple[str, Lease, str | None]] = []
    rows += [
        ("would stop" if report.dry_run else "stopped", lease, None) for lease in report.to_stop
    ]
    rows += [("stopped", lease, "confirmed by a list") for lease in report.stopped]
    rows += [
        ("FAILED", failure.lease, failure.error or failure.reason) for failure in report.failed
    ]
    rows += [("ended", lease, "already gone") for lease in report.ended]
    rows += [("UNMATCHED", lease, "no instance found") for lease in report.unmatched]
    for outcome, lease, detail in rows:
        table.add(
            outcome,
            lease.owner,
            _cell(lease.name),
            _cell(lease.instance_id),
            _cell(detail),
            id=lease.id,
        )
    return table


@click.command(short_help="Stop what expired leases hold (for cron).")
@store_option
@_owner_option
@click.option("--dry-run", is_flag=True, help="Say what would be stopped; stop nothing.")
@json_option
@click.pass_obj
def reap(rt: Runtime, store_location: str | None, owner: str | None, dry_run: bool) -> None:
    """Stop every instance whose lease expired, confirm each stop with a second list, and
    drop the leases of instances that are gone. Exit 1 if a stop failed or did not take
    (it is tried again next run), or an expired lease matched no instance."""
    events: list[Any] = []

    async def main() -> ReapReport:
        store = open_store(store_location)
        try:
            checked = await _checked_owner(store, owner)
            async with rt.client() as client:
                reaper = Reaper(
                    owner=checked,
                    store=store,
                    list_instances=client.instances.list,
                    stop_instance=client.instances.stop,
                    get_request=client.instance_requests.get,
                    clock=time.time,
                    emit=events.append,
                )
                return await reaper.reap(dry_run=dry_run)
        finally:
            await store.aclose()

    report = rt.run(main)
    rt.show(report, _report_table, empty="nothing to reap")
    if not report.ok:
        for failure in report.failed:
            rt.error(f"{failure.lease.name or failure.lease.id}: {failure.reason}")
        raise click.exceptions.Exit(1)
