"""Observe what the SDK does: a hook that counts retries, and the SDK's own log lines.

    python examples/observe_retries.py --emulator      # an emulator that fails 1 call in 4
    STREAMRUN_API_KEY=... python examples/observe_retries.py

A hook is any callable given to ``StreamrunClient(hooks=[...])``; it receives every event
of the client. ``RetryCounter`` keeps count of retries per route and cause, of calls that
failed in the end, and of the time spent waiting between attempts: what a bot operator
would export as metrics. The log lines (one INFO per retry, a WARNING on giving up) come
from the SDK itself, on the ``streamrun_async`` logger.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator

import streamrun_async as sr


class RetryCounter:
    """A client hook: retries by (route, cause), failed attempts by route, seconds waited."""

    def __init__(self) -> None:
        self.retries: Counter[tuple[str, str]] = Counter()
        self.failed_attempts: Counter[str] = Counter()
        self.waited = 0.0

    def __call__(self, event: object) -> None:
        if isinstance(event, sr.RetryScheduled):
            self.retries[event.route, type(event.cause).__name__] += 1
            self.waited += event.wait
        elif isinstance(event, sr.RequestFinished) and event.error is not None:
            self.failed_attempts[event.route] += 1

    def gave_up(self) -> Counter[str]:
        """Calls that failed in the end, by route: a failed attempt is retried, or final."""
        retried: Counter[str] = Counter()
        for (route, _cause), count in self.retries.items():
            retried[route] += count
        return self.failed_attempts - retried

    def summary(self) -> str:
        """The counts, one line each."""
        lines = [f"{n} retries of {route} after {why}" for (route, why), n in self.retries.items()]
        lines += [f"{n} calls of {route} failed in the end" for route, n in self.gave_up().items()]
        lines.append(f"{self.waited:.2f} s waited between attempts")
        return "\n".join(lines)


async def survey(client: sr.StreamrunClient, rounds: int = 5) -> None:
    """A few rounds of the read calls a bot makes; a call that fails for good is reported."""
    for _ in range(rounds):
        for call in (client.configurations.list, client.instances.list, client.destinations.list):
            try:
                await call()
            except sr.APIError as error:
                print(f"gave up: {error}")


@contextlib.asynccontextmanager
async def connect(emulator: bool, counter: RetryCounter) -> AsyncIterator[sr.StreamrunClient]:
    """A client of Streamrun (key from STREAMRUN_API_KEY), or of a flaky local emulator."""
    if not emulator:
        async with sr.StreamrunClient(hooks=[counter]) as client:
            yield client
        return
    from streamrun_async.testing import Emulator, Fault

    async with Emulator(seed=7) as emu:
        emu.faults.set_rate(Fault.HTTP_503, 0.15)
        emu.faults.set_rate(Fault.HTTP_502, 0.10)
        # Short waits: the emulator's failures are brief, and the example should be too.
        retry = sr.RetryPolicy(attempts=3, wait_initial=0.05, wait_max=0.2)
        async with emu.client(retry=retry, hooks=[counter]) as client:
            yield client


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emulator", action="store_true", help="run against a local emulator")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("streamrun_async").setLevel(logging.INFO)
    counter = RetryCounter()
    async with connect(args.emulator, counter) as client:
        await survey(client)
    print(counter.summary())


if __name__ == "__main__":
    asyncio.run(main())
