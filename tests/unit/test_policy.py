"""The priority policies: strict, aging and ratio."""

from __future__ import annotations

from datetime import timedelta

import pytest
from domain_builders import FREE, PAID, T0, make_ticket

from central.domain import PolicyKind, PriorityPolicy
from central.domain.errors import NothingWaiting

STRICT = PriorityPolicy(kind=PolicyKind.STRICT)
AGING = PriorityPolicy(kind=PolicyKind.AGING, aging_after_s=600)
RATIO = PriorityPolicy(kind=PolicyKind.RATIO, ratio=(3, 1))


def long_queue(paid: int, free: int):
    """``paid`` and ``free`` tickets, interleaved so that the free ones came first."""
    tickets = [make_ticket(n, rank=FREE) for n in range(1, free + 1)]
    tickets += [make_ticket(100 + n, rank=PAID, prefix="P") for n in range(1, paid + 1)]
    return tickets


def picks(policy, waiting, now, n, state=()):
    """The classes of the next ``n`` calls, removing each called ticket."""
    waiting = list(waiting)
    out = []
    for _ in range(n):
        chosen, state = policy.pick(waiting, now, state)
        waiting.remove(chosen)
        out.append("P" if chosen.priority_rank == PAID else "F")
    return "".join(out), state


def test_pick_with_nobody_waiting_raises_nothing_waiting():
    for policy in (STRICT, AGING, RATIO):
        with pytest.raises(NothingWaiting):
            policy.pick([], T0)


# --- strict -------------------------------------------------------------------


def test_strict_calls_every_higher_class_ticket_first_however_long_the_lower_waited():
    now = T0 + timedelta(days=1)
    sequence, _ = picks(STRICT, long_queue(paid=3, free=3), now, 6)
    assert sequence == "PPPFFF"


def test_strict_is_first_come_first_served_within_a_class():
    waiting = [make_ticket(5), make_ticket(2), make_ticket(9)]
    chosen, _ = STRICT.pick(waiting, T0 + timedelta(hours=1))
    assert chosen.number == "A-002"


def test_same_issue_time_falls_back_to_the_counter():
    at = T0 + timedelta(minutes=1)
    waiting = [make_ticket(8, at=at), make_ticket(3, at=at)]
    chosen, _ = STRICT.pick(waiting, at)
    assert chosen.seq == 3


def test_the_default_policy_is_strict():
    assert PriorityPolicy().kind is PolicyKind.STRICT


# --- aging --------------------------------------------------------------------


def test_aging_a_free_ticket_just_short_of_the_limit_still_yields_to_paid():
    free = make_ticket(1, rank=FREE, at=T0)
    paid = make_ticket(2, rank=PAID, prefix="P", at=T0 + timedelta(seconds=60))
    now = T0 + timedelta(seconds=599)
    chosen, _ = AGING.pick([free, paid], now)
    assert chosen is paid
    assert AGING.effective_rank(free, now) == FREE


def test_aging_a_free_ticket_waiting_longer_than_the_limit_goes_before_a_later_paid_one():
    free = make_ticket(1, rank=FREE, at=T0)
    paid = make_ticket(2, rank=PAID, prefix="P", at=T0 + timedelta(seconds=60))
    now = T0 + timedelta(seconds=601)
    chosen, _ = AGING.pick([free, paid], now)
    assert chosen is free
    assert AGING.effective_rank(free, now) == PAID


def test_aging_an_aged_free_ticket_still_goes_after_a_paid_one_that_came_earlier():
    paid = make_ticket(1, rank=PAID, prefix="P", at=T0)
    free = make_ticket(2, rank=FREE, at=T0 + timedelta(seconds=1))
    chosen, _ = AGING.pick([free, paid], T0 + timedelta(hours=2))
    assert chosen is paid


def test_aging_lifts_one_class_per_period_and_never_above_the_top():
    third = make_ticket(1, rank=2, at=T0)
    assert AGING.effective_rank(third, T0 + timedelta(seconds=599)) == 2
    assert AGING.effective_rank(third, T0 + timedelta(seconds=601)) == 1
    assert AGING.effective_rank(third, T0 + timedelta(seconds=1201)) == 0
    assert AGING.effective_rank(third, T0 + timedelta(days=3)) == 0


def test_aging_a_ticket_from_the_future_is_not_lowered():
    ticket = make_ticket(1, rank=FREE, at=T0 + timedelta(hours=1))
    assert AGING.effective_rank(ticket, T0) == FREE


def test_strict_ignores_how_long_a_ticket_waited():
    assert STRICT.effective_rank(make_ticket(1, rank=FREE, at=T0), T0 + timedelta(days=1)) == FREE


def test_aging_needs_a_positive_period():
    with pytest.raises(ValueError, match="aging_after_s"):
        PriorityPolicy(kind=PolicyKind.AGING, aging_after_s=0)


# --- ratio --------------------------------------------------------------------


def test_ratio_three_to_one_calls_free_every_fourth_time():
    sequence, _ = picks(RATIO, long_queue(paid=12, free=4), T0 + timedelta(hours=1), 16)
    assert sequence == "PPPF" * 4


def test_ratio_calls_the_other_class_when_one_is_empty():
    sequence, _ = picks(RATIO, long_queue(paid=0, free=5), T0 + timedelta(hours=1), 5)
    assert sequence == "FFFFF"
    sequence, _ = picks(RATIO, long_queue(paid=5, free=0), T0 + timedelta(hours=1), 5)
    assert sequence == "PPPPP"


def test_ratio_turns_to_paid_again_once_the_free_run_out():
    sequence, _ = picks(RATIO, long_queue(paid=8, free=1), T0 + timedelta(hours=1), 9)
    assert sequence == "PPPFPPPPP"


