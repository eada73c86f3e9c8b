"""The kiosk's offline book: which leased number comes next, the midnight rule, and the journal on disk."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from escpos.printer import Dummy

from central.domain.errors import BadPayload
from edge.kiosk.layout import TicketSlip, print_ticket
from edge.kiosk.offline import OfflineBook, journal_path
from edge.kiosk.render import parse
from nextup.contract import LeaseBlock, LeaseRequest, NumberLease, OfflineTicket, OfflineTicketAck
from nextup.settings import Settings

# 09:00 in Berlin on 10 March; 23:30 UTC is already the 11th there.
MORNING = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
AFTER_MIDNIGHT = datetime(2026, 3, 10, 23, 30, tzinfo=UTC)


def block(id: int, first: int, last: int, *, service: str = "cash", prefix: str = "A",
          day: str = "2026-03-10", used: int | None = None) -> LeaseBlock:
    return LeaseBlock(id=id, service=service, prefix=prefix, day=day, first=first, last=last,
                      used_up_to=first - 1 if used is None else used)


def lease(*blocks: LeaseBlock, version: int = 1) -> NumberLease:
    return NumberLease(version=version, tz="Europe/Berlin", blocks=list(blocks), track_base="https://q.example/t/")


def test_numbers_come_from_the_oldest_block_then_the_next(tmp_path):
    book = OfflineBook(tmp_path / "journal.json")
    book.set_lease(lease(block(1, 1, 2), block(2, 20, 21), block(3, 1, 5, service="loans", prefix="B")))

    numbers = [book.take("cash", MORNING).number for _ in range(4)]

    assert numbers == ["A-001", "A-002", "A-020", "A-021"]
    assert book.take("cash", MORNING) is None  # the lease is used up
    assert book.take("loans", MORNING).number == "B-001"
    assert book.take("accounts", MORNING) is None  # no block at all


def test_a_renewal_leased_below_its_block_is_used_after_it(tmp_path):
    book = OfflineBook(tmp_path / "journal.json")
    # Central leases from the top of the day down: the renewal (id 2) has the lower numbers.
    book.set_lease(lease(block(1, 950, 999, used=997), block(2, 900, 949)))

    numbers = [book.take("cash", MORNING).number for _ in range(3)]

    assert numbers == ["A-998", "A-999", "A-900"]


def test_numbers_central_has_seen_used_are_skipped(tmp_path):
    book = OfflineBook(tmp_path / "journal.json")
    book.set_lease(lease(block(1, 1, 10, used=4)))

    assert book.take("cash", MORNING).seq == 5


def test_a_ticket_carries_what_central_needs_to_place_it(tmp_path):
    book = OfflineBook(tmp_path / "journal.json")
    book.set_lease(lease(block(7, 31, 80)))

    ticket = book.take("cash", MORNING, priority="paid", language="de")

    assert (ticket.lease, ticket.service, ticket.number, ticket.seq, ticket.day) == (7, "cash", "A-031", 31,
                                                                                     "2026-03-10")
    assert (ticket.priority, ticket.language, ticket.printed) == ("paid", "de", None)
    assert datetime.fromisoformat(ticket.issued_at) == MORNING
    assert len(ticket.token) >= 32 and book.track_url(ticket) == f"https://q.example/t/{ticket.token}"
    assert OfflineTicket.parse(ticket.to_json()) == ticket


def test_a_naive_time_is_the_kiosks_local_time(tmp_path):
    book = OfflineBook(tmp_path / "journal.json")
    book.set_lease(lease(block(1, 1, 10)))
    local = MORNING.astimezone().replace(tzinfo=None)

    assert datetime.fromisoformat(book.take("cash", local).issued_at) == MORNING


def test_after_midnight_in_the_sites_zone_yesterdays_block_issues_nothing(tmp_path):
    book = OfflineBook(tmp_path / "journal.json")
    book.set_lease(lease(block(1, 1, 10)))

    assert book.take("cash", AFTER_MIDNIGHT) is None
    assert book.left("cash", AFTER_MIDNIGHT) == 0 and book.left("cash", MORNING) == 10
    assert book.unsent == []

    book.set_lease(lease(block(2, 1, 10, day="2026-03-11"), version=2))
    assert book.take("cash", AFTER_MIDNIGHT).number == "A-001"


def test_an_older_lease_never_replaces_a_newer_one(tmp_path):
    book = OfflineBook(tmp_path / "journal.json")
    assert book.set_lease(lease(block(2, 11, 20), version=5))

    assert not book.set_lease(lease(block(1, 1, 10), version=4))
    assert book.take("cash", MORNING).number == "A-011"


def test_a_lease_arriving_late_with_older_usage_never_hands_out_a_number_again(tmp_path):
    book = OfflineBook(tmp_path / "journal.json")
    book.set_lease(lease(block(1, 1, 10)))
    taken = [book.take("cash", MORNING) for _ in range(3)]
    for t in taken:
        book.acknowledge(t.request_id)

    # Central's lease, published before it had seen those three, says nothing is used.
    book.set_lease(lease(block(1, 1, 10), version=2))

    assert book.take("cash", MORNING).number == "A-004"


def test_acknowledged_tickets_are_no_longer_sent_and_the_rest_keep_their_order(tmp_path):
    book = OfflineBook(tmp_path / "journal.json")
    book.set_lease(lease(block(1, 1, 10)))
    a, b, c = (book.take("cash", MORNING) for _ in range(3))

    assert book.acknowledge(b.request_id) == b
    assert book.acknowledge(b.request_id) is None  # a second answer to the same ticket
    assert [t.number for t in book.unsent] == [a.number, c.number]


def test_the_print_result_travels_with_the_ticket(tmp_path):
    book = OfflineBook(tmp_path / "journal.json")
    book.set_lease(lease(block(1, 1, 10)))
    a, b = book.take("cash", MORNING), book.take("cash", MORNING)

    book.printed(a.request_id, True)
    book.printed(b.request_id, False, "paper_out")

    assert [(t.printed, t.reason) for t in book.unsent] == [(True, None), (False, "paper_out")]


def test_a_restarted_kiosk_finds_its_lease_numbers_and_unsent_tickets(tmp_path):
    path = tmp_path / "journal.json"
    book = OfflineBook(path)
    book.set_lease(lease(block(1, 1, 10)))
    first, second = book.take("cash", MORNING), book.take("cash", MORNING)
    book.printed(first.request_id, True)
    book.acknowledge(second.request_id)

    again = OfflineBook(path)

    assert again.lease == book.lease
    assert [(t.number, t.printed) for t in again.unsent] == [("A-001", True)]
    assert again.take("cash", MORNING).number == "A-003"


def test_the_journal_is_written_whole_or_not_at_all(tmp_path):
    path = tmp_path / "journal.json"
    book = OfflineBook(path)
    book.set_lease(lease(block(1, 1, 10)))
    book.take("cash", MORNING)

    assert [p.name for p in tmp_path.iterdir()] == ["journal.json"]  # no half-written file left aside
    assert json.loads(path.read_text())["pending"][0]["number"] == "A-001"


def test_a_damaged_journal_is_kept_aside_and_no_block_held_then_is_trusted(tmp_path):
    path = tmp_path / "journal.json"
    path.write_text('{"format": 1, "lease": {"version": 3, "tz": "Eur')

    book = OfflineBook(path)

    assert (book.lease, book.unsent) == (None, [])
    assert (tmp_path / "journal.json.broken").exists()
    # The lease it gets next lists blocks whose numbers it may have printed: it issues from none of them...
    book.set_lease(lease(block(1, 1, 10), block(2, 11, 20)))
    assert book.take("cash", MORNING) is None
    # ... only from blocks central grants later (a renewal, or the next day's).
    book.set_lease(lease(block(1, 1, 10), block(2, 11, 20), block(3, 31, 40), version=2))
    assert book.take("cash", MORNING).number == "A-031"
    assert OfflineBook(path).take("cash", MORNING).number == "A-032"  # and that holds across a restart


def test_without_a_journal_path_nothing_is_written(tmp_path):
    book = OfflineBook(None)
    book.set_lease(lease(block(1, 1, 10)))

    assert book.take("cash", MORNING).number == "A-001"
    assert list(tmp_path.iterdir()) == []


def test_the_journal_lives_in_the_instance_folder_unless_configured():
    settings = Settings(device_id="kiosk-1", instance="/srv/nextup")

    assert str(journal_path(settings, None, sim=False)) == "/srv/nextup/kiosk-1.offline.json"
    assert str(journal_path(settings, "/data/j.json", sim=False)) == "/data/j.json"
    assert journal_path(settings, None, sim=True) is None
    assert str(journal_path(settings, "/data/j.json", sim=True)) == "/data/j.json"


# --- the contract of the offline messages ---------------------------------------------------


@pytest.mark.parametrize("change", [
    {"first": 0},
    {"last": 0},
    {"used_up_to": 99},
    {"used_up_to": -1},
    {"day": "10.03.2026"},
    {"service": "Cash"},
    {"last": 20_000},
])
def test_a_lease_block_that_is_not_a_block_is_refused(change):
    data = block(1, 1, 10).to_dict() | change
    with pytest.raises(BadPayload):
        LeaseBlock.from_dict(data)


def test_a_lease_in_an_unknown_time_zone_is_refused():
    data = lease(block(1, 1, 10)).to_dict() | {"tz": "Mars/Olympus"}
    with pytest.raises(BadPayload, match="time zone"):
        NumberLease.from_dict(data)


@pytest.mark.parametrize("change", [
    {"issued_at": "2026-03-10T09:00:00"},  # no offset: not one moment
    {"issued_at": "yesterday"},
    {"seq": 0},
    {"lease": "1"},
    {"token": "short"},
    {"printed": "yes"},
])
def test_an_offline_ticket_without_a_clear_time_number_or_token_is_refused(change):
    book = OfflineBook(None)
    book.set_lease(lease(block(1, 1, 10)))
    data = book.take("cash", MORNING).to_dict() | change
    with pytest.raises(BadPayload):
        OfflineTicket.from_dict(data)


def test_offline_acks_and_lease_requests_round_trip():
    done = OfflineTicketAck("r1", True, "A-001", "waiting")
    refused = OfflineTicketAck.from_dict({"request_id": "r2", "ok": False, "number": "A-002",
                                          "error": {"code": "not_leased", "message": "no"}})
    assert OfflineTicketAck.parse(done.to_json()) == done
    assert OfflineTicketAck.parse(refused.to_json()) == refused
    assert LeaseRequest.parse(b'{"services": ["loans", "cash", "cash"]}').services == ["cash", "loans"]
    with pytest.raises(BadPayload):
        LeaseRequest.parse(b'{"services": ["Cash!"]}')


# --- the printed ticket ----------------------------------------------------------------------


def test_an_offline_ticket_says_its_position_is_confirmed_on_screen_instead_of_people_ahead():
    printer = Dummy()
    slip = TicketSlip(site_name="Main branch", number="A-031", service_name="Cash desk",
                      issued_at=datetime(2026, 3, 10, 9, 0), ahead=0, eta_s=0,
                      track_url="https://q.example/t/abc", offline=True)

    print_ticket(printer, slip)

    assert b"position confirmed on screen" in printer.output
    assert b"ahead" not in printer.output and b"You are next" not in printer.output
    assert b"Estimated wait" not in printer.output
    lines = ["".join(t for _, t in b.runs) for b in parse(printer.output) if hasattr(b, "runs")]
    assert "A-031" in lines and "Queue position confirmed on screen" in lines


def test_an_offline_ticket_without_a_tracking_page_prints_no_qr_code():
    printer = Dummy()
    print_ticket(printer, TicketSlip(site_name="", number="A-031", service_name="Cash desk",
                                     issued_at=datetime(2026, 3, 10, 9, 0), ahead=0, eta_s=0, track_url="",
                                     offline=True))

    assert not [b for b in parse(printer.output) if hasattr(b, "data")]
    assert b"Scan" not in printer.output
