"""The ``streamrun`` command: one click command per API operation, plus watch, probe,
apply/diff, emulator and demo.

Every command prints tables for people (plain aligned text off a terminal), or with
``-o json`` / ``--json`` machine-readable JSON, or with ``-o ids`` one id per line: data
on stdout and nothing else there (remarks and errors go to stderr). The global options
work before or after the command's name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click
from rich.text import Text

from streamrun_async import (
    DEFAULT_BASE_URL,
    APIError,
    Instance,
    InstanceSettings,
    LaunchEvent,
    LaunchEventKind,
    LaunchReport,
    NotFoundError,
    Outputs,
    Overrides,
    StreamrunClient,
    StreamrunError,
)

from ._demo import demo
from ._emulator import emulator
from ._fleet_cmd import apply, diff
from ._guard import leases, open_store, parse_duration, reap, store_option
from ._leftovers import left_behind
from ._live import watch
from ._probe import probe
from ._render import (
    Rows,
    configuration_detail,
    configurations_table,
    destinations_table,
    duration,
    instance_detail,
    instances_table,
    one_line,
    overrides_table,
    request_detail,
    state_text,
)
from ._resolve import listed_instances, match, resolve
from ._runtime import (
    OUTPUT_FORMATS,
    CommandError,
    Runtime,
    call,
    describe_error,
    follow_up,
    install_global_options,
)

_F = TypeVar("_F", bound=Callable[..., Any])

__all__ = ["cli", "parse_assignments"]

_ASSIGNMENT_HELP = (
    "--override ELEMENT.KEY=VALUE sets VALUE as text, always; --override-json "
    """ELEMENT.KEY='["a","b"]' sets it as JSON (true, 3, a list, an object)."""
)
_ELEMENT = re.compile(r"[A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)*")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def parse_assignments(
    items: Sequence[str], option: str = "--override", *, as_json: bool = False
) -> Overrides:
    """``ELEMENT.KEY=VALUE`` items as overrides: ``{"ELEMENT": {"KEY": VALUE}}``.

    VALUE is text, or JSON with ``as_json`` (invalid JSON is a usage error). The element
    and key are checked here, before any request.
    """
    overrides: Overrides = {}
    for item in items:
        path, equals, raw = item.partition("=")
        element, dot, key = path.partition(".")
        if not (equals and dot):
            raise click.BadParameter(
                f"{item!r} is not ELEMENT.KEY=VALUE (e.g. htmloverlay-1.url=https://example.com)",
                param_hint=f"'{option}'",
            )
        if not _ELEMENT.fullmatch(element):
            raise click.BadParameter(
                f"{item!r}: {element!r} is not an element id (they look like htmloverlay-1)",
                param_hint=f"'{option}'",
            )
        if not _KEY.fullmatch(key):
            raise click.BadParameter(
                f"{item!r}: {key!r} is not a setting name"
                + (
                    " (one level only: ELEMENT.KEY; nest with --override-json)"
                    if "." in key
                    else ""
                ),
                param_hint=f"'{option}'",
            )
        value: Any = raw
        if as_json:
            try:
                value = json.loads(raw)
            except ValueError as error:
                raise click.BadParameter(
                    f"{item!r}: the value is not JSON ({error}); use --override for text",
                    param_hint=f"'{option}'",
                ) from None
        settings = overrides.setdefault(element, {})
        if key in settings:
            raise click.BadParameter(f"{element}.{key} is given twice", param_hint=f"'{option}'")
        settings[key] = value
    return overrides


def merge_overrides(*parts: Overrides) -> Overrides:
    """Overrides from several options as one; a setting given twice is a usage error."""
    merged: Overrides = {}
    for part in parts:
        for element, settings in part.items():
            into = merged.setdefault(element, {})
            for key, value in settings.items():
                if key in into:
                    raise click.UsageError(f"{element}.{key} is given twice")
                into[key] = value
    return merged


def override_options(command: _F) -> _F:
    """``--override`` (text) and ``--override-json`` (JSON) on a command."""
    command = click.option(
        "--override-json",
        "override_json_items",
        multiple=True,
        metavar="ELEMENT.KEY=JSON",
        help="Set an element's setting to a JSON value, "
        """e.g. outputstream-1.destinations='["d-1"]'.""",
    )(command)
    return click.option(
        "--override",
        "override_items",
        multiple=True,
        metavar="ELEMENT.KEY=VALUE",
        help="Set an element's setting to text, e.g. htmloverlay-1.url=https://x.",
    )(command)


def overrides_from(override_items: Sequence[str], override_json_items: Sequence[str]) -> Overrides:
    """The overrides of ``--override`` and ``--override-json``, checked."""
    return merge_overrides(
        parse_assignments(override_items),
        parse_assignments(override_json_items, "--override-json", as_json=True),
    )


# -- the group ----------------------------------------------------------------------

_EPILOG = """\b
Examples:
  streamrun configurations list -o wide
  streamrun launch CFG --count 3 --wait                 # cli-1..cli-3; rerun launches none
  streamrun launch CFG --name cam-1 --override htmloverlay-1.url=https://x
  streamrun instances stop cam-1                        # by name or id
  streamrun instances list -o ids | xargs streamrun instances stop
  streamrun diff -f fleet.toml && streamrun apply -f fleet.toml
  streamrun probe > probe.txt                           # attach to bug reports

