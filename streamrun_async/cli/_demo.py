"""``streamrun demo``: a fleet coming up live, on an emulator inside this process.

No account, no network: the emulator serves real HTTP on loopback with a real clock and
short boot times. The demo launches a fleet with ``launch_many_iter``, follows each
instance from QUEUED to RUNNING through an instance watch (which shares the client's one
poller with the launch's own waiting), shows what launched and what it cost in API calls,
then stops everything. ``--faults`` injects seeded failures to show retries and
exactly-once launches.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from streamrun_async import (
    ChangeKind,
    InstanceChange,
    InstanceSettings,
    InstanceState,
    LaunchEvent,
    LaunchEventKind,
    LaunchReport,
    PollPolicy,
    RetryEvent,
    RetryPolicy,
    StreamrunClient,
)

from ._render import Rows, duration, one_line, state_text
from ._runtime import Runtime, json_option

if TYPE_CHECKING:
    from streamrun_async.testing import ConfigurationSeed, Emulator

__all__ = ["demo"]

_BOOT_TIME = 1.0  # seconds from a server to RUNNING, plus up to twice that more at random
_PER_REQUEST = 2  # small launch batches: a fleet makes several requests per configuration
_LAUNCH_TIMEOUT = 120.0
_LAUNCH_ROUTE = "POST /configurations/{configurationId}/instances"
# Statuses the API table of the summary breaks calls down by; 0 is a dropped connection.
_STATUSES = (200, 201, 204, 400, 404, 409, 429, 500, 502, 503, 0)


@attrs.define
class _Row:
    """What the demo knows of one planned instance."""

    name: str
    configuration_id: str
    configuration: str
    state: InstanceState | None = None
    request_id: str | None = None
    instance_id: str | None = None
    running_after: float | None = None


class _View(Protocol):
    """Where the demo tells its story: bars on a terminal, lines elsewhere."""

    def log(self, text: str, *, notable: bool = True) -> None:
        """Tell one event; ``notable`` ones are worth a line even beside progress bars."""

    def update(self, configuration_id: str, rows: list[_Row]) -> None:
        """Show the latest states of one configuration's instances."""


def _slug(name: str) -> str:
    """``Lo-fi Radio`` -> ``lo-fi-radio``: instance names from configuration names."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "cfg"


def _seeds(count: int) -> list[ConfigurationSeed]:
    """The emulator's four demo configurations first, then plain numbered ones."""
    from streamrun_async.testing import DEMO_CONFIGURATIONS, ConfigurationSeed

    seeds = list(DEMO_CONFIGURATIONS[:count])
    seeds += [ConfigurationSeed(f"Channel {n}") for n in range(len(seeds) + 1, count + 1)]
    return seeds


def _inject_faults(emu: Emulator, boot_time: float) -> None:
    """Seeded failures: a few scripted on launches, a steady trickle of 503s elsewhere."""
    from streamrun_async.testing import Fault

    # Scripted, so every run shows each case: a launch handled but its answer lost (twice),
    # a 503 and a 429 before handling (retried: the server certainly did not act).
    emu.faults.script(
        _LAUNCH_ROUTE,
        [Fault.DROP_AFTER, Fault.HTTP_503, None, Fault.DROP_AFTER, Fault.HTTP_429],
    )
    emu.faults.set_rate(Fault.HTTP_503, 0.08)
    # A 429 asks to come back after a second; a demo of instant boots is not kept waiting.
    emu.faults.retry_after = 1 if boot_time >= 1 else 0


