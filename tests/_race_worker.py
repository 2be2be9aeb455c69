"""One of the racing processes of tests/test_exactly_once_processes.py (run as a script).

    python tests/_race_worker.py URL COORDINATOR PLAN_JSON     # key in STREAMRUN_API_KEY

COORDINATOR is ``file:<directory>`` or ``redis:<url>``. Prints ``ready``, waits
for a line on stdin (so that all racers start at once), then one JSON line of the outcome.
"""

from __future__ import annotations

import asyncio
import json
import sys

import streamrun_async as sr


def coordinator_from(spec: str) -> sr.Coordinator:
    kind, _, where = spec.partition(":")
    if kind == "file":
        return sr.FileCoordinator(where)
    if kind == "redis":
        return sr.RedisCoordinator(where)
    raise SystemExit(f"unknown coordinator {spec!r}")


async def main(url: str, spec: str, plan_json: str) -> None:
    plan = {
        cfg: [sr.InstanceSettings(name=name) for name in names]
        for cfg, names in json.loads(plan_json).items()
    }
    coordinator = coordinator_from(spec)
    retry = sr.RetryPolicy(attempts=6, wait_initial=0.01, wait_max=0.05)
    try:
        async with sr.StreamrunClient(base_url=url, retry=retry, coordinator=coordinator) as client:
            # Start together: say ready, then wait for the parent's go on stdin.
            print("ready", flush=True)
            await asyncio.to_thread(sys.stdin.readline)
            report = await client.launch_many(plan, max_per_request=5, settle=0.5, timeout=60)
    finally:
        await coordinator.aclose()
    statuses = {name: item.status.value for name, item in report.items.items()}
    reasons = {name: item.reason for name, item in report.items.items() if item.reason}
    print(json.dumps({"statuses": statuses, "reasons": reasons}))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