\b
Exit status: 0 ok, 1 API error, 2 usage error, 130 interrupted;
apply/diff: 0 nothing to change, 3 changes made (or pending), 1 failure.
"""


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=_EPILOG,
)
@click.option(
    "--api-key",
    envvar="STREAMRUN_API_KEY",
    show_envvar=True,
    metavar="KEY",
    help="Your Streamrun API key. Never printed.",
)
@click.option(
    "--base-url",
    envvar="STREAMRUN_BASE_URL",
    show_envvar=True,
    default=DEFAULT_BASE_URL,
    show_default=True,
    help="The API's address, e.g. the emulator's http://127.0.0.1:8787 (without /api/v1).",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(OUTPUT_FORMATS),
    default="table",
    show_default=True,
    help="table, wide (more columns), json, or ids (one per line, for xargs).",
)
@click.option(
    "--json",
    "json_output",
    is_flag=True,
    help="Same as -o json: machine-readable JSON on stdout, nothing else there.",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0.01),
    default=1.0,
    show_default=True,
    metavar="S",
    help="Seconds between polls while waiting or watching (longer while nothing changes).",
)
@click.version_option(package_name="streamrun-async", prog_name="streamrun")
@click.pass_context
def cli(
    ctx: click.Context,
    api_key: str | None,
    base_url: str,
    output: str,
    json_output: bool,
    poll_interval: float,
) -> None:
    """Run Streamrun configurations from the command line.

    \b
    Try it without an account:  streamrun demo
    Or serve an emulator:       streamrun emulator
    Global options (--api-key, --base-url, -o, --json) go before or after the command.
    """
    ctx.obj = Runtime(
        api_key=api_key,
        base_url=base_url,
        output="json" if json_output else output,
        poll_interval=poll_interval,
    )


cli.add_command(watch)
cli.add_command(emulator)
cli.add_command(demo)
cli.add_command(probe)
cli.add_command(apply)
cli.add_command(diff)
cli.add_command(leases)  # guardrails (issue 14): leases list|extend|release
cli.add_command(reap)  # and reap, for cron


def _configuration_option(command: _F) -> _F:
    return click.option(
        "--configuration",
        "configuration_id",
        metavar="ID",
        help="Only this configuration's instances (also narrows name lookups).",
    )(command)


# -- configurations -----------------------------------------------------------------


@cli.group()
def configurations() -> None:
    """List and inspect configurations."""


@configurations.command("list")
@click.pass_obj
def configurations_list(rt: Runtime) -> None:
    """List the account's configurations."""
    items = call(rt, lambda client: client.configurations.list())
    rt.show(items, configurations_table, empty="no configurations")