def test_ratio_is_first_come_first_served_within_a_class():
    waiting = long_queue(paid=3, free=3)
    now = T0 + timedelta(hours=1)
    state = ()
    order = []
    for _ in range(6):
        chosen, state = RATIO.pick(waiting, now, state)
        waiting.remove(chosen)
        order.append(chosen.number)
    assert order == ["P-101", "P-102", "P-103", "A-001", "A-002", "A-003"]


def test_ratio_state_carries_the_cycle_from_one_call_to_the_next():
    waiting = long_queue(paid=5, free=5)
    now = T0 + timedelta(hours=1)
    first, state = picks(RATIO, waiting, now, 2)
    assert (first, state) == ("PP", (2, 0))
    # The next call, with the state carried over, continues the same cycle.
    waiting = [t for t in waiting if t.number not in ("P-101", "P-102")]
    rest, state = picks(RATIO, waiting, now, 2, state)
    assert rest == "PF"
    assert state == (3, 1)


def test_ratio_call_order_matches_the_repeated_picks():
    now = T0 + timedelta(hours=1)
    for paid, free, state in [(12, 4, ()), (7, 9, ()), (2, 6, (2, 0)), (10, 1, (3, 0)), (0, 3, ())]:
        waiting = long_queue(paid=paid, free=free)
        order = RATIO.call_order(waiting, now, state)
        remaining, picked = list(waiting), []
        s = state
        while remaining:
            chosen, s = RATIO.pick(remaining, now, s)
            remaining.remove(chosen)
            picked.append(chosen)
        assert order == picked, (paid, free, state)


@pytest.mark.parametrize("policy", [STRICT, AGING], ids=["strict", "aging"])
def test_call_order_matches_the_repeated_picks(policy):
    waiting = [make_ticket(n, rank=n % 2, at=T0 + timedelta(minutes=7 * n)) for n in range(1, 12)]
    now = T0 + timedelta(minutes=60)
    remaining, picked = list(waiting), []
    while remaining:
        chosen, _ = policy.pick(remaining, now)
        remaining.remove(chosen)
        picked.append(chosen)
    assert policy.call_order(waiting, now) == picked


def test_ratio_counts_extra_classes_with_the_lowest_share():
    third = make_ticket(1, rank=2, at=T0)
    free = make_ticket(2, rank=FREE, at=T0 + timedelta(minutes=1))
    order = RATIO.call_order([free, third], T0 + timedelta(hours=1))
    assert [t.number for t in order] == ["A-001", "A-002"], "both count as 'free': first come first served"


def test_ratio_needs_a_positive_share_for_every_class():
    with pytest.raises(ValueError, match="ratio"):
        PriorityPolicy(kind=PolicyKind.RATIO, ratio=())
    with pytest.raises(ValueError, match="ratio"):
        PriorityPolicy(kind=PolicyKind.RATIO, ratio=(3, 0))


def test_a_policy_named_by_a_plain_string_behaves_as_that_policy():
    from_site_file = PriorityPolicy(kind="ratio", ratio=[3, 1])
    assert from_site_file == RATIO
    sequence, _ = picks(from_site_file, long_queue(paid=6, free=2), T0, 8)
    assert sequence == "PPPFPPPF"


def test_an_unknown_policy_name_is_refused():
    with pytest.raises(ValueError, match="fastest"):
        PriorityPolicy(kind="fastest")


@pytest.mark.parametrize("policy", [STRICT, AGING], ids=["strict", "aging"])
def test_counting_by_class_and_time_finds_the_people_ahead_of_a_new_ticket(policy):
    # Three classes, issued over two hours: the new ticket's place in the full call order must be
    # what counting each class's tickets up to its cut-off time gives.
    waiting = [make_ticket(n, rank=n % 3, at=T0 + timedelta(minutes=9 * n)) for n in range(1, 14)]
    now = T0 + timedelta(hours=2)
    for new_rank in (0, 1, 2):
        new = make_ticket(99, rank=new_rank, at=now)
        place = policy.call_order([*waiting, new], now).index(new)
        counted = 0
        for ticket in waiting:
            cutoff = policy.called_before_new(new_rank, ticket.priority_rank, now)
            counted += cutoff is not None and ticket.issued_at <= cutoff
        assert counted == place, new_rank


def test_the_ratio_policy_cannot_count_by_time():
    assert not RATIO.orders_by_time
    with pytest.raises(ValueError):
        RATIO.called_before_new(0, 1, T0)


@pytest.mark.parametrize("ratio", [(3, 1), (1, 1), (2, 3, 1), (5,)])
def test_ratio_place_of_a_new_ticket_matches_the_call_order(ratio):
    policy = PriorityPolicy(kind=PolicyKind.RATIO, ratio=ratio)
    now = T0 + timedelta(hours=3)
    queues = [(0, 0, 0), (7, 0, 2), (0, 5, 0), (12, 4, 9), (1, 1, 1), (30, 2, 0), (2, 30, 5), (4, 0, 40)]
    for counts in queues:
        waiting = [
            make_ticket(100 * rank + n, rank=rank, at=T0 + timedelta(seconds=37 * n + rank))
            for rank, count in enumerate(counts)
            for n in range(1, count + 1)
        ]
        for new_rank in range(3):
            new = make_ticket(999, rank=new_rank, at=now)
            expected = policy.call_order([*waiting, new], now).index(new)
            by_class = {rank: count for rank, count in enumerate(counts)}
            assert policy.ratio_place_of_new(by_class, new_rank) == expected, (counts, new_rank)
