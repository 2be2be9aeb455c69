"""Budgets: what an owner may run and spend, and a meter of what it has spent.

The meter is pure: it is fed observations (which of the owner's instances were RUNNING
at a wall-clock time) and integrates RUNNING seconds between consecutive observations
with the trapezoid rule, so each start or stop costs at most half the gap between two
observations in error: the total stays within one observation interval of the bill.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from .._exceptions import InvalidArgumentError, InvalidArgumentTypeError
from ._errors import BudgetExceededError

__all__ = ["Budget", "Meter", "Spend", "check_launch"]

OnBreach = Literal["refuse", "stop"]


def _non_negative_number(_: object, attribute: attrs.Attribute[float], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentTypeError(f"{attribute.name} must be a number, got {value!r}")
    if not (value >= 0 and math.isfinite(value)):
        raise InvalidArgumentError(f"{attribute.name} must be finite and >= 0, got {value!r}")


def _positive_or_none(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentTypeError(f"{attribute.name} must be a number or None, got {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise InvalidArgumentError(f"{attribute.name} must be positive, got {value!r}")
    if attribute.name == "max_running" and not isinstance(value, int):
        raise InvalidArgumentTypeError(f"max_running must be an int, got {value!r}")


def _fraction(_: object, attribute: attrs.Attribute[float], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentTypeError(f"{attribute.name} must be a number, got {value!r}")
    if not 0 < value <= 1:
        raise InvalidArgumentError(f"{attribute.name} must be in (0, 1], got {value!r}")


def _on_breach(_: object, __: attrs.Attribute[str], value: object) -> None:
    if value not in ("refuse", "stop"):
        raise InvalidArgumentError(f'on_breach must be "refuse" or "stop", got {value!r}')


@attrs.frozen(kw_only=True)
class Budget:
    """Limits of one owner: ``Budget(hourly_rate=0.39, max_running=4, max_spend=5.0)``.

    ``hourly_rate``: the price of one RUNNING instance-hour (Streamrun's list price is
    0.39; add-ons are extra). ``max_running``: leased instances at once. ``max_spend``: money
    this guard may see spent; a launch is refused when what is spent, plus what running
    leases may still spend before their deadlines, plus what the new launch may spend in
    its ttl, passes it. ``warn_at``: the fraction of ``max_spend`` at which a
    ``BudgetWarning`` event fires. ``on_breach``: at 100%, ``"refuse"`` only refuses new
    launches; ``"stop"`` also stops this owner's instances, newest first.
    """

    hourly_rate: float = attrs.field(default=0.39, validator=_non_negative_number)
    max_running: int | None = attrs.field(default=None, validator=_positive_or_none)
    max_spend: float | None = attrs.field(default=None, validator=_positive_or_none)
    warn_at: float = attrs.field(default=0.8, validator=_fraction)
    on_breach: OnBreach = attrs.field(default="refuse", validator=_on_breach)

    def cost(self, seconds: float) -> float:
        """What ``seconds`` of RUNNING time cost at the hourly rate."""
        return seconds * self.hourly_rate / 3600


@attrs.frozen
class Spend:
    """RUNNING time this guard observed, and its cost: in total and per configuration."""

    seconds: float
    cost: float
    seconds_by_configuration: Mapping[str, float]
    cost_by_configuration: Mapping[str, float]


def check_launch(
    budget: Budget,
    *,
    running: int,
    launching: int,
    spent: float,
    committed: float,
    launch_cost: float,
) -> None:
    """Refuse a launch (``BudgetExceededError``) that would break ``budget``.

    ``running``: the owner's live leases; ``spent``: money observed spent; ``committed``:
    what live leases may still spend before their deadlines; ``launch_cost``: what the
    launch may spend within its ttl (0 without one).
    """
    if budget.max_running is not None and running + launching > budget.max_running:
        raise BudgetExceededError(
            f"launching {launching} would make {running + launching} instances of this owner, "
            f"above max_running={budget.max_running}",
            limit="max_running",
            current=running,
            requested=launching,
        )
    if budget.max_spend is not None:
        left = budget.max_spend - spent - committed
        if spent >= budget.max_spend or launch_cost > left:
            raise BudgetExceededError(
                f"spent {spent:.4f} of max_spend={budget.max_spend:g} and {committed:.4f} more "
                f"is committed to running leases; this launch may cost {launch_cost:.4f}",
                limit="max_spend",
                current=spent + committed,
                requested=launch_cost,
            )


class Meter:
    """Integrates RUNNING seconds of observed instances, per configuration.

    ``observe(running, present, now)``: ``present`` maps each of the owner's instance ids
    the observation covered to its configuration id; ``running`` is the subset that was
    RUNNING. Instances not present stop counting (they were stopped or never seen).
    """

    def __init__(self) -> None:
        # instance id -> (configuration id, RUNNING at the last observation, its time)
        self._last: dict[str, tuple[str, bool, float]] = {}
        self._seconds: dict[str, float] = {}

    def observe(
        self, present: Mapping[str, str], running: set[str], now: float, covered: set[str] | None
    ) -> None:
        """Take one observation at wall time ``now``.

        ``covered``: the configurations the observation listed (None: all of them); an
        instance of a covered configuration missing from ``present`` is gone.
        """
        for instance_id, configuration_id in present.items():
            is_running = instance_id in running
            self._add(instance_id, is_running, now)
            self._last[instance_id] = (configuration_id, is_running, now)
        for instance_id, (configuration_id, _, _) in list(self._last.items()):
            if instance_id in present:
                continue
            if covered is None or configuration_id in covered:
                self._add(instance_id, False, now)
                del self._last[instance_id]

    def _add(self, instance_id: str, is_running: bool, now: float) -> None:
        last = self._last.get(instance_id)
        if last is None:
            return
        configuration_id, was_running, then = last
        gap = max(0.0, now - then)
        seconds = gap * (int(was_running) + int(is_running)) / 2
        if seconds:
            self._seconds[configuration_id] = self._seconds.get(configuration_id, 0.0) + seconds

    @property
    def seconds(self) -> float:
        """RUNNING seconds integrated so far, all configurations."""
        return sum(self._seconds.values())

    def spend(self, budget: Budget) -> Spend:
        """What was integrated so far, priced at the budget's hourly rate."""
        by_config = dict(self._seconds)
        return Spend(
            seconds=sum(by_config.values()),
            cost=budget.cost(sum(by_config.values())),
            seconds_by_configuration=by_config,
            cost_by_configuration={cfg: budget.cost(s) for cfg, s in by_config.items()},
        )