@configurations.command("get")
@click.argument("configuration_id")
@click.pass_obj
def configurations_get(rt: Runtime, configuration_id: str) -> None:
    """Show one configuration and its elements."""
    cfg = call(rt, lambda client: client.configurations.get(configuration_id))
    rt.show(cfg, configuration_detail)


# -- launch ---------------------------------------------------------------------------


def _check_name(value: str, option: str) -> str:
    if not value.strip() or value != value.strip():
        raise click.BadParameter(
            f"{value!r}: a name must be non-empty, without leading or trailing spaces",
            param_hint=f"'{option}'",
        )
    return value


def launch_names(names: Sequence[str], count: int | None, prefix: str) -> list[str]:
    """The names ``launch`` asks for: ``--name``s, else ``PREFIX-1`` .. ``PREFIX-N``.

    Derived names are stable, so rerunning ``launch CFG --count N`` launches only the
    names missing from CFG, never a second fleet.
    """
    if names and count is not None:
        raise click.UsageError("use either --count or --name, not both")
    for name in names:
        _check_name(name, "--name")
    if len(set(names)) != len(names):
        raise click.UsageError("each --name must be different")
    if names:
        return list(names)
    _check_name(prefix, "--prefix")
    return [f"{prefix}-{i}" for i in range(1, (count or 1) + 1)]


def _launch_json(configuration_id: str, report: LaunchReport) -> dict[str, Any]:
    """The ``-o json`` answer of ``launch``."""
    return {
        "configuration_id": configuration_id,
        "ok": report.ok,
        "launched": list(report.launched.values()),
        "failed": [{"name": name, "error": err} for name, err in report.failed.items()],
        "unknown": sorted(report.unknown),
        "wait_error": None if report.wait_error is None else one_line(report.wait_error),
        "launch_calls": report.launch_calls,
        "reconciliations": report.reconciliations,
    }


@cli.command(short_help="Launch instances of a configuration, each exactly once.")
@click.argument("configuration_id", metavar="CONFIG")
@click.option(
    "--count",
    type=click.IntRange(1, 1000),
    help="Make sure N instances named PREFIX-1..PREFIX-N exist (default 1).",
)
@click.option(
    "--prefix",
    default="cli",
    show_default=True,
    help="Name prefix with --count: names are stable, so a rerun launches only what is missing.",
)
@click.option(
    "--name",
    "names",
    multiple=True,
    help="Name an instance (repeat for several). A name already running is not launched again.",
)
@override_options
@click.option(
    "--destination",
    "destinations",
    multiple=True,
    metavar="ID",
    help="Stream outputstream-1 to this destination (repeat for several).",
)
@click.option("--wait", is_flag=True, help="Wait until every instance is RUNNING.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=600.0,
    show_default=True,
    metavar="S",
    help="Seconds --wait waits in all.",
)
@click.option(
    "--owner",
    metavar="OWNER",
    help="Launch through a guard of OWNER: a lease is written before the launch is sent.",
)
@click.option(
    "--ttl",
    metavar="DURATION",
    help="With --owner: the lease's deadline (90s, 30m, 4h); `streamrun reap` stops it then.",
)
@store_option
@click.pass_obj
def launch(
    rt: Runtime,
    configuration_id: str,
    count: int | None,
    prefix: str,
    names: tuple[str, ...],
    override_items: tuple[str, ...],
    override_json_items: tuple[str, ...],
    destinations: tuple[str, ...],
    wait: bool,
    timeout: float,
    owner: str | None,
    ttl: str | None,
    store_location: str | None,
) -> None:
    """Launch instances of CONFIG, each exactly once even if an answer is lost.

    \b
    Names make a launch idempotent: a name already in CONFIG is not launched again;
    one already there with other overrides gets the new ones (as the bot examples do).
    Without --name, the names are PREFIX-1..PREFIX-N (default cli-1), so running
    `streamrun launch CFG --count 3` twice leaves three instances, not six.
    \b
    streamrun launch CFG --name cam-1 --owner studio-a --ttl 4h   # reaped after 4 hours
    """
    if ttl is not None and owner is None:
        raise click.UsageError("--ttl needs --owner: a lease belongs to an owner")
    ttl_seconds = None if ttl is None else parse_duration(ttl)
    overrides = overrides_from(override_items, override_json_items)
    if destinations:
        overrides = merge_overrides(
            overrides, {"outputstream-1": {"destinations": list(destinations)}}
        )
    settings = [
        InstanceSettings(name=name, overrides=overrides, ttl=ttl_seconds)
        for name in launch_names(names, count, prefix)
    ]
    report = LaunchReport()

    def after_interrupt() -> str:
        listed = follow_up(rt, lambda c: c.configurations.list_instances(configuration_id))
        return "\n".join(left_behind(configuration_id, report, listed))

    rt.interrupt_note = after_interrupt
    total = len(settings)

    async def main(client: StreamrunClient) -> list[Instance] | None:
        with rt.status(f"launching {total} instance(s) of {configuration_id}...") as status:
            running = 0

            def progress(event: LaunchEvent) -> None:
                nonlocal running
                if event.kind is LaunchEventKind.RECONCILING:
                    status("an answer was lost: checking what really launched...")
                elif event.kind is LaunchEventKind.LAUNCHED and wait:
                    status(f"waiting for {total} instance(s) to run...")
                elif event.kind is LaunchEventKind.RUNNING:
                    running += len(event.names)
                    status(f"{running}/{total} instance(s) running...")

            await client.launch_many(
                {configuration_id: settings},
                wait=wait,
                timeout=timeout,
                report=report,
                on_progress=progress,
                on_existing="update",
            )
        if report.wait_error is None:
            return None
        # Timed out: one list call says what is still queued or running, with ids.
        try:
            return await client.configurations.list_instances(configuration_id)
        except StreamrunError:
            return None

    guard = None
    if owner is not None:
        from streamrun_async import Guard

        guard = Guard(owner=owner, store=open_store(store_location))
    listed = call(rt, main, guard=guard)
    _print_launch(rt, configuration_id, report, wait, timeout, listed)


