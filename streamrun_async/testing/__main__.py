"""``python -m streamrun_async.testing``: serve the emulator until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Sequence

from ._emulator import Emulator

__all__ = ["main"]


def _optional_seconds(text: str) -> float | None:
    """A number of seconds, or "none" for never."""
    return None if text.lower() == "none" else float(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m streamrun_async.testing",
        description="Serve a local Streamrun API emulator until Ctrl-C.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8787, help="0 for any (default: %(default)s)")
    parser.add_argument("--api-key", help="key to accept (default: a random one)")
    parser.add_argument("--configurations", type=int, help="N generated configurations")
    parser.add_argument("--boot-time", type=float, default=2.0, help="seconds (default: 2)")
    parser.add_argument("--boot-jitter", type=float, default=0.0, help="extra seconds, random")
    parser.add_argument("--capacity", type=int, help="servers to boot on (default: unlimited)")
    parser.add_argument("--slot-limit", type=int, help="instances per account (default: any)")
    parser.add_argument(
        "--idle-timeout",
        type=_optional_seconds,
        default=300.0,
        help='seconds before an idle instance stops, or "none" (default: 300)',
    )
    parser.add_argument("--envelopes", action="store_true", help='wrap bodies: {"instances": []}')
    parser.add_argument("--seed", type=int, default=0, help="for ids and jitter (default: 0)")
    return parser


async def _serve(emulator: Emulator) -> None:
    async with emulator:
        print(f"Streamrun emulator on {emulator.url}/api/v1", flush=True)
        print(f"API key: {emulator.api_key}", flush=True)
        print("Ctrl-C to stop.", flush=True)
        await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> None:
    """Parse ``argv``, serve until interrupted."""
    args = _parser().parse_args(argv)
    emulator = Emulator(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        configurations=args.configurations,
        boot_time=args.boot_time,
        boot_jitter=args.boot_jitter,
        capacity=args.capacity,
        slot_limit=args.slot_limit,
        idle_timeout=args.idle_timeout,
        envelopes=args.envelopes,
        seed=args.seed,
    )
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how it is meant to end
        asyncio.run(_serve(emulator))


if __name__ == "__main__":
    main()
