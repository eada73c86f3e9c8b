"""Calling the next ticket to a point, how many are ahead, and how long the wait is."""

from __future__ import annotations

from datetime import timedelta

import pytest
from domain_builders import FREE, PAID, T0, make_point, make_ticket

from central.domain import PolicyKind, PriorityPolicy, TicketState, call_next, estimate_wait_s, people_ahead
from central.domain.errors import IllegalTransition, NothingWaiting, PointInactive
from central.domain.queue import DEFAULT_SERVICE_S

NOW = T0 + timedelta(hours=1)
STRICT = PriorityPolicy()


def test_an_inactive_point_cannot_call():
    waiting = [make_ticket(1)]
    with pytest.raises(PointInactive, match="Window 1 is inactive"):
        call_next(make_point(active=False), waiting, STRICT, NOW)
    assert waiting == [make_ticket(1)]


def test_point_inactive_is_an_illegal_transition():
    assert issubclass(PointInactive, IllegalTransition)
    assert PointInactive.code == "point_inactive"


def test_nothing_waiting_for_the_points_services_is_reported():
    others = [make_ticket(1, service="loans", prefix="L")]
    with pytest.raises(NothingWaiting, match="Nobody is waiting for the services of Window 1"):
        call_next(make_point(services=("cash",)), others, STRICT, NOW)


def test_nothing_waiting_when_the_queue_is_empty():
    with pytest.raises(NothingWaiting):
        call_next(make_point(), [], STRICT, NOW)


def test_tickets_that_are_not_waiting_are_never_called():
    finished = [
        make_ticket(1).call(2, NOW),
        make_ticket(2).cancel(NOW),
        make_ticket(3).call(2, NOW).serve(NOW),
        make_ticket(4).call(2, NOW).no_show(NOW),
    ]
    with pytest.raises(NothingWaiting):
        call_next(make_point(), finished, STRICT, NOW)


def test_the_called_ticket_belongs_to_the_point():
    called, _ = call_next(make_point(5), [make_ticket(1)], STRICT, NOW)
    assert (called.state, called.point, called.called_at) == (TicketState.CALLED, 5, NOW)


def test_first_come_first_served_within_a_class():
    waiting = [make_ticket(3), make_ticket(1), make_ticket(2)]
    point = make_point()
    order = []
    for _ in range(3):
        called, _ = call_next(point, waiting, STRICT, NOW)
        order.append(called.number)
        waiting = [called if t.number == called.number else t for t in waiting]
    assert order == ["A-001", "A-002", "A-003"]


def test_a_point_with_several_services_calls_the_earliest_of_all_of_them():
    cash = make_ticket(1, service="cash", at=T0 + timedelta(minutes=10))
    loans = make_ticket(1, service="loans", prefix="L", at=T0 + timedelta(minutes=5))
    cards = make_ticket(1, service="cards", prefix="C", at=T0 + timedelta(minutes=20))
    point = make_point(services=("cash", "loans", "cards"))
    called, _ = call_next(point, [cash, loans, cards], STRICT, NOW)
    assert called.number == "L-001"


def test_a_point_ignores_services_it_does_not_provide():
    loans = make_ticket(1, service="loans", prefix="L", at=T0)
    cash = make_ticket(1, service="cash", at=T0 + timedelta(minutes=30))
    called, _ = call_next(make_point(services=("cash",)), [loans, cash], STRICT, NOW)
    assert called.number == "A-001"


def test_call_next_passes_the_ratio_state_on():
    policy = PriorityPolicy(kind=PolicyKind.RATIO, ratio=(3, 1))
    waiting = [make_ticket(1, rank=PAID), make_ticket(2, rank=FREE)]
    _, state = call_next(make_point(), waiting, policy, NOW)
    assert state == (1, 0)
    _, state = call_next(make_point(), waiting, policy, NOW, (3, 0))
    assert state == (3, 1)


# --- people ahead -------------------------------------------------------------


def test_people_ahead_counts_the_waiting_tickets_of_the_same_service_called_before():
    waiting = [make_ticket(n) for n in range(1, 6)]
    assert [people_ahead(t, waiting, STRICT, NOW) for t in waiting] == [0, 1, 2, 3, 4]


def test_people_ahead_ignores_other_services_and_tickets_no_longer_waiting():
    mine = make_ticket(5)
    others = [
        make_ticket(1, service="loans", prefix="L"),
        make_ticket(2).call(1, NOW),
        make_ticket(3).cancel(NOW),
        make_ticket(4),
    ]
    assert people_ahead(mine, [*others, mine], STRICT, NOW) == 1


def test_people_ahead_counts_a_higher_class_that_came_later():
    mine = make_ticket(1, rank=FREE)
    paid = make_ticket(2, rank=PAID)
    assert people_ahead(mine, [mine, paid], STRICT, NOW) == 1
    assert people_ahead(paid, [mine, paid], STRICT, NOW) == 0


def test_people_ahead_of_a_new_ticket_not_yet_in_the_list():
    waiting = [make_ticket(1), make_ticket(2)]
    assert people_ahead(make_ticket(3), waiting, STRICT, NOW) == 2


def test_nobody_is_ahead_of_a_ticket_that_is_no_longer_waiting():
    called = make_ticket(3).call(1, NOW)
    assert people_ahead(called, [make_ticket(1), make_ticket(2), called], STRICT, NOW) == 0


# --- estimated wait -------------------------------------------------------------


def test_without_recent_service_times_the_default_is_assumed():
    assert estimate_wait_s(1, [], 1) == DEFAULT_SERVICE_S
    assert estimate_wait_s(2, [], 1, default_service_s=60) == 120


def test_the_wait_is_the_mean_recent_service_time_per_round():
    assert estimate_wait_s(3, [100, 200, 300], 1) == 600


def test_several_active_points_work_through_the_people_ahead_in_parallel():
    assert estimate_wait_s(4, [120], 2) == 240
    assert estimate_wait_s(5, [120], 2) == 360, "a fifth person needs a third round"
    assert estimate_wait_s(6, [], 3) == 2 * DEFAULT_SERVICE_S


def test_nobody_ahead_means_no_wait():
    assert estimate_wait_s(0, [100], 2) == 0


def test_no_active_point_is_counted_as_one_rather_than_dividing_by_zero():
    assert estimate_wait_s(2, [50], 0) == 100
