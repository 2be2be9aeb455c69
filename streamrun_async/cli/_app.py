"""The ``streamrun`` command: one click command per API operation, plus watch, emulator, demo.

Every command prints tables for people, or with ``--json`` machine-readable JSON on
stdout and nothing else there (remarks and errors go to stderr).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from streamrun_async import (
    DEFAULT_BASE_URL,
    APIError,
    Instance,
    InstanceSettings,
    LaunchEvent,
    LaunchEventKind,
    LaunchReport,
    Outputs,
    Overrides,
    StreamrunClient,
    StreamrunError,
)

from ._demo import demo
from ._emulator import emulator
from ._live import watch
from ._render import (
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
from ._runtime import Runtime, call, describe_error, json_option

__all__ = ["cli", "parse_assignments"]

_ASSIGNMENT_HELP = (
    'VALUE is read as JSON when it is valid JSON (true, 3, ["a"]) and as text otherwise; '
    "quote it ('\"123\"') to force text."
)


def parse_assignments(items: Sequence[str], option: str = "--override") -> Overrides:
    """``ELEMENT.KEY=VALUE`` items as overrides: ``{"ELEMENT": {"KEY": VALUE}}``."""
    overrides: Overrides = {}
    for item in items:
        element, dot, rest = item.partition(".")
        key, equals, raw = rest.partition("=")
        if not (element and dot and key and equals):
            raise click.BadParameter(
                f"{item!r} is not ELEMENT.KEY=VALUE (e.g. htmloverlay-1.url=https://example.com)",
                param_hint=f"'{option}'",
            )
        value: Any
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        overrides.setdefault(element, {})[key] = value
    return overrides


# -- the group ----------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
    help="The API's address, e.g. the emulator's http://127.0.0.1:8787.",
)
@click.option(
    "--json",
    "json_output",
    is_flag=True,
    help="Machine-readable JSON on stdout, nothing else there.",
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
    json_output: bool,
    poll_interval: float,
) -> None:
    """Run Streamrun configurations from the command line.

    \b
    Try it without an account:  streamrun demo
    Or serve an emulator:       streamrun emulator
    """
    ctx.obj = Runtime(
        api_key=api_key,
        base_url=base_url,
        json_output=json_output,
        poll_interval=poll_interval,
    )


cli.add_command(watch)
cli.add_command(emulator)
cli.add_command(demo)


# -- configurations -----------------------------------------------------------------


@cli.group()
def configurations() -> None:
    """List and inspect configurations."""


@configurations.command("list")
@json_option
@click.pass_obj
def configurations_list(rt: Runtime) -> None:
    """List the account's configurations."""
    items = call(rt, lambda client: client.configurations.list())
    rt.show(items, configurations_table, empty="no configurations")


@configurations.command("get")
@click.argument("configuration_id")
@json_option
@click.pass_obj
def configurations_get(rt: Runtime, configuration_id: str) -> None:
    """Show one configuration and its elements."""
    cfg = call(rt, lambda client: client.configurations.get(configuration_id))
    rt.show(cfg, configuration_detail)


# -- launch ---------------------------------------------------------------------------


def _launch_settings(
    names: Sequence[str], count: int | None, overrides: Overrides
) -> list[InstanceSettings]:
    """The instances ``launch`` asks for, each named (``--name``, or made up)."""
    if names and count is not None:
        raise click.UsageError("use either --count or --name, not both")
    if len(set(names)) != len(names):
        raise click.UsageError("each --name must be different")
    if not names:
        # launch_many matches instances by name to launch each exactly once, so unnamed
        # instances get a name unique to this command.
        prefix = f"cli-{secrets.token_hex(3)}"
        total = count or 1
        names = [prefix] if total == 1 else [f"{prefix}-{i}" for i in range(1, total + 1)]
    return [InstanceSettings(name=name, overrides=overrides) for name in names]


def _launch_json(configuration_id: str, report: LaunchReport) -> dict[str, Any]:
    """The ``--json`` answer of ``launch``."""
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


def _left_running(report: LaunchReport) -> str:
    """What an interrupted ``launch`` leaves behind, and how to stop it."""
    mine = [item for item in report.launched.values() if not item.existing]
    parts = []
    if mine:
        requests = sorted({item.request_id for item in mine if item.request_id})
        parts.append(
            f"{len(mine)} launched instance(s) keep running or booting "
            f"({', '.join(sorted(item.name for item in mine))}; request(s) "
            f"{', '.join(requests) or '-'}); stop them with `streamrun instances stop-all` "
            "or `streamrun instances stop ID`"
        )
    if report.unknown:
        parts.append(
            f"{len(report.unknown)} launch(es) may or may not have happened "
            f"({', '.join(sorted(report.unknown))}): check `streamrun instances list`"
        )
    return "; ".join(parts) or "nothing was launched"


