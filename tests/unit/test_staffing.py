"""Erlang C against values worked by hand and in the textbooks, and its behaviour at the edges."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from central.domain.staffing import (
    erlang_c,
    is_stable,
    mean_wait_s,
    required_points,
    wait_exceeds,
)


def test_one_point_waits_with_the_probability_of_being_busy() -> None:
    # M/M/1: a client waits exactly when the point is busy, which it is a of the time.
    for a in (0.1, 0.5, 0.9):
        assert erlang_c(1, a) == pytest.approx(a)


def test_two_points_match_the_closed_form() -> None:
    # For c = 2 the formula reduces to a^2 / (2 + a).
    for a in (0.3, 1.0, 1.7):
        assert erlang_c(2, a) == pytest.approx(a * a / (2 + a))


def test_three_points_at_two_erlangs_wait_four_ninths_of_the_time() -> None:
    assert erlang_c(3, 2.0) == pytest.approx(4 / 9)


def test_textbook_hall_of_ten_assistants() -> None:
    # 120 clients an hour, 3 minutes each, 10 assistants: "the probability of waiting is about 0.10".
    assert erlang_c(10, 120 / 60 * 3) == pytest.approx(0.1013, abs=1e-4)


def test_call_centre_example_of_fifty_five_agents() -> None:
    # The classic worked example: 360 calls per half hour of 240 s each, 55 agents, 15 s target:
    # 48 Erlangs, probability of waiting 23.87 %, average speed of answer 8.2 s, service level 84.6 %.
    arrival = 360 / 1800
    assert erlang_c(55, arrival * 240) == pytest.approx(0.2387, abs=1e-4)
    assert mean_wait_s(55, arrival, 240) == pytest.approx(8.18, abs=0.01)
    assert 1 - wait_exceeds(55, arrival, 240, 15) == pytest.approx(0.846, abs=1e-3)


def test_large_sites_do_not_overflow() -> None:
    value = erlang_c(500, 480.0)
    assert 0 < value < 1


def test_nobody_waits_when_nobody_comes() -> None:
    assert erlang_c(3, 0.0) == 0.0
    assert wait_exceeds(3, 0.0, 120, 0) == 0.0


def test_unstable_load_means_everyone_waits_without_end() -> None:
    assert not is_stable(2, 2.0)
    assert not is_stable(2, 3.5)
    assert is_stable(3, 2.0)
    assert erlang_c(2, 2.0) == 1.0
    assert erlang_c(2, 5.0) == 1.0
    assert wait_exceeds(2, 1 / 60, 180, 300) == 1.0
    assert mean_wait_s(2, 1 / 60, 180) == math.inf


@given(
    c=st.integers(1, 40),
    utilisation=st.floats(0.01, 0.99),
    service_s=st.floats(10, 3600),
    t1=st.floats(0, 3600),
    t2=st.floats(0, 3600),
)
def test_the_chance_of_a_long_wait_falls_as_the_target_grows(
    c: int, utilisation: float, service_s: float, t1: float, t2: float
) -> None:
    arrival = utilisation * c / service_s
    short, long = sorted((t1, t2))
    p_short = wait_exceeds(c, arrival, service_s, short)
    p_long = wait_exceeds(c, arrival, service_s, long)
    assert 0 <= p_long <= p_short <= 1
    assert p_short <= erlang_c(c, arrival * service_s) + 1e-12


@given(a=st.floats(0.05, 60), c=st.integers(1, 80))
def test_more_points_never_make_waiting_likelier(a: float, c: int) -> None:
    assert erlang_c(c + 1, a) <= erlang_c(c, a) + 1e-12


def test_required_points_grow_with_the_arrival_rate() -> None:
    service_s, target_s = 240.0, 300.0
    needed = [required_points(per_hour / 3600, service_s, target_s, 0.9).points
              for per_hour in range(0, 400, 10)]
    assert needed[0] == 0
    assert needed == sorted(needed)
    assert needed[-1] > needed[1] > 0


def test_required_points_are_the_fewest_that_reach_the_share() -> None:
    arrival, service_s, target_s = 30 / 3600, 300.0, 60.0  # 2.5 Erlangs
    advice = required_points(arrival, service_s, target_s, 0.9)
    c = advice.points
    assert advice.load == pytest.approx(2.5)
    assert 1 - wait_exceeds(c, arrival, service_s, target_s) >= 0.9
    assert 1 - wait_exceeds(c - 1, arrival, service_s, target_s) < 0.9
    assert advice.within_target == pytest.approx(1 - wait_exceeds(c, arrival, service_s, target_s))


def test_required_points_always_keep_up_with_the_load() -> None:
    # With a generous target the share is reached as soon as the queue is stable, never before.
    advice = required_points(2 / 60, 90.0, 3600.0, 0.5)  # 3 Erlangs
    assert advice.points == 4


def test_a_stricter_share_needs_at_least_as_many_points() -> None:
    arrival, service_s = 100 / 3600, 180.0
    counts = [required_points(arrival, service_s, 120, share).points for share in (0.5, 0.8, 0.9, 0.95, 0.99)]
    assert counts == sorted(counts)
    assert counts[-1] > counts[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-1.0, 120.0, 300.0, 0.9), "arrival rate"),
        ((0.01, 0.0, 300.0, 0.9), "service time"),
        ((0.01, math.nan, 300.0, 0.9), "service time"),
        ((0.01, 120.0, -5.0, 0.9), "target wait"),
        ((0.01, 120.0, 300.0, 1.0), "between 0 and 1"),
        ((0.01, 120.0, 300.0, 0.0), "between 0 and 1"),
    ],
)
def test_bad_numbers_are_refused_with_a_reason(args: tuple[float, float, float, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        required_points(*args)


def test_zero_points_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        erlang_c(0, 0.5)
