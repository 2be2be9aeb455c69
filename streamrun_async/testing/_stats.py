"""Counters of what the emulator answered, for tests and benchmarks."""

from __future__ import annotations

from collections import Counter

from ._faults import Fault
from ._routes import check_route

__all__ = ["DROPPED", "UNMATCHED", "Stats"]

UNMATCHED = "<unmatched>"
"""The route name requests to no API route (unknown path, wrong method) are counted under."""
DROPPED = 0
"""The status recorded for a request whose connection was dropped without an answer."""


class Stats:
    """Requests per route and status, faults injected per kind.

    ``stats.count("GET /instances")``, ``stats.count("GET /instances", status=503)``,
    ``stats.count(status=DROPPED)``, ``stats.injected(Fault.DROP_AFTER)``.
    """

    def __init__(self) -> None:
        self._requests: Counter[tuple[str, int]] = Counter()
        self._faults: Counter[Fault] = Counter()

    def record(self, route: str, status: int) -> None:
        """Count one answered (or dropped) request."""
        self._requests[route, status] += 1

    def record_fault(self, fault: Fault) -> None:
        """Count one injected fault."""
        self._faults[fault] += 1

    def count(self, route: str | None = None, *, status: int | None = None) -> int:
        """Requests to ``route`` (any) answered with ``status`` (any)."""
        if route is not None and route != UNMATCHED:
            check_route(route)
        return sum(
            n
            for (r, s), n in self._requests.items()
            if (route is None or r == route) and (status is None or s == status)
        )

    @property
    def total(self) -> int:
        """All requests counted."""
        return self.count()

    def injected(self, fault: Fault | None = None) -> int:
        """Faults injected of that kind (any)."""
        return self._faults[fault] if fault is not None else self._faults.total()

    def reset(self) -> None:
        """Start counting from zero."""
        self._requests.clear()
        self._faults.clear()
