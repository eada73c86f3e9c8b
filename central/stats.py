"""What the admin sees of the hall: the live picture, staffing advice, and statistics over days.

The live part runs every second on the dashboard, so none of its queries scans
history; each names the index it rides on:

- waiting count and longest wait per service: ``state = 'waiting'`` grouped by
  service, ``min(issued_at)``: covered by ``ix_tickets_queue (state, service_id, issued_at)``;
- arrivals in the last hour: ``state IN (every state) AND service_id IN (every
  service) AND issued_at >= since``: the same index, one short range per
  (state, service) pair;
- the current ticket of each point: ``state = 'called'``: ``ix_tickets_queue``;
- measured service time: the newest served tickets of one service:
  ``ix_tickets_service_done (service_id, state, finished_at)``.

Statistics over a date range read the tickets of those service days (the
site's local dates) by ``uq_tickets_day_number (day, number)`` and aggregate in
Python: percentiles and local hours are computed alike on SQLite and PostgreSQL.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, selectinload

from central.domain import TicketState
from central.domain.staffing import Staffing, required_points
from central.store import Store
from central.store.models import DeviceRow, PointRow, ServiceRow, SiteRow, TicketRow, UserRow

ARRIVAL_WINDOW = timedelta(minutes=60)
# Enough served tickets to smooth one slow client out, few enough to follow the day's pace.
SERVICE_SAMPLE = 50
MAX_RANGE_DAYS = 366
ALL_STATES = tuple(s.value for s in TicketState)
DEFAULT_TARGET_S = 300
DEFAULT_PERCENT = 90


def site_zone(s: Session) -> ZoneInfo:
    site = s.get(SiteRow, 1)
    return ZoneInfo(site.timezone if site is not None else "UTC")


def staffing_target(s: Session) -> tuple[int, int]:
    """The admin's target: (seconds, percent of waits within them)."""
    site = s.get(SiteRow, 1)
    if site is None:
        return DEFAULT_TARGET_S, DEFAULT_PERCENT
    return (site.staffing_target_s or DEFAULT_TARGET_S), (site.staffing_percent or DEFAULT_PERCENT)


def set_staffing_target(store: Store, target_s: int, percent: int) -> None:
    """Store the admin's target; refuses numbers that advice cannot be computed for."""
    if not 1 <= target_s <= 24 * 3600:
        raise ValueError("The target wait must be between 1 second and 24 hours.")
    if not 1 <= percent <= 99:
        raise ValueError("The share of waits must be between 1 and 99 percent.")
    with store.write() as s:
        site = s.get(SiteRow, 1)
        if site is None:
            raise LookupError("The site is not set up yet: apply a site file first.")
        site.staffing_target_s, site.staffing_percent = target_s, percent


# --- the live picture ------------------------------------------------------------


@dataclass(frozen=True)
class ServiceNow:
    """One service at this moment."""

    key: str
    name: str
    prefix: str
    active: bool
    waiting: int
    longest_wait_s: float | None
    arrivals: int
    """Tickets issued in the arrival window."""
    arrival_per_s: float
    service_s: float | None
    """Mean time at the point of the newest served tickets; None before the first."""
    active_points: int
    points: int
    """Points providing the service, active or not."""

    @property
    def arrival_per_h(self) -> float:
        return self.arrival_per_s * 3600


@dataclass(frozen=True)
class PointNow:
    """One point at this moment."""

    serial: int
    name: str
    active: bool
    online: bool | None
    """Whether its point unit is connected; None for a point without one."""
    services: tuple[str, ...]
    current: str | None
    current_service: str | None
    called_at: datetime | None
    specialist: str | None


@dataclass(frozen=True)
class Live:
    at: datetime
    tz: tzinfo
    window_s: float
    target_s: int
    percent: int
    services: list[ServiceNow]
    points: list[PointNow]