@cli.command(short_help="Launch instances of a configuration, each exactly once.")
@click.argument("configuration_id", metavar="CONFIG")
@click.option("--count", type=click.IntRange(1, 1000), help="Launch N instances (default 1).")
@click.option(
    "--name",
    "names",
    multiple=True,
    help="Name an instance (repeat for several). A name already running is not launched again.",
)
@click.option(
    "--override",
    "override_items",
    multiple=True,
    metavar="ELEMENT.KEY=VALUE",
    help="Set an element's setting on every instance, e.g. htmloverlay-1.url=https://x. "
    + _ASSIGNMENT_HELP,
)
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
@json_option
@click.pass_obj
def launch(
    rt: Runtime,
    configuration_id: str,
    count: int | None,
    names: tuple[str, ...],
    override_items: tuple[str, ...],
    destinations: tuple[str, ...],
    wait: bool,
    timeout: float,
) -> None:
    """Launch instances of CONFIG, each exactly once even if an answer is lost."""
    overrides = parse_assignments(override_items)
    if destinations:
        overrides.setdefault("outputstream-1", {})["destinations"] = list(destinations)
    settings = _launch_settings(names, count, overrides)
    report = LaunchReport()
    rt.interrupt_note = lambda: _left_running(report)
    total = len(settings)

    async def main(client: StreamrunClient) -> None:
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
            )
        if not wait:
            # launch_many learns instance ids only while waiting; one list call names them.
            await _fill_instance_ids(client, configuration_id, report)

    call(rt, main)
    _print_launch(rt, configuration_id, report, wait)


async def _fill_instance_ids(
    client: StreamrunClient, configuration_id: str, report: LaunchReport
) -> None:
    """One list call gives each launched name its instance id and current state."""
    if not report.launched:
        return
    try:
        listed = await client.configurations.list_instances(configuration_id)
    except StreamrunError:
        # The launch itself succeeded: show it without ids rather than fail the command.
        return
    for inst in listed:
        item = report.launched.get(inst.name or "")
        if item is not None and item.instance_id in (None, inst.id):
            item.instance_id = inst.id
            item.state = inst.state


def _print_launch(rt: Runtime, configuration_id: str, report: LaunchReport, wait: bool) -> None:
    """What launched on stdout, what failed on stderr; exit 1 unless all went well."""
    if rt.json_output:
        rt.print_json(_launch_json(configuration_id, report))
    elif report.launched:
        table = Table("NAME", "REQUEST", "INSTANCE", "STATE", "RUNNING AFTER", header_style="bold")
        for item in report.launched.values():
            table.add_row(
                Text(item.name + (" (existing)" if item.existing else "")),
                Text(item.request_id or "-"),
                Text(item.instance_id or "-"),
                state_text(item.state),
                Text(duration(item.running_after)),
            )
        rt.out.print(table)
        if not wait:
            requests = sorted({i.request_id for i in report.launched.values() if i.request_id})
            for request_id in requests:
                rt.note(f"follow it with: streamrun requests wait {request_id}")
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
        rt.error(one_line(report.wait_error))
    if not report.ok:
        raise click.exceptions.Exit(1)


# -- instance requests ----------------------------------------------------------------


@cli.group()
def requests() -> None:
    """Follow launches (instance requests)."""


@requests.command("get")
@click.argument("request_id")
@json_option
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
@json_option
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
    """List, inspect, stop and restart instances."""


@instances.command("list")
@click.option(
    "--configuration", "configuration_id", metavar="ID", help="Only this configuration's."
)
@json_option
@click.pass_obj
def instances_list(rt: Runtime, configuration_id: str | None) -> None:
    """List the account's instances (or one configuration's)."""

    async def main(client: StreamrunClient) -> list[Instance]:
        if configuration_id is None:
            return await client.instances.list()
        return await client.configurations.list_instances(configuration_id)

    items = call(rt, main)
    rt.show(items, instances_table, empty="no instances")


@instances.command("get")
@click.argument("instance_id")
@json_option
@click.pass_obj
def instances_get(rt: Runtime, instance_id: str) -> None:
    """Show one instance."""
    inst = call(rt, lambda client: client.instances.get(instance_id))
    rt.show(inst, instance_detail)