def _launch_rows(report: LaunchReport) -> Rows:
    rows = Rows(("NAME", "STATE", "INSTANCE", "REQUEST", "RUNNING AFTER"))
    for item in report.launched.values():
        rows.add(
            Text(item.name + (" (existing)" if item.existing else "")),
            state_text(item.state),
            Text(item.instance_id or "-"),
            Text(item.request_id or "-"),
            Text(duration(item.running_after)),
            id=item.instance_id,
        )
    return rows


def _print_launch(
    rt: Runtime,
    configuration_id: str,
    report: LaunchReport,
    wait: bool,
    timeout: float,
    listed: list[Instance] | None,
) -> None:
    """What launched on stdout, what failed on stderr; exit 1 unless all went well."""
    if rt.json_output:
        rt.print_json(_launch_json(configuration_id, report))
    elif report.launched:
        rt.show(report, _launch_rows)
        if not wait:
            requests = sorted(
                {i.request_id for i in report.launched.values() if i.request_id and not i.existing}
            )
            for request_id in requests:
                rt.note(f"follow it with: streamrun requests wait {request_id}")
    updated = report.updated
    existing = [i.name for i in report.launched.values() if i.existing and i.name not in updated]
    if existing:
        rt.note(f"already in {configuration_id}, not launched again: {', '.join(existing)}")
    if updated:
        rt.note(f"already in {configuration_id}, overrides updated: {', '.join(updated)}")
    differ = report.kept_with_different_overrides
    if differ:
        rt.note(
            f"kept as they are, with other overrides than asked: {', '.join(differ)} "
            "(change them with `streamrun overrides set NAME ELEMENT.KEY=VALUE`)"
        )
    errors: dict[int, tuple[BaseException, list[str]]] = {}
    for name, error in report.failed.items():
        errors.setdefault(id(error), (error, []))[1].append(name)
    for error, failed_names in errors.values():
        text = describe_error(error) if isinstance(error, StreamrunError) else one_line(error)
        rt.error(f"{text} (not launched: {', '.join(failed_names)})")
    if report.unknown:
        rt.error(
            f"could not learn whether {', '.join(sorted(report.unknown))} launched: "
            f"check `streamrun instances list --configuration {configuration_id}` "
            "before launching again"
        )
    if report.wait_error is not None:
        rt.error(f"not every instance was RUNNING within {duration(timeout)} (--timeout)")
        for line in left_behind(configuration_id, report, listed):
            rt.note(line)
    if not report.ok:
        raise click.exceptions.Exit(1)


