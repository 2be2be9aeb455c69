"""Bulk launch: a fleet across every configuration, each instance launched exactly once.

    python examples/bulk_launch.py --emulator --per-configuration 5
    STREAMRUN_API_KEY=... python examples/bulk_launch.py --per-configuration 2 --keep

``launch_many`` sends the launches concurrently, reconciles any launch whose answer was
lost (it lists the configuration and launches only the names truly missing), and skips
names that already run, so running this twice does not double the fleet.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import streamrun_async as sr

EMULATOR_OPTIONS: dict[str, Any] = {"boot_time": 1.0, "boot_jitter": 2.0}


@contextlib.asynccontextmanager
async def connect(emulator: bool, base_url: str | None = None) -> AsyncIterator[sr.StreamrunClient]:
    """A client of Streamrun (key from STREAMRUN_API_KEY; ``base_url`` defaults to
    STREAMRUN_BASE_URL, else https://streamrun.com), or of an emulator in this process."""
    if not emulator:
        async with sr.StreamrunClient(base_url=base_url) as client:
            yield client
        return
    from streamrun_async.testing import Emulator

    # Its instances boot in seconds, not minutes: poll faster than the defaults.
    poll = sr.PollPolicy(min_interval=0.25, max_interval=1.0)
    async with Emulator(**EMULATOR_OPTIONS) as emu, emu.client(poll=poll) as client:
        yield client


def fleet_plan(
    configurations: list[sr.Configuration], per_configuration: int
) -> dict[str, list[sr.InstanceSettings]]:
    """``per_configuration`` uniquely named instances for each configuration."""
    plan = {}
    for cfg in configurations:
        slug = re.sub(r"[^a-z0-9]+", "-", (cfg.name or cfg.id).lower()).strip("-")
        plan[cfg.id] = [
            sr.InstanceSettings(name=f"{slug}-{n}") for n in range(1, per_configuration + 1)
        ]
    return plan


async def launch_fleet(
    client: sr.StreamrunClient,
    per_configuration: int,
    *,
    timeout: float = 900.0,
    on_progress: Callable[[sr.LaunchEvent], Any] | None = None,
) -> sr.LaunchReport:
    """Launch the fleet and wait until it runs; the report says what happened to each name.

    ``rollback=True``: if this is cancelled or fails, what it launched is stopped again,
    so an interrupted run leaves nothing billing.
    """
    plan = fleet_plan(await client.configurations.list(), per_configuration)
    return await client.launch_many(
        plan, wait=True, timeout=timeout, rollback=True, on_progress=on_progress
    )


async def stop_fleet(client: sr.StreamrunClient, report: sr.LaunchReport) -> list[str]:
    """Stop the instances this report launched (not those that were there before)."""
    ids = [
        item.instance_id
        for item in report.launched.values()
        if item.instance_id is not None and not item.existing
    ]
    await asyncio.gather(*(client.instances.stop(instance_id) for instance_id in ids))
    return ids


def print_event(event: sr.LaunchEvent) -> None:
    """One line per step of the launch."""
    print(f"{event.kind.value:<11} {event.configuration_id}: {', '.join(event.names)}")


async def run(
    emulator: bool, per_configuration: int, keep: bool, base_url: str | None = None
) -> None:
    """The whole example, with its client."""
    async with connect(emulator, base_url) as client:
        report = await launch_fleet(client, per_configuration, on_progress=print_event)
        for name, item in report.launched.items():
            after = "-" if item.running_after is None else f"{item.running_after:.1f} s"
            print(f"{name:<24} {item.instance_id} {item.state} after {after}")
        print(f"{report.launch_calls} launch call(s), {report.reconciliations} reconciliation(s)")
        try:
            report.raise_for_failures()
        except ExceptionGroup as group:
            for error in group.exceptions:
                print(f"failed: {error}")
        if not keep:
            print(f"stopped {len(await stop_fleet(client, report))} instance(s)")


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emulator", action="store_true", help="run against a local emulator")
    parser.add_argument(
        "--base-url", help="the API's address (default: STREAMRUN_BASE_URL, else streamrun.com)"
    )
    parser.add_argument("--per-configuration", type=int, default=3, help="instances each")
    parser.add_argument("--keep", action="store_true", help="leave the fleet running")
    args = parser.parse_args(argv)
    asyncio.run(run(args.emulator, args.per_configuration, args.keep, args.base_url))


if __name__ == "__main__":
    main()
