"""Statistics, the live picture and staffing advice over a real database, SQLite and PostgreSQL alike.

Tickets are made through the coordinator with a clock the test moves, so every
time in the expectations below is one the test chose.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import helpers
import pytest
from sqlalchemy import select, text

from central import stats
from central.coordinator import Coordinator
from central.domain import Channel
from central.domain.staffing import required_points
from central.store.models import SiteRow, UserRow
from central.users import set_user

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo-site.toml"


class Clock(helpers.Clock):
    def at(self, hhmm: str, day: int = 10) -> None:
        """Set the clock to ``hhmm`` (UTC) on ``day`` March 2026, the days these tests play."""
        hour, minute = (int(x) for x in hhmm.split(":"))
        self.now = datetime(2026, 3, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def berlin_site(tmp_path: Path) -> Path:
    """The demo site in Berlin (UTC+1 in March), so local times differ from UTC."""
    site = tmp_path / "berlin.toml"
    site.write_text(DEMO.read_text().replace('timezone = "UTC"', 'timezone = "Europe/Berlin"'))
    return site


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 3, 10, 7, 0, tzinfo=UTC))


@pytest.fixture
def coordinator(database_url: str, make_store: Any, berlin_site: Path, clock: Clock) -> Coordinator:
    return Coordinator(make_store(database_url, berlin_site), clock=clock)


def press(coordinator: Coordinator, serial: int, action: str, specialist: int | None = None) -> None:
    result = coordinator.point_command(serial, action, command_id=uuid.uuid4().hex, source="test",
                                       specialist_id=specialist)
    assert result.ok, result.error


def user_id(coordinator: Coordinator, name: str) -> int:
    with coordinator.store.read() as s:
        return s.scalars(select(UserRow.id).where(UserRow.name == name)).one()


def hall_day(coordinator: Coordinator, clock: Clock) -> None:
    """One morning in Berlin (UTC times here, local = UTC+1) and a ticket after local midnight."""
    set_user(coordinator.store, "alice", "specialist", "correct horse battery")
    # A name a spreadsheet would run as a formula if the export let it.
    set_user(coordinator.store, "-bob", "specialist", "correct horse battery")
    alice, bob = user_id(coordinator, "alice"), user_id(coordinator, "-bob")
    clock.at("08:00")
    coordinator.issue_ticket("cash", channel=Channel.KIOSK)
    clock.at("08:01")
    coordinator.issue_ticket("cash", channel=Channel.WEB)
    clock.at("08:02")
    coordinator.issue_ticket("loans", channel=Channel.KIOSK)  # B-001
    clock.at("08:05")
    press(coordinator, 1, "next", alice)  # A-001 waited 300 s
    clock.at("08:09")
    press(coordinator, 1, "served", alice)  # ... and was served in 240 s
    clock.at("08:10")
    press(coordinator, 1, "next", alice)  # A-002 waited 540 s
    clock.at("08:12")
    press(coordinator, 1, "no_show", alice)
    clock.at("08:20")
    press(coordinator, 3, "next", bob)  # B-001 waited 1080 s
    clock.at("08:30")
    press(coordinator, 3, "served", bob)  # ... served in 600 s
    clock.at("09:15")
    token = coordinator.issue_ticket("accounts", channel=Channel.WEB).token  # C-001
    clock.at("09:16")
    coordinator.cancel_ticket(token)
    clock.at("10:00")
    coordinator.issue_ticket("cash", channel=Channel.KIOSK)  # A-003, still waiting
    clock.at("23:30")
    coordinator.issue_ticket("cash", channel=Channel.API)  # 00:30 on the 11th in Berlin: that day's A-001


def test_tickets_are_counted_per_service_and_local_hour(coordinator: Coordinator, clock: Clock) -> None:
    hall_day(coordinator, clock)
    report = stats.report(coordinator.store, date(2026, 3, 10), date(2026, 3, 10))
    assert report.per_hour["cash"][9] == 2
    assert report.per_hour["cash"][11] == 1
    assert report.per_hour["loans"][9] == 1
    assert report.per_hour["accounts"][10] == 1
    assert sum(sum(counts) for counts in report.per_hour.values()) == 5
    assert report.busy_hours == range(9, 12)
    assert report.per_day == [(date(2026, 3, 10), 5)]
    assert [key for key, _ in report.services] == ["accounts", "cash", "loans"]

    next_day = stats.report(coordinator.store, date(2026, 3, 11), date(2026, 3, 11))
    assert next_day.per_hour["cash"][0] == 1
    assert next_day.total.tickets == 1


def test_waits_and_service_times_by_service_point_and_specialist(
    coordinator: Coordinator, clock: Clock
) -> None:
    hall_day(coordinator, clock)
    report = stats.report(coordinator.store, date(2026, 3, 10), date(2026, 3, 10))

    cash = report.by_service["cash"]
    assert (cash.tickets, cash.served, cash.no_show, cash.cancelled) == (3, 1, 1, 0)
    assert cash.wait_avg_s == pytest.approx(420)
    assert cash.wait_p90_s == pytest.approx(300 + 0.9 * 240)
    assert cash.service_avg_s == pytest.approx(240)
    assert cash.no_show_rate == pytest.approx(0.5)
    loans = report.by_service["loans"]
    assert (loans.wait_avg_s, loans.service_avg_s, loans.no_show_rate) == (1080, 600, 0)
    accounts = report.by_service["accounts"]
    assert (accounts.tickets, accounts.cancelled) == (1, 1)
    assert (accounts.wait_avg_s, accounts.no_show_rate) == (None, None)

    total = report.total
    assert total.tickets == 5
    assert total.wait_avg_s == pytest.approx((300 + 540 + 1080) / 3)
    assert total.wait_p90_s == pytest.approx(540 + 0.8 * 540)
    assert total.service_p90_s == pytest.approx(240 + 0.9 * 360)
    assert total.no_show_rate == pytest.approx(1 / 3)

    assert sorted(report.by_point) == ["Window 1", "Window 3"]
    assert report.by_point["Window 1"].waits == [300, 540]
    assert report.by_point["Window 3"].service_times == [600]
    assert sorted(report.by_specialist) == ["-bob", "alice"]
    assert report.by_specialist["alice"].no_show == 1
    assert report.by_specialist["-bob"].wait_avg_s == 1080


def test_csv_has_one_row_per_ticket_in_the_site_time_zone(coordinator: Coordinator, clock: Clock) -> None:
    hall_day(coordinator, clock)
    body = "".join(stats.tickets_csv(coordinator.store, date(2026, 3, 10), date(2026, 3, 11)))
    assert body.startswith("number,service,priority,channel,")
    rows = list(csv.reader(io.StringIO(body)))
    assert rows == [
        ["number", "service", "priority", "channel", "issued_at", "called_at", "finished_at", "state",
         "point", "specialist", "wait_s", "service_s"],
        ["A-001", "cash", "free", "kiosk", "2026-03-10T09:00:00+01:00", "2026-03-10T09:05:00+01:00",
         "2026-03-10T09:09:00+01:00", "served", "Window 1", "alice", "300", "240"],
        ["A-002", "cash", "free", "web", "2026-03-10T09:01:00+01:00", "2026-03-10T09:10:00+01:00",
         "2026-03-10T09:12:00+01:00", "no_show", "Window 1", "alice", "540", ""],
        ["B-001", "loans", "free", "kiosk", "2026-03-10T09:02:00+01:00", "2026-03-10T09:20:00+01:00",
         "2026-03-10T09:30:00+01:00", "served", "Window 3", "'-bob", "1080", "600"],
        ["C-001", "accounts", "free", "web", "2026-03-10T10:15:00+01:00", "", "2026-03-10T10:16:00+01:00",
         "cancelled", "", "", "", ""],
        ["A-003", "cash", "free", "kiosk", "2026-03-10T11:00:00+01:00", "", "", "waiting", "", "", "", ""],
        ["A-001", "cash", "free", "api", "2026-03-11T00:30:00+01:00", "", "", "waiting", "", "", "", ""],
    ]
    one_day = list(csv.reader(io.StringIO("".join(stats.tickets_csv(coordinator.store, date(2026, 3, 11),
                                                                    date(2026, 3, 11))))))
    assert [r[0] for r in one_day] == ["number", "A-001"]
    empty = "".join(stats.tickets_csv(coordinator.store, date(2026, 1, 1), date(2026, 1, 2)))
    assert empty == ",".join(stats.CSV_HEADER) + "\r\n"


def test_the_live_picture_shows_queues_points_and_the_last_hours_pace(
    coordinator: Coordinator, clock: Clock
) -> None:
    hall_day(coordinator, clock)  # ends at 23:30 with the 11th's A-001 waiting
    clock.at("23:40")
    bob = user_id(coordinator, "-bob")
    coordinator.issue_ticket("loans", channel=Channel.KIOSK)  # B-001 of the 11th
    clock.at("23:45")
    press(coordinator, 3, "next", bob)
    press(coordinator, 2, "deactivate")
    clock.at("23:50")
    now = stats.live(coordinator.store, clock())

    by_key = {svc.key: svc for svc in now.services}
    cash, loans, accounts = by_key["cash"], by_key["loans"], by_key["accounts"]
    # A-003 (since 10:00) and the 11th's A-001 (since 23:30) wait; the longest is A-003.
    assert (cash.waiting, cash.longest_wait_s) == (2, 13 * 3600 + 50 * 60)
    assert (loans.waiting, loans.longest_wait_s) == (0, None)
    # Only the two tickets of the last hour count for the pace, whatever became of them.
    assert (cash.arrivals, loans.arrivals, accounts.arrivals) == (1, 1, 0)
    assert cash.arrival_per_h == pytest.approx(1)
    assert (cash.service_s, loans.service_s, accounts.service_s) == (240, 600, None)
    assert (cash.points, cash.active_points) == (3, 2)  # windows 1, 2, 4 provide cash; 2 is off

    points = {p.serial: p for p in now.points}
    assert (points[3].current, points[3].current_service, points[3].specialist) == ("B-001", "loans", "-bob")
    assert points[3].called_at == datetime(2026, 3, 10, 23, 45, tzinfo=UTC)
    assert (points[1].current, points[1].specialist, points[1].active) == (None, None, True)
    assert points[2].active is False
    assert points[4].services == ("accounts", "cash", "loans")


def test_staffing_advice_follows_the_pace_and_says_when_points_are_missing(
    coordinator: Coordinator, clock: Clock
) -> None:
    for _ in range(3):  # the measured service time: 240 s
        coordinator.issue_ticket("cash", channel=Channel.KIOSK)
    for _ in range(3):
        press(coordinator, 1, "next")
        clock.now += timedelta(seconds=240)
        press(coordinator, 1, "served")
    clock.at("08:00")
    for _ in range(40):  # 40 cash clients in the last hour
        coordinator.issue_ticket("cash", channel=Channel.KIOSK)
        clock.now += timedelta(seconds=90)
    assert clock() == datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    press(coordinator, 4, "deactivate")

    now = stats.live(coordinator.store, clock())
    assert (now.target_s, now.percent) == (300, 90)
    expected = required_points(40 / 3600, 240, 300, 0.9).points
    assert expected == 4  # 2.7 Erlangs: three points would keep up, but not 90 % within five minutes
    advice = stats.staffing_advice(now)
    cash = next(a for a in advice.services if a.key == "cash")
    assert (cash.status, cash.needed, cash.active_points) == ("short", expected, 2)
    assert "open 2 more" in cash.message
    loans = next(a for a in advice.services if a.key == "loans")
    assert (loans.status, loans.needed) == ("idle", 0)
    assert (advice.status, advice.pooled, advice.separate, advice.active_points) == ("short", 4, 4, 3)
    assert f"it would need {expected} points; 3 are active" in (advice.message or "")

    # A looser target of the admin's: the same pace needs fewer points.
    stats.set_staffing_target(coordinator.store, 1800, 80)
    looser = stats.staffing_advice(stats.live(coordinator.store, clock()))
    cash = next(a for a in looser.services if a.key == "cash")
    assert cash.needed == required_points(40 / 3600, 240, 1800, 0.8).points == 3
    assert cash.status == "short"
    press(coordinator, 4, "activate")
    cash = next(a for a in stats.staffing_advice(stats.live(coordinator.store, clock())).services
                if a.key == "cash")
    assert (cash.status, cash.active_points) == ("ok", 3)


def live_hall(services: dict[str, tuple[int, float, int]], active_points: int) -> stats.Live:
    """A live picture: per service (arrivals in the hour, service time, active points providing it)."""
    return stats.Live(
        at=datetime(2026, 3, 10, 9, 0, tzinfo=UTC), tz=UTC, window_s=3600, target_s=300, percent=90,
        services=[
            stats.ServiceNow(key=key, name=key.title(), prefix=key[0].upper(), active=True, waiting=0,
                             longest_wait_s=None, arrivals=n, arrival_per_s=n / 3600, service_s=service_s,
                             active_points=points, points=points)
            for key, (n, service_s, points) in services.items()
        ],
        points=[
            stats.PointNow(serial=i, name=f"Window {i}", active=True, online=True, services=(), current=None,
                           current_service=None, called_at=None, specialist=None)
            for i in range(1, active_points + 1)
        ],
    )


def test_shared_points_are_checked_for_the_whole_hall() -> None:
    # Two services of 1.2 Erlangs each need 3 points apiece alone, but fewer when points are pooled.
    pace = {"cash": (18, 240.0, 3), "loans": (18, 240.0, 3)}
    alone = required_points(18 / 3600, 240, 300, 0.9).points
    pooled = required_points(36 / 3600, 240, 300, 0.9).points
    assert (alone, pooled) == (3, 4)

    plenty = stats.staffing_advice(live_hall(pace, active_points=6))
    assert (plenty.status, plenty.message) == ("ok", None)
    assert [a.status for a in plenty.services] == ["ok", "ok"]

    # Four shared points: each service sees its three, the hall as one pool would just do.
    tight = stats.staffing_advice(live_hall(pace, active_points=4))
    assert (tight.status, tight.pooled, tight.separate, tight.active_points) == ("tight", 4, 6, 4)
    assert "need 4 to 6 points together" in (tight.message or "")
    assert [a.status for a in tight.services] == ["ok", "ok"]

    short = stats.staffing_advice(live_hall(pace, active_points=3))
    assert short.status == "short"
    assert "it would need 4 points; 3 are active" in (short.message or "")


def test_a_service_without_a_served_client_gets_no_number(coordinator: Coordinator, clock: Clock) -> None:
    coordinator.issue_ticket("loans", channel=Channel.KIOSK)
    advice = stats.staffing_advice(stats.live(coordinator.store, clock()))
    loans = next(a for a in advice.services if a.key == "loans")
    assert (loans.status, loans.needed) == ("unknown", None)
    assert "service time is unknown" in loans.message


def test_the_staffing_target_is_kept_and_bad_values_change_nothing(coordinator: Coordinator) -> None:
    stats.set_staffing_target(coordinator.store, 600, 95)
    for bad in ((0, 90), (24 * 3600 + 1, 90), (300, 0), (300, 100)):
        with pytest.raises(ValueError):
            stats.set_staffing_target(coordinator.store, *bad)
    with coordinator.store.read() as s:
        assert stats.staffing_target(s) == (600, 95)
        assert s.get(SiteRow, 1).staffing_target_s == 600


def test_bad_date_ranges_are_refused_with_a_reason(coordinator: Coordinator) -> None:
    with pytest.raises(ValueError, match="before the start"):
        stats.report(coordinator.store, date(2026, 3, 10), date(2026, 3, 9))
    with pytest.raises(ValueError, match="at most 366 days"):
        stats.report(coordinator.store, date(2025, 1, 1), date(2026, 3, 9))
    with pytest.raises(ValueError, match="before the start"):
        list(stats.tickets_csv(coordinator.store, date(2026, 3, 10), date(2026, 3, 9)))
    with pytest.raises(ValueError, match="not a date"):
        stats.parse_day("10/03/2026", "start")
    with pytest.raises(ValueError, match="missing"):
        stats.parse_day("", "end")
    assert stats.parse_day(" 2026-03-10 ", "start") == date(2026, 3, 10)


def test_live_queries_walk_indexes_not_the_ticket_history(coordinator: Coordinator) -> None:
    store = coordinator.store
    since = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
    with store.read() as s:
        ids = [1, 2, 3]
        statements = {
            "arrivals": stats.arrivals_statement(ids, since),
            "waiting": stats.waiting_statement(),
            "called": stats.called_statement(),
            "service times": stats.service_times_statement(1),
        }
        for name, statement in statements.items():
            sql = str(statement.compile(dialect=store.engine.dialect, compile_kwargs={"literal_binds": True}))
            if store.is_sqlite:
                plan = " | ".join(row[3] for row in s.execute(text("EXPLAIN QUERY PLAN " + sql)))
                assert "SCAN tickets" not in plan, (name, plan)
                assert "USING" in plan and "INDEX ix_tickets_" in plan, (name, plan)
                if name == "arrivals":
                    assert "ix_tickets_queue (state=? AND service_id=? AND issued_at>?)" in plan, plan
            else:
                # An empty table is cheapest to scan; forbid that to see which index the query can use.
                s.execute(text("SET LOCAL enable_seqscan = off"))
                plan = " | ".join(row[0] for row in s.execute(text("EXPLAIN " + sql)))
                assert "Seq Scan on tickets" not in plan, (name, plan)
                assert "ix_tickets_" in plan, (name, plan)
                if name == "arrivals":
                    # Either queue index bounds the scan by issue time; on an empty table the planner's pick
                    # between them is a coin toss.
                    assert re.search(r"ix_tickets_(class_)?queue .*Index Cond: .*issued_at >=", plan), plan


def test_percentiles_interpolate_between_ranks() -> None:
    assert stats.percentile([], 0.9) is None
    assert stats.percentile([7], 0.9) == 7
    assert stats.percentile(range(1, 11), 0.9) == pytest.approx(9.1)
    assert stats.percentile([10, 0], 0.5) == 5
