"""pytest plugin (entry point ``streamrun_async``): emulator and client fixtures.

::

    @pytest.mark.streamrun_emulator(capacity=1, boot_time=10)
    async def test_queue(streamrun_emulator, streamrun_client):
        await streamrun_client.configurations.launch(streamrun_emulator.configuration_ids[0])
        await streamrun_emulator.advance(10)

The emulator runs on the virtual clock; the marker's keywords go to `Emulator`
(``dialect=`` takes a `Dialect` or a preset's name). Markers add up, the closest winning
per keyword: a module's ``pytestmark = pytest.mark.streamrun_emulator(dialect="classic")``
and a test's ``@pytest.mark.streamrun_emulator(capacity=1)`` give both. The
fixtures need pytest-asyncio; without it this plugin registers only the marker, so it
never breaks a test suite that does not use it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

from ._emulator import Emulator

if TYPE_CHECKING:
    from streamrun_async import StreamrunClient

__all__ = ["pytest_configure"]


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``streamrun_emulator`` marker."""
    config.addinivalue_line(
        "markers",
        "streamrun_emulator(**kwargs): keyword arguments for the streamrun_emulator fixture",
    )


try:
    import pytest_asyncio
except ImportError:
    pass
else:

    @pytest_asyncio.fixture
    async def streamrun_emulator(request: pytest.FixtureRequest) -> AsyncIterator[Emulator]:
        """A running `Emulator` on the virtual clock, closed after the test."""
        options: dict[str, Any] = {"clock": "virtual"}
        # iter_markers yields the closest first: apply them farthest first.
        for marker in reversed(list(request.node.iter_markers("streamrun_emulator"))):
            options.update(marker.kwargs)
        async with Emulator(**options) as emulator:
            yield emulator

    @pytest_asyncio.fixture
    async def streamrun_client(streamrun_emulator: Emulator) -> AsyncIterator[StreamrunClient]:
        """A `StreamrunClient` bound to ``streamrun_emulator``, closed after the test."""
        async with streamrun_emulator.client() as client:
            yield client
