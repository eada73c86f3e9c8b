"""Numbers leased to kiosks and the tickets they print offline, through the coordinator and a real database.

SQLite and PostgreSQL alike; the clock is the test's, the site is in Berlin so
that the site's day and the UTC day differ around midnight.
"""

from __future__ import annotations

import random
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from central import leases
from central.coordinator import Coordinator
from central.domain import Channel
from central.domain.errors import NotPermitted, UnknownDevice
from central.leases import accept_offline_ticket, grant_leases, issue_time
from central.store.models import DayCounterRow, NumberLeaseRow, TicketEventRow, TicketRow
from nextup.contract import LeaseRequest, NumberLease, OfflineTicket

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo-site.toml"
SIZE = 10


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def utc(day: int, hhmm: str) -> datetime:
    hour, minute = (int(x) for x in hhmm.split(":"))
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(leases, "LEASE_SIZE", SIZE)


@pytest.fixture
def clock() -> Clock:
    return Clock(utc(10, "07:00"))  # 08:00 in Berlin


@pytest.fixture
def coordinator(database_url: str, make_store: Any, tmp_path: Path, clock: Clock) -> Coordinator:
    site = tmp_path / "berlin.toml"
    site.write_text(DEMO.read_text().replace('timezone = "UTC"', 'timezone = "Europe/Berlin"'))
    return Coordinator(make_store(database_url, site), clock=clock)


@pytest.fixture
def published(coordinator: Coordinator) -> list[Any]:
    messages: list[Any] = []
    coordinator.add_listener(messages.extend)
    return messages


def lease(coordinator: Coordinator, *services: str) -> NumberLease:
    return grant_leases(coordinator, "kiosk-1", LeaseRequest(list(services)))


def offline(block: Any, seq: int, at: datetime, **fields: Any) -> OfflineTicket:
    return OfflineTicket(request_id=uuid.uuid4().hex, lease=block.id, service=block.service,
                         number=f"{block.prefix}-{seq:03d}", seq=seq, day=block.day, issued_at=at.isoformat(),
                         token=secrets.token_urlsafe(24), printed=True, **fields)


def tickets(coordinator: Coordinator) -> list[tuple[str, str, datetime]]:
    with coordinator.store.read() as s:
        rows = s.scalars(select(TicketRow).order_by(TicketRow.id))
        return [(r.number, r.state, r.issued_at) for r in rows]


def call_order(coordinator: Coordinator, service: str = "cash") -> list[str]:
    """The waiting tickets of ``service`` in the order points would call them."""
    with coordinator.store.read() as s:
        rules = coordinator.rules(s)
        waiting = s.scalars(select(TicketRow).where(TicketRow.state == "waiting")).all()
        mine = [t for t in waiting if t.service.key == service]
        return [t.number for t in rules.policy.call_order(mine, coordinator.clock())]


# --- granting -----------------------------------------------------------------------------


def test_a_lease_takes_its_block_from_the_day_counter_so_no_other_ticket_gets_those_numbers(coordinator):
    coordinator.issue_ticket("cash", channel=Channel.WEB)

    granted = lease(coordinator, "cash", "loans")

    assert [(b.service, b.prefix, b.day, b.first, b.last, b.used_up_to) for b in granted.blocks] == [
        ("cash", "A", "2026-03-10", 2, 11, 1),
        ("loans", "B", "2026-03-10", 1, 10, 0),
    ]
    assert granted.tz == "Europe/Berlin" and granted.track_base == "http://127.0.0.1:8000/t/"
    web = coordinator.issue_ticket("cash", channel=Channel.WEB)
    kiosk = coordinator.handle_ticket_request("kiosk-1", _request("loans"))
    assert (web.number, kiosk.ticket.number) == ("A-012", "B-011")


def _request(service: str) -> Any:
    from nextup.contract import TicketRequest

    return TicketRequest(request_id=uuid.uuid4().hex, service=service)


def test_asking_again_adds_no_block_while_more_than_half_is_left(coordinator):
    first = lease(coordinator, "cash")
    again = lease(coordinator, "cash")

    assert [b.id for b in again.blocks] == [b.id for b in first.blocks]
    assert again.version > first.version
    with coordinator.store.read() as s:
        assert s.scalar(select(DayCounterRow.last)) == SIZE


def test_unknown_and_inactive_services_get_no_block(coordinator):
    from central.store.models import ServiceRow

    with coordinator.store.write() as s:
        s.scalars(select(ServiceRow).where(ServiceRow.key == "loans")).one().active = False

    assert [b.service for b in lease(coordinator, "cash", "loans", "nosuch").blocks] == ["cash"]


