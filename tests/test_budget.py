"""Budgets and the spend meter, pure: validation, the launch check, trapezoid integration."""

from __future__ import annotations

import pytest

import streamrun_async as sr
from streamrun_async.guard import Meter, check_launch


@pytest.mark.parametrize(
    "kwargs",
    [
        {"hourly_rate": -1},
        {"hourly_rate": float("inf")},
        {"max_running": 0},
        {"max_spend": 0},
        {"max_spend": -3.0},
        {"warn_at": 0},
        {"warn_at": 1.5},
        {"on_breach": "explode"},
    ],
)
def test_budget_refuses_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(sr.InvalidArgumentError):
        sr.Budget(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs", [{"max_running": 2.5}, {"hourly_rate": "0.39"}, {"warn_at": True}]
)
def test_budget_refuses_bad_types(kwargs: dict[str, object]) -> None:
    with pytest.raises(sr.InvalidArgumentTypeError):
        sr.Budget(**kwargs)  # type: ignore[arg-type]


def test_cost_is_seconds_at_the_hourly_rate() -> None:
    assert sr.Budget(hourly_rate=0.36).cost(3600) == pytest.approx(0.36)
    assert sr.Budget().cost(1800) == pytest.approx(0.195)


BUDGET = sr.Budget(max_running=3, max_spend=1.0)


@pytest.mark.parametrize(
    ("running", "launching", "spent", "committed", "launch_cost", "refused"),
    [
        (0, 3, 0.0, 0.0, 0.0, None),
        (2, 1, 0.0, 0.0, 0.0, None),
        (2, 2, 0.0, 0.0, 0.0, "max_running"),
        (0, 1, 0.5, 0.2, 0.3, None),  # exactly what is left
        (0, 1, 0.5, 0.2, 0.31, "max_spend"),
        (0, 1, 1.0, 0.0, 0.0, "max_spend"),  # nothing left, even for a launch without ttl
        (0, 1, 0.9, 0.0, 0.0, None),
    ],
)
def test_check_launch(
    running: int,
    launching: int,
    spent: float,
    committed: float,
    launch_cost: float,
    refused: str | None,
) -> None:
    kwargs = {
        "running": running,
        "launching": launching,
        "spent": spent,
        "committed": committed,
        "launch_cost": launch_cost,
    }
    if refused is None:
        check_launch(BUDGET, **kwargs)  # type: ignore[arg-type]
        return
    with pytest.raises(sr.BudgetExceededError) as caught:
        check_launch(BUDGET, **kwargs)  # type: ignore[arg-type]
    assert caught.value.limit == refused


def test_no_limits_never_refuse() -> None:
    check_launch(
        sr.Budget(), running=10**6, launching=10**6, spent=10**6, committed=0, launch_cost=1
    )


# -- the meter ---------------------------------------------------------------------------


def feed(meter: Meter, timeline: list[tuple[float, dict[str, bool]]]) -> None:
    for at, states in timeline:
        present = dict.fromkeys(states, "cfg-1")
        meter.observe(present, {i for i, running in states.items() if running}, at, None)


def test_running_throughout_counts_every_second() -> None:
    meter = Meter()
    feed(meter, [(0, {"i": True}), (10, {"i": True}), (25, {"i": True})])
    assert meter.seconds == 25


def test_a_start_or_stop_between_observations_counts_half_the_gap() -> None:
    meter = Meter()
    # Queued at 0, running at 10 (it started somewhere in between), gone at 40.
    feed(meter, [(0, {"i": False}), (10, {"i": True}), (30, {"i": True}), (40, {})])
    assert meter.seconds == 5 + 20 + 5


def test_error_stays_within_one_observation_interval() -> None:
    # RUNNING exactly from 3.3 to 47.9, observed every 2 s: the bill is 44.6 s.
    meter = Meter()
    timeline = [(float(t), {"i": 3.3 <= t < 47.9} if t < 47.9 else {}) for t in range(0, 60, 2)]
    feed(meter, timeline)
    assert abs(meter.seconds - 44.6) <= 2


def test_a_list_of_other_configurations_does_not_end_an_instance() -> None:
    meter = Meter()
    meter.observe({"i": "cfg-1"}, {"i"}, 0, None)
    meter.observe({}, set(), 10, {"cfg-2"})  # listed cfg-2 only: i is not known absent
    meter.observe({"i": "cfg-1"}, {"i"}, 20, {"cfg-1"})
    assert meter.seconds == 20


def test_spend_is_per_configuration() -> None:
    meter = Meter()
    meter.observe({"a": "cfg-1", "b": "cfg-2"}, {"a", "b"}, 0, None)
    meter.observe({"a": "cfg-1", "b": "cfg-2"}, {"a", "b"}, 3600, None)
    meter.observe({"a": "cfg-1"}, {"a"}, 7200, None)
    spend = meter.spend(sr.Budget(hourly_rate=0.5))
    assert spend.seconds_by_configuration == {"cfg-1": 7200, "cfg-2": 3600 + 1800}
    assert spend.cost_by_configuration["cfg-1"] == pytest.approx(1.0)
    assert spend.cost == pytest.approx(1.0 + 0.75)
