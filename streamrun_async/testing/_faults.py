"""Fault injection: what can go wrong on the wire, by rate or by script, seeded.

Semantics, per fault kind:

- ``HTTP_500``, ``HTTP_502``, ``HTTP_503``: answered *before* handling (no state
  change) with that status and a JSON error body.
- ``HTTP_429``: answered before handling, with ``Retry-After: <retry_after>``.
- ``HTML_ERROR``: answered before handling: a ``502`` ``text/html`` page as a proxy in
  front of the API would send.
- ``DROP_BEFORE``: the connection is closed before handling: no state change, no answer.
- ``DROP_AFTER``: the request is handled (a launch really happens), then the connection
  is closed without an answer: the client cannot know that it acted.
- ``MALFORMED_JSON``: the request is handled, then the body of the real answer is cut in
  half (``{"`` when it had none; a 204 then becomes 200, as a 204 carries no body).
- ``LATENCY``: the request waits ``latency`` seconds plus up to ``latency_jitter`` more
  (on the real loop clock) before it is handled; it combines with any other fault.

Faults only hit the 15 API routes, never unknown paths or wrong methods.
"""

from __future__ import annotations

import random
from collections import defaultdict, deque
from collections.abc import Iterable
from enum import Enum
from typing import NamedTuple

from ._routes import check_route

__all__ = ["Decision", "Fault", "Faults"]


class Fault(Enum):
    """A kind of failure the emulator can inject."""

    HTTP_500 = "http_500"
    HTTP_502 = "http_502"
    HTTP_503 = "http_503"
    HTTP_429 = "http_429"
    DROP_BEFORE = "drop_before"
    DROP_AFTER = "drop_after"
    MALFORMED_JSON = "malformed_json"
    HTML_ERROR = "html_error"
    LATENCY = "latency"


class Decision(NamedTuple):
    """What happens to one request: at most one fault, and a delay (0 for none)."""

    fault: Fault | None
    delay: float


_NO_FAULT = Decision(None, 0.0)


class Faults:
    """Fault plan of an emulator: rates and scripts, globally or per route.

    Routes are named as in the API table, ``"POST /configurations/{configurationId}/instances"``::

        emu.faults.set_rate(Fault.HTTP_503, 0.05)                      # every route
        emu.faults.script("GET /instances", [Fault.HTTP_503, None, Fault.DROP_AFTER])

    A scripted call gets exactly what its script entry says (``None``: no fault), a route's
    script before the global one. Unscripted calls draw from the rates: a kind's rate on
    the route if set, else its global rate; one uniform draw picks at most one fault (kinds
    in ``Fault`` order), and ``LATENCY`` has a draw of its own.
    """

    def __init__(self, *, seed: int) -> None:
        self.retry_after = 1
        """``Retry-After`` seconds sent with ``HTTP_429``."""
        self.latency = 0.05
        """Seconds of added delay for ``LATENCY``."""
        self.latency_jitter = 0.05
        """Up to this many more seconds, drawn uniformly."""
        self._rng = random.Random(f"{seed}:faults")
        self._rates: dict[str | None, dict[Fault, float]] = defaultdict(dict)
        self._scripts: dict[str | None, deque[Fault | None]] = defaultdict(deque)

    def set_rate(self, fault: Fault, rate: float, *, route: str | None = None) -> None:
        """Inject ``fault`` into a share ``rate`` (0 to 1) of calls to ``route`` (or all)."""
        if not 0 <= rate <= 1:
            raise ValueError(f"rate must be between 0 and 1, not {rate}")
        rates = self._rates[self._check(route)]
        rates[fault] = rate
        if sum(r for f, r in rates.items() if f is not Fault.LATENCY) > 1:
            del rates[fault]
            raise ValueError(f"fault rates for {route or 'all routes'} would add up to over 1")

    def script(self, route: str | None, faults: Iterable[Fault | None]) -> None:
        """Queue what the next calls to ``route`` (or any route) get, one entry per call."""
        self._scripts[self._check(route)].extend(faults)

    def pending(self, route: str | None = None) -> int:
        """Script entries not yet used for ``route`` (or the global script)."""
        return len(self._scripts[self._check(route)])

    def clear(self) -> None:
        """Forget every rate and script."""
        self._rates.clear()
        self._scripts.clear()

    def decide(self, route: str) -> Decision:
        """Pick the faults for one call to ``route`` (the server asks once per request)."""
        for key in (route, None):
            script = self._scripts.get(key)
            if script:
                return self._scripted(script.popleft())
        rates = {**self._rates.get(None, {}), **self._rates.get(route, {})}
        if not rates:
            return _NO_FAULT
        fault = None
        draw = self._rng.random()
        for kind in Fault:
            rate = rates.get(kind, 0.0)
            if kind is Fault.LATENCY or not rate:
                continue
            if draw < rate:
                fault = kind
                break
            draw -= rate
        latency = rates.get(Fault.LATENCY, 0.0)
        delay = self._delay() if latency and self._rng.random() < latency else 0.0
        return Decision(fault, delay)

    def _scripted(self, entry: Fault | None) -> Decision:
        if entry is Fault.LATENCY:
            return Decision(None, self._delay())
        return Decision(entry, 0.0)

    def _delay(self) -> float:
        return self.latency + self._rng.uniform(0, self.latency_jitter)

    @staticmethod
    def _check(route: str | None) -> str | None:
        return None if route is None else check_route(route)
