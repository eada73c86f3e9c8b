"""A ticket's life: waiting -> called -> served | no_show; waiting -> cancelled; called -> waiting."""

from __future__ import annotations

from datetime import timedelta

import pytest
from domain_builders import T0, make_point, make_ticket

from central.domain import PriorityPolicy, TicketState, call_next, format_number
from central.domain.errors import IllegalTransition, NextupError

LATER = T0 + timedelta(hours=1)

# What each transition needs the ticket to be in, and a way to try it.
TRANSITIONS = {
    "call": ({TicketState.WAITING}, lambda t: t.call(3, LATER)),
    "serve": ({TicketState.CALLED}, lambda t: t.serve(LATER)),
    "no_show": ({TicketState.CALLED}, lambda t: t.no_show(LATER)),
    "cancel": ({TicketState.WAITING}, lambda t: t.cancel(LATER)),
    "recall": ({TicketState.CALLED}, lambda t: t.recall()),
    "transfer": ({TicketState.WAITING, TicketState.CALLED}, lambda t: t.transfer("loans")),
}


def ticket_in(state: TicketState):
    """A ticket brought to ``state`` by the legal path."""
    ticket = make_ticket(1)
    if state is TicketState.WAITING:
        return ticket
    if state is TicketState.CANCELLED:
        return ticket.cancel(T0 + timedelta(minutes=5))
    called = ticket.call(1, T0 + timedelta(minutes=5))
    if state is TicketState.CALLED:
        return called
    if state is TicketState.SERVED:
        return called.serve(T0 + timedelta(minutes=9))
    return called.no_show(T0 + timedelta(minutes=9))


ILLEGAL = [
    (action, state)
    for action, (allowed, _) in TRANSITIONS.items()
    for state in TicketState
    if state not in allowed
]
LEGAL = [(action, state) for action, (allowed, _) in TRANSITIONS.items() for state in allowed]


@pytest.mark.parametrize(("action", "state"), ILLEGAL, ids=[f"{a}-{s}" for a, s in ILLEGAL])
def test_an_illegal_transition_raises_and_leaves_the_ticket_as_it_was(action, state):
    ticket = ticket_in(state)
    before = ticket_in(state)
    with pytest.raises(IllegalTransition) as caught:
        TRANSITIONS[action][1](ticket)
    assert ticket == before
    assert ticket.state is state
    message = str(caught.value)
    assert ticket.number in message
    assert state.value in message
    assert isinstance(caught.value, NextupError) and isinstance(caught.value, ValueError)
    assert caught.value.code == "illegal_transition"


@pytest.mark.parametrize(("action", "state"), LEGAL, ids=[f"{a}-{s}" for a, s in LEGAL])
def test_a_legal_transition_returns_a_new_ticket_and_keeps_the_old_one(action, state):
    ticket = ticket_in(state)
    after = TRANSITIONS[action][1](ticket)
    assert ticket.state is state
    assert after is not ticket
    assert after.number == ticket.number
    assert after.issued_at == ticket.issued_at


def test_serving_a_waiting_ticket_says_it_must_be_called_first():
    with pytest.raises(IllegalTransition, match=r"Cannot serve ticket A-001: it is waiting, not called"):
        make_ticket(1).serve(LATER)


def test_calling_a_called_ticket_is_refused():
    with pytest.raises(IllegalTransition, match=r"Cannot call ticket A-001: it is called, not waiting"):
        ticket_in(TicketState.CALLED).call(2, LATER)


def test_cancelling_a_served_ticket_is_refused():
    with pytest.raises(IllegalTransition, match=r"Cannot cancel ticket A-001: it is served, not waiting"):
        ticket_in(TicketState.SERVED).cancel(LATER)


def test_calling_records_the_point_the_time_and_counts_the_call():
    called = make_ticket(1).call(4, LATER)
    assert (called.state, called.point, called.called_at, called.calls) == (TicketState.CALLED, 4, LATER, 1)


def test_serving_records_when_and_how_long_the_client_was_at_the_point():
    called = make_ticket(1).call(4, LATER)
    served = called.serve(LATER + timedelta(seconds=250))
    assert served.state is TicketState.SERVED
    assert served.finished_at == LATER + timedelta(seconds=250)
    assert served.service_s == 250
    assert served.point == 4


def test_only_a_served_ticket_has_a_service_time():
    assert make_ticket(1).service_s is None
    assert ticket_in(TicketState.NO_SHOW).service_s is None
    assert ticket_in(TicketState.CALLED).service_s is None


def test_no_show_finishes_the_ticket():
    gone = ticket_in(TicketState.CALLED).no_show(LATER)
    assert gone.state is TicketState.NO_SHOW
    assert gone.finished_at == LATER


def test_cancel_finishes_a_waiting_ticket():
    cancelled = make_ticket(1).cancel(LATER)
    assert cancelled.state is TicketState.CANCELLED
    assert cancelled.finished_at == LATER
    assert cancelled.point is None


def test_recall_puts_the_ticket_back_waiting_and_frees_it_from_the_point():
    recalled = make_ticket(1).call(2, LATER).recall()
    assert recalled.state is TicketState.WAITING
    assert recalled.point is None and recalled.called_at is None
    assert recalled.issued_at == make_ticket(1).issued_at
    assert recalled.calls == 1, "a recalled ticket remembers it was called once"


def test_a_recalled_ticket_keeps_its_place_ahead_of_later_tickets():
    first, second, third = make_ticket(1), make_ticket(2), make_ticket(3)
    point = make_point()
    called, _ = call_next(point, [first, second, third], PriorityPolicy(), LATER)
    assert called.number == first.number
    recalled = called.recall()
    again, _ = call_next(point, [second, third, recalled], PriorityPolicy(), LATER + timedelta(minutes=1))
    assert again.number == first.number
    assert again.calls == 2


def test_transfer_moves_the_ticket_to_another_service_and_keeps_its_issue_time():
    called = make_ticket(7).call(1, LATER)
    moved = called.transfer("loans")
    assert moved.service == "loans"
    assert moved.state is TicketState.WAITING
    assert moved.point is None and moved.called_at is None
    assert moved.issued_at == called.issued_at
    assert moved.number == called.number, "the client keeps the number on their slip"


def test_a_transferred_ticket_is_called_before_later_tickets_of_its_new_service():
    old_client = make_ticket(1).call(1, LATER).transfer("loans")
    newcomer = make_ticket(1, service="loans", prefix="L", at=LATER)
    loans_desk = make_point(2, services=("loans",))
    called, _ = call_next(loans_desk, [newcomer, old_client], PriorityPolicy(), LATER + timedelta(minutes=1))
    assert called.number == old_client.number


def test_a_waiting_ticket_can_be_transferred_too():
    assert make_ticket(1).transfer("loans").service == "loans"


def test_a_ticket_read_back_with_plain_strings_behaves_like_one_built_with_enums():
    ticket = make_ticket(1)
    from dataclasses import replace

    stored = replace(ticket, state="called", channel="web", point=1, called_at=LATER)
    assert stored.state is TicketState.CALLED
    assert stored.serve(LATER).state is TicketState.SERVED
    with pytest.raises(IllegalTransition, match="it is called"):
        stored.cancel(LATER)


def test_numbers_are_the_prefix_and_a_three_digit_counter():
    assert format_number("A", 42) == "A-042"
    assert format_number("B", 7) == "B-007"
    assert format_number("CX", 1234) == "CX-1234"
