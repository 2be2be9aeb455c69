"""2. Decoding 10,000 instances: the SDK's parse + decode against json.loads and pydantic.

The body is 10,000 list items of the observed dialect (``{"instances": [...]}``, ``state``
a string, and seven fields the SDK does not model, which ``raw`` keeps).

- SDK: ``decode_list(json_loads(body), Instance, "instances")``, exactly what the
  transport does (``json_loads`` is orjson when installed, else ``json.loads``).
- ``json.loads(body)`` alone: dicts, no types.
- pydantic v2: ``TypeAdapter(envelope).validate_json(body)`` of a model with the same
  fields, names, enums, timestamp and overrides (pydantic parses the JSON itself, in Rust).

Memory (tracemalloc): the bytes the models add per instance on top of the parsed body they
keep as ``raw``, against the bytes of the parsed body per instance.

Each backend runs in a fresh interpreter; "without orjson" hides orjson from that
interpreter (``sys.modules["orjson"] = None`` before the SDK is imported), so the SDK falls
back to the standard library exactly as it would where orjson is not installed.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from ._harness import Outcome, Row, Settings, alternate, median, parser_name, ratio

NAME = "2 decode 10,000 instances"
COUNT = 10_000
LOADS_TARGET = 1.5
PYDANTIC_TARGET = 1.0
MEMORY_TARGET = 1.0


def _pydantic_adapter() -> Callable[[bytes], Any] | None:
    """``validate_json`` of a pydantic model equivalent to ``sr.Instance``; None without it."""
    try:
        from pydantic import BaseModel, ConfigDict, TypeAdapter
        from pydantic.alias_generators import to_camel
    except ImportError:
        return None
    from datetime import datetime

    from streamrun_async import InstanceState, Outputs

    class PInstance(BaseModel):
        model_config = ConfigDict(alias_generator=to_camel, frozen=True)

        id: str
        state: InstanceState
        configuration_id: str | None = None
        name: str | None = None
        request_id: str | None = None
        outputs: Outputs | None = None
        created_at: datetime | None = None
        overrides: dict[str, dict[str, Any]] | None = None

    class PEnvelope(BaseModel):
        instances: list[PInstance]

    return TypeAdapter(PEnvelope).validate_json


def _timed(function: Callable[[], object]) -> Callable[[], float]:
    def run() -> float:
        gc.collect()
        started = time.perf_counter()
        function()
        return time.perf_counter() - started

    return run


def _memory(
    decode: Callable[[Any], object], parse: Callable[[bytes], Any], body: bytes
) -> list[int]:
    """Bytes per instance: the parsed body, and the models decoded from it on top."""
    gc.collect()
    tracemalloc.start()
    try:
        parsed = parse(body)
        parsed_bytes = tracemalloc.get_traced_memory()[0]
        models = decode(parsed)
        model_bytes = tracemalloc.get_traced_memory()[0] - parsed_bytes
    finally:
        tracemalloc.stop()
    del models
    return [parsed_bytes // COUNT, model_bytes // COUNT]


def _child(no_orjson: bool, runs: int) -> dict[str, Any]:
    """Measure in this interpreter; returns seconds per variant and what was used."""
    if no_orjson:
        sys.modules["orjson"] = None  # type: ignore[assignment]  # import orjson now fails
    from streamrun_async import Instance
    from streamrun_async._converter import decode_list, json_loads

    from ._fixtures import instances_body, instances_json

    body = instances_body(instances_json(COUNT, configurations=500, observed=True))
    parsed = json_loads(body)
    decoded = decode_list(parsed, Instance, "instances")
    assert len(decoded) == COUNT
    assert decoded[0].raw == parsed["instances"][0]
    variants: dict[str, Callable[[], float]] = {
        "sdk": _timed(lambda: decode_list(json_loads(body), Instance, "instances")),
        "json.loads": _timed(lambda: json.loads(body)),
        "sdk parse": _timed(lambda: json_loads(body)),
        "sdk decode": _timed(lambda: decode_list(parsed, Instance, "instances")),
    }
    validate = _pydantic_adapter()
    if validate is not None:
        assert len(validate(body).instances) == COUNT
        variants["pydantic"] = _timed(lambda: validate(body))
    times = alternate(variants, runs=runs)
    memory = _memory(lambda data: decode_list(data, Instance, "instances"), json_loads, body)
    return {"parser": parser_name(json_loads), "times": times, "memory": memory}


def _in_child(no_orjson: bool, runs: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.bench_decode", f"--runs={runs}"]
    if no_orjson:
        command.append("--no-orjson")
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def run(settings: Settings) -> Outcome:
    outcome = Outcome()
    try:
        import orjson  # noqa: F401

        backends = [False, True]
    except ImportError:
        backends = [True]
        outcome.notes.append("Decode: orjson is not installed; only the stdlib rows ran.")
    for no_orjson in backends:
        result = _in_child(no_orjson, settings.pick(9, 3))
        times = {name: median(values) for name, values in result["times"].items()}
        label = f"parser {result['parser']}"
        sdk, loads = times["sdk"], times["json.loads"]
        r = ratio(sdk, loads)
        outcome.rows.append(
            Row(
                NAME,
                f"SDK parse+decode vs `json.loads` ({label}), ms",
                f"{sdk * 1e3:.1f}",
                f"{loads * 1e3:.1f} (json.loads)",
                r,
                f"≤ {LOADS_TARGET}",
                r <= LOADS_TARGET,
            )
        )
        if "pydantic" in times:
            pyd = times["pydantic"]
            r = ratio(sdk, pyd)
            outcome.rows.append(
                Row(
                    NAME,
                    f"SDK parse+decode vs pydantic v2 `validate_json` ({label}), ms",
                    f"{sdk * 1e3:.1f}",
                    f"{pyd * 1e3:.1f} (pydantic)",
                    r,
                    f"< {PYDANTIC_TARGET:g} (faster)",
                    r < PYDANTIC_TARGET,
                )
            )
        else:
            outcome.notes.append("Decode: pydantic is not installed; its row was skipped.")
        parsed_bytes, model_bytes = result["memory"]
        r = ratio(model_bytes, parsed_bytes)
        outcome.rows.append(
            Row(
                NAME,
                f"memory per decoded instance vs its parsed dict ({label}), bytes",
                str(model_bytes),
                f"{parsed_bytes} (parsed)",
                r,
                f"≤ {MEMORY_TARGET:g}",
                r <= MEMORY_TARGET,
            )
        )
        outcome.notes.append(
            f"Decode ({label}): parse {times['sdk parse'] * 1e3:.1f} ms + model decode "
            f"{times['sdk decode'] * 1e3:.1f} ms = "
            f"{times['sdk decode'] / times['sdk'] * 100:.0f}% of the SDK's time in decoding."
        )
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description="child of the decode benchmark")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--no-orjson", action="store_true")
    args = parser.parse_args()
    print(json.dumps(_child(args.no_orjson, args.runs)))


if __name__ == "__main__":
    main()