class _Bars:
    """One progress bar per configuration, notable events printed above them."""

    def __init__(self, console: Console, configurations: dict[str, tuple[str, int]]) -> None:
        self._progress = Progress(
            SpinnerColumn(finished_text="[green]✓"),
            TextColumn("{task.description:<16}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("RUNNING"),
            TextColumn("{task.fields[status]}", style="dim"),
            TimeElapsedColumn(),
            console=console,
        )
        self._tasks: dict[str, TaskID] = {
            cfg: self._progress.add_task(name, total=total, status="")
            for cfg, (name, total) in configurations.items()
        }

    @contextlib.contextmanager
    def showing(self) -> Iterator[None]:
        """Draw the bars while the body runs, and leave them on screen."""
        with self._progress:
            yield

    def log(self, text: str, *, notable: bool = True) -> None:
        """Print a notable event above the bars."""
        # The bars already show launches and boots; above them go only the surprises.
        if notable:
            self._progress.console.print(Text(text, style="dim"))

    def update(self, configuration_id: str, rows: list[_Row]) -> None:
        """Move the configuration's bar to its RUNNING count."""
        states = Counter(str(row.state) for row in rows if row.state is not None)
        waiting = sum(1 for row in rows if row.state is None)
        parts = [f"{states['QUEUED']} queued"] if states["QUEUED"] else []
        if waiting:
            parts.append(f"{waiting} launching")
        self._progress.update(
            self._tasks[configuration_id],
            completed=states["RUNNING"],
            status=", ".join(parts),
        )


class _Lines:
    """Plain lines, for pipes and logs: the same story without cursor tricks."""

    def __init__(self, console: Console, started: float) -> None:
        self._console = console
        self._started = started
        self._running: Counter[str] = Counter()

    @contextlib.contextmanager
    def showing(self) -> Iterator[None]:
        """Nothing to draw or clear: lines are printed as they come."""
        yield

    def log(self, text: str, *, notable: bool = True) -> None:
        """One line, stamped with the seconds since the demo started."""
        self._console.print(
            Text(f"{time.monotonic() - self._started:6.2f}s  {text}"), soft_wrap=True
        )

    def update(self, configuration_id: str, rows: list[_Row]) -> None:
        """A line each time one more of the configuration's instances runs."""
        running = sum(1 for row in rows if row.state is InstanceState.RUNNING)
        if running != self._running[configuration_id]:
            self._running[configuration_id] = running
            self.log(f"{rows[0].configuration}: {running}/{len(rows)} RUNNING", notable=False)


class _Demo:
    """One run of the demo."""

    def __init__(
        self,
        rt: Runtime,
        *,
        instances: int,
        configurations: int,
        faults: bool,
        boot_time: float = _BOOT_TIME,
    ) -> None:
        self.rt = rt
        self.boot_time = boot_time
        self.instances = instances
        self.configurations = min(configurations, instances)
        self.faults = faults
        self.rows: dict[str, _Row] = {}
        self.retries: list[RetryEvent] = []
        self.report = LaunchReport()
        self.started = time.monotonic()
        self.elapsed = 0.0
        # The demo's own output goes to stdout, or to stderr when stdout carries --json.
        self.console = rt.err if rt.json_output else rt.out
        self.view: _View = _Lines(self.console, self.started)

    # -- the plan -------------------------------------------------------------------

    def plan(self, configurations: list[tuple[str, str]]) -> dict[str, list[InstanceSettings]]:
        """Names spread round-robin over the configurations, each with its own overlay."""
        plan: dict[str, list[InstanceSettings]] = {cfg: [] for cfg, _ in configurations}
        for n in range(self.instances):
            cfg, cfg_name = configurations[n % len(configurations)]
            name = f"{_slug(cfg_name)}-{len(plan[cfg]) + 1}"
            overlay = {"htmloverlay-1": {"url": f"https://overlays.example.com/{name}"}}
            plan[cfg].append(InstanceSettings(name=name, overrides=overlay))
            self.rows[name] = _Row(name=name, configuration_id=cfg, configuration=cfg_name)
        return plan

    def rows_of(self, configuration_id: str) -> list[_Row]:
        """The planned instances of one configuration."""
        return [row for row in self.rows.values() if row.configuration_id == configuration_id]

    # -- what happens ---------------------------------------------------------------

    def on_retry(self, event: RetryEvent) -> None:
        """The client's retry hook: count and tell each retry."""
        self.retries.append(event)
        self.view.log(f"retry after {one_line(event.cause)}; waiting {event.wait:.2f} s")

    def on_event(self, event: LaunchEvent) -> None:
        """One step of ``launch_many_iter``: submitted, accepted, reconciled, running..."""
        cfg = event.configuration_id
        names = ", ".join(event.names)
        label = self.rows[event.names[0]].configuration if event.names else cfg
        if event.kind is LaunchEventKind.SUBMITTED:
            self.view.log(f"{label}: launching {names}", notable=False)
        elif event.kind is LaunchEventKind.LAUNCHED:
            request = event.request.id if event.request is not None else None
            for name in event.names:
                row = self.rows[name]
                row.state = row.state or InstanceState.QUEUED
                row.request_id = request or self.report.launched[name].request_id
            how = f"request {request}" if request else "found by listing: not launched again"
            self.view.log(f"{label}: {names} accepted ({how})", notable=request is None)
        elif event.kind is LaunchEventKind.RECONCILING:
            why = type(event.error).__name__ if event.error else "no answer"
            self.view.log(
                f"{label}: the answer to the launch of {names} was lost ({why}): listing "
                "the configuration to learn what really launched"
            )
        elif event.kind in (LaunchEventKind.FAILED, LaunchEventKind.UNKNOWN):
            why = one_line(event.error) if event.error else "unknown"
            self.view.log(f"{label}: {event.kind.value.lower()}: {names}: {why}")
        elif event.kind is LaunchEventKind.RUNNING:
            self.view.log(f"{label}: request of {names} is RUNNING", notable=False)
        self.view.update(cfg, self.rows_of(cfg))

    def on_change(self, change: InstanceChange) -> None:
        """One instance change from the watch: the per-instance QUEUED -> RUNNING."""
        inst = change.instance
        row = self.rows.get(inst.name or "")
        if row is None or change.kind is ChangeKind.REMOVED:
            return
        row.instance_id = inst.id
        row.state = inst.state
        row.request_id = row.request_id or inst.request_id
        if inst.state is InstanceState.RUNNING and row.running_after is None:
            row.running_after = time.monotonic() - self.started
        self.view.update(row.configuration_id, self.rows_of(row.configuration_id))

    async def follow(self, client: StreamrunClient) -> None:
        """Feed instance changes to the view; shares the poller with the launch's waits."""
        async with client.instances.watch() as changes:
            async for change in changes:
                self.on_change(change)

    # -- the run --------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        """Start the emulator, launch, show, stop; returns the outcome (the --json output)."""
        # The emulator (aiohttp.web) is imported only now: other commands start faster.
        from streamrun_async.testing import Emulator

        emu = Emulator(
            clock="real",
            configurations=_seeds(self.configurations),
            boot_time=self.boot_time,
            boot_jitter=2 * self.boot_time,
            idle_timeout=None,
            seed=7,
        )
        if self.faults:
            _inject_faults(emu, self.boot_time)
        retry = RetryPolicy(attempts=6, wait_initial=0.2, wait_max=1.5, on_retry=self.on_retry)
        poll = PollPolicy(min_interval=0.25, max_interval=1.0, requests_per_second=20)
        async with emu, emu.client(retry=retry, poll=poll) as client:
            self.console.print(
                Text(
                    f"Streamrun demo: an emulator on {emu.url} (this process only), "
                    f"{self.instances} instance(s) over {self.configurations} configuration(s)"
                    + (", with injected faults" if self.faults else ""),
                    style="bold",
                )
            )
            configs = [(c.id, c.name or c.id) for c in await client.configurations.list()]
            plan = self.plan(configs[: self.configurations])
            with contextlib.ExitStack() as stack:
                if self.console.is_terminal:
                    totals = {cfg: (name, len(plan[cfg])) for cfg, name in configs if cfg in plan}
                    bars = _Bars(self.console, totals)
                    stack.enter_context(bars.showing())
                    self.view = bars
                await self._launch(client, plan)
            result = self._result(emu)
            self._print(emu, result)
            await client.instances.stop_all()
            result["stopped"] = emu.state.count() == 0
            billed = emu.billing
            result["billed_seconds"] = round(billed.total, 2)
            self.console.print(
                Text(
                    f"Stopped everything: {emu.state.count()} instance(s) left. They ran "
                    f"{billed.total:.1f} instance-seconds in all (about ${billed.cost():.4f} "
                    "at $0.39/hour)."
                )
            )
        return result

    async def _launch(
        self, client: StreamrunClient, plan: dict[str, list[InstanceSettings]]
    ) -> None:
        """Launch the plan and wait for it, following every instance on the side."""
        self.started = time.monotonic()
        watcher = asyncio.create_task(self.follow(client))
        try:
            async for event in client.launch_many_iter(
                plan,
                wait=True,
                timeout=_LAUNCH_TIMEOUT,
                max_per_request=_PER_REQUEST,
                report=self.report,
            ):
                self.on_event(event)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        self.elapsed = time.monotonic() - self.started
        # The watch may not have delivered the last poll yet: the report knows the rest.
        for name, item in self.report.launched.items():
            row = self.rows[name]
            row.instance_id = row.instance_id or item.instance_id
            row.request_id = row.request_id or item.request_id
            row.state = item.state
            if row.running_after is None:
                row.running_after = item.running_after
        for cfg in {row.configuration_id for row in self.rows.values()}:
            self.view.update(cfg, self.rows_of(cfg))

    # -- the outcome ----------------------------------------------------------------

    def _result(self, emu: Emulator) -> dict[str, Any]:
        """The outcome, with the API calls and the exactly-once check from the emulator."""
        from streamrun_async.testing import ROUTES, Fault

        live = Counter(inst.name for inst in emu.state.instances if inst.name in self.rows)
        calls = {}
        for route in ROUTES:
            total = emu.stats.count(route)
            if total:
                answers = {str(s): emu.stats.count(route, status=s) for s in _STATUSES}
                calls[route] = {
                    "calls": total,
                    "answers": {k: v for k, v in answers.items() if v},
                }
        return {
            "ok": self.report.ok,
            "elapsed_seconds": round(self.elapsed, 2),
            "instances": [attrs.asdict(row) for row in self.rows.values()],
            "api_calls": calls,
            "api_calls_total": emu.stats.total,
            "launch_posts": emu.stats.count(_LAUNCH_ROUTE),
            "retries": len(self.retries),
            "reconciliations": self.report.reconciliations,
            "faults_injected": {
                kind.value: emu.stats.injected(kind) for kind in Fault if emu.stats.injected(kind)
            },
            "planned": len(self.rows),
            "instances_live": sum(live.values()),
            "exactly_once": all(live[name] == 1 for name in self.rows),
            "failed": sorted(self.report.failed),
            "unknown": sorted(self.report.unknown),
        }

    def _print(self, emu: Emulator, result: dict[str, Any]) -> None:
        """The final tables and the summary lines."""
        console = self.console
        table = Rows(
            ("NAME", "CONFIGURATION", "REQUEST", "INSTANCE", "TO RUNNING", "STATE"),
            title="What launched",
        )
        order = {
            cfg: n
            for n, cfg in enumerate(dict.fromkeys(r.configuration_id for r in self.rows.values()))
        }
        for row in sorted(
            self.rows.values(), key=lambda r: (order[r.configuration_id], _number(r.name))
        ):
            table.add(
                Text(row.name),
                Text(row.configuration),
                Text(row.request_id or "-"),
                Text(row.instance_id or "-"),
                Text(duration(row.running_after)),
                state_text(row.state),
                id=row.instance_id,
            )
        self.rt.print_view(table, err=self.rt.json_output)
        calls = Rows(("ENDPOINT", "CALLS", "ANSWERS"), title="API calls")
        for route, seen in result["api_calls"].items():
            answers = ", ".join(
                f"{'dropped' if status == '0' else status} x{n}"
                for status, n in seen["answers"].items()
            )
            calls.add(Text(route), Text(str(seen["calls"])), Text(answers))
        self.rt.print_view(calls, err=self.rt.json_output)
        running = sum(1 for row in self.rows.values() if row.state is InstanceState.RUNNING)
        lines = [
            f"{running}/{result['planned']} instance(s) RUNNING after {self.elapsed:.1f} s, "
            f"using {result['api_calls_total']} API calls ({result['launch_posts']} launch "
            f"POSTs of up to {_PER_REQUEST} instances).",
        ]
        if self.faults or result["retries"] or result["reconciliations"]:
            injected = ", ".join(f"{k} x{v}" for k, v in result["faults_injected"].items())
            lines.append(f"Faults injected: {injected or 'none'}.")
            lines.append(
                f"Retries: {result['retries']} (only where the server certainly did not act). "
                f"Reconciliations: {result['reconciliations']} (a launch whose answer was lost: "
                "the configuration was listed and only missing names launched again)."
            )
        verdict = "yes" if result["exactly_once"] else "NO"
        lines.append(
            f"Exactly once: {verdict}: {result['planned']} planned name(s), "
            f"{result['instances_live']} instance(s) with those names on the emulator."
        )
        for line in lines:
            console.print(Text(line))
        for name in result["failed"]:
            self.rt.error(f"{name}: {one_line(self.report.failed[name])}")
        for name in result["unknown"]:
            self.rt.error(f"{name}: could not learn whether it launched")
        if self.report.wait_error is not None:
            self.rt.error(one_line(self.report.wait_error))


def _number(name: str) -> int:
    """The n of ``morning-show-n``, so that 10 sorts after 9."""
    tail = name.rpartition("-")[2]
    return int(tail) if tail.isdigit() else 0


@click.command(short_help="Watch a fleet come up on a built-in emulator (no account needed).")
@click.option(
    "--instances",
    "instance_count",
    type=click.IntRange(1, 200),
    default=12,
    show_default=True,
    help="Instances to launch.",
)
@click.option(
    "--configurations",
    "configuration_count",
    type=click.IntRange(1, 20),
    default=4,
    show_default=True,
    help="Configurations to spread them over.",
)
@click.option(
    "--faults",
    is_flag=True,
    help="Inject seeded failures (503, 429, answers lost after a launch was handled) "
    "to show retries and exactly-once launches.",
)
@click.option(
    "--boot-time",
    type=click.FloatRange(0, 60),
    default=_BOOT_TIME,
    show_default=True,
    metavar="S",
    help="Seconds an instance takes to boot, plus up to twice that at random.",
)
@json_option
@click.pass_obj
def demo(
    rt: Runtime, instance_count: int, configuration_count: int, faults: bool, boot_time: float
) -> None:
    """Launch a fleet on an embedded emulator, live, then stop it all.

    Needs no account and no network: the emulator runs inside this process.
    """
    run = _Demo(
        rt,
        instances=instance_count,
        configurations=configuration_count,
        faults=faults,
        boot_time=boot_time,
    )
    rt.interrupt_note = lambda: (
        "the demo's emulator ran inside this process, so its instances ended with it: "
        "nothing was left running"
    )
    result = rt.run(run.run)
    if rt.json_output:
        rt.print_json(result)
    if not (result["ok"] and result["exactly_once"] and result["stopped"]):
        raise click.exceptions.Exit(1)
