"""6. ``import streamrun_async`` against ``import aiohttp``, each in a fresh interpreter.

The two alternate, one interpreter per import; each measures its own import with
``time.perf_counter`` around the ``import`` statement (interpreter start-up excluded).
One extra run with ``-X importtime`` shows what the SDK adds on top of aiohttp.
"""

from __future__ import annotations

import subprocess
import sys

from ._harness import Outcome, Row, Settings, alternate, median, ratio

NAME = "6 import time"
TARGET = 1.3

_PROGRAM = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def _import_seconds(module: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout)


def _extra_by_package(limit: int = 6) -> list[tuple[str, int]]:
    """Microseconds of import (self time) the SDK adds beyond aiohttp, by top-level package."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import aiohttp; import streamrun_async"],
        capture_output=True,
        text=True,
        check=True,
    )
    after_aiohttp = done.stderr.split("| aiohttp\n", 1)[-1]
    totals: dict[str, int] = {}
    for line in after_aiohttp.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            self_us, _, name = line.removeprefix("import time:").split("|")
            package = name.strip().split(".")[0]
            totals[package] = totals.get(package, 0) + int(self_us)
    return sorted(totals.items(), key=lambda item: -item[1])[:limit]


def run(settings: Settings) -> Outcome:
    times = alternate(
        {
            "sdk": lambda: _import_seconds("streamrun_async"),
            "aiohttp": lambda: _import_seconds("aiohttp"),
        },
        runs=settings.pick(15, 5),
    )
    sdk, base = median(times["sdk"]), median(times["aiohttp"])
    r = ratio(sdk, base)
    outcome = Outcome()
    outcome.rows.append(
        Row(
            NAME,
            "`import streamrun_async` vs `import aiohttp`, fresh interpreter, ms",
            f"{sdk * 1e3:.1f}",
            f"{base * 1e3:.1f} (aiohttp)",
            r,
            f"≤ {TARGET}",
            r <= TARGET,
        )
    )
    extra = ", ".join(f"{name} {us / 1e3:.1f} ms" for name, us in _extra_by_package())
    outcome.notes.append(
        f"Import: what the SDK adds beyond aiohttp (-X importtime, self time by package): {extra}."
    )
    return outcome