def test_only_a_kiosk_of_the_registry_gets_a_lease(coordinator, published):
    with pytest.raises(NotPermitted):
        grant_leases(coordinator, "point-1", LeaseRequest(["cash"]))
    with pytest.raises(UnknownDevice):
        grant_leases(coordinator, "kiosk-9", LeaseRequest(["cash"]))
    with coordinator.store.read() as s:
        assert s.scalar(select(func.count(NumberLeaseRow.id))) == 0
    assert published == []


def test_the_lease_is_published_retained_on_the_kiosks_own_topic(coordinator, published):
    granted = lease(coordinator, "cash")

    [message] = published
    assert (message.topic, message.retain) == ("nextup/main/device/kiosk-1/lease", True)
    assert NumberLease.parse(message.payload) == granted


# --- offline tickets -----------------------------------------------------------------------


def test_offline_tickets_enter_the_queue_once_at_their_issue_time_in_issue_order(coordinator, clock):
    [block] = lease(coordinator, "cash").blocks
    clock.now = utc(10, "08:00")
    web = coordinator.issue_ticket("cash", channel=Channel.WEB)  # A-011, 09:00 in Berlin
    printed = [offline(block, 1, utc(10, "07:50")), offline(block, 2, utc(10, "07:55")),
               offline(block, 3, utc(10, "08:05"))]
    clock.now = utc(10, "08:30")  # the kiosk is back

    # Out of order, and each more than once, as QoS 1 and the kiosk's resending may deliver them.
    deliveries = printed * 3
    random.Random(7).shuffle(deliveries)
    acks = [accept_offline_ticket(coordinator, "kiosk-1", t) for t in deliveries]

    assert {(a.request_id, a.ok, a.number, a.state) for a in acks} == {
        (t.request_id, True, t.number, "waiting") for t in printed}
    assert sorted(tickets(coordinator)) == sorted([
        ("A-001", "waiting", utc(10, "07:50")), ("A-002", "waiting", utc(10, "07:55")),
        ("A-003", "waiting", utc(10, "08:05")), (web.number, "waiting", utc(10, "08:00")),
    ])
    assert call_order(coordinator) == ["A-001", "A-002", web.number, "A-003"]
    # The kiosk's token tracks the ticket, and the people ahead count the offline ones.
    view = coordinator.ticket(printed[2].token)
    assert (view.number, view.ahead, view.state) == ("A-003", 3, "waiting")
    with coordinator.store.read() as s:
        events = s.execute(select(TicketEventRow.kind, TicketEventRow.at).join(TicketRow)
                           .where(TicketRow.number == "A-001")).all()
    assert sorted(events) == [("issued", utc(10, "07:50")), ("offline", utc(10, "08:30"))]


def test_an_offline_ticket_enters_with_the_kiosks_class_and_print_result(coordinator, clock):
    [block] = lease(coordinator, "cash").blocks
    paid = offline(block, 1, clock.now, priority="paid", language="de")
    unprinted = OfflineTicket.from_dict(offline(block, 2, clock.now).to_dict()
                                        | {"printed": False, "reason": "paper_out"})

    for t in (paid, unprinted):
        assert accept_offline_ticket(coordinator, "kiosk-1", t).ok

    with coordinator.store.read() as s:
        rows = {r.number: r for r in s.scalars(select(TicketRow))}
        paid = rows["A-001"]
        assert (paid.priority, paid.language, paid.channel) == ("paid", "de", "kiosk")
        assert (rows["A-001"].printed, rows["A-002"].printed, rows["A-002"].print_error) == (
            True, False, "paper_out")
        assert rows["A-001"].device_id == "kiosk-1"


@pytest.mark.parametrize("change", [
    {"seq": SIZE + 1, "number": f"A-{SIZE + 1:03d}"},  # past the block
    {"number": "A-999"},                              # number and seq disagree
    {"number": "B-001"},                              # another service's prefix
    {"service": "loans"},                             # not the block's service
    {"day": "2026-03-09"},                            # not the block's day
    {"lease": 9999},                                  # no such block
])
def test_an_offline_ticket_outside_the_kiosks_lease_is_refused_and_changes_nothing(coordinator, clock,
                                                                                   change):
    [block] = lease(coordinator, "cash").blocks
    bad = OfflineTicket.from_dict(offline(block, 1, clock.now).to_dict() | change)

    ack = accept_offline_ticket(coordinator, "kiosk-1", bad)

    assert (ack.ok, ack.error.code) == (False, "not_leased")
    assert tickets(coordinator) == []
    assert accept_offline_ticket(coordinator, "kiosk-1", bad) == ack  # asked again: the same answer


def test_another_kiosks_block_is_refused(coordinator, clock):
    from central.store.models import DeviceRow

    with coordinator.store.write() as s:
        s.add(DeviceRow(id="kiosk-2", kind="kiosk"))
    [block] = lease(coordinator, "cash").blocks

    ack = accept_offline_ticket(coordinator, "kiosk-2", offline(block, 1, clock.now))

    assert (ack.ok, ack.error.code) == (False, "not_leased")