# -- instance requests ----------------------------------------------------------------


@cli.group()
def requests() -> None:
    """Follow launches (instance requests)."""


@requests.command("get")
@click.argument("request_id")
@click.pass_obj
def requests_get(rt: Runtime, request_id: str) -> None:
    """Show one instance request."""
    request = call(rt, lambda client: client.instance_requests.get(request_id))
    rt.show(request, request_detail)


@requests.command("wait")
@click.argument("request_id")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=600.0,
    show_default=True,
    metavar="S",
    help="Give up after S seconds (exit 1).",
)
@click.pass_obj
def requests_wait(rt: Runtime, request_id: str, timeout: float) -> None:
    """Wait until an instance request is RUNNING."""
    rt.interrupt_note = lambda: (
        f"stopped waiting; request {request_id} goes on (waiting never stops anything)"
    )

    async def main(client: StreamrunClient) -> Any:
        with rt.status(f"waiting for {request_id} to run..."):
            return await client.instance_requests.wait_until_running(request_id, timeout=timeout)

    request = call(rt, main)
    rt.show(request, request_detail)


# -- instances ------------------------------------------------------------------------


@cli.group()
def instances() -> None:
    """List, inspect, stop and restart instances (by id or by name)."""


@instances.command("list")
@_configuration_option
@click.option(
    "--state", "states", multiple=True, metavar="STATE", help="Only in this state (repeat)."
)
@click.option("--name", "name_filter", metavar="TEXT", help="Only names containing TEXT.")
@click.pass_obj
def instances_list(
    rt: Runtime, configuration_id: str | None, states: tuple[str, ...], name_filter: str | None
) -> None:
    """List the account's instances (or one configuration's)."""
    wanted = {state.upper() for state in states}
    items = [
        inst
        for inst in call(rt, lambda client: listed_instances(client, configuration_id))
        if (not wanted or str(inst.state).upper() in wanted)
        and (name_filter is None or name_filter in (inst.name or ""))
    ]
    rt.show(items, instances_table, empty="no instances")


async def _one_instance(
    client: StreamrunClient, ref: str, configuration_id: str | None
) -> Instance:
    """The instance ``ref`` names, as ``GET /instances/{id}`` answers it."""
    found = match(ref, await listed_instances(client, configuration_id))
    try:
        return await client.instances.get(found.id if found is not None else ref)
    except NotFoundError:
        scope = "the account" if configuration_id is None else configuration_id
        raise CommandError(f"no instance has the id or name {ref!r} in {scope}") from None


def _instance_id(rt: Runtime, ref: str, configuration_id: str | None) -> str:
    """The id ``ref`` stands for (itself when nothing listed matches it)."""

    async def main(client: StreamrunClient) -> str:
        found = match(ref, await listed_instances(client, configuration_id))
        return ref if found is None else found.id

    return call(rt, main)


@instances.command("get")
@click.argument("instance", metavar="ID|NAME")
@_configuration_option
@click.pass_obj
def instances_get(rt: Runtime, instance: str, configuration_id: str | None) -> None:
    """Show one instance."""
    inst = call(rt, lambda client: _one_instance(client, instance, configuration_id))
    rt.show(inst, instance_detail)


