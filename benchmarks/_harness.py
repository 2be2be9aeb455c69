"""The harness: settings, alternating runs, statistics, result rows and their table."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = [
    "Outcome",
    "Row",
    "Settings",
    "alternate",
    "alternate_async",
    "median",
    "percentile",
    "ratio",
    "render_table",
    "timed",
]

_T = TypeVar("_T")


@dataclass(frozen=True)
class Settings:
    """How big and how often: a full run, or a quick smoke run for CI."""

    quick: bool

    def pick(self, full: _T, quick: _T) -> _T:
        """``quick`` in a quick run, else ``full``."""
        return quick if self.quick else full

    @property
    def runs(self) -> int:
        """Measured runs per variant (after the warm-up)."""
        return self.pick(7, 3)


@dataclass(frozen=True)
class Row:
    """One line of the results table: the SDK's figure, its baseline's, and the target.

    ``ratio`` is SDK / baseline unless given. ``met`` is None when there is no target.
    """

    bench: str
    metric: str
    sdk: str
    baseline: str
    ratio: float | None
    target: str = "—"
    met: bool | None = None

    @property
    def status(self) -> str:
        if self.met is None:
            return "—"
        return "met" if self.met else "**missed**"


@dataclass
class Outcome:
    """What one benchmark returns: its rows and notes (details shown under the table)."""

    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def median(values: Sequence[float]) -> float:
    """The median (nan for no values)."""
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), nearest-rank on sorted values; nan for none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _orders(names: Sequence[str], runs: int) -> list[list[str]]:
    """Run orders alternating forwards and backwards, so drift hits every variant alike."""
    return [list(names) if i % 2 == 0 else list(reversed(names)) for i in range(runs)]


def alternate(
    variants: dict[str, Callable[[], float]], *, runs: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Run each variant once per round, alternating order; return the measured values.

    Each callable returns its own measurement (seconds, bytes...). The ``warmup`` first
    rounds are run and thrown away.
    """
    results: dict[str, list[float]] = {name: [] for name in variants}
    for round_no, order in enumerate(_orders(list(variants), warmup + runs)):
        for name in order:
            value = variants[name]()
            if round_no >= warmup:
                results[name].append(value)
    return results


async def alternate_async(
    variants: dict[str, Callable[[], Awaitable[float]]], *, runs: int, warmup: int = 1
) -> dict[str, list[float]]:
    """:func:`alternate` for coroutine functions, run on the current loop."""
    results: dict[str, list[float]] = {name: [] for name in variants}
    for round_no, order in enumerate(_orders(list(variants), warmup + runs)):
        for name in order:
            value = await variants[name]()
            if round_no >= warmup:
                results[name].append(value)
    return results


def timed(function: Callable[[], object]) -> float:
    """Seconds one call of ``function`` takes."""
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def ratio(sdk: float, baseline: float) -> float:
    """SDK / baseline (nan if the baseline is zero)."""
    return sdk / baseline if baseline else math.nan


def render_table(rows: Sequence[Row]) -> str:
    """The rows as a markdown table."""
    header = (
        "| # | Benchmark | Measure | SDK | Baseline | SDK / baseline | Target | Status |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for row in rows:
        number, _, name = row.bench.partition(" ")
        shown = "—" if row.ratio is None or math.isnan(row.ratio) else f"{row.ratio:.3g}"
        lines.append(
            f"| {number} | {name} | {row.metric} | {row.sdk} | {row.baseline} | {shown} "
            f"| {row.target} | {row.status} |"
        )
    return header + "\n".join(lines) + "\n"


def parser_name(loads: Callable[..., Any]) -> str:
    """``orjson`` or ``json``: which parser the SDK decodes with."""
    return "orjson" if loads.__module__.startswith("orjson") else "json"