def live(store: Store, now: datetime, *, window: timedelta = ARRIVAL_WINDOW) -> Live:
    """The waiting queues, the points and the recent pace, read in one transaction."""
    since = now - window
    with store.read() as s:
        services = list(s.scalars(select(ServiceRow).order_by(ServiceRow.key)))
        ids = [svc.id for svc in services]
        waiting = {sid: (count, oldest) for sid, count, oldest in s.execute(waiting_statement())}
        arrivals = arrivals_since(s, ids, since)
        points = list(s.scalars(select(PointRow).options(selectinload(PointRow.services))
                                .order_by(PointRow.serial)))
        current = {row.point_serial: row for row in s.scalars(called_statement())}
        user_ids = {p.specialist_id for p in points} | {t.specialist_id for t in current.values()}
        users = {u.id: u.name for u in s.scalars(select(UserRow).where(UserRow.id.in_(user_ids - {None})))}
        units = select(DeviceRow).where(DeviceRow.kind == "point", DeviceRow.point_serial.is_not(None))
        online = {d.point_serial: d.online for d in s.scalars(units)}
        target_s, percent = staffing_target(s)
        service_now = []
        for svc in services:
            count, oldest = waiting.get(svc.id, (0, None))
            providing = [p for p in points if any(ps.id == svc.id for ps in p.services)]
            service_now.append(ServiceNow(
                key=svc.key, name=svc.name, prefix=svc.prefix, active=svc.active, waiting=count,
                longest_wait_s=max(0.0, (now - oldest).total_seconds()) if oldest else None,
                arrivals=arrivals.get(svc.id, 0),
                arrival_per_s=arrivals.get(svc.id, 0) / window.total_seconds(),
                service_s=mean_service_s(s, svc.id),
                active_points=sum(1 for p in providing if p.active),
                points=len(providing),
            ))
        point_now = []
        for p in points:
            ticket = current.get(p.serial)
            specialist_id = p.specialist_id or (ticket.specialist_id if ticket else None)
            point_now.append(PointNow(
                serial=p.serial, name=p.name, active=p.active, online=online.get(p.serial),
                services=tuple(svc.key for svc in p.services),
                current=ticket.number if ticket else None,
                current_service=ticket.service.key if ticket else None,
                called_at=ticket.called_at if ticket else None,
                specialist=users.get(specialist_id) if specialist_id else None,
            ))
        tz = site_zone(s)
    return Live(now, tz, window.total_seconds(), target_s, percent, service_now, point_now)


def waiting_statement() -> Select[Any]:
    """Per service: how many wait and since when the longest has (``ix_tickets_queue`` covers it)."""
    return (
        select(TicketRow.service_id, func.count(), func.min(TicketRow.issued_at))
        .where(TicketRow.state == TicketState.WAITING.value)
        .group_by(TicketRow.service_id)
    )


def arrivals_statement(service_ids: list[int], since: datetime) -> Select[Any]:
    """Tickets issued since ``since`` per (state, service id): sum them per service.

    Every state and service is named, and the groups follow the index's order, so the
    database walks ``ix_tickets_queue`` one short range per (state, service) instead of
    reading every ticket a service ever had (grouped by service alone, SQLite picks
    ``ix_tickets_service_done`` for the order and reads them all).
    """
    return (
        select(TicketRow.state, TicketRow.service_id, func.count())
        .where(TicketRow.state.in_(ALL_STATES), TicketRow.service_id.in_(service_ids),
               TicketRow.issued_at >= since)
        .group_by(TicketRow.state, TicketRow.service_id)
    )


def arrivals_since(s: Session, service_ids: list[int], since: datetime) -> dict[int, int]:
    """Tickets issued per service id since ``since``, whatever became of them."""
    counts: dict[int, int] = defaultdict(int)
    if service_ids:
        for _state, service_id, count in s.execute(arrivals_statement(service_ids, since)):
            counts[service_id] += count
    return dict(counts)


def called_statement() -> Select[Any]:
    """The tickets now at a point (``ix_tickets_queue`` by state)."""
    return select(TicketRow).where(TicketRow.state == TicketState.CALLED.value)


def service_times_statement(service_id: int, sample: int = SERVICE_SAMPLE) -> Select[Any]:
    """The newest served tickets of a service (``ix_tickets_service_done``)."""
    return (
        select(TicketRow.called_at, TicketRow.finished_at)
        .where(TicketRow.service_id == service_id, TicketRow.state == TicketState.SERVED.value)
        .order_by(TicketRow.finished_at.desc())
        .limit(sample)
    )


def mean_service_s(s: Session, service_id: int, sample: int = SERVICE_SAMPLE) -> float | None:
    """Mean time at the point of the newest ``sample`` served tickets of a service."""
    rows = s.execute(service_times_statement(service_id, sample)).all()
    times = [(done - called).total_seconds() for called, done in rows if called and done]
    return sum(times) / len(times) if times else None


