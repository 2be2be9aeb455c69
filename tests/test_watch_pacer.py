"""The pacer, as tables on given times: floor, growth, budget, Retry-After, failures."""

from __future__ import annotations

import pytest

import streamrun_async as sr
from streamrun_async.watch import Pacer, PollPolicy


def error(status: int, retry_after: float | None = None) -> sr.APIStatusError:
    cls = {429: sr.RateLimitError, 401: sr.AuthenticationError}.get(status, sr.ServerError)
    return cls("x", method="GET", url="/", status=status, retry_after=retry_after)


def test_min_interval_is_a_floor_even_for_an_urgent_wake() -> None:
    pacer = Pacer(PollPolicy(min_interval=2, max_interval=10, requests_per_second=100))
    assert pacer.next_list_at() == float("-inf")  # the first list goes at once
    pacer.listing(5.0)
    pacer.urgent = True  # a new waiter the snapshot could not answer
    assert pacer.next_list_at() == 7.0


def test_intervals_grow_with_jitter_up_to_max_and_snap_back_on_change() -> None:
    draws = iter([0.0, 1.0, 0.5, 0.5, 0.5, 0.5])
    pacer = Pacer(PollPolicy(min_interval=1, max_interval=4, growth=2), rng=lambda: next(draws))
    pacer.after_tick(changed=False, backlog=False)
    assert pacer.interval == pytest.approx(1.8)  # x2, jitter -10%
    pacer.after_tick(changed=False, backlog=False)
    assert pacer.interval == pytest.approx(3.96)  # x2, jitter +10%
    pacer.after_tick(changed=False, backlog=False)
    assert pacer.interval == 4  # capped
    pacer.after_tick(changed=True, backlog=False)
    assert pacer.interval == 1
    pacer.after_tick(changed=False, backlog=True)  # fetches waiting for budget
    assert pacer.interval == 1


def test_the_budget_caps_fetches_per_tick_and_refills_at_the_rate() -> None:
    pacer = Pacer(PollPolicy(min_interval=1, requests_per_second=5))
    assert pacer.capacity == 5
    pacer.listing(0.0)
    assert pacer.grant(0.0, 300) == 4  # one min_interval's worth, less the list call
    assert pacer.grant(0.0, 300) == 0
    assert pacer.grant(0.4, 300) == 2
    pacer.listing(1.0)
    assert pacer.grant(1.0, 300) == 2


def test_a_tiny_budget_still_allows_one_call_and_spaces_lists() -> None:
    pacer = Pacer(PollPolicy(min_interval=0.01, max_interval=0.01, requests_per_second=2))
    assert pacer.capacity == 1
    pacer.listing(0.0)
    assert pacer.next_list_at() == pytest.approx(0.5)  # budget, not the interval, decides


@pytest.mark.parametrize("listing", [True, False])
def test_retry_after_holds_back_every_call(listing: bool) -> None:
    pacer = Pacer(PollPolicy(min_interval=1, requests_per_second=100))
    pacer.listing(0.0)
    pacer.failed(0.0, error(503, retry_after=5), listing=listing)
    assert pacer.next_list_at() == 5.0
    assert pacer.grant(4.9, 10) == 0
    assert pacer.grant(5.0, 10) == 10


def test_a_429_without_retry_after_backs_off() -> None:
    pacer = Pacer(PollPolicy(min_interval=1, max_interval=10, requests_per_second=100))
    pacer.listing(0.0)
    pacer.failed(0.0, error(429), listing=False)
    assert pacer.interval == 2
    assert pacer.blocked_until == 2


def test_failures_are_a_streak_ended_by_a_success() -> None:
    pacer = Pacer(PollPolicy(give_up_after=120))
    first = error(500)
    pacer.failed(10.0, first, listing=True)
    pacer.failed(100.0, error(502), listing=True)
    assert pacer.failing() is not first
    assert not pacer.given_up(129.9)
    assert pacer.given_up(130.0)
    pacer.after_tick(changed=False, backlog=False)
    assert pacer.failing() is None
    assert not pacer.given_up(1000.0)


@pytest.mark.parametrize(
    ("status", "listing", "permanent"),
    [
        (401, True, True),
        (403, False, True),
        (404, True, True),  # the list itself is gone
        (404, False, False),  # a request's 404 is judged with its grace
        (400, True, True),
        (408, True, False),
        (429, True, False),
        (500, True, False),
        (503, False, False),
    ],
)
def test_which_errors_no_later_poll_can_cure(status: int, listing: bool, permanent: bool) -> None:
    from streamrun_async.watch._pacer import is_permanent

    failure = sr.APIStatusError("x", method="GET", url="/", status=status)
    assert is_permanent(failure, listing=listing) is permanent
    assert not is_permanent(sr.APIConnectionError("down", method="GET", url="/"), listing=True)


@pytest.mark.parametrize(
    "options",
    [
        {"min_interval": 0},
        {"min_interval": 5, "max_interval": 1},
        {"growth": 0.5},
        {"requests_per_second": -1},
        {"absence_grace": -1},
        {"give_up_after": 0},
        {"min_interval": True},
    ],
)
def test_poll_policy_refuses_nonsense(options: dict[str, float]) -> None:
    with pytest.raises(sr.InvalidArgumentError):
        sr.PollPolicy(**options)


def test_poll_policy_defaults() -> None:
    policy = sr.PollPolicy()
    assert (policy.absence_grace, policy.give_up_after) == (3.0, 120.0)