@instances.command("stop")
@click.argument("instance_ids", metavar="ID...", nargs=-1, required=True)
@json_option
@click.pass_obj
def instances_stop(rt: Runtime, instance_ids: tuple[str, ...]) -> None:
    """Stop instances (a queued one is cancelled)."""
    stopped: list[str] = []
    failed: list[tuple[str, APIError]] = []
    rt.interrupt_note = lambda: (
        f"stopped {len(stopped)} of {len(instance_ids)}; the others were left as they were"
    )

    async def main(client: StreamrunClient) -> None:
        for instance_id in dict.fromkeys(instance_ids):
            try:
                await client.instances.stop(instance_id)
            except APIError as error:
                failed.append((instance_id, error))
            else:
                stopped.append(instance_id)
                if not rt.json_output:
                    rt.out.print(f"stopped {instance_id}", markup=False)

    call(rt, main)
    if rt.json_output:
        rt.print_json({"stopped": stopped, "failed": [{"id": i, "error": e} for i, e in failed]})
    for instance_id, error in failed:
        rt.error(f"{instance_id}: {describe_error(error)}")
    if failed:
        raise click.exceptions.Exit(1)


@instances.command("stop-all")
@click.option(
    "--configuration", "configuration_id", metavar="ID", help="Only this configuration's."
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@json_option
@click.pass_obj
def instances_stop_all(rt: Runtime, configuration_id: str | None, yes: bool) -> None:
    """Stop every instance of the account (or of one configuration), running or queued."""

    async def listing(client: StreamrunClient) -> list[Instance]:
        if configuration_id is None:
            return await client.instances.list()
        return await client.configurations.list_instances(configuration_id)

    found = call(rt, listing)
    scope = "the account" if configuration_id is None else f"configuration {configuration_id}"
    if not found:
        if rt.json_output:
            rt.print_json({"stopped": []})
        else:
            rt.note(f"no instances in {scope}: nothing to stop")
        return
    if not yes:
        running = sum(1 for inst in found if str(inst.state) == "RUNNING")
        # The prompt goes to stderr: with --json, stdout carries only the JSON answer.
        click.confirm(
            f"Stop all {len(found)} instance(s) of {scope} ({running} RUNNING)?",
            abort=True,
            err=True,
        )

    async def stopping(client: StreamrunClient) -> None:
        if configuration_id is None:
            await client.instances.stop_all()
        else:
            await client.configurations.stop_instances(configuration_id)

    rt.interrupt_note = lambda: "the stop request may or may not have been sent: check"
    call(rt, stopping)
    ids = [inst.id for inst in found]
    if rt.json_output:
        rt.print_json({"stopped": ids})
    else:
        rt.out.print(f"stopped {len(ids)} instance(s) of {scope}", markup=False)


@instances.command("restart")
@click.argument("instance_id")
@json_option
@click.pass_obj
def instances_restart(rt: Runtime, instance_id: str) -> None:
    """Restart a RUNNING instance."""

    async def main(client: StreamrunClient) -> Instance:
        inst = await client.instances.restart(instance_id)
        return inst if inst is not None else await client.instances.get(instance_id)

    inst = call(rt, main)
    rt.show(inst, instance_detail)


# -- overrides ------------------------------------------------------------------------


@cli.group()
def overrides() -> None:
    """Read and change an instance's per-element settings."""


@overrides.command("get")
@click.argument("instance_id")
@json_option
@click.pass_obj
def overrides_get(rt: Runtime, instance_id: str) -> None:
    """Show an instance's overrides."""
    current = call(rt, lambda client: client.instances.get_overrides(instance_id))
    rt.show(current, overrides_table, empty="no overrides")


@overrides.command("set", epilog=_ASSIGNMENT_HELP)
@click.argument("instance_id")
@click.argument("assignments", metavar="ELEMENT.KEY=VALUE...", nargs=-1, required=True)
@json_option
@click.pass_obj
def overrides_set(rt: Runtime, instance_id: str, assignments: tuple[str, ...]) -> None:
    """Change settings of a running instance, e.g. switch-1.input=inputstream-2."""
    patch = parse_assignments(assignments, option="ELEMENT.KEY=VALUE")
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
    else:
        rt.out.print(f"outputs of {configuration_id}'s instances are {value}", markup=False)


@outputs.command("live")
@click.argument("configuration_id", metavar="CONFIG")
@json_option
@click.pass_obj
def outputs_live(rt: Runtime, configuration_id: str) -> None:
    """Go live: stream every output of CONFIG's instances."""
    _set_outputs(rt, configuration_id, Outputs.LIVE)


@outputs.command("offline")
@click.argument("configuration_id", metavar="CONFIG")
@json_option
@click.pass_obj
def outputs_offline(rt: Runtime, configuration_id: str) -> None:
    """Stop streaming CONFIG's outputs (idle instances stop themselves after ~5 min)."""
    _set_outputs(rt, configuration_id, Outputs.OFFLINE)


# -- destinations ---------------------------------------------------------------------


@cli.group()
def destinations() -> None:
    """Where outputs can stream to."""


@destinations.command("list")
@json_option
@click.pass_obj
def destinations_list(rt: Runtime) -> None:
    """List the account's destinations."""
    items = call(rt, lambda client: client.destinations.list())
    rt.show(items, destinations_table, empty="no destinations")
