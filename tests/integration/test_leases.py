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
from helpers import Clock
from sqlalchemy import func, select

from central import leases
from central.coordinator import Coordinator
from central.domain import Channel
from central.domain.errors import NotPermitted, UnknownDevice
from central.leases import accept_offline_ticket, grant_leases, issue_time
from central.store.models import DayCounterRow, NumberLeaseRow, TicketEventRow, TicketRow
from nextup.contract import LeaseBlock, LeaseRequest, NumberLease, OfflineTicket

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo-site.toml"
SIZE = 10
FIRST = leases.TOP - SIZE + 1  # the first block of a service and day: [FIRST, TOP]


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


def test_a_lease_takes_its_block_from_the_top_of_the_day_so_online_numbering_starts_at_001(coordinator):
    granted = lease(coordinator, "cash", "loans")

    assert [(b.service, b.prefix, b.day, b.first, b.last, b.used_up_to) for b in granted.blocks] == [
        ("cash", "A", "2026-03-10", FIRST, leases.TOP, FIRST - 1),
        ("loans", "B", "2026-03-10", FIRST, leases.TOP, FIRST - 1),
    ]
    assert granted.tz == "Europe/Berlin" and granted.track_base == "http://127.0.0.1:8000/t/"
    web = [coordinator.issue_ticket("cash", channel=Channel.WEB).number for _ in range(2)]
    kiosk = coordinator.handle_ticket_request("kiosk-1", _request("loans"))
    assert (web, kiosk.ticket.number) == (["A-001", "A-002"], "B-001")


def _request(service: str) -> Any:
    from nextup.contract import TicketRequest

    return TicketRequest(request_id=uuid.uuid4().hex, service=service)


def test_asking_again_adds_no_block_while_more_than_half_is_left(coordinator):
    first = lease(coordinator, "cash")
    again = lease(coordinator, "cash")

    assert [b.id for b in again.blocks] == [b.id for b in first.blocks]
    assert again.version > first.version
    with coordinator.store.read() as s:
        assert s.scalar(select(func.count(NumberLeaseRow.id))) == 1
        assert s.scalar(select(DayCounterRow.last)) == 0  # leasing took no online number


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


# --- where leased numbers sit ----------------------------------------------------------------


def add_kiosks(coordinator: Coordinator, *ids: str) -> None:
    from central.store.models import DeviceRow

    with coordinator.store.write() as s:
        s.add_all(DeviceRow(id=id, kind="kiosk") for id in ids)


def online(coordinator: Coordinator, service: str = "cash") -> int:
    return int(coordinator.issue_ticket(service, channel=Channel.WEB).number.split("-")[1])


def test_a_second_kiosks_block_sits_just_below_the_first(coordinator):
    add_kiosks(coordinator, "kiosk-2")

    [first] = lease(coordinator, "cash").blocks
    [second] = grant_leases(coordinator, "kiosk-2", LeaseRequest(["cash"])).blocks

    assert (first.first, first.last) == (FIRST, leases.TOP)
    assert (second.first, second.last) == (FIRST - SIZE, FIRST - 1)
    assert online(coordinator) == 1


def test_online_numbering_that_reaches_a_leased_block_goes_on_past_the_highest_leased_number(
        coordinator, monkeypatch):
    monkeypatch.setattr(leases, "TOP", 3 * SIZE)
    add_kiosks(coordinator, "kiosk-2")
    lease(coordinator, "cash")                                    # 21-30
    grant_leases(coordinator, "kiosk-2", LeaseRequest(["cash"]))  # 11-20

    numbers = [online(coordinator) for _ in range(SIZE + 2)]

    assert numbers == [*range(1, SIZE + 1), 3 * SIZE + 1, 3 * SIZE + 2]
    assert coordinator.issue_ticket("loans", channel=Channel.WEB).number == "B-001"  # per service


def test_on_a_busy_day_a_block_that_would_reach_the_online_numbers_is_leased_above_everything(
        coordinator, monkeypatch):
    monkeypatch.setattr(leases, "TOP", 2 * SIZE + 5)
    add_kiosks(coordinator, "kiosk-2", "kiosk-3")
    assert [online(coordinator) for _ in range(3)] == [1, 2, 3]
    lease(coordinator, "cash")                                    # 16-25
    grant_leases(coordinator, "kiosk-2", LeaseRequest(["cash"]))  # 6-15

    # 5 numbers are left between the online ones and the lowest block: not enough for a block.
    [third] = grant_leases(coordinator, "kiosk-3", LeaseRequest(["cash"])).blocks

    assert (third.first, third.last) == (2 * SIZE + 6, 3 * SIZE + 5)
    assert [online(coordinator) for _ in range(3)] == [4, 5, 3 * SIZE + 6]


