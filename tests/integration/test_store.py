"""The coordinator on a real database, SQLite and PostgreSQL alike."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import Clock
from sqlalchemy import event, func, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from central import registry
from central.coordinator import Coordinator, Job
from central.domain import Channel, PointAction
from central.store import Store
from central.store.migrate import SchemaOutdated, check_schema, upgrade
from central.store.models import ProcessedMessageRow, TicketEventRow, TicketRow
from nextup.contract import Command, TicketRequest


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 27, 9, 0, tzinfo=UTC))


@pytest.fixture
def coordinator(database_url: str, make_store: Any, clock: Clock) -> Coordinator:
    return Coordinator(make_store(database_url), clock=clock)


def press(coordinator: Coordinator, serial: int, action: str, command_id: str | None = None) -> Any:
    return coordinator.point_command(serial, action, command_id=command_id or uuid.uuid4().hex, source="test")


def test_migrations_run_from_empty_and_the_schema_is_checked(database_url: str) -> None:
    with pytest.raises(SchemaOutdated, match="nextup db upgrade"):
        check_schema(database_url)
    upgrade(database_url)
    check_schema(database_url)
    upgrade(database_url)  # a second upgrade is a no-op


def test_numbering_is_per_service_and_restarts_each_day(coordinator: Coordinator, clock: Clock) -> None:
    numbers = [coordinator.issue_ticket(s, channel=Channel.API).number for s in ("cash", "cash", "loans")]
    assert numbers == ["A-001", "A-002", "B-001"]
    clock.advance(days=1)
    assert coordinator.issue_ticket("cash", channel=Channel.API).number == "A-001"


def test_web_and_kiosk_tickets_share_one_queue(coordinator: Coordinator) -> None:
    web = coordinator.issue_ticket("cash", channel=Channel.WEB)
    kiosk = coordinator.handle_ticket_request("kiosk-1", TicketRequest("r-1", "cash"))
    assert (web.number, kiosk.ticket.number, kiosk.ticket.ahead) == ("A-001", "A-002", 1)


def test_called_ticket_leaves_people_ahead_of_the_others(coordinator: Coordinator, clock: Clock) -> None:
    tickets = [coordinator.issue_ticket("cash", channel=Channel.WEB) for _ in range(3)]
    assert [coordinator.ticket(t.token).ahead for t in tickets] == [0, 1, 2]
    press(coordinator, 1, "next")
    first, second, third = (coordinator.ticket(t.token) for t in tickets)
    assert (first.state, first.point_name) == ("called", "Window 1")
    assert (second.ahead, third.ahead) == (0, 1)


def test_no_show_frees_the_point(coordinator: Coordinator) -> None:
    coordinator.issue_ticket("cash", channel=Channel.API)
    press(coordinator, 1, "next")
    result = press(coordinator, 1, PointAction.NO_SHOW.value)
    assert result.ok and result.state.current is None


def test_next_serves_the_current_ticket_before_calling(coordinator: Coordinator) -> None:
    first = coordinator.issue_ticket("cash", channel=Channel.API)
    coordinator.issue_ticket("cash", channel=Channel.API)
    press(coordinator, 1, "next")
    result = press(coordinator, 1, "next")
    assert result.state.current.number == "A-002"
    assert coordinator.ticket(first.token).state == "served"


def test_inactive_point_cannot_call_and_nothing_changes(coordinator: Coordinator) -> None:
    ticket = coordinator.issue_ticket("cash", channel=Channel.API)
    press(coordinator, 1, "deactivate")
    result = press(coordinator, 1, "next")
    assert not result.ok and result.error["code"] == "point_inactive"
    assert coordinator.ticket(ticket.token).state == "waiting"


def test_recall_puts_the_ticket_back_in_its_place(coordinator: Coordinator) -> None:
    first = coordinator.issue_ticket("cash", channel=Channel.API)
    coordinator.issue_ticket("cash", channel=Channel.API)
    press(coordinator, 1, "next")
    press(coordinator, 1, "recall")
    assert coordinator.ticket(first.token).ahead == 0
    assert press(coordinator, 2, "next").state.current.number == first.number


def test_transfer_moves_the_ticket_to_another_service(coordinator: Coordinator) -> None:
    ticket = coordinator.issue_ticket("cash", channel=Channel.API)
    press(coordinator, 1, "next")
    result = coordinator.point_command(1, "transfer", command_id="t-1", source="test", service="loans")
    assert result.ok, result.error
    view = coordinator.ticket(ticket.token)
    assert (view.state, view.service, view.number) == ("waiting", "loans", "A-001")
    assert press(coordinator, 3, "next").state.current.number == "A-001"


def test_served_without_a_called_ticket_is_refused(coordinator: Coordinator) -> None:
    result = press(coordinator, 1, "served")
    assert not result.ok and result.error["code"] == "illegal_transition"
    assert "no ticket is called at Window 1" in result.error["message"]


def test_command_id_takes_effect_once(coordinator: Coordinator) -> None:
    for _ in range(3):
        coordinator.issue_ticket("cash", channel=Channel.API)
    results = [press(coordinator, 1, "next", command_id="same") for _ in range(3)]
    assert {r.state.current.number for r in results} == {"A-001"}
    with coordinator.store.read() as s:
        called = s.scalar(select(func.count()).select_from(TicketRow).where(TicketRow.state == "called"))
        assert called == 1


def test_request_id_is_stored_with_its_answer(coordinator: Coordinator) -> None:
    first = coordinator.handle_ticket_request("kiosk-1", TicketRequest("r-9", "cash"))
    again = coordinator.handle_ticket_request("kiosk-1", TicketRequest("r-9", "cash"))
    assert again == first
    with coordinator.store.read() as s:
        assert s.scalar(select(func.count()).select_from(TicketRow)) == 1
        assert s.get(ProcessedMessageRow, ("device:kiosk-1", "r-9")).response["ticket"]["number"] == "A-001"


def test_refusal_for_a_device_out_of_its_role(coordinator: Coordinator) -> None:
    from central.domain.errors import NotPermitted

    with pytest.raises(NotPermitted):
        coordinator.handle_command("kiosk-1", Command("c", "next"))
    with pytest.raises(NotPermitted):
        coordinator.handle_ticket_request("point-1", TicketRequest("r", "cash"))


def test_every_transition_is_timestamped(coordinator: Coordinator, clock: Clock) -> None:
    ticket = coordinator.issue_ticket("cash", channel=Channel.API)
    clock.advance(minutes=3)
    press(coordinator, 1, "next")
    clock.advance(minutes=5)
    press(coordinator, 1, "served")
    with coordinator.store.read() as s:
        events = [(e.kind, e.at) for e in s.scalars(select(TicketEventRow).order_by(TicketEventRow.id))]
        row = s.scalars(select(TicketRow).where(TicketRow.token == ticket.token)).one()
        assert (row.finished_at - row.called_at) == timedelta(minutes=5)
    assert [k for k, _ in events] == ["issued", "called", "served"]


def test_estimated_wait_uses_recent_service_times_and_active_points(
    coordinator: Coordinator, clock: Clock
) -> None:
    coordinator.issue_ticket("loans", channel=Channel.API)
    press(coordinator, 3, "next")
    clock.advance(minutes=10)
    press(coordinator, 3, "served")
    waiting = [coordinator.issue_ticket("loans", channel=Channel.API) for _ in range(3)]
    # loans is provided by points 3 and 4: two people ahead share them, one 10-minute round.
    assert coordinator.ticket(waiting[2].token).eta_s == 600
    press(coordinator, 4, "deactivate")
    assert coordinator.ticket(waiting[2].token).eta_s == 1200


def test_closed_site_refuses_tickets_with_the_opening_time(
    database_url: str, make_store: Any, tmp_path: Any, clock: Clock
) -> None:
    from central.domain.errors import SiteClosed

    site = tmp_path / "site.toml"
    site.write_text(
        '[site]\nname = "Clinic"\ntimezone = "Europe/Berlin"\n'
        '[hours]\nfri = ["08:00-12:00"]\n'
        '[[service]]\nkey = "gp"\nname = "GP"\nprefix = "G"\n'
    )
    coordinator = Coordinator(make_store(database_url, site), clock=clock)
    clock.now = datetime(2026, 11, 27, 12, 30, tzinfo=UTC)  # Friday 13:30 in Berlin
    with pytest.raises(SiteClosed, match="Clinic is closed, opens Friday 04 December at 08:00"):
        coordinator.issue_ticket("gp", channel=Channel.WEB)
    clock.now = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    assert coordinator.issue_ticket("gp", channel=Channel.WEB).number == "G-001"


def test_many_points_pressing_next_at_once_never_share_a_ticket(coordinator: Coordinator) -> None:
    tickets = 60
    for i in range(tickets):
        coordinator.issue_ticket(("cash", "accounts", "loans")[i % 3], channel=Channel.API)
    called: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(20)

    def point_worker(serial: int) -> None:
        try:
            start.wait()
            for _ in range(6):
                result = press(coordinator, serial, "next")
                if result.ok:
                    with lock:
                        called.append(result.state.current.number)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    # 20 threads on the 4 points with overlapping services: several threads share each point.
    threads = [threading.Thread(target=point_worker, args=(1 + i % 4,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(called) == len(set(called)), Counter(called).most_common(3)
    with coordinator.store.read() as s:
        states = Counter(s.scalars(select(TicketRow.state)))
        assert sum(states.values()) == tickets
        # Each press served the point's previous ticket, so nothing is called twice or lost.
        assert states["called"] <= 4
        assert states["waiting"] + states["called"] + states["served"] == tickets


def test_schema_has_the_queue_indexes(database_url: str, make_store: Any) -> None:
    store = make_store(database_url)
    indexes = {i["name"] for i in inspect(store.engine).get_indexes("tickets")}
    assert {"ix_tickets_queue", "ix_tickets_called", "ix_tickets_service_done"} <= indexes


def test_a_batch_of_tickets_goes_into_the_database_in_one_insert_per_table(coordinator: Coordinator) -> None:
    inserts: Counter[str] = Counter()

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO"):
            inserts[statement.split()[2]] += 1

    coordinator.issue_ticket("cash", channel=Channel.WEB)  # the day's counter exists
    engine = coordinator.store.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        requests = [TicketRequest(request_id=uuid.uuid4().hex, service="cash") for _ in range(20)]
        jobs = [coordinator.ticket_request_job("kiosk-1", request) for request in requests]
        answers = coordinator.run(jobs)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert all(a.ok for a in answers)
    assert inserts == {"tickets": 1, "ticket_events": 1, "processed_messages": 1}
    with coordinator.store.read() as s:
        ids = s.scalars(select(TicketRow.id).order_by(TicketRow.id)).all()
    assert len(ids) == len(set(ids)) == 21


def test_sqlite_numbers_new_rows_after_the_largest_id_even_after_a_rollback(
    sqlite_url: str, make_store: Any, clock: Clock
) -> None:
    coordinator = Coordinator(make_store(sqlite_url), clock=clock)
    first = coordinator.issue_ticket("cash", channel=Channel.WEB)
    with pytest.raises(RuntimeError), coordinator.store.write() as s:
        coordinator._issue(s, "cash", None, Channel.WEB, None, None)
        assert s.scalar(select(func.count(TicketRow.id))) == 2  # inserted: the next statement sees it
        raise RuntimeError("the batch failed")
    second = coordinator.issue_ticket("cash", channel=Channel.WEB)
    with coordinator.store.read() as s:
        rows = {r.number: r.id for r in s.scalars(select(TicketRow))}
    assert set(rows) == {first.number, second.number}
    assert rows[second.number] == rows[first.number] + 1


def test_a_ticket_is_logged_as_issued_only_when_its_transaction_commits(
    coordinator: Coordinator, caplog: pytest.LogCaptureFixture
) -> None:
    numbers: list[str] = []

    def act(s: Any) -> tuple[dict[str, Any], list[Any]]:
        numbers.append(coordinator._issue(s, "cash", None, Channel.WEB, None, None).number)
        if len(numbers) == 1:
            # As when another instance answered the same message first: the batch runs again.
            raise IntegrityError("INSERT INTO processed_messages", {}, Exception("duplicate key"))
        return {"number": numbers[-1]}, []

    with caplog.at_level(logging.INFO, logger="central.coordinator"):
        coordinator.run([Job("test", "m-1", "test", act, lambda answer: answer)])
    logged = [r.__dict__["ticket"] for r in caplog.records if r.getMessage() == "ticket issued"]
    assert len(numbers) == 2
    assert logged == [numbers[-1]]


def test_a_ticket_issued_in_a_savepoint_rolled_back_leaves_no_row_event_or_log_line(
    coordinator: Coordinator, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="central.coordinator"), coordinator.store.write() as s:
        with pytest.raises(RuntimeError), coordinator.savepoint(s):
            coordinator._issue(s, "cash", None, Channel.WEB, None, None)  # not inserted yet
            raise RuntimeError("refused")
        with pytest.raises(RuntimeError), coordinator.savepoint(s):
            coordinator._issue(s, "cash", None, Channel.WEB, None, None)
            assert s.scalar(select(func.count(TicketRow.id))) == 1  # inserted in the savepoint
            raise RuntimeError("refused")
        kept = coordinator._issue(s, "loans", None, Channel.WEB, None, None)
    with coordinator.store.read() as s:
        assert s.scalars(select(TicketRow.number)).all() == [kept.number]
        events = s.execute(select(TicketEventRow.kind, TicketEventRow.service_key)).all()
    assert events == [("issued", "loans")]
    logged = [r.__dict__["ticket"] for r in caplog.records if r.getMessage() == "ticket issued"]
    assert logged == [kept.number]


def test_classes_reordered_while_people_wait_call_each_class_in_issue_order(
    coordinator: Coordinator, clock: Clock
) -> None:
    registry.set_policy(coordinator, policy="strict", aging_after_s=600, ratio=None)
    issued = []
    for priority in ("free", "paid", "free"):
        issued.append(coordinator.issue_ticket("cash", priority, channel=Channel.KIOSK).number)
        clock.advance(minutes=1)
    registry.move_priority(coordinator, "free", "up")  # free now goes first
    for priority in ("free", "paid"):
        issued.append(coordinator.issue_ticket("cash", priority, channel=Channel.KIOSK).number)
        clock.advance(minutes=1)
    called = [press(coordinator, 1, "next").state.current.number for _ in issued]
    # Both free tickets issued before the move come before the one issued after it, then paid alike.
    assert called == [issued[0], issued[2], issued[3], issued[1], issued[4]]


def test_central_copies_the_sqlite_log_into_the_database_beside_its_commits(sqlite_url: str) -> None:
    """No commit of central's stops to checkpoint (the slowest presses were those that did):
    a thread of its own copies the write-ahead log into the database, and stops with the store."""
    upgrade(sqlite_url)
    database = Path(sqlite_url.removeprefix("sqlite:///"))
    store = Store(sqlite_url, background_checkpoint=True)
    try:
        with store.write() as s:
            assert s.execute(text("PRAGMA wal_autocheckpoint")).scalar() == 0
            padding = {"padding": "x" * 4000}
            answers = [
                dict(source="test", message_id=str(i), kind="ticket", response=padding, at=datetime.now(UTC))
                for i in range(1500)  # about 1,500 pages: past SQLite's own threshold of 1,000
            ]
            s.execute(insert(ProcessedMessageRow), answers)
        deadline = time.monotonic() + 10
        while database.stat().st_size < 1500 * 4000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert database.stat().st_size >= 1500 * 4000
    finally:
        store.close()
    assert "sqlite-checkpoint" not in {thread.name for thread in threading.enumerate()}
