"""The one emulator command: ``python -m streamrun_async.testing`` and ``streamrun emulator``.

Both entry points hand their arguments to `main`, so they take the same options and print
the same banner: the base URL in the form ``--base-url`` and ``STREAMRUN_BASE_URL`` take
(no ``/api/v1``), then ``export`` lines to paste into a shell. With ``--clock virtual``
time stands still until a line such as ``advance 30`` arrives on stdin.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import threading
from collections.abc import Sequence
from typing import NoReturn

from ._dialect import Dialect
from ._emulator import Emulator

__all__ = ["banner", "build_parser", "main"]

_STOPPED = "emulator stopped; its instances ended with it"


def _optional_seconds(text: str) -> float | None:
    """A number of seconds, or "none" for never."""
    return None if text.lower() == "none" else _seconds(text)


def _seconds(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:  # nan or inf would stall or break the clock
        raise argparse.ArgumentTypeError(f"must be a finite number, not negative, got {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _rate(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def build_parser(prog: str) -> argparse.ArgumentParser:
    """The options both entry points take."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serve a local Streamrun API emulator until Ctrl-C. It prints its base URL"
        " (for --base-url or STREAMRUN_BASE_URL) and its API key as export lines.",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address (default: %(default)s)")
    add("--port", type=int, default=8787, help="0 for any free port (default: %(default)s)")
    add("--api-key", help="key to accept (default: a random one)")
    add(
        "--dialect",
        default="observed",
        choices=list(Dialect.presets()),
        metavar="NAME",
        help="how the server spells its answers, a preset of Dialect.presets():"
        f" {', '.join(Dialect.presets())} (default: %(default)s)",
    )
    add(
        "--clock",
        choices=["real", "virtual"],
        default="real",
        help='"virtual": time moves only by "advance SECONDS" lines on stdin (default: real)',
    )
    add("--configurations", type=_positive, metavar="N", help="N generated configurations")
    add("--boot-time", type=_seconds, default=2.0, metavar="S", help="seconds (default: 2)")
    add("--boot-jitter", type=_seconds, default=0.0, metavar="S", help="up to S more, random")
    add("--capacity", type=_positive, help="servers to boot on (default: unlimited)")
    add("--slot-limit", type=_positive, help="instances per account (default: any)")
    add(
        "--idle-timeout",
        type=_optional_seconds,
        default=300.0,
        metavar="S",
        help='seconds before an idle instance stops, or "none" (default: 300)',
    )
    add("--fail-rate", type=_rate, default=0.0, help="share of boots that fail (default: 0)")
    add("--seed", type=int, default=0, help="for ids, keys, jitter (default: 0)")
    add("--json", action="store_true", help="one JSON line instead of the banner")
    return parser


def banner(emulator: Emulator) -> list[str]:
    """What a started emulator prints: where it is, the key, and how to use them."""
    url, key = emulator.url, emulator.api_key
    return [
        f"Streamrun emulator on {url} (dialect {emulator.dialect.name})",
        f"export STREAMRUN_BASE_URL={url}",
        f"export STREAMRUN_API_KEY={key}",
        f'Python: StreamrunClient(api_key="{key}", base_url="{url}")',
        "Ctrl-C to stop.",
    ]


def _fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def _advance_seconds(line: str) -> float | None:
    """The seconds of an ``advance SECONDS`` line, else None (also for a negative or
    non-finite number: nan or inf in the clock would break every later answer)."""
    words = line.split()
    if len(words) != 2 or words[0] != "advance":
        return None
    try:
        return _seconds(words[1])
    except (ValueError, argparse.ArgumentTypeError):
        return None


def _follow_stdin(emulator: Emulator, loop: asyncio.AbstractEventLoop) -> None:
    """Read ``advance SECONDS`` lines in a daemon thread (stdin has no async reader that
    works everywhere), moving the virtual clock in the loop."""

    def read() -> None:
        for line in sys.stdin:
            seconds = _advance_seconds(line)
            if seconds is not None:
                asyncio.run_coroutine_threadsafe(emulator.advance(seconds), loop)
            elif line.strip():
                print(f"ignored {line.strip()!r}: say 'advance SECONDS'", file=sys.stderr)

    threading.Thread(target=read, name="emulator-stdin", daemon=True).start()


async def _serve(emulator: Emulator, *, json_output: bool, virtual: bool) -> None:
    try:
        await emulator.start()
    except OSError as error:
        _fail(f"cannot listen: {error.strerror or error}")
    try:
        if json_output:
            info = {
                "url": emulator.url,
                "api_key": emulator.api_key,
                "dialect": emulator.dialect.name,
                "configuration_ids": list(emulator.configuration_ids),
                "destination_ids": list(emulator.destination_ids),
            }
            print(json.dumps(info, separators=(",", ":")), flush=True)
        else:
            print("\n".join(banner(emulator)), flush=True)
        if virtual:
            _follow_stdin(emulator, asyncio.get_running_loop())
        await asyncio.Event().wait()
    finally:
        await emulator.close()


def main(
    argv: Sequence[str] | None = None,
    *,
    prog: str = "python -m streamrun_async.testing",
    json_output: bool = False,
) -> None:
    """Parse ``argv``, serve until Ctrl-C (then exit 0, saying so on stderr).

    ``json_output``: print JSON even without ``--json`` (``streamrun --json emulator``).
    """
    args = build_parser(prog).parse_args(argv)
    emulator = Emulator(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        clock=args.clock,
        configurations=args.configurations,
        boot_time=args.boot_time,
        boot_jitter=args.boot_jitter,
        capacity=args.capacity,
        slot_limit=args.slot_limit,
        idle_timeout=args.idle_timeout,
        dialect=args.dialect,
        fail_rate=args.fail_rate,
        seed=args.seed,
    )
    serving = _serve(
        emulator, json_output=json_output or args.json, virtual=args.clock == "virtual"
    )
    try:
        asyncio.run(serving)
    except KeyboardInterrupt:  # Ctrl-C is how it is meant to end
        print(_STOPPED, file=sys.stderr, flush=True)