def test_a_number_used_once_is_never_entered_again_under_another_request(coordinator, clock):
    [block] = lease(coordinator, "cash").blocks
    first = offline(block, 1, clock.now)
    again = offline(block, 1, clock.now + timedelta(minutes=1))  # a kiosk that lost its journal

    assert accept_offline_ticket(coordinator, "kiosk-1", first).ok
    ack = accept_offline_ticket(coordinator, "kiosk-1", again)

    assert (ack.ok, ack.error.code) == (False, "number_taken")
    assert [n for n, _, _ in tickets(coordinator)] == ["A-001"]


def test_a_kiosk_clock_ahead_of_central_does_not_put_its_ticket_in_the_future(coordinator, clock):
    [block] = lease(coordinator, "cash").blocks
    clock.now = utc(10, "08:00")

    accept_offline_ticket(coordinator, "kiosk-1", offline(block, 1, utc(10, "09:30")))

    assert tickets(coordinator) == [("A-001", "waiting", utc(10, "08:00"))]


def test_issue_time_stays_between_the_grant_and_now_within_the_day():
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    granted, now = utc(10, "07:00"), utc(10, "09:00")
    day = granted.astimezone(berlin).date()
    assert issue_time(utc(10, "08:00"), granted=granted, now=now, day=day, tz=berlin) == utc(10, "08:00")
    assert issue_time(utc(10, "06:00"), granted=granted, now=now, day=day, tz=berlin) == granted
    assert issue_time(utc(10, "10:00"), granted=granted, now=now, day=day, tz=berlin) == now
    # Arriving the next day, a ticket still belongs to its own day: at most its last moment.
    late = issue_time(utc(11, "10:00"), granted=granted, now=utc(11, "10:00"), day=day, tz=berlin)
    assert late == datetime(2026, 3, 10, 23, 0, tzinfo=UTC) - timedelta(microseconds=1)


def test_a_block_half_used_is_renewed_with_fresh_numbers(coordinator, clock, published):
    [block] = lease(coordinator, "cash").blocks
    coordinator.issue_ticket("cash", channel=Channel.WEB)  # the counter is past the block

    for seq in range(1, SIZE // 2):
        accept_offline_ticket(coordinator, "kiosk-1", offline(block, seq, clock.now))
    assert [b.id for b in _last_lease(published).blocks] == [block.id]
    accept_offline_ticket(coordinator, "kiosk-1", offline(block, SIZE // 2, clock.now))

    blocks = _last_lease(published).blocks
    assert [(b.first, b.last, b.used_up_to) for b in blocks] == [(1, SIZE, SIZE // 2), (12, 11 + SIZE, 11)]
    assert coordinator.issue_ticket("cash", channel=Channel.WEB).number == f"A-{12 + SIZE:03d}"


def _last_lease(published: list[Any]) -> NumberLease:
    return NumberLease.parse([m for m in published if m.topic.endswith("/lease")][-1].payload)


def test_a_used_up_block_leaves_the_lease(coordinator, clock, published):
    [block] = lease(coordinator, "cash").blocks
    for seq in range(1, SIZE + 1):
        accept_offline_ticket(coordinator, "kiosk-1", offline(block, seq, clock.now))

    assert block.id not in [b.id for b in _last_lease(published).blocks]
    assert len(_last_lease(published).blocks) == 1


# --- midnight -----------------------------------------------------------------------------


def test_each_day_has_its_own_lease_and_numbering(coordinator, clock):
    [yesterday] = lease(coordinator, "cash").blocks
    clock.now = utc(10, "23:30")  # 00:30 on the 11th in Berlin

    today = lease(coordinator, "cash")

    assert [(b.day, b.first, b.last) for b in today.blocks] == [("2026-03-11", 1, SIZE)]
    assert yesterday.day == "2026-03-10"
    assert coordinator.issue_ticket("cash", channel=Channel.WEB).number == f"A-{SIZE + 1:03d}"


def test_an_offline_ticket_arriving_after_its_day_is_recorded_but_not_queued(coordinator, clock, published):
    [block] = lease(coordinator, "cash").blocks
    printed = offline(block, 1, utc(10, "16:00"))
    clock.now = utc(11, "07:00")  # the next morning

    ack = accept_offline_ticket(coordinator, "kiosk-1", printed)

    assert (ack.ok, ack.state) == (True, "expired")
    [(number, state, issued)] = tickets(coordinator)
    assert (number, state, issued) == ("A-001", "cancelled", utc(10, "16:00"))
    assert call_order(coordinator) == []
    assert not [m for m in published if m.topic.endswith("/board")]
    # The number stays used on its day; the lease now lists no block of a past day.
    assert _last_lease(published).blocks == []
    assert accept_offline_ticket(coordinator, "kiosk-1", offline(block, 1, utc(10, "16:01"))).ok is False
