"""Several device messages in one transaction: what a busy central does with what has arrived."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from central import registry
from central.coordinator import Coordinator
from central.domain import Channel
from central.domain.errors import NextupError
from central.store.models import TicketRow
from nextup.contract import Command, TicketRequest

DEMO_SITE = Path(__file__).parents[2] / "examples" / "demo-site.toml"
START = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def coordinator(database_url: str, make_store: Any) -> Coordinator:
    return Coordinator(make_store(database_url), clock=Clock())


def request(service: str = "cash", request_id: str | None = None) -> TicketRequest:
    return TicketRequest(request_id=request_id or uuid.uuid4().hex, service=service)


def waiting_tickets(coordinator: Coordinator) -> int:
    with coordinator.store.read() as s:
        return s.scalar(select(func.count(TicketRow.id)).where(TicketRow.state == "waiting")) or 0


def test_a_batch_is_numbered_in_order_and_counts_the_people_ahead_across_it(coordinator: Coordinator) -> None:
    replies = coordinator.run([coordinator.ticket_request_job("kiosk-1", request()) for _ in range(5)])
    assert [r.ticket.number for r in replies] == ["A-001", "A-002", "A-003", "A-004", "A-005"]
    assert [r.ticket.ahead for r in replies] == [0, 1, 2, 3, 4]
    # The day's counter went to the database with the batch: the next ticket goes on from it.
    assert coordinator.handle_ticket_request("kiosk-1", request()).ticket.number == "A-006"


def test_a_refused_message_in_a_batch_changes_nothing_and_the_others_still_commit(
    coordinator: Coordinator,
) -> None:
    replies = coordinator.run(
        [
            coordinator.ticket_request_job("kiosk-1", request()),
            coordinator.ticket_request_job("kiosk-1", request("no-such-service")),
            coordinator.ticket_request_job("ghost-9", request()),
            coordinator.command_job("kiosk-1", Command(command_id=uuid.uuid4().hex, action="next")),
            coordinator.ticket_request_job("kiosk-1", request()),
        ]
    )
    assert replies[0].ok and replies[4].ok
    assert [replies[0].ticket.number, replies[4].ticket.number] == ["A-001", "A-002"]
    assert replies[4].ticket.ahead == 1
    assert not replies[1].ok and replies[1].error.code == "unknown_service"
    assert isinstance(replies[2], NextupError) and replies[2].code == "unknown_device"
    assert isinstance(replies[3], NextupError) and replies[3].code == "not_permitted"
    assert waiting_tickets(coordinator) == 2


def test_a_request_delivered_twice_in_one_batch_is_answered_alike_and_issues_once(
    coordinator: Coordinator,
) -> None:
    same = request()
    replies = coordinator.run(
        [coordinator.ticket_request_job("kiosk-1", same), coordinator.ticket_request_job("kiosk-1", same)]
    )
    assert replies[0] == replies[1]
    assert waiting_tickets(coordinator) == 1
    # And once more in a later batch.
    assert coordinator.run([coordinator.ticket_request_job("kiosk-1", same)]) == replies[:1]
    assert waiting_tickets(coordinator) == 1


def test_a_press_within_a_batch_changes_the_queue_the_later_requests_see(coordinator: Coordinator) -> None:
    jobs = [coordinator.ticket_request_job("kiosk-1", request()) for _ in range(3)]
    jobs.append(coordinator.command_job("point-1", Command(command_id=uuid.uuid4().hex, action="next")))
    jobs.append(coordinator.ticket_request_job("kiosk-1", request()))
    answers = coordinator.run(jobs)
    called = answers[3]
    assert called.ok and called.state.current.number == "A-001"
    # Two still wait before the last ticket: A-001 was called in between.
    assert answers[4].ticket.ahead == 2
    assert coordinator.ticket(_token(coordinator, answers[4].ticket.number)).ahead == 2


def _token(coordinator: Coordinator, number: str) -> str:
    with coordinator.store.read() as s:
        return s.scalar(select(TicketRow.token).where(TicketRow.number == number))


@pytest.mark.parametrize(
    "policy", ['"strict"', '"aging"\naging_after_s = 300', '"ratio"\npriority_ratio = [2, 1]']
)
def test_people_ahead_of_a_new_ticket_agree_with_the_full_call_order(
    policy: str, database_url: str, make_store: Any, tmp_path: Path
) -> None:
    site = DEMO_SITE.read_text().replace('"ratio"\npriority_ratio = [3, 1]', policy)
    (tmp_path / "site.toml").write_text(site)
    clock = Clock()
    coordinator = Coordinator(make_store(database_url, tmp_path / "site.toml"), clock=clock)
    for n in range(14):
        clock.now = START + timedelta(minutes=4 * n)
        view = coordinator.issue_ticket("cash", "paid" if n % 3 == 0 else "free", channel=Channel.KIOSK)
        # The count made when issuing, against the order of the whole queue read afterwards.
        assert view.ahead == coordinator.ticket(view.token).ahead, (policy, n)


def test_presses_in_one_batch_call_each_ticket_once_in_order_and_see_a_recall(
    coordinator: Coordinator,
) -> None:
    coordinator.run([coordinator.ticket_request_job("kiosk-1", request()) for _ in range(5)])

    def press(device: str, action: str = "next") -> Any:
        return coordinator.command_job(device, Command(command_id=uuid.uuid4().hex, action=action))

    answers = coordinator.run(
        [
            press("point-1"),
            press("point-2"),
            press("point-1"),  # serves A-001, calls A-003
            press("point-2", "recall"),  # A-002 back to its place at the front
            press("point-4"),  # A-002 again
            press("point-2"),
        ]
    )
    assert all(a.ok for a in answers), [a.error for a in answers]
    current = {serial: coordinator.point_state(serial).current for serial in (1, 2, 4)}
    assert {serial: c.number if c else None for serial, c in current.items()} == {
        1: "A-003",
        2: "A-004",
        4: "A-002",
    }
    with coordinator.store.read() as s:
        states = dict(s.execute(select(TicketRow.number, TicketRow.state)).all())
    assert states == {
        "A-001": "served",
        "A-002": "called",
        "A-003": "called",
        "A-004": "called",
        "A-005": "waiting",
    }


def test_a_device_moved_to_another_point_acts_there_at_once(coordinator: Coordinator) -> None:
    coordinator.run([coordinator.ticket_request_job("kiosk-1", request("loans"))])
    # Point 1 serves only cash: the unit refuses while it drives point 1.
    (refused,) = coordinator.run([coordinator.command_job("point-1", Command(uuid.uuid4().hex, "next"))])
    assert not refused.ok

    registry.save_device(coordinator, id="point-1", kind="point", point=3, editing="point-1")
    (called,) = coordinator.run([coordinator.command_job("point-1", Command(uuid.uuid4().hex, "next"))])
    assert called.ok and called.state.serial == 3 and called.state.current.number == "B-001"


def test_a_press_calls_a_ticket_issued_earlier_in_its_batch(coordinator: Coordinator) -> None:
    def press() -> Any:
        return coordinator.command_job("point-1", Command(uuid.uuid4().hex, "next"))

    # The day's first ticket, called: the queue is empty and the day's counter exists.
    coordinator.run([coordinator.ticket_request_job("kiosk-1", request()), press()])
    issued, called = coordinator.run([coordinator.ticket_request_job("kiosk-1", request()), press()])
    assert called.ok, called.error
    assert called.state.current.number == issued.ticket.number == "A-002"


def test_a_point_closed_earlier_in_a_batch_no_longer_shortens_a_later_tickets_wait(
    coordinator: Coordinator,
) -> None:
    coordinator.run([coordinator.ticket_request_job("kiosk-1", request()) for _ in range(6)])
    deactivate = [
        coordinator.command_job(f"point-{n}", Command(uuid.uuid4().hex, "deactivate")) for n in (1, 2)
    ]
    *closed, issued = coordinator.run([*deactivate, coordinator.ticket_request_job("kiosk-1", request())])
    assert all(c.ok and not c.state.active for c in closed)
    # Six ahead, one cash point left at work: the wait said at once is the one read back later.
    assert issued.ticket.eta_s == coordinator.ticket(_token(coordinator, issued.ticket.number)).eta_s
    assert issued.ticket.eta_s > 0