def test_a_block_is_never_leased_at_or_below_the_last_online_number(coordinator, monkeypatch):
    monkeypatch.setattr(leases, "TOP", 2 * SIZE)
    for _ in range(2 * SIZE + 3):  # online numbering is past TOP already
        online(coordinator)

    [block] = lease(coordinator, "cash").blocks

    assert (block.first, block.last) == (2 * SIZE + 4, 3 * SIZE + 3)
    assert online(coordinator) == 3 * SIZE + 4


KIOSKS = ("kiosk-1", "kiosk-2", "kiosk-3")


class Hall:
    """Online tickets, lease requests and offline tickets of three kiosks, in an order chosen by ``rng``."""

    def __init__(self, coordinator: Coordinator, clock: Clock) -> None:
        self.coordinator, self.clock = coordinator, clock
        self.taken: dict[int, int] = {}  # block id -> the last number its kiosk printed

    def step(self, rng: random.Random, kiosk: str) -> None:
        service = rng.choice(["cash", "loans"])
        roll = rng.random()
        if roll < 0.55:
            self.coordinator.issue_ticket(service, channel=Channel.WEB)
        elif roll < 0.7:
            grant_leases(self.coordinator, kiosk, LeaseRequest(["cash", "loans"]))
        else:
            self.print_offline(kiosk, service)

    def print_offline(self, kiosk: str, service: str) -> None:
        """The kiosk prints a ticket from its oldest block of ``service`` with a number left, if any."""
        from central.store.models import ServiceRow

        with self.coordinator.store.read() as s:
            rows = s.scalars(select(NumberLeaseRow)
                             .join(ServiceRow, ServiceRow.id == NumberLeaseRow.service_id)
                             .where(NumberLeaseRow.device_id == kiosk, ServiceRow.key == service)
                             .order_by(NumberLeaseRow.id))
            blocks = [LeaseBlock(id=r.id, service=service, prefix=r.prefix, day=r.day.isoformat(),
                                 first=r.first, last=r.last, used_up_to=r.used_up_to) for r in rows]
        for block in blocks:
            seq = max(block.used_up_to, self.taken.get(block.id, 0)) + 1
            if seq <= block.last:
                self.taken[block.id] = seq
                ack = accept_offline_ticket(self.coordinator, kiosk, offline(block, seq, self.clock.now))
                assert ack.ok, ack
                return


def assert_no_number_issued_twice(coordinator: Coordinator) -> tuple[list[Any], list[Any]]:
    """Each number of a day is issued once, online ones outside every leased block; blocks never overlap."""
    with coordinator.store.read() as s:
        rows = s.execute(select(TicketRow.id, TicketRow.day, TicketRow.number, TicketRow.seq,
                                TicketRow.service_id, TicketRow.channel)).all()
        offline_ids = set(s.scalars(select(TicketEventRow.ticket_id).where(TicketEventRow.kind == "offline")))
        blocks = s.execute(select(NumberLeaseRow.service_id, NumberLeaseRow.day, NumberLeaseRow.first,
                                  NumberLeaseRow.last)).all()
    assert len({(t.day, t.number) for t in rows}) == len(rows)
    for service_id in {b.service_id for b in blocks}:
        spans = sorted((b.first, b.last) for b in blocks if b.service_id == service_id)
        assert all(low[1] < high[0] for low, high in zip(spans, spans[1:], strict=False)), spans
    for t in rows:
        inside = [b for b in blocks
                  if b.service_id == t.service_id and b.day == t.day and b.first <= t.seq <= b.last]
        assert bool(inside) == (t.id in offline_ids), (t.number, inside)
    return rows, blocks


def test_no_number_is_issued_twice_in_any_order_of_online_tickets_leases_and_offline_tickets(
        coordinator, clock, monkeypatch):
    monkeypatch.setattr(leases, "TOP", 6 * SIZE)  # low enough for busy-day leases and jumps past TOP
    add_kiosks(coordinator, "kiosk-2", "kiosk-3")
    hall, rng = Hall(coordinator, clock), random.Random(20260310)

    for _ in range(250):
        hall.step(rng, rng.choice(KIOSKS))

    rows, blocks = assert_no_number_issued_twice(coordinator)
    # The order reached every case: blocks leased downward and above TOP, online numbers past TOP.
    assert any(b.last < leases.TOP for b in blocks) and any(b.first > leases.TOP for b in blocks)
    assert any(t.seq > leases.TOP for t in rows if t.channel == "web")
    assert sum(t.channel == "kiosk" for t in rows) > 20


