"""A local Streamrun server for tests: the whole API on loopback, clocks, faults.

::

    from streamrun_async.testing import Emulator, Fault

    async with Emulator(clock="virtual", boot_time=30) as emu:
        emu.faults.script("POST /configurations/{configurationId}/instances", [Fault.DROP_AFTER])
        async with emu.client() as client:
            ...
        await emu.advance(30)
        assert emu.state.count("RUNNING") == 1

It is a real aiohttp.web server that any HTTP client can talk to; it knows nothing of
the SDK except `Emulator.client()`. It speaks a `Dialect` (``Emulator(dialect=
Dialect.text_answers())``; presets in `Dialect.presets()`), by default `Dialect.observed`,
the shapes seen from the live API. Also a pytest plugin (fixtures ``streamrun_emulator``
and ``streamrun_client``) and ``python -m streamrun_async.testing``.
"""

from ._clock import ClockKind
from ._dialect import Dialect
from ._emulator import Emulator
from ._faults import Decision, Fault, Faults
from ._routes import API_PREFIX, ROUTES
from ._seed import (
    DEFAULT_ELEMENTS,
    DEMO_CONFIGURATIONS,
    DEMO_DESTINATIONS,
    ConfigurationSeed,
    DestinationSeed,
    Platform,
)
from ._snapshot import (
    BillingReport,
    InstanceSnapshot,
    InstanceState,
    OutputsState,
    RequestSnapshot,
    RequestState,
    StateSnapshot,
    StoppedInstance,
    StopReason,
)
from ._stats import DROPPED, UNMATCHED, Stats

__all__ = [
    "API_PREFIX",
    "DEFAULT_ELEMENTS",
    "DEMO_CONFIGURATIONS",
    "DEMO_DESTINATIONS",
    "DROPPED",
    "ROUTES",
    "UNMATCHED",
    "BillingReport",
    "ClockKind",
    "ConfigurationSeed",
    "Decision",
    "Dialect",
    "DestinationSeed",
    "Emulator",
    "Fault",
    "Faults",
    "InstanceSnapshot",
    "InstanceState",
    "OutputsState",
    "Platform",
    "RequestSnapshot",
    "RequestState",
    "StateSnapshot",
    "StopReason",
    "StoppedInstance",
    "Stats",
]