# --- staffing advice -----------------------------------------------------------


@dataclass(frozen=True)
class Advice:
    """Erlang C's word on one service."""

    key: str
    name: str
    status: str
    """``ok``, ``short`` (fewer active points than needed), ``idle`` (nobody arrived) or ``unknown``."""
    needed: int | None
    active_points: int
    staffing: Staffing | None
    message: str


@dataclass(frozen=True)
class SiteAdvice:
    services: list[Advice]
    pooled: int
    """Fewest points for the whole hall if every active point took every service (a lower bound)."""
    separate: int
    """Sum of the points each service needs on its own (an upper bound: nothing shared)."""
    active_points: int
    status: str
    """``ok``, ``tight`` (enough only if the shared points are shared well) or ``short``."""
    message: str | None


def _points(n: int) -> str:
    return f"{n} point" if n == 1 else f"{n} points"


def staffing_advice(now: Live) -> SiteAdvice:
    """How many points each service needs to keep ``percent`` % of waits under ``target_s``.

    Each service is its own M/M/c queue (Erlang C): arrivals of the last hour
    as a Poisson stream, its measured mean service time, the active points that
    provide it.

    Shared points (one point providing several services) are simplified: for a
    single service, every active point providing it counts as one of its
    points, as if it served nothing else.  That is optimistic where points are
    shared, so the whole hall is checked too, between two bounds:

    - ``separate``: the sum of what each service needs alone, as if no point
      were shared: more than the truth, since a shared point fills gaps;
    - ``pooled``: one queue for the whole hall (all arrivals, their mean
      service time) served by points that all take every service: less than
      the truth, since real points take only some services.

    Fewer active points than ``pooled`` is short for certain; fewer than
    ``separate`` is tight: it depends on how well the shared points are
    spread.  (The exact answer needs a multi-class model with skill-based
    routing; the two bounds are what an admin can act on.)
    """
    share = now.percent / 100
    target = _duration(now.target_s)
    advice = []
    for svc in now.services:
        if not svc.active and svc.waiting == 0:
            continue
        if svc.arrivals == 0:
            advice.append(Advice(svc.key, svc.name, "idle", 0, svc.active_points, None,
                                 "No tickets in the last hour: no point is needed for the pace."))
            continue
        if svc.service_s is None or svc.service_s <= 0:
            advice.append(Advice(svc.key, svc.name, "unknown", None, svc.active_points, None,
                                 "No client served yet: the service time is unknown."))
            continue
        staffing = required_points(svc.arrival_per_s, svc.service_s, now.target_s, share)
        if svc.active_points < staffing.points:
            needs = "1 active point" if staffing.points == 1 else f"{staffing.points} active points"
            message = (f"Needs {needs}, has {svc.active_points}: open "
                       f"{staffing.points - svc.active_points} more to keep {now.percent} % of waits under "
                       f"{target}.")
            status = "short"
        else:
            keep = "1 point keeps" if staffing.points == 1 else f"{staffing.points} points keep"
            message = (f"{keep} {now.percent} % of waits under {target}; "
                       f"{svc.active_points} active.")
            status = "ok"
        advice.append(Advice(svc.key, svc.name, status, staffing.points, svc.active_points, staffing,
                             message))
    separate = sum(a.needed or 0 for a in advice)
    loaded = [a.staffing for a in advice if a.staffing is not None]
    pooled = 0
    if loaded:
        arrivals = sum(x.arrival_per_s for x in loaded)
        mean_service = sum(x.arrival_per_s * x.service_s for x in loaded) / arrivals
        pooled = required_points(arrivals, mean_service, now.target_s, share).points
    active = sum(1 for p in now.points if p.active)
    if active < pooled:
        status = "short"
        message: str | None = (
            f"The hall is short: even if every active point took every service, it would need "
            f"{_points(pooled)}; {active} are active.")
    elif active < separate:
        status = "tight"
        message = (f"Tight: the services need {pooled} to {separate} points together, depending on how "
                   f"well the shared points are spread; {active} are active.")
    else:
        status, message = "ok", None
    return SiteAdvice(advice, pooled, separate, active, status, message)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} min" if rest == 0 else f"{minutes} min {rest} s"