def test_no_number_is_issued_twice_when_tickets_and_leases_race_each_other(coordinator, clock, monkeypatch):
    import threading

    monkeypatch.setattr(leases, "TOP", 6 * SIZE)
    add_kiosks(coordinator, "kiosk-2", "kiosk-3")
    hall = Hall(coordinator, clock)
    failures: list[BaseException] = []

    def run(kiosk: str, seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(60):
                hall.step(rng, kiosk)  # each thread prints only from its own kiosk's blocks
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(kiosk, seed)) for seed, kiosk in enumerate(KIOSKS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    rows, blocks = assert_no_number_issued_twice(coordinator)
    assert len(rows) > 100 and len(blocks) > 6


# --- offline tickets -----------------------------------------------------------------------


def test_offline_tickets_enter_the_queue_once_at_their_issue_time_in_issue_order(coordinator, clock):
    [block] = lease(coordinator, "cash").blocks
    clock.now = utc(10, "08:00")
    web = coordinator.issue_ticket("cash", channel=Channel.WEB)  # A-001, 09:00 in Berlin
    printed = [offline(block, FIRST, utc(10, "07:50")), offline(block, FIRST + 1, utc(10, "07:55")),
               offline(block, FIRST + 2, utc(10, "08:05"))]
    clock.now = utc(10, "08:30")  # the kiosk is back

    # Out of order, and each more than once, as QoS 1 and the kiosk's resending may deliver them.
    deliveries = printed * 3
    random.Random(7).shuffle(deliveries)
    acks = [accept_offline_ticket(coordinator, "kiosk-1", t) for t in deliveries]

    assert {(a.request_id, a.ok, a.number, a.state) for a in acks} == {
        (t.request_id, True, t.number, "waiting") for t in printed}
    assert sorted(tickets(coordinator)) == sorted([
        ("A-990", "waiting", utc(10, "07:50")), ("A-991", "waiting", utc(10, "07:55")),
        ("A-992", "waiting", utc(10, "08:05")), ("A-001", "waiting", utc(10, "08:00")),
    ])
    assert web.number == "A-001"
    assert call_order(coordinator) == ["A-990", "A-991", "A-001", "A-992"]
    # The kiosk's token tracks the ticket, and the people ahead count the offline ones.
    view = coordinator.ticket(printed[2].token)
    assert (view.number, view.ahead, view.state) == ("A-992", 3, "waiting")
    with coordinator.store.read() as s:
        events = s.execute(select(TicketEventRow.kind, TicketEventRow.at).join(TicketRow)
                           .where(TicketRow.number == "A-990")).all()
    assert sorted(events) == [("issued", utc(10, "07:50")), ("offline", utc(10, "08:30"))]


def test_an_offline_ticket_enters_with_the_kiosks_class_and_print_result(coordinator, clock):
    [block] = lease(coordinator, "cash").blocks
    paid = offline(block, FIRST, clock.now, priority="paid", language="de")
    unprinted = OfflineTicket.from_dict(offline(block, FIRST + 1, clock.now).to_dict()
                                        | {"printed": False, "reason": "paper_out"})

    for t in (paid, unprinted):
        assert accept_offline_ticket(coordinator, "kiosk-1", t).ok

    with coordinator.store.read() as s:
        rows = {r.number: r for r in s.scalars(select(TicketRow))}
        paid = rows["A-990"]
        assert (paid.priority, paid.language, paid.channel) == ("paid", "de", "kiosk")
        assert (rows["A-990"].printed, rows["A-991"].printed, rows["A-991"].print_error) == (
            True, False, "paper_out")
        assert rows["A-990"].device_id == "kiosk-1"


@pytest.mark.parametrize("change", [
    {"seq": leases.TOP + 1, "number": f"A-{leases.TOP + 1}"},  # past the block
    {"seq": FIRST - 1, "number": f"A-{FIRST - 1:03d}"},      # below the block
    {"seq": 1, "number": "A-001"},                           # an online number
    {"number": "A-999"},                                     # number and seq disagree
    {"number": f"B-{FIRST:03d}"},                            # another service's prefix
    {"service": "loans"},                             # not the block's service
    {"day": "2026-03-09"},                            # not the block's day
    {"lease": 9999},                                  # no such block
])
def test_an_offline_ticket_outside_the_kiosks_lease_is_refused_and_changes_nothing(coordinator, clock,
                                                                                   change):
    [block] = lease(coordinator, "cash").blocks
    bad = OfflineTicket.from_dict(offline(block, FIRST, clock.now).to_dict() | change)

    ack = accept_offline_ticket(coordinator, "kiosk-1", bad)

    assert (ack.ok, ack.error.code) == (False, "not_leased")
    assert tickets(coordinator) == []
    assert accept_offline_ticket(coordinator, "kiosk-1", bad) == ack  # asked again: the same answer


def test_another_kiosks_block_is_refused(coordinator, clock):
    from central.store.models import DeviceRow

    with coordinator.store.write() as s:
        s.add(DeviceRow(id="kiosk-2", kind="kiosk"))
    [block] = lease(coordinator, "cash").blocks

    ack = accept_offline_ticket(coordinator, "kiosk-2", offline(block, FIRST, clock.now))

    assert (ack.ok, ack.error.code) == (False, "not_leased")


def test_a_number_used_once_is_never_entered_again_under_another_request(coordinator, clock):
    [block] = lease(coordinator, "cash").blocks
    first = offline(block, FIRST, clock.now)
    again = offline(block, FIRST, clock.now + timedelta(minutes=1))  # a kiosk that lost its journal

    assert accept_offline_ticket(coordinator, "kiosk-1", first).ok
    ack = accept_offline_ticket(coordinator, "kiosk-1", again)

    assert (ack.ok, ack.error.code) == (False, "number_taken")
    assert [n for n, _, _ in tickets(coordinator)] == ["A-990"]


def test_a_kiosk_clock_ahead_of_central_does_not_put_its_ticket_in_the_future(coordinator, clock):
    [block] = lease(coordinator, "cash").blocks
    clock.now = utc(10, "08:00")

    accept_offline_ticket(coordinator, "kiosk-1", offline(block, FIRST, utc(10, "09:30")))

    assert tickets(coordinator) == [("A-990", "waiting", utc(10, "08:00"))]


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


def test_a_block_half_used_is_renewed_with_fresh_numbers_just_below_it(coordinator, clock, published):
    [block] = lease(coordinator, "cash").blocks
    assert coordinator.issue_ticket("cash", channel=Channel.WEB).number == "A-001"

    for seq in range(FIRST, FIRST + SIZE // 2 - 1):
        accept_offline_ticket(coordinator, "kiosk-1", offline(block, seq, clock.now))
    assert [b.id for b in _last_lease(published).blocks] == [block.id]
    accept_offline_ticket(coordinator, "kiosk-1", offline(block, FIRST + SIZE // 2 - 1, clock.now))

    blocks = _last_lease(published).blocks
    assert [(b.first, b.last, b.used_up_to) for b in blocks] == [
        (FIRST, leases.TOP, FIRST + SIZE // 2 - 1), (FIRST - SIZE, FIRST - 1, FIRST - SIZE - 1)]
    assert coordinator.issue_ticket("cash", channel=Channel.WEB).number == "A-002"


def _last_lease(published: list[Any]) -> NumberLease:
    return NumberLease.parse([m for m in published if m.topic.endswith("/lease")][-1].payload)


def test_a_used_up_block_leaves_the_lease(coordinator, clock, published):
    [block] = lease(coordinator, "cash").blocks
    for seq in range(FIRST, leases.TOP + 1):
        accept_offline_ticket(coordinator, "kiosk-1", offline(block, seq, clock.now))

    assert block.id not in [b.id for b in _last_lease(published).blocks]
    assert len(_last_lease(published).blocks) == 1


# --- midnight -----------------------------------------------------------------------------


def test_each_day_has_its_own_lease_and_numbering(coordinator, clock):
    [yesterday] = lease(coordinator, "cash").blocks
    clock.now = utc(10, "23:30")  # 00:30 on the 11th in Berlin

    today = lease(coordinator, "cash")

    assert [(b.day, b.first, b.last) for b in today.blocks] == [("2026-03-11", FIRST, leases.TOP)]
    assert yesterday.day == "2026-03-10"
    assert coordinator.issue_ticket("cash", channel=Channel.WEB).number == "A-001"


def test_an_offline_ticket_arriving_after_its_day_is_recorded_but_not_queued(coordinator, clock, published):
    [block] = lease(coordinator, "cash").blocks
    printed = offline(block, FIRST, utc(10, "16:00"))
    clock.now = utc(11, "07:00")  # the next morning

    ack = accept_offline_ticket(coordinator, "kiosk-1", printed)

    assert (ack.ok, ack.state) == (True, "expired")
    [(number, state, issued)] = tickets(coordinator)
    assert (number, state, issued) == ("A-990", "cancelled", utc(10, "16:00"))
    assert call_order(coordinator) == []
    assert not [m for m in published if m.topic.endswith("/board")]
    # The number stays used on its day; the lease now lists no block of a past day.
    assert _last_lease(published).blocks == []
    assert accept_offline_ticket(coordinator, "kiosk-1", offline(block, FIRST, utc(10, "16:01"))).ok is False