@instances.command("stop")
@click.argument("refs", metavar="ID|NAME...", nargs=-1, required=True)
@_configuration_option
@click.option("--strict", is_flag=True, help="Exit 1 if an instance was already gone (default: 0).")
@click.pass_obj
def instances_stop(
    rt: Runtime, refs: tuple[str, ...], configuration_id: str | None, strict: bool
) -> None:
    """Stop instances (a queued one is cancelled). Stopping what is gone is not an error.

    \b
    streamrun instances stop cam-1 cam-2 --configuration CFG
    streamrun instances list --state QUEUED -o ids | xargs streamrun instances stop
    """
    stopped: list[dict[str, Any]] = []
    gone: dict[str, str] = {}  # ref -> why it counts as gone
    failed: list[tuple[str, APIError]] = []
    refs = tuple(dict.fromkeys(refs))
    rt.interrupt_note = lambda: (
        f"stopped {len(stopped)} of {len(refs)}; the others were left as they were"
    )

    async def main(client: StreamrunClient) -> None:
        found = await resolve(client, refs, configuration_id)
        for ref in refs:
            inst = found[ref]
            if inst is not None and not inst.state.can_become_running:  # STOPPING or ended
                gone[ref] = f"listed as {inst.state}"
                continue
            instance_id = ref if inst is None else inst.id
            try:
                await client.instances.stop(instance_id)
            except NotFoundError:
                # A name not listed yet (lists can lag) also ends here: say what is known.
                gone[ref] = "no instance has this id or name now"
            except APIError as error:
                failed.append((ref, error))
            else:
                stopped.append({"id": instance_id, "name": None if inst is None else inst.name})

    call(rt, main)
    if rt.json_output:
        rt.print_json(
            {
                "stopped": stopped,
                "already_gone": list(gone),
                "failed": [{"ref": ref, "error": e} for ref, e in failed],
            }
        )
    elif rt.output == "ids":
        rt.print_ids(item["id"] for item in stopped)
    else:
        for item in stopped:
            click.echo(f"stopped {item['id']}" + (f" ({item['name']})" if item["name"] else ""))
    for ref, why in gone.items():
        rt.note(f"{ref}: already gone, nothing to stop ({why})")
    for ref, error in failed:
        rt.error(f"{ref}: {describe_error(error)}")
    if failed or (strict and gone):
        raise click.exceptions.Exit(1)


@instances.command("stop-all")
@_configuration_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def instances_stop_all(rt: Runtime, configuration_id: str | None, yes: bool) -> None:
    """Stop every instance of the account (or of one configuration), running or queued.

    The API stops whatever exists when the call arrives, including instances launched
    after the list shown here; the report says what was listed before and after.
    """
    found = call(rt, lambda client: listed_instances(client, configuration_id))
    scope = "the account" if configuration_id is None else f"configuration {configuration_id}"
    live = [inst for inst in found if inst.state.can_become_running]
    if not live:
        if rt.json_output:
            rt.print_json({"scope": scope, "sent": False, "listed_before": [], "live_after": []})
        else:
            rt.note(f"no instances listed in {scope}: nothing to stop (no call sent)")
        return
    if not yes:
        running = sum(1 for inst in live if str(inst.state) == "RUNNING")
        # The prompt goes to stderr: with --json, stdout carries only the JSON answer.
        click.confirm(
            f"Stop all {len(live)} instance(s) of {scope} ({running} RUNNING), and any "
            "launched meanwhile?",
            abort=True,
            err=True,
        )

    async def stopping(client: StreamrunClient) -> list[Instance]:
        if configuration_id is None:
            await client.instances.stop_all()
        else:
            await client.configurations.stop_instances(configuration_id)
        try:
            after = await listed_instances(client, configuration_id)
        except StreamrunError:
            return []
        return [inst for inst in after if inst.state.can_become_running]

    rt.interrupt_note = lambda: (
        f"the stop of {scope} may or may not have been sent: check `streamrun instances list`"
    )
    left = call(rt, stopping)
    if rt.json_output:
        rt.print_json(
            {
                "scope": scope,
                "sent": True,
                "listed_before": [inst.id for inst in live],
                "live_after": [{"id": i.id, "state": i.state} for i in left],
            }
        )
        return
    if rt.output == "ids":
        rt.print_ids(inst.id for inst in live)
    else:
        click.echo(
            f"asked the API to stop every instance of {scope}; {len(live)} were listed before"
        )
    if left:
        states = ", ".join(f"{inst.id} {inst.state}" for inst in left)
        rt.note(f"still queued or running right after the call: {states}")


