"""`Emulator`: the Streamrun API on a loopback port, for tests, demos and benchmarks."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from aiohttp import web

from ._app import build_app
from ._clock import ClockKind, RealClock, VirtualClock
from ._dialect import Dialect
from ._faults import Faults
from ._seed import DEMO_CONFIGURATIONS, DEMO_DESTINATIONS, ConfigurationSeed, DestinationSeed
from ._snapshot import BillingReport, StateSnapshot
from ._state import Account
from ._stats import Stats

if TYPE_CHECKING:
    from streamrun_async import StreamrunClient

__all__ = ["Emulator"]

_SHUTDOWN_TIMEOUT = 1.0  # seconds in-flight requests get at close; ours never take long


class Emulator:
    """A real HTTP server on loopback that behaves like the Streamrun API.

    ::

        async with Emulator(clock="virtual", boot_time=30, capacity=2) as emu:
            async with emu.client() as client:
                request = await client.configurations.launch(emu.configuration_ids[0])
                await emu.advance(30)

    ``configurations``: seeds, or a number of generated ones, or None for a demo fleet
    of four. ``capacity``: servers (None: unlimited); an instance holds one from its boot
    until it stops, others wait QUEUED in launch order. ``slot_limit``: instances queued
    or running at once per account (None: unlimited); ``boot_time`` plus up to
    ``boot_jitter`` seconds from a server to RUNNING; ``idle_timeout``: seconds a
    RUNNING instance with outputs OFFLINE lives (None: forever); ``dialect``: how the
    server spells its answers, a `Dialect` or a preset's name (default:
    `Dialect.observed`); ``fail_rate``: the share of boots that end FAILED instead of
    RUNNING; ``seed``: for ids, stream keys, jitter, failures and faults; ``epoch``: the
    wall time emulator time 0 stands for in ``createdAt`` (default: now).

    A request is judged by its instances still alive: with one of two stopped while
    QUEUED, it runs once the other runs; with all stopped before running it stays QUEUED;
    with all failed or stopped, one at least failed, it shows the failed state.
    """

    def __init__(
        self,
        *,
        configurations: Sequence[ConfigurationSeed] | int | None = None,
        destinations: Sequence[DestinationSeed] | None = None,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: ClockKind = "real",
        capacity: int | None = None,
        slot_limit: int | None = None,
        boot_time: float = 2.0,
        boot_jitter: float = 0.0,
        idle_timeout: float | None = 300.0,
        dialect: Dialect | str | None = None,
        fail_rate: float = 0.0,
        seed: int = 0,
        epoch: datetime | None = None,
    ) -> None:
        if clock not in ("real", "virtual"):
            raise ValueError(f'clock must be "real" or "virtual", not {clock!r}')
        if epoch is not None and epoch.tzinfo is None:
            raise ValueError("epoch must be timezone-aware")
        if isinstance(configurations, int):
            configurations = [
                ConfigurationSeed(f"Configuration {n}") for n in range(1, configurations + 1)
            ]
        if isinstance(dialect, str):
            dialect = Dialect.named(dialect)
        self.dialect: Dialect = dialect or Dialect.observed()
        """How this server spells its answers."""
        self.api_key = api_key or f"sr_test_{secrets.token_hex(16)}"
        """The key the server accepts as ``Authorization: Bearer <api_key>``."""
        self.seed = seed
        """The seed of ids, boot jitter and faults: the same seed, the same run."""
        self.faults = Faults(seed=seed)
        """The fault plan: rates and scripts, see `Faults`."""
        self.stats = Stats()
        """Requests per route and status, faults injected."""
        self._host = host
        self._port = port
        self._clock = VirtualClock() if clock == "virtual" else RealClock()
        self._account = Account(
            clock=self._clock,
            configurations=DEMO_CONFIGURATIONS if configurations is None else configurations,
            destinations=DEMO_DESTINATIONS if destinations is None else destinations,
            capacity=capacity,
            slot_limit=slot_limit,
            boot_time=boot_time,
            boot_jitter=boot_jitter,
            idle_timeout=idle_timeout,
            seed=seed,
            epoch=(epoch or datetime.now(UTC).replace(microsecond=0)).astimezone(UTC),
            dialect=self.dialect,
            fail_rate=fail_rate,
        )
        self._runner: web.AppRunner | None = None

    def __repr__(self) -> str:
        where = self.url if self._runner is not None else "stopped"
        return f"<Emulator {where} dialect={self.dialect.name} seed={self.seed}>"

    # -- serving ----------------------------------------------------------------

    async def start(self) -> None:
        """Listen; after `close()` this serves again on the same port, state kept."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        if isinstance(self._clock, RealClock):
            self._clock.start()
        app = build_app(
            account=self._account,
            faults=self.faults,
            stats=self.stats,
            api_key=self.api_key,
        )
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._port = runner.addresses[0][1]
        self._runner = runner

    async def close(self) -> None:
        """Stop listening and close every connection; idempotent."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def url(self) -> str:
        """Base URL, ``http://127.0.0.1:<port>``, once started."""
        if not self._port:
            raise RuntimeError("the emulator has no URL before start()")
        host = f"[{self._host}]" if ":" in self._host else self._host  # IPv6
        return f"http://{host}:{self._port}"

    def client(self, **kwargs: Any) -> StreamrunClient:
        """A `StreamrunClient` bound to this emulator; ``kwargs`` go to the client."""
        # Imported here only: no module of the emulator depends on the SDK.
        from streamrun_async import StreamrunClient

        return StreamrunClient(api_key=self.api_key, base_url=self.url, **kwargs)

    # -- the account --------------------------------------------------------------

    @property
    def configuration_ids(self) -> tuple[str, ...]:
        """Ids of the seeded configurations, in order."""
        return tuple(self._account.configurations)

    @property
    def destination_ids(self) -> tuple[str, ...]:
        """Ids of the seeded destinations, in order."""
        return tuple(self._account.destinations)

    @property
    def state(self) -> StateSnapshot:
        """A frozen snapshot of instances, requests and stops, settled to now."""
        return self._account.snapshot()

    @property
    def billing(self) -> BillingReport:
        """Seconds RUNNING per instance up to now, stopped instances included."""
        return self._account.billing()

    def open_in_editor(self, configuration_id: str) -> str:
        """Open the configuration in the editor: it gets the account's one PREVIEW
        instance (a preview open elsewhere closes). Returns the preview's instance id."""
        return self._account.open_editor(configuration_id)

    def close_editor(self) -> None:
        """Close the editor, stopping its PREVIEW instance."""
        self._account.close_editor()

    def fail_instance(self, instance_id: str) -> None:
        """Make a live instance fail now: it leaves its server, is no longer billed, and is
        shown as the dialect's ``failed_state`` (FAILED or ERROR) until deleted. A request
        whose instances all failed or stopped, one at least failed, is shown failed too.
        KeyError when no live instance has that id."""
        self._account.fail(instance_id)

    def set_input_fps(self, instance_id: str, element_id: str, fps: float) -> None:
        """Report ``fps`` for an input of a live instance, as if an encoder pushed into it
        (KeyError for an unknown instance or an element that is not one of its inputs,
        ValueError for a negative or non-finite ``fps``)."""
        self._account.set_input_fps(instance_id, element_id, fps)

    # -- time ---------------------------------------------------------------------

    def now(self) -> float:
        """Emulator time in seconds since the start."""
        return self._clock.now()

    async def advance(self, seconds: float) -> None:
        """Move the virtual clock and play every event due, in order."""
        if not isinstance(self._clock, VirtualClock):
            raise RuntimeError('advance() needs Emulator(clock="virtual")')
        self._clock.move_by(seconds)
        self._account.settle()
        await asyncio.sleep(0)  # as any await would: tasks the caller started get to run
