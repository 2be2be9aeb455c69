"""Watch a fleet: every instance that appears, changes state or disappears, as it happens.

    python examples/watch_fleet.py --emulator            # with some traffic to watch
    STREAMRUN_API_KEY=... python examples/watch_fleet.py --token-file watch.token

The watch rides on the client's shared poller (one list call per tick however many
watchers and waiters there are). Its ``token`` records what it has seen: save it, and a
restarted process first learns what changed while it was down. Instances can disappear
without anyone asking (Streamrun stops idle ones after about five minutes): a watch
reports that as REMOVED.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import streamrun_async as sr

EMULATOR_OPTIONS: dict[str, Any] = {"boot_time": 1.0, "boot_jitter": 1.0}


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


def describe(change: sr.InstanceChange) -> str:
    """``CHANGED cam-1 (inst-...) QUEUED -> RUNNING``."""
    inst = change.instance
    label = f"{inst.name or '-'} ({inst.id})"
    if change.kind is sr.ChangeKind.CHANGED:
        return f"CHANGED {label} {change.previous} -> {inst.state}"
    if change.kind is sr.ChangeKind.REMOVED:
        return f"REMOVED {label} (was {change.previous})"
    return f"ADDED   {label} {inst.state}"


async def watch_fleet(
    client: sr.StreamrunClient,
    on_change: Callable[[sr.InstanceChange], Any],
    *,
    configuration_ids: list[str] | None = None,
    resume: str | None = None,
    save_token: Callable[[str], Any] | None = None,
    until: Callable[[dict[str, sr.Instance]], bool] | None = None,
) -> dict[str, sr.Instance]:
    """Follow instance changes until ``until(fleet)`` is true (or forever).

    ``save_token`` gets the resume token after each change, so a crash loses nothing.
    Returns the fleet as last seen (id -> instance).
    """
    fleet: dict[str, sr.Instance] = {}
    watch = client.instances.watch(configuration_ids, resume=resume)
    async with watch:
        async for change in watch:
            if change.kind is sr.ChangeKind.REMOVED:
                fleet.pop(change.instance.id, None)
            else:
                fleet[change.instance.id] = change.instance
            on_change(change)
            if save_token is not None:
                save_token(watch.token)
            if until is not None and until(fleet):
                break
    return fleet


async def traffic(client: sr.StreamrunClient, names: list[str]) -> None:
    """Something to watch: launch a few instances, wait for them, stop them again."""
    cfg = (await client.configurations.list())[0]
    settings = [sr.InstanceSettings(name=name) for name in names]
    report = await client.launch_many({cfg.id: settings}, wait=True, timeout=60)
    report.raise_for_failures()
    await client.configurations.stop_instances(cfg.id)


async def run(
    emulator: bool,
    token_file: Path | None,
    resume: str | None = None,
    base_url: str | None = None,
) -> None:
    """The whole example, with its client."""
    # A few bytes written after each change: small enough to write from the loop.
    save = token_file.write_text if token_file is not None else None
    async with connect(emulator, base_url) as client:
        if not emulator:
            await watch_fleet(client, lambda c: print(describe(c)), resume=resume, save_token=save)
            return
        names = ["watch-1", "watch-2", "watch-3"]
        seen: set[str] = set()

        def all_came_and_went(fleet: dict[str, sr.Instance]) -> bool:
            seen.update(i.name or "" for i in fleet.values())
            return seen >= set(names) and not fleet

        background = asyncio.create_task(traffic(client, names))
        await watch_fleet(
            client, lambda c: print(describe(c)), save_token=save, until=all_came_and_went
        )
        await background


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run (Ctrl-C to stop watching)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emulator", action="store_true", help="run against a local emulator")
    parser.add_argument(
        "--base-url", help="the API's address (default: STREAMRUN_BASE_URL, else streamrun.com)"
    )
    parser.add_argument("--token-file", type=Path, help="resume from / save the watch token")
    args = parser.parse_args(argv)
    token_file: Path | None = args.token_file
    resume = token_file.read_text().strip() if token_file and token_file.exists() else None
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args.emulator, token_file, resume, args.base_url))


if __name__ == "__main__":
    main()