@instances.command("restart")
@click.argument("instance", metavar="ID|NAME")
@_configuration_option
@click.pass_obj
def instances_restart(rt: Runtime, instance: str, configuration_id: str | None) -> None:
    """Restart a RUNNING instance."""

    async def main(client: StreamrunClient) -> Instance:
        target = await _one_instance(client, instance, configuration_id)
        restarted = await client.instances.restart(target.id)
        return restarted if restarted is not None else await client.instances.get(target.id)

    inst = call(rt, main)
    rt.show(inst, instance_detail)


# -- overrides ------------------------------------------------------------------------


@cli.group()
def overrides() -> None:
    """Read and change an instance's per-element settings."""


@overrides.command("get")
@click.argument("instance", metavar="ID|NAME")
@_configuration_option
@click.pass_obj
def overrides_get(rt: Runtime, instance: str, configuration_id: str | None) -> None:
    """Show an instance's overrides."""
    instance_id = _instance_id(rt, instance, configuration_id)
    current = call(rt, lambda client: client.instances.get_overrides(instance_id))
    rt.show(current, overrides_table, empty="no overrides")


@overrides.command("set", epilog=_ASSIGNMENT_HELP)
@click.argument("instance", metavar="ID|NAME")
@click.argument("assignments", metavar="[ELEMENT.KEY=VALUE]...", nargs=-1)
@override_options
@_configuration_option
@click.pass_obj
def overrides_set(
    rt: Runtime,
    instance: str,
    assignments: tuple[str, ...],
    override_items: tuple[str, ...],
    override_json_items: tuple[str, ...],
    configuration_id: str | None,
) -> None:
    """Change settings of a running instance, e.g. switch-1.input=inputstream-2.

    Values are text; use --override-json ELEMENT.KEY=JSON for true, numbers, lists.
    """
    patch = merge_overrides(
        parse_assignments(assignments, option="ELEMENT.KEY=VALUE"),
        overrides_from(override_items, override_json_items),
    )
    if not patch:
        raise click.UsageError("nothing to set: give ELEMENT.KEY=VALUE or --override-json")
    instance_id = _instance_id(rt, instance, configuration_id)
    merged = call(rt, lambda client: client.instances.update_overrides(instance_id, patch))
    rt.show(merged, overrides_table)


# -- outputs --------------------------------------------------------------------------


@cli.group(short_help="Set a configuration's outputs LIVE or OFFLINE.")
def outputs() -> None:
    """Set every output of a configuration's instances LIVE or OFFLINE."""


def _set_outputs(rt: Runtime, configuration_id: str, value: Outputs) -> None:
    """``outputs live|offline``."""
    call(rt, lambda client: client.configurations.set_outputs(configuration_id, value))
    if rt.json_output:
        rt.print_json({"configuration_id": configuration_id, "outputs": value})
    elif rt.output == "ids":
        rt.print_ids([configuration_id])
    else:
        click.echo(f"outputs of {configuration_id}'s instances are {value}")


@outputs.command("live")
@click.argument("configuration_id", metavar="CONFIG")
@click.pass_obj
def outputs_live(rt: Runtime, configuration_id: str) -> None:
    """Go live: stream every output of CONFIG's instances."""
    _set_outputs(rt, configuration_id, Outputs.LIVE)


@outputs.command("offline")
@click.argument("configuration_id", metavar="CONFIG")
@click.pass_obj
def outputs_offline(rt: Runtime, configuration_id: str) -> None:
    """Stop streaming CONFIG's outputs (idle instances stop themselves after ~5 min)."""
    _set_outputs(rt, configuration_id, Outputs.OFFLINE)


# -- destinations ---------------------------------------------------------------------


@cli.group()
def destinations() -> None:
    """Where outputs can stream to."""


@destinations.command("list")
@click.pass_obj
def destinations_list(rt: Runtime) -> None:
    """List the account's destinations."""
    items = call(rt, lambda client: client.destinations.list())
    rt.show(items, destinations_table, empty="no destinations")


# Last, once every command exists: the global options after any command's name too.
install_global_options(cli, without_api=("demo",), untouched=("emulator",))
