"""Random days in a hall: whatever sequence of operations, the queue's rules hold.

The harness is a tiny in-memory hall around the domain functions: a list of
tickets, a counter per service and service day (using ``new_ticket``, which
numbers with ``format_number``), the points and each point's ratio state.

Harness rule: like a point unit's "next" button, ``next`` first serves the
ticket the point holds, then calls the next one; if the call is refused
(inactive point, nobody waiting) nothing at all changes, and the point keeps
its ticket.  So a point never holds more than one called ticket.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from central.domain import (
    Channel,
    Point,
    PolicyKind,
    PriorityClass,
    PriorityPolicy,
    Service,
    SiteRules,
    Ticket,
    TicketState,
    call_next,
    new_ticket,
    service_day,
)
from central.domain.errors import IllegalTransition, NothingWaiting, PointInactive, PriorityNotAllowed

BERLIN = ZoneInfo("Europe/Berlin")
# Late evening before Berlin's spring DST change: steps of up to three hours cross midnights and the change.
START = datetime(2025, 3, 29, 20, 0, tzinfo=BERLIN)

SERVICES = {
    "cash": Service(key="cash", name="Cash desk", prefix="A"),
    "loans": Service(key="loans", name="Loans", prefix="L"),
    "cards": Service(key="cards", name="Cards", prefix="C"),
}
CLASSES = (
    PriorityClass(key="paid", name="Paid", rank=0, public=False),
    PriorityClass(key="free", name="Free", rank=1, public=True),
)
SITE = SiteRules(name="Main branch", tz=BERLIN, services=SERVICES, priorities=CLASSES)
POINTS = (
    Point(serial=1, name="Window 1", services=frozenset({"cash"})),
    Point(serial=2, name="Window 2", services=frozenset({"cash", "loans"})),
    Point(serial=3, name="Window 3", services=frozenset({"loans", "cards"})),
)
POLICIES = (
    PriorityPolicy(kind=PolicyKind.STRICT),
    PriorityPolicy(kind=PolicyKind.AGING, aging_after_s=900),
    PriorityPolicy(kind=PolicyKind.RATIO, ratio=(3, 1)),
)

# Which states each transition starts from: written out here, not read from the model.
LEGAL_FROM = {
    "call": {TicketState.WAITING},
    "serve": {TicketState.CALLED},
    "no_show": {TicketState.CALLED},
    "cancel": {TicketState.WAITING},
    "recall": {TicketState.CALLED},
    "transfer": {TicketState.WAITING, TicketState.CALLED},
}

serials = st.sampled_from([p.serial for p in POINTS])
minutes = st.integers(min_value=0, max_value=180)


def fifo(t: Ticket):
    return (t.issued_at, t.seq, t.number)


class Hall(RuleBasedStateMachine):
    @initialize(policy=st.sampled_from(POLICIES))
    def open_hall(self, policy):
        self.policy = policy
        self.now = START
        self.points = {p.serial: p for p in POINTS}
        self.ratio = {p.serial: () for p in POINTS}
        self.tickets: list[Ticket] = []
        self.counters: dict[tuple[str, object], int] = {}
        self.first_seen: dict[str, Ticket] = {}  # token -> the ticket as issued
        self.issuing_service: dict[str, str] = {}  # token -> service it was numbered in

    # --- helpers ---------------------------------------------------------------

    def tick(self, n: int) -> None:
        self.now += timedelta(minutes=n)

    def held_by(self, serial: int) -> int | None:
        held = [i for i, t in enumerate(self.tickets) if t.state is TicketState.CALLED and t.point == serial]
        return held[0] if held else None

    def snapshot(self):
        return (list(self.tickets), dict(self.points), dict(self.ratio), dict(self.counters))

    def put(self, index: int, ticket: Ticket) -> None:
        assert ticket.token == self.tickets[index].token
        self.tickets[index] = ticket

    # --- rules -----------------------------------------------------------------

    @rule(
        service=st.sampled_from(sorted(SERVICES)),
        priority=st.sampled_from([None, "paid", "free"]),
        channel=st.sampled_from(list(Channel)),
        wait=minutes,
    )
    def issue(self, service, priority, channel, wait):
        self.tick(wait)
        before = self.snapshot()
        try:
            svc, cls = SITE.check_can_issue(service, priority, channel, self.now)
        except PriorityNotAllowed:
            assert priority == "paid" and channel is not Channel.KIOSK
            assert self.snapshot() == before
            return
        assert not (priority == "paid" and channel is not Channel.KIOSK)
        key = (svc.key, service_day(self.now, BERLIN))
        self.counters[key] = self.counters.get(key, 0) + 1
        token = f"tok-{len(self.tickets)}"
        ticket = new_ticket(
            SITE, svc, cls, seq=self.counters[key], now=self.now, channel=channel, token=token
        )
        assert ticket.state is TicketState.WAITING
        self.tickets.append(ticket)
        self.first_seen[token] = ticket
        self.issuing_service[token] = svc.key

    @rule(serial=serials, wait=st.integers(min_value=0, max_value=30))
    def next(self, serial, wait):
        self.tick(wait)
        point = self.points[serial]
        candidates = [t for t in self.tickets if t.state is TicketState.WAITING and point.provides(t.service)]
        before = self.snapshot()
        try:
            called, state = call_next(point, self.tickets, self.policy, self.now, self.ratio[serial])
        except PointInactive:
            assert not point.active
            assert self.snapshot() == before
            return
        except NothingWaiting:
            assert point.active and not candidates
            assert self.snapshot() == before
            return
        assert point.active and candidates
        self.check_choice(called, candidates)
        held = self.held_by(serial)
        if held is not None:
            self.put(held, self.tickets[held].serve(self.now))
        index = next(i for i, t in enumerate(self.tickets) if t.token == called.token)
        assert self.tickets[index].state is TicketState.WAITING
        self.put(index, called)
        self.ratio[serial] = state

    def check_choice(self, called: Ticket, candidates: list[Ticket]) -> None:
        assert called.state is TicketState.CALLED and called.called_at == self.now
        chosen = next(t for t in candidates if t.token == called.token)
        # Within its own class a ticket is called first come first served, whatever the policy.
        same_class = [t for t in candidates if t.priority_rank == chosen.priority_rank]
        assert chosen == min(same_class, key=fifo)
        kind = self.policy.kind
        if kind is PolicyKind.STRICT:
            assert chosen == min(candidates, key=lambda t: (t.priority_rank, *fifo(t)))
        elif kind is PolicyKind.AGING:

            def lifted(t: Ticket) -> int:
                periods = int((self.now - t.issued_at).total_seconds() // self.policy.aging_after_s)
                return max(0, t.priority_rank - periods)

            assert chosen == min(candidates, key=lambda t: (lifted(t), *fifo(t)))
        elif len({t.priority_rank for t in candidates}) == 1:
            assert chosen.priority_rank == candidates[0].priority_rank

    @rule(serial=serials, wait=minutes)
    def served(self, serial, wait):
        self.finish(serial, wait, "serve")

    @rule(serial=serials, wait=minutes)
    def no_show(self, serial, wait):
        self.finish(serial, wait, "no_show")

    def finish(self, serial: int, wait: int, how: str) -> None:
        self.tick(wait)
        held = self.held_by(serial)
        if held is None:
            return
        ticket = self.tickets[held]
        after = ticket.serve(self.now) if how == "serve" else ticket.no_show(self.now)
        assert after.state is (TicketState.SERVED if how == "serve" else TicketState.NO_SHOW)
        self.put(held, after)
        assert self.held_by(serial) is None, "the point is free again"

    @rule(serial=serials)
    def recall(self, serial):
        held = self.held_by(serial)
        if held is None:
            return
        ticket = self.tickets[held]
        back = ticket.recall()
        assert back.state is TicketState.WAITING and back.issued_at == ticket.issued_at
        self.put(held, back)

    @precondition(lambda self: self.tickets)
    @rule(pick=st.integers(min_value=0), service=st.sampled_from(sorted(SERVICES)))
    def transfer(self, pick, service):
        index = pick % len(self.tickets)
        ticket = self.tickets[index]
        if ticket.state not in LEGAL_FROM["transfer"]:
            return
        moved = ticket.transfer(service)
        assert (moved.service, moved.state, moved.point) == (service, TicketState.WAITING, None)
        assert moved.issued_at == ticket.issued_at and moved.number == ticket.number
        self.put(index, moved)

    @precondition(lambda self: self.tickets)
    @rule(pick=st.integers(min_value=0), wait=minutes)
    def cancel(self, pick, wait):
        self.tick(wait)
        index = pick % len(self.tickets)
        if self.tickets[index].state is not TicketState.WAITING:
            return
        self.put(index, self.tickets[index].cancel(self.now))

    @precondition(lambda self: self.tickets)
    @rule(pick=st.integers(min_value=0), action=st.sampled_from(sorted(LEGAL_FROM)), serial=serials)
    def illegal(self, pick, action, serial):
        """An operation on a ticket in the wrong state raises and changes nothing."""
        ticket = self.tickets[pick % len(self.tickets)]
        if ticket.state in LEGAL_FROM[action]:
            return
        before = self.snapshot()
        attempt = {
            "call": lambda: ticket.call(serial, self.now),
            "serve": lambda: ticket.serve(self.now),
            "no_show": lambda: ticket.no_show(self.now),
            "cancel": lambda: ticket.cancel(self.now),
            "recall": lambda: ticket.recall(),
            "transfer": lambda: ticket.transfer("cash"),
        }[action]
        try:
            attempt()
        except IllegalTransition as exc:
            assert ticket.number in str(exc) and ticket.state.value in str(exc)
        else:
            raise AssertionError(f"{action} of a {ticket.state.value} ticket was allowed")
        assert self.snapshot() == before

    @rule(serial=serials, active=st.booleans())
    def switch(self, serial, active):
        self.points[serial] = replace(self.points[serial], active=active)

    # --- invariants ---------------------------------------------------------------

    @invariant()
    def each_ticket_is_in_exactly_one_consistent_state(self):
        for t in getattr(self, "tickets", []):
            assert isinstance(t.state, TicketState)
            assert [s for s in TicketState if t.state is s] == [t.state]
            # Served and no-show tickets keep the point that called them, for the statistics.
            at_a_point = t.state in (TicketState.CALLED, TicketState.SERVED, TicketState.NO_SHOW)
            assert (t.point is not None) is at_a_point and (t.called_at is not None) is at_a_point
            finished = t.state in (TicketState.SERVED, TicketState.NO_SHOW, TicketState.CANCELLED)
            assert (t.finished_at is not None) is finished
            if t.state in (TicketState.CALLED, TicketState.SERVED, TicketState.NO_SHOW):
                assert t.calls >= 1

    @invariant()
    def no_ticket_is_with_two_points_and_no_point_holds_two_tickets(self):
        for serial in getattr(self, "points", {}):
            held = [t for t in self.tickets if t.state is TicketState.CALLED and t.point == serial]
            assert len(held) <= 1
        called_points = [t.point for t in getattr(self, "tickets", []) if t.state is TicketState.CALLED]
        assert all(p in self.points for p in called_points)

    @invariant()
    def numbering_has_no_gap_and_no_repeat_per_service_and_day(self):
        numbered: dict[tuple[str, object], list[int]] = {}
        for t in getattr(self, "tickets", []):
            origin = self.issuing_service[t.token]
            assert t.number == f"{SERVICES[origin].prefix}-{t.seq:03d}"
            numbered.setdefault((origin, t.day), []).append(t.seq)
        for key, seqs in numbered.items():
            assert sorted(seqs) == list(range(1, len(seqs) + 1)), key
            assert self.counters[key] == len(seqs)

    @invariant()
    def a_ticket_keeps_its_number_issue_time_and_local_day(self):
        for t in getattr(self, "tickets", []):
            first = self.first_seen[t.token]
            assert (t.number, t.seq, t.issued_at, t.day) == (
                first.number,
                first.seq,
                first.issued_at,
                first.day,
            )
            assert t.day == service_day(t.issued_at, BERLIN)


Hall.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestHall = Hall.TestCase
