"""``python -m benchmarks [--quick] [--only 1,3] [--output PATH]``.

A full run prints the table and rewrites ``benchmarks/RESULTS.md``. ``--quick`` is a smoke
run (smaller, fewer runs, under 30 seconds on 2 cores) that writes nothing unless
``--output`` is given. ``--only`` picks benchmarks by number (a partial full run writes
nothing either, unless ``--output`` is given).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from ._harness import Outcome, Settings, render_table

BENCHMARKS = {
    1: "bench_overhead",
    2: "bench_decode",
    3: "bench_fleet",
    4: "bench_memory",
    5: "bench_bulk",
    6: "bench_import",
    7: "bench_hooks",
}
RESULTS = Path(__file__).with_name("RESULTS.md")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _environment() -> str:
    return (
        f"Python {platform.python_version()}, aiohttp {_version('aiohttp')}, "
        f"{os.cpu_count()} cores ({platform.system()} {platform.machine()}); "
        f"attrs {_version('attrs')}, orjson {_version('orjson')}, "
        f"pydantic {_version('pydantic')}"
    )


def _document(table: str, notes: list[str], seconds: float, quick: bool) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    kind = "quick smoke run (`--quick`)" if quick else "full run"
    lines = [
        "# Benchmark results",
        "",
        f"{kind.capitalize()} of `python -m benchmarks` on {when}, {seconds:.0f} s.",
        "",
        f"Machine: {_environment()}.",
        "",
        "Each figure is a median over alternating runs of the SDK and its baseline in the",
        "same process run, after a warm-up; *SDK / baseline* is the ratio of the medians.",
        "Servers (a static JSON server, or the emulator) run in their own process on",
        "127.0.0.1. Machines here are shared and noisy: read the ratios, not the absolute",
        "times.",
        "",
        table.rstrip(),
        "",
        "## Details",
        "",
        *(f"- {note}" for note in notes),
        "",
        "## Rerun",
        "",
        "```",
        "python -m benchmarks           # full run (several minutes); rewrites this file",
        "python -m benchmarks --quick   # smoke run under 30 s; writes nothing",
        "python -m benchmarks --only 2  # one benchmark (by number); writes nothing",
        "```",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small smoke run (CI)")
    parser.add_argument("--only", help="comma-separated benchmark numbers, e.g. 1,3")
    parser.add_argument("--output", type=Path, help="write the results document here")
    args = parser.parse_args(argv)
    chosen = sorted(BENCHMARKS)
    if args.only:
        chosen = [int(n) for n in args.only.split(",")]
        unknown = set(chosen) - set(BENCHMARKS)
        if unknown:
            parser.error(f"no benchmark numbered {sorted(unknown)}")
    settings = Settings(quick=args.quick)
    started = time.perf_counter()
    outcome = Outcome()
    for number in chosen:
        module = importlib.import_module(f".{BENCHMARKS[number]}", __package__)
        print(f"[{number}] {module.NAME.partition(' ')[2]}...", file=sys.stderr, flush=True)
        begun = time.perf_counter()
        result: Outcome = module.run(settings)
        print(f"    {time.perf_counter() - begun:.1f} s", file=sys.stderr, flush=True)
        outcome.rows += result.rows
        outcome.notes += result.notes
    seconds = time.perf_counter() - started
    table = render_table(outcome.rows)
    print(table)
    for note in outcome.notes:
        print(f"- {note}")
    print(f"\n{len(chosen)} benchmark(s) in {seconds:.1f} s; {_environment()}.")
    output = args.output
    if output is None and not args.quick and not args.only:
        output = RESULTS
    if output is not None:
        output.write_text(_document(table, outcome.notes, seconds, args.quick))
        print(f"wrote {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