# --- statistics over days -------------------------------------------------------


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q`` quantile (0..1), linear between the nearest ranks; None of nothing."""
    ordered = sorted(values)
    if not ordered:
        return None
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class Summary:
    """Counts and times of a set of tickets."""

    tickets: int = 0
    served: int = 0
    no_show: int = 0
    cancelled: int = 0
    waits: list[float] = field(default_factory=list, repr=False)
    service_times: list[float] = field(default_factory=list, repr=False)

    def add(self, t: TicketFacts) -> None:
        self.tickets += 1
        if t.state == TicketState.SERVED.value:
            self.served += 1
        elif t.state == TicketState.NO_SHOW.value:
            self.no_show += 1
        elif t.state == TicketState.CANCELLED.value:
            self.cancelled += 1
        if t.wait_s is not None:
            self.waits.append(t.wait_s)
        if t.service_s is not None:
            self.service_times.append(t.service_s)

    @property
    def wait_avg_s(self) -> float | None:
        return sum(self.waits) / len(self.waits) if self.waits else None

    @property
    def wait_p90_s(self) -> float | None:
        return percentile(self.waits, 0.9)

    @property
    def service_avg_s(self) -> float | None:
        return sum(self.service_times) / len(self.service_times) if self.service_times else None

    @property
    def service_p90_s(self) -> float | None:
        return percentile(self.service_times, 0.9)

    @property
    def no_show_rate(self) -> float | None:
        """No-shows among the called clients whose visit ended (served or no-show)."""
        ended = self.served + self.no_show
        return self.no_show / ended if ended else None


@dataclass(frozen=True)
class TicketFacts:
    """One ticket as statistics and the export see it."""

    id: int
    number: str
    day: date
    service: str
    service_name: str
    priority: str
    channel: str
    state: str
    point_serial: int | None
    point: str | None
    specialist: str | None
    issued_at: datetime
    called_at: datetime | None
    finished_at: datetime | None

    @property
    def wait_s(self) -> float | None:
        """From issue to (the latest) call."""
        return (self.called_at - self.issued_at).total_seconds() if self.called_at else None

    @property
    def service_s(self) -> float | None:
        """At the point, for served tickets."""
        if self.state == TicketState.SERVED.value and self.called_at and self.finished_at:
            return (self.finished_at - self.called_at).total_seconds()
        return None


@dataclass
class Report:
    first: date
    last: date
    tz: tzinfo
    services: list[tuple[str, str]]
    """(key, name) of every service with tickets in the range, or configured."""
    per_hour: dict[str, list[int]]
    """Tickets issued per service key and local hour of the day (24 counts)."""
    per_day: list[tuple[date, int]]
    total: Summary
    by_service: dict[str, Summary]
    by_point: dict[str, Summary]
    by_specialist: dict[str, Summary]

    @property
    def busy_hours(self) -> range:
        """The local hours with any ticket (the whole day when there is none)."""
        hours = [h for counts in self.per_hour.values() for h, n in enumerate(counts) if n]
        return range(min(hours), max(hours) + 1) if hours else range(0, 24)


def check_range(first: date, last: date, *, max_days: int | None = MAX_RANGE_DAYS) -> None:
    if last < first:
        raise ValueError("The end date is before the start date.")
    if max_days is not None and (last - first).days + 1 > max_days:
        raise ValueError(f"Pick at most {max_days} days.")


def ticket_facts(s: Session, first: date, last: date, *, batch: int = 1000) -> Iterator[TicketFacts]:
    """Tickets of the service days ``first``..``last`` (the site's local dates), oldest first."""
    points = {p.serial: p.name for p in s.scalars(select(PointRow))}
    users = {uid: name for uid, name in s.execute(select(UserRow.id, UserRow.name))}
    statement = (
        select(TicketRow.id, TicketRow.number, TicketRow.day, ServiceRow.key, ServiceRow.name,
               TicketRow.priority, TicketRow.channel, TicketRow.state, TicketRow.point_serial,
               TicketRow.specialist_id, TicketRow.issued_at, TicketRow.called_at, TicketRow.finished_at)
        .join(ServiceRow, ServiceRow.id == TicketRow.service_id)
        .where(TicketRow.day >= first, TicketRow.day <= last)
        .order_by(TicketRow.issued_at, TicketRow.id)
        .execution_options(yield_per=batch)
    )
    for row in s.execute(statement):
        (tid, number, day, key, name, priority, channel, state, serial, specialist_id,
         issued, called, finished) = row
        yield TicketFacts(
            id=tid, number=number, day=day, service=key, service_name=name, priority=priority,
            channel=channel, state=state, point_serial=serial,
            point=points.get(serial, f"Point {serial}") if serial is not None else None,
            specialist=users.get(specialist_id) if specialist_id is not None else None,
            issued_at=issued, called_at=called, finished_at=finished,
        )


def report(store: Store, first: date, last: date) -> Report:
    """Statistics of the service days ``first``..``last`` (inclusive, the site's local dates)."""
    check_range(first, last)
    with store.read() as s:
        tz = site_zone(s)
        configured = [(r.key, r.name) for r in s.scalars(select(ServiceRow).order_by(ServiceRow.key))]
        per_hour: dict[str, list[int]] = {key: [0] * 24 for key, _ in configured}
        per_day: dict[date, int] = defaultdict(int)
        total = Summary()
        by_service: dict[str, Summary] = defaultdict(Summary)
        by_point: dict[str, Summary] = defaultdict(Summary)
        by_specialist: dict[str, Summary] = defaultdict(Summary)
        names = dict(configured)
        for t in ticket_facts(s, first, last):
            names.setdefault(t.service, t.service_name)
            per_hour.setdefault(t.service, [0] * 24)[t.issued_at.astimezone(tz).hour] += 1
            per_day[t.day] += 1
            total.add(t)
            by_service[t.service].add(t)
            if t.point is not None:
                by_point[t.point].add(t)
            if t.called_at is not None:
                by_specialist[t.specialist or "(not signed in)"].add(t)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return Report(
        first=first, last=last, tz=tz, services=sorted(names.items()), per_hour=per_hour,
        per_day=[(d, per_day.get(d, 0)) for d in days], total=total,
        by_service=dict(sorted(by_service.items())),
        by_point=dict(sorted(by_point.items())),
        by_specialist=dict(sorted(by_specialist.items())),
    )


# --- export ---------------------------------------------------------------------

CSV_HEADER = ("number", "service", "priority", "channel", "issued_at", "called_at", "finished_at", "state",
              "point", "specialist", "wait_s", "service_s")


def _local_time(value: datetime | None, tz: tzinfo) -> str:
    return value.astimezone(tz).replace(microsecond=0).isoformat() if value else ""


def _seconds(value: float | None) -> str:
    return "" if value is None else str(int(round(value)))


def _cell(text: str | None) -> str:
    # A spreadsheet runs a cell starting with = + - @ as a formula: names typed by people stay text.
    if not text:
        return ""
    return "'" + text if text[0] in "=+-@\t\r" else text


def csv_row(t: TicketFacts, tz: tzinfo) -> tuple[str, ...]:
    return (t.number, t.service, t.priority, t.channel, _local_time(t.issued_at, tz),
            _local_time(t.called_at, tz), _local_time(t.finished_at, tz), t.state, _cell(t.point),
            _cell(t.specialist), _seconds(t.wait_s), _seconds(t.service_s))


def tickets_csv(store: Store, first: date, last: date) -> Iterator[str]:
    """The tickets of service days ``first``..``last`` as CSV text, a header line first, streamed in pieces.

    Times are in the site's time zone (ISO 8601 with the offset, so the hour a clock goes back
    stays unambiguous); wait_s and service_s are whole seconds.
    """
    check_range(first, last, max_days=None)
    return _csv_pieces(store, first, last)


def _csv_pieces(store: Store, first: date, last: date) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def take() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_HEADER)
    yield take()
    with store.read() as s:
        tz = site_zone(s)
        for i, t in enumerate(ticket_facts(s, first, last), 1):
            writer.writerow(csv_row(t, tz))
            if i % 500 == 0:
                yield take()
    rest = take()
    if rest:
        yield rest


def parse_day(text: str | None, what: str) -> date:
    """A date from a form or query (YYYY-MM-DD), with a clear error."""
    if not text:
        raise ValueError(f"The {what} date is missing.")
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"The {what} date {text!r} is not a date like 2026-11-28.") from None


def today(store: Store, now: datetime) -> date:
    with store.read() as s:
        return now.astimezone(site_zone(s)).date()

