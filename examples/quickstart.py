"""Quickstart: launch one instance with your overlay, wait for it, go live, stop it.

    python examples/quickstart.py --emulator          # no account needed
    STREAMRUN_API_KEY=... python examples/quickstart.py --overlay https://example.com/me

The Streamrun part is ``go_live_once``: an async function of a client, so it runs the
same against Streamrun and against the emulator (the tests run it there).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import streamrun_async as sr

# The --emulator mode boots instances in about a second, so the example takes seconds.
EMULATOR_OPTIONS: dict[str, Any] = {"boot_time": 1.0, "boot_jitter": 0.5}
OVERLAY_ELEMENT = "htmloverlay-1"


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


async def go_live_once(
    client: sr.StreamrunClient,
    overlay_url: str,
    *,
    name: str = "quickstart",
    timeout: float = 600.0,
    log: Callable[[str], Any] = print,
) -> sr.Instance:
    """Launch ``name`` on the first configuration with an overlay, wait, go live, stop.

    Returns the instance as it was while live.
    """
    configurations = await client.configurations.list()
    with_overlay = [c for c in configurations if OVERLAY_ELEMENT in {e.id for e in c.elements}]
    if not with_overlay:
        raise LookupError(f"no configuration has an {OVERLAY_ELEMENT} element for the overlay")
    cfg = with_overlay[0]
    log(f"launching {name!r} on {cfg.name} ({cfg.id}), waiting until it runs")

    settings = sr.InstanceSettings(name=name, overrides={OVERLAY_ELEMENT: {"url": overlay_url}})
    # launch_many launches each name exactly once and follows it whatever the launch
    # answer names (a request, or only "accepted"); every wait has a deadline.
    report = await client.launch_many({cfg.id: [settings]}, wait=True, timeout=timeout)
    report.raise_for_failures()
    item = report.launched[name]
    log(f"{name} is {item.state}" + ("" if item.existing else " (launched just now)"))

    # Instances are found by name: a launch answers with a request, not instances.
    instance = next(i for i in await client.configurations.list_instances(cfg.id) if i.name == name)
    await client.configurations.set_outputs(cfg.id, sr.Outputs.LIVE)
    instance = await client.instances.get(instance.id)
    log(f"{instance.id} is {instance.state}, outputs {instance.outputs}")

    # Only RUNNING is billed, per second: stop what you no longer need.
    await client.instances.stop(instance.id)
    log(f"stopped {instance.id}")
    return instance


async def run(emulator: bool, overlay_url: str, base_url: str | None = None) -> None:
    """The whole example, with its client."""
    async with connect(emulator, base_url) as client:
        try:
            await go_live_once(client, overlay_url)
        except (sr.StreamrunError, LookupError) as error:
            raise SystemExit(f"error: {error}") from None


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emulator", action="store_true", help="run against a local emulator")
    parser.add_argument(
        "--base-url", help="the API's address (default: STREAMRUN_BASE_URL, else streamrun.com)"
    )
    parser.add_argument("--overlay", default="https://example.com/overlay", help="overlay URL")
    args = parser.parse_args(argv)
    asyncio.run(run(args.emulator, args.overlay, args.base_url))


if __name__ == "__main__":
    main()
