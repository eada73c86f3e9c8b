"""The coordinator: every operation on the queue, as one database transaction.

The MQTT bridge, the web and the CLI call these methods; none of them touches
the queue otherwise.  Each operation loads what the domain needs, lets the
domain decide, writes the result and computes the states to publish, all in
one transaction; the messages go out after the commit, through the listeners.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, time
from functools import lru_cache
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import and_, bindparam, event, func, insert, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import ORMExecuteState, Session

from central.domain import (
    Channel,
    DeviceKind,
    OpeningHours,
    Point,
    PointAction,
    PolicyKind,
    PriorityClass,
    PriorityPolicy,
    Service,
    SiteRules,
    Ticket,
    TicketState,
    call_next,
    estimate_wait_s,
    new_ticket,
    service_day,
)
from central.domain.errors import (
    IllegalTransition,
    NextupError,
    NotPermitted,
    ServiceInactive,
    StoreUnavailable,
    UnknownDevice,
    UnknownPoint,
    UnknownTicket,
)
from central.leases import next_online_seq
from central.store import Store
from central.store.db import reserve_ids
from central.store.models import (
    ClosedDateRow,
    DeviceRow,
    OpeningIntervalRow,
    PointRow,
    PriorityRow,
    ProcessedMessageRow,
    ServiceRow,
    SiteRow,
    TicketEventRow,
    TicketRow,
    point_services,
)
from nextup.contract import (
    Board,
    CallInfo,
    Command,
    Current,
    DeviceConfig,
    DeviceStatus,
    IssuedTicket,
    PointState,
    ServiceInfo,
    SiteState,
    TicketPrinted,
    TicketReply,
    TicketRequest,
    Topics,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

BOARD_CALLS = 10
RECENT_SERVICES = 20
CALL_EXPIRY_S = 60


def _literal_limit(rows: int) -> Any:
    # In the statement's text: PostgreSQL guesses that a prepared LIMIT $1 keeps a tenth of the rows,
    # so with a long history the board's statement never got a generic plan and was planned anew at
    # every change (0.6 ms instead of 0.27 with 100,000 past tickets).
    return bindparam("limit", rows, literal_execute=True)


# Statements on the hot paths are built once: building a statement and its cache key
# cost more than running it (a press ran about twenty).
_SITE = SiteRow.__table__
_TICKETS = TicketRow.__table__
_SERVICES = ServiceRow.__table__
_POINTS = PointRow.__table__
_PROCESSED = ProcessedMessageRow.__table__
_WAITING = TicketState.WAITING.value
_BUMP_VERSION = (
    update(_SITE).where(_SITE.c.id == 1).values(version=_SITE.c.version + 1).returning(_SITE.c.version)
)
_CONFIG_VERSION = select(_SITE.c.config_version).where(_SITE.c.id == 1)
_ANSWERED = select(_PROCESSED.c.source, _PROCESSED.c.message_id, _PROCESSED.c.response).where(
    tuple_(_PROCESSED.c.source, _PROCESSED.c.message_id).in_(bindparam("keys", expanding=True))
)
_WAITING_COUNTS = (
    select(_TICKETS.c.service_id, func.count(_TICKETS.c.id))
    .where(_TICKETS.c.state == _WAITING)
    .group_by(_TICKETS.c.service_id)
)
_WAITING_BY_CLASS = (
    select(_TICKETS.c.priority_rank, func.count(_TICKETS.c.id))
    .where(_TICKETS.c.state == _WAITING, _TICKETS.c.service_id == bindparam("service_id"))
    .group_by(_TICKETS.c.priority_rank)
)
_LAST_CALLS = (
    select(
        _TICKETS.c.number,
        _TICKETS.c.point_serial,
        _POINTS.c.name,
        _SERVICES.c.key,
        _TICKETS.c.called_at,
        _TICKETS.c.language,
    )
    .join(_SERVICES, _SERVICES.c.id == _TICKETS.c.service_id)
    .outerjoin(_POINTS, _POINTS.c.serial == _TICKETS.c.point_serial)
    .where(_TICKETS.c.called_at.is_not(None), _TICKETS.c.point_serial.is_not(None))
    .order_by(_TICKETS.c.called_at.desc())
    .limit(_literal_limit(BOARD_CALLS))
)
_RECENT_SERVICES = (
    select(_TICKETS.c.called_at, _TICKETS.c.finished_at)
    .where(_TICKETS.c.service_id == bindparam("service_id"), _TICKETS.c.state == TicketState.SERVED.value)
    .order_by(_TICKETS.c.finished_at.desc())
    .limit(_literal_limit(RECENT_SERVICES))
)
_ACTIVE_POINTS = (
    select(func.count(PointRow.id))
    .join(PointRow.services)
    .where(ServiceRow.id == bindparam("service_id"), PointRow.active.is_(True))
)
_CALLED_HERE = _TICKETS.alias("called_here")
_CALLED_FOR = _SERVICES.alias("called_for")
# Every point, one line per service it provides, with the ticket called at it (number, service).
_POINT_LINES = (
    select(
        _POINTS.c.serial,
        _POINTS.c.name,
        _POINTS.c.active,
        _POINTS.c.last_command_id,
        _POINTS.c.last_error,
        point_services.c.service_id,
        _CALLED_HERE.c.number,
        _CALLED_FOR.c.key,
    )
    .outerjoin(point_services, point_services.c.point_id == _POINTS.c.id)
    .outerjoin(
        _CALLED_HERE,
        and_(
            _CALLED_HERE.c.point_serial == _POINTS.c.serial,
            _CALLED_HERE.c.state == TicketState.CALLED.value,
        ),
    )
    .outerjoin(_CALLED_FOR, _CALLED_FOR.c.id == _CALLED_HERE.c.service_id)
    .order_by(_POINTS.c.serial)
)
# A point as a press needs it, one line per service it provides (its row locked where the database can).
_POINT_LINES_OF = (
    select(
        _POINTS.c.id,
        _POINTS.c.serial,
        _POINTS.c.name,
        _POINTS.c.active,
        _POINTS.c.ratio_state,
        _SERVICES.c.id.label("service_id"),
        _SERVICES.c.key.label("service_key"),
    )
    .outerjoin(point_services, point_services.c.point_id == _POINTS.c.id)
    .outerjoin(_SERVICES, _SERVICES.c.id == point_services.c.service_id)
    .where(_POINTS.c.serial == bindparam("serial"))
    .order_by(_SERVICES.c.key)
)
# Tickets as plain lines: a press reads and writes them without ORM objects.
_TICKET_LINE = [c for c in _TICKETS.c if c.key not in ("device_id", "printed", "print_error")]
_CURRENT = (
    select(*_TICKET_LINE, _SERVICES.c.key.label("service_key"))
    .join(_SERVICES, _SERVICES.c.id == _TICKETS.c.service_id)
    .where(_TICKETS.c.point_serial == bindparam("serial"), _TICKETS.c.state == TicketState.CALLED.value)
)
# Exactly the order of ix_tickets_class_queue and no join: one index seek whatever the planner's
# statistics say. With a join or an id to break ties, PostgreSQL with statistics older than the
# queue sorted the whole queue of the service for each head (0.7-2.3 ms against 0.03).
_HEAD = (
    select(*_TICKET_LINE)
    .where(_TICKETS.c.state == _WAITING, _TICKETS.c.service_id == bindparam("service_id"))
    .order_by(_TICKETS.c.priority_rank, _TICKETS.c.issued_at, _TICKETS.c.seq)
    .limit(1)
)
_HEAD_AFTER = _HEAD.where(_TICKETS.c.priority_rank > bindparam("rank"))
# Which columns are set comes from the parameters given.
_UPDATE_TICKET = update(_TICKETS).where(_TICKETS.c.id == bindparam("ticket_id"))
_UPDATE_POINT = update(_POINTS).where(_POINTS.c.id == bindparam("point_id"))
_INSERT_EVENTS = insert(TicketEventRow.__table__)
_INSERT_TICKETS = insert(_TICKETS)
_INSERT_TICKETS_RETURNING = insert(_TICKETS).returning(_TICKETS.c.id, sort_by_parameter_order=True)
# The columns of a new ticket that neither the domain's ticket nor _add_waiting's callers give:
# every row of a multi-row INSERT must have the same keys.
_NEW_TICKET = {"specialist_id": None, "device_id": None, "printed": None, "print_error": None}

_CLASS_RANK = (
    select(PriorityRow.__table__.c.rank)
    .where(PriorityRow.__table__.c.key == _TICKETS.c.priority)
    .scalar_subquery()
)
_RERANK_OPEN_TICKETS = (
    update(_TICKETS)
    .where(
        _TICKETS.c.state.in_((_WAITING, TicketState.CALLED.value)),
        _TICKETS.c.priority_rank != _CLASS_RANK,  # a class removed since: kept as it was
    )
    .values(priority_rank=_CLASS_RANK)
)

_FIRST_CLASS = select(func.min(_TICKETS.c.priority_rank)).where(
    _TICKETS.c.state == _WAITING, _TICKETS.c.service_id == bindparam("service_id")
)
_NEXT_CLASS = _FIRST_CLASS.where(_TICKETS.c.priority_rank > bindparam("rank"))


# Keys of Session.info: what a transaction changed, and the states rendered from it.
_TOUCHED = "nextup.touched"
_RENDERED = "nextup.rendered"
_PACE = "nextup.pace"
_QUEUES = "nextup.queues"
_HELD = "nextup.held"
_AT_WORK = "nextup.points_at_work"
_NEW_TICKETS = "nextup.new_tickets"
_LOG_LINES = "nextup.log_lines"
EVENTS = "nextup.events"
"""Key of Session.info: the ``TicketEvent``s of the transaction, inserted when it commits."""


@dataclass(frozen=True)
class Message:
    """One MQTT message to publish after a commit."""

    topic: str
    payload: bytes
    retain: bool = False
    expiry_s: int | None = None
    """MQTT 5 message expiry: a call announced minutes late would send people to the wrong point."""
    version: int | None = None
    """The database version a retained state was read at (board and point states)."""
    local: bool = False
    """For central's own listeners (live pages) only; the bridge does not publish it."""
    waiting_only: bool = False
    """A point state whose only news is its waiting count: the bridge may hold it a moment and send
    the newest only (``Bridge``), since a busy service changes the count of each of its points per call."""


@dataclass(frozen=True)
class TicketView:
    """What a client may know of their own ticket."""

    number: str
    service: str
    service_name: str
    state: str
    ahead: int
    eta_s: int
    point: int | None
    point_name: str | None
    token: str
    track_url: str
    issued_at: datetime
    called_at: datetime | None
    language: str | None

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["issued_at"] = self.issued_at.isoformat()
        out["called_at"] = self.called_at.isoformat() if self.called_at else None
        return out


@dataclass(frozen=True)
class TicketEvent:
    """A transition of a ticket in a transaction: written as a ``TicketEventRow`` when it commits."""

    of: int | TicketRow | dict[str, Any]
    """The ticket's id, or its row (ORM object, or values from ``_add_waiting``)."""
    ticket: Ticket
    """The ticket after the transition."""
    kind: str
    at: datetime
    point_serial: int | None
    specialist_id: int | None


@dataclass
class _PointAtWork:
    """A point as a command reads and changes it; kept (and locked) for the rest of the transaction."""

    id: int
    serial: int
    name: str
    active: bool
    ratio_state: list[int]
    services: tuple[tuple[int, str], ...]  # (id, key), by key
    last_command_id: str | None = None
    last_error: dict[str, str] | None = None
    changed: bool = False
    """Not written yet: ``_write_points`` writes the batch's points together."""


@dataclass(frozen=True)
class _Device:
    kind: str
    point_serial: int | None
    language: str | None


@dataclass(frozen=True)
class _Configuration:
    """What changes only with the site's configuration: kept between transactions."""

    version: int
    rules: SiteRules
    service_ids: dict[str, int]  # by key
    devices: dict[str, _Device]  # by id


@dataclass(frozen=True)
class Job:
    """One message to act on once per ``message_id`` of ``source``, however often it is delivered.

    ``act`` changes the queue inside the given transaction and returns the answer to store
    (or a function giving it once the states are rendered) and any messages of its own;
    ``answer`` turns a stored answer into what the caller gets.
    """

    source: str
    message_id: str
    kind: str
    act: Callable[[Session], tuple[Any, list[Message]]]
    """May raise a ``NextupError`` only before it writes: a refusal after that is its answer."""
    answer: Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class Place:
    """A waiting ticket's place: its service, how many are called before it, and about when it is called."""

    service: str
    ahead: int
    eta_s: int


@dataclass(frozen=True)
class CommandResult:
    command_id: str
    ok: bool
    error: dict[str, str] | None
    state: PointState


def utcnow() -> datetime:
    return datetime.now(UTC)


@lru_cache(maxsize=32)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _hhmm(text: str) -> time:
    return time.fromisoformat(text)


class Coordinator:
    """Every operation on one site's queue."""

    def __init__(
        self,
        store: Store,
        *,
        site: str = "main",
        public_url: str = "http://127.0.0.1:8000",
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.topics = Topics(site)
        self.public_url = public_url.rstrip("/")
        self.clock = clock
        self._listeners: list[Callable[[list[Message]], None]] = []
        self._config: _Configuration | None = None
        # The locking forms of the hot statements, for this store's database. Heads another point
        # is calling right now are passed over (SKIP LOCKED): two points never wait on each other.
        self._lock_point = store.for_update(_POINT_LINES_OF, of=_POINTS)
        self._lock_current = store.for_update(_CURRENT, of=_TICKETS)
        self._lock_head = store.for_update(_HEAD, of=_TICKETS, skip_locked=True)
        self._lock_head_after = store.for_update(_HEAD_AFTER, of=_TICKETS, skip_locked=True)

    # --- publishing ---------------------------------------------------------

    def add_listener(self, listener: Callable[[list[Message]], None]) -> None:
        """Call ``listener`` with the messages of every committed change."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[list[Message]], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _emit(self, messages: list[Message]) -> None:
        if not messages:
            return
        for listener in list(self._listeners):
            try:
                listener(messages)
            except Exception:  # a broken listener must not undo a committed change
                log.exception("listener failed")

    def track_url(self, token: str) -> str:
        return f"{self.public_url}/t/{token}"

    # --- loading ------------------------------------------------------------

    def _site_row(self, s: Session) -> SiteRow:
        row = _held(s, SiteRow, 1, lambda: s.get(SiteRow, 1))
        return (
            row
            if row is not None
            else SiteRow(
                id=1,
                name="Nextup",
                timezone="UTC",
                language="en",
                policy="strict",
                aging_after_s=600,
                ratio=[],
                version=0,
            )
        )

    def rules(self, s: Session) -> SiteRules:
        """The site's rules, read again only when the configuration changed."""
        return self._configuration(s).rules

    def _configuration(self, s: Session) -> _Configuration:
        """The site's configuration, read again only when it changed (every change bumps its version)."""
        cached = self._config
        if cached is not None:
            # One plain column: the whole site row through the ORM cost a tenth of a press.
            version = _held(s, _Configuration, 1, lambda: s.execute(_CONFIG_VERSION).scalar())
            if version == cached.version and version:
                return cached
        site = self._site_row(s)
        services = s.scalars(select(ServiceRow)).all()
        weekly: dict[int, list[tuple[time, time]]] = {}
        for row in s.scalars(select(OpeningIntervalRow)):
            weekly.setdefault(row.weekday, []).append((_hhmm(row.opens), _hhmm(row.closes)))
        closed = frozenset(s.scalars(select(ClosedDateRow.day)))
        rules = SiteRules(
            name=site.name,
            tz=_zone(site.timezone),
            services={r.key: _service(r) for r in services},
            priorities=tuple(
                PriorityClass(r.key, r.name, r.rank, r.public)
                for r in s.scalars(select(PriorityRow).order_by(PriorityRow.rank))
            ),
            policy=PriorityPolicy(PolicyKind(site.policy), site.aging_after_s, tuple(site.ratio or ())),
            hours=OpeningHours({d: tuple(i) for d, i in weekly.items()}, closed),
            language=site.language,
        )
        registered = select(DeviceRow.id, DeviceRow.kind, DeviceRow.point_serial, DeviceRow.language)
        devices = {d.id: _Device(d.kind, d.point_serial, d.language) for d in s.execute(registered)}
        self._config = _Configuration(site.config_version, rules, {r.key: r.id for r in services}, devices)
        return self._config

    @staticmethod
    def configuration_changed(s: Session) -> None:
        """Call in the transaction that changes services, classes, policy or hours."""
        if s.get(SiteRow, 1) is None:
            s.add(SiteRow(id=1, version=0, config_version=0))
            s.flush()
        s.execute(update(SiteRow).where(SiteRow.id == 1).values(config_version=SiteRow.config_version + 1))
        # A ticket in the queue takes its class's place as it is now: kept at the rank its class had
        # when it was issued, a class moved since would have later tickets of it called first.
        s.execute(_RERANK_OPEN_TICKETS)

    def _point_at_work(self, s: Session, serial: int) -> _PointAtWork:
        """Point ``serial`` with the services it provides, locked for a command (once a transaction)."""
        at_work = s.info.setdefault(_AT_WORK, {})
        if serial in at_work:
            return at_work[serial]  # type: ignore[no-any-return]
        lines = s.execute(self._lock_point, {"serial": serial}).all()
        if not lines:
            raise UnknownPoint(f"There is no point with serial {serial}")
        first = lines[0]
        services = tuple((line.service_id, line.service_key) for line in lines if line.service_id is not None)
        at_work[serial] = _PointAtWork(
            first.id, first.serial, first.name, first.active, first.ratio_state or [], services
        )
        return at_work[serial]  # type: ignore[no-any-return]

    @staticmethod
    def _write_points(s: Session) -> None:
        """Write the points the transaction's commands changed, in one round trip, before they are read."""
        changed = [point for point in s.info.get(_AT_WORK, {}).values() if point.changed]
        if not changed:
            return
        values = [
            {
                "point_id": point.id,
                "active": point.active,
                "ratio_state": point.ratio_state,
                "last_command_id": point.last_command_id,
                "last_error": point.last_error,
            }
            for point in changed
        ]
        s.execute(_UPDATE_POINT, values)
        for point in changed:
            point.changed = False

    def _device(self, s: Session, device_id: str, kind: DeviceKind) -> _Device:
        """The registered device ``device_id``, which must be a ``kind``."""
        device = self._configuration(s).devices.get(device_id)
        if device is None:
            raise UnknownDevice(f"Device {device_id!r} is not in the site's registry")
        if device.kind != kind.value:
            raise NotPermitted(f"Device {device_id!r} is a {device.kind}, not a {kind.value}")
        return device

    def _class_heads(self, s: Session, services: Iterable[tuple[int, str]]) -> list[tuple[Any, Ticket]]:
        """The first waiting ticket of each class of each of ``services`` (id, key), locked for calling."""
        heads: list[tuple[Any, Ticket]] = []
        for service_id, key in services:
            head = s.execute(self._lock_head, {"service_id": service_id}).first()
            while head is not None:
                heads.append((head, _ticket_of(head, key)))
                after = {"service_id": service_id, "rank": head.priority_rank}
                head = s.execute(self._lock_head_after, after).first()
        return heads

    def _recent_service_s(self, s: Session, service_id: int) -> list[float]:
        rows = s.execute(_RECENT_SERVICES, {"service_id": service_id})
        return [(done - called).total_seconds() for called, done in rows if called and done]

    def _active_points_for(self, s: Session, service_id: int) -> int:
        self._write_points(s)
        return s.scalar(_ACTIVE_POINTS, {"service_id": service_id}) or 0

    def _ahead_and_eta(self, s: Session, rules: SiteRules, row: TicketRow, now: datetime) -> tuple[int, int]:
        if row.state != TicketState.WAITING.value:
            return 0, 0
        place = self._places(s, rules, now, row.service_id)[row.token]
        return place.ahead, place.eta_s

    def _places(
        self, s: Session, rules: SiteRules, now: datetime, service_id: int | None = None
    ) -> dict[str, Place]:
        """Where each waiting ticket (of ``service_id``, else of every service) stands, by token."""
        # Light rows, not ORM objects: the whole queue is read.
        statement = (
            select(
                TicketRow.id,
                TicketRow.token,
                TicketRow.priority_rank,
                TicketRow.issued_at,
                TicketRow.seq,
                TicketRow.number,
                TicketRow.service_id,
                ServiceRow.key,
            )
            .join(ServiceRow, ServiceRow.id == TicketRow.service_id)
            .where(TicketRow.state == TicketState.WAITING.value)
        )
        if service_id is not None:
            statement = statement.where(TicketRow.service_id == service_id)
        queues: dict[int, list[Any]] = {}
        for row in s.execute(statement):
            queues.setdefault(row.service_id, []).append(row)
        places: dict[str, Place] = {}
        for queue_service, waiting in queues.items():
            recent = self._recent_service_s(s, queue_service)
            points = self._active_points_for(s, queue_service)
            for ahead, row in enumerate(rules.policy.call_order(waiting, now)):
                places[row.token] = Place(row.key, ahead, estimate_wait_s(ahead, recent, points))
        return places

    def _waiting_classes(self, s: Session, service_id: int) -> list[int]:
        """The classes with someone waiting for the service, one index seek each."""
        ranks: list[int] = []
        rank = s.scalar(_FIRST_CLASS, {"service_id": service_id})
        while rank is not None:
            ranks.append(rank)
            rank = s.scalar(_NEXT_CLASS, {"service_id": service_id, "rank": rank})
        return ranks

    def _ahead_of_new(
        self, s: Session, rules: SiteRules, service_id: int, rank: int, now: datetime
    ) -> tuple[int, int]:
        """People ahead of and estimated wait for a ticket of class ``rank`` about to be issued."""
        policy = rules.policy
        ahead = 0
        if policy.kind is PolicyKind.AGING:
            waiting = (TicketRow.state == TicketState.WAITING.value, TicketRow.service_id == service_id)
            before = []
            for other in self._waiting_classes(s, service_id):
                cutoff = policy.called_before_new(rank, other, now)
                if cutoff is not None:
                    before.append(and_(TicketRow.priority_rank == other, TicketRow.issued_at <= cutoff))
            if before:
                ahead = s.scalar(select(func.count(TicketRow.id)).where(*waiting, or_(*before))) or 0
        else:
            # Strict and ratio need only how many wait in each class: read once per transaction,
            # then kept up to date by the tickets it issues.
            queues = s.info.setdefault(_QUEUES, {})
            counts = queues.get(service_id)
            if counts is None:
                by_class = s.execute(_WAITING_BY_CLASS, {"service_id": service_id})
                counts = queues[service_id] = {r: n for r, n in by_class}
            if policy.orders_by_time:
                ahead = sum(n for r, n in counts.items() if policy.called_before_new(rank, r, now))
            else:
                ahead = policy.ratio_place_of_new(counts, rank)
            counts[rank] = counts.get(rank, 0) + 1
        # Service times and active points change only with a point's command: a batch of tickets shares them.
        pace = s.info.setdefault(_PACE, {})
        if service_id not in pace:
            pace[service_id] = (self._recent_service_s(s, service_id), self._active_points_for(s, service_id))
        return ahead, estimate_wait_s(ahead, *pace[service_id])

    # --- states to publish --------------------------------------------------

    def _bump_version(self, s: Session) -> int:
        # On the table, not through the ORM: its bulk-update bookkeeping was a quarter of a press.
        version = s.execute(_BUMP_VERSION).scalar()
        if version is None:  # a site not set up yet
            s.add(self._site_row(s))
            s.flush()
            version = s.execute(_BUMP_VERSION).scalar_one()
        return version  # type: ignore[no-any-return]

    def _waiting_counts(self, s: Session) -> dict[int, int]:
        return {service_id: count for service_id, count in s.execute(_WAITING_COUNTS)}

    def _board(self, s: Session, version: int, counts: dict[int, int] | None = None) -> Board:
        counts = self._waiting_counts(s) if counts is None else counts
        # Plain columns, not rows: the board is built on every change.
        recent = s.execute(_LAST_CALLS)
        config = self._configuration(s)
        ids = config.service_ids
        services = sorted(v.key for v in config.rules.services.values() if v.active)
        return Board(
            calls=[
                CallInfo(number, serial, name or "", service, called_at.isoformat(), language)
                for number, serial, name, service, called_at, language in recent
            ],
            waiting={key: counts.get(ids[key], 0) for key in services},
            version=version,
        )

    def _point_states(
        self,
        s: Session,
        version: int,
        counts: dict[int, int],
        *,
        serials: Iterable[int] | None = None,
        service_ids: Iterable[int] = (),
    ) -> list[PointState]:
        """The states of the points at ``serials`` and of every point providing one of ``service_ids``
        (of every point when ``serials`` is None), by serial. Plain columns: a site has tens of points."""
        points: dict[int, tuple[tuple[str, bool, str | None, Any], set[int]]] = {}
        called: dict[int, Current] = {}
        for serial, name, active, command_id, error, service_id, number, key in s.execute(_POINT_LINES):
            _line, provided = points.setdefault(serial, ((name, active, command_id, error), set()))
            if service_id is not None:
                provided.add(service_id)
            if number is not None:
                called[serial] = Current(number, key)
        wanted, touched = (None if serials is None else set(serials)), set(service_ids)
        return [
            PointState(
                serial=serial,
                name=name,
                active=active,
                current=called.get(serial),
                waiting=sum(counts.get(service_id, 0) for service_id in provided),
                last_command_id=command_id,
                version=version,
                last_error=error,
            )
            for serial, ((name, active, command_id, error), provided) in points.items()
            if wanted is None or serial in wanted or provided & touched
        ]

    def _site_state(self, s: Session) -> SiteState:
        rules = self.rules(s)
        now = self.clock()
        is_open = rules.is_open(now)
        opens = None if is_open else rules.hours.next_opening(now, rules.tz)
        return SiteState(
            name=rules.name,
            open=is_open,
            services=[
                ServiceInfo(v.key, v.name, v.prefix, v.active)
                for v in sorted(rules.services.values(), key=lambda v: v.key)
            ],
            opens_at=opens.isoformat() if opens else None,
        )

    @staticmethod
    def _touch(s: Session, service_ids: Iterable[int], point_serial: int | None = None) -> None:
        """Mark the queues of ``service_ids`` (and the point ``point_serial``) changed in this transaction.

        The board and point states are rendered once per transaction (see ``_render``),
        however many tickets and commands it holds.
        """
        services, serials = s.info.setdefault(_TOUCHED, (set(), set()))
        services.update(service_ids)
        if point_serial is not None:
            # A command may change the queue, the service times and the points at work.
            serials.add(point_serial)
            s.info.pop(_PACE, None)
            s.info.pop(_QUEUES, None)

    def _render(self, s: Session) -> list[Message]:
        """Board and the states of the points touched and of every point providing a touched service."""
        self._write_points(s)
        services, serials = s.info.pop(_TOUCHED, (set(), set()))
        if not services and not serials:
            return []
        messages = self._changes(s, services, serials)
        s.info[_RENDERED] = {m.topic: m.payload for m in messages}
        return messages

    def _changes(self, s: Session, service_ids: set[int], serials: set[int]) -> list[Message]:
        version = self._bump_version(s)  # first: its flush makes the reads below see the batch
        counts = self._waiting_counts(s)
        states = self._point_states(s, version, counts, serials=serials, service_ids=service_ids)
        # A point no job of this transaction acted on changed only in how many wait for it.
        return [
            self._board_message(s, version, counts),
            *(self._point_message(state, waiting_only=state.serial not in serials) for state in states),
        ]

    def _board_message(self, s: Session, version: int, counts: dict[int, int]) -> Message:
        board = self._board(s, version, counts).to_json()
        return Message(self.topics.board, board, retain=True, version=version)

    def _point_message(self, state: PointState, *, waiting_only: bool = False) -> Message:
        topic = self.topics.point_state(state.serial)
        return Message(topic, state.to_json(), retain=True, version=state.version, waiting_only=waiting_only)

    def snapshot(self) -> list[Message]:
        """Every retained state, as the database has it now (published at start and on reconnect)."""
        with self.store.read() as s:
            version = self._site_row(s).version
            counts = self._waiting_counts(s)
            messages = [
                Message(self.topics.site_state, self._site_state(s).to_json(), retain=True),
                self._board_message(s, version, counts),
            ]
            messages += map(self._point_message, self._point_states(s, version, counts))
            site = self._site_row(s)
            for d in s.scalars(select(DeviceRow).order_by(DeviceRow.id)):
                config = DeviceConfig(
                    kind=d.kind, point=d.point_serial, language=d.language or site.language, buttons=d.buttons
                )
                messages.append(Message(self.topics.device_config(d.id), config.to_json(), retain=True))
        return messages

    def publish_snapshot(self) -> None:
        """Publish every retained state now (after the registry or the site changed)."""
        self._emit(self.snapshot())

    def site_state(self) -> SiteState:
        with self.store.read() as s:
            return self._site_state(s)

    def board(self) -> Board:
        with self.store.read() as s:
            return self._board(s, self._site_row(s).version)

    def point_state(self, serial: int) -> PointState:
        with self.store.read() as s:
            version, counts = self._site_row(s).version, self._waiting_counts(s)
            states = self._point_states(s, version, counts, serials=[serial])
        if not states:
            raise UnknownPoint(f"There is no point with serial {serial}")
        return states[0]

    def services(self) -> list[tuple[Service, int]]:
        """Active services with how many wait for each."""
        with self.store.read() as s:
            counts = self._waiting_counts(s)
            rows = s.scalars(select(ServiceRow).where(ServiceRow.active.is_(True)).order_by(ServiceRow.key))
            return [(_service(r), counts.get(r.id, 0)) for r in rows]

    # --- tickets -------------------------------------------------------------

    def issue_ticket(
        self,
        service: str,
        priority: str | None = None,
        *,
        channel: Channel,
        language: str | None = None,
        device_id: str | None = None,
    ) -> TicketView:
        """A new ticket, numbered and queued."""
        with self.store.write() as s:
            view = self._issue(s, service, priority, channel, language, device_id)
            messages = self._render(s)
        self._emit(messages)
        return view

    def _issue(
        self,
        s: Session,
        service_key: str,
        priority_key: str | None,
        channel: Channel,
        language: str | None,
        device_id: str | None,
    ) -> TicketView:
        now = self.clock()
        rules = self.rules(s)
        service, priority = rules.check_can_issue(service_key, priority_key, channel, now)
        service_id = self._configuration(s).service_ids[service.key]
        # Counted before the ticket joins the queue; nothing is written before here, so a refusal
        # above leaves the transaction as it was.
        ahead, eta = self._ahead_of_new(s, rules, service_id, priority.rank, now)
        seq = self._next_seq(s, service_id, service_day(now, rules.tz))
        ticket = new_ticket(
            rules,
            service,
            priority,
            seq=seq,
            now=now,
            channel=channel,
            token=secrets.token_urlsafe(24),
            language=language,
        )
        self._add_waiting(s, ticket, service_id, device_id=device_id)
        _log_on_commit(s, "ticket issued", ticket=ticket.number, channel=channel.value, device=device_id)
        self._touch(s, [service_id])
        return self._view(ticket, service.name, ahead, eta, None)

    def _add_waiting(self, s: Session, ticket: Ticket, service_id: int, **columns: Any) -> dict[str, Any]:
        """New ``ticket`` of the service ``service_id``, with its "issued" event; ``columns`` are those
        of its row the domain does not know (device, print). Its row, inserted (and given its id)
        before the transaction's next statement."""
        row = {
            **_NEW_TICKET,
            "service_id": service_id,
            "number": ticket.number,
            "day": ticket.day,
            "seq": ticket.seq,
            "priority": ticket.priority,
            "priority_rank": ticket.priority_rank,
            "channel": ticket.channel.value,
            "token": ticket.token,
            "language": ticket.language,
            "state": ticket.state.value,
            "point_serial": ticket.point,
            "issued_at": ticket.issued_at,
            "called_at": ticket.called_at,
            "finished_at": ticket.finished_at,
            "calls": ticket.calls,
            **columns,
        }
        new = s.info.get(_NEW_TICKETS)
        if new is None:
            new = s.info[_NEW_TICKETS] = []
            event.listen(s, "do_orm_execute", _before_statement)
        new.append(row)
        self._event(s, row, "issued", ticket.issued_at, ticket=ticket)
        return row

    def _next_seq(self, s: Session, service_id: int, day: Any) -> int:
        # Numbering is shared with the numbers leased to kiosks: one place decides both.
        return next_online_seq(self.store, s, service_id, day)

    def _view(
        self, ticket: Ticket, service_name: str, ahead: int, eta: int, point_name: str | None
    ) -> TicketView:
        return TicketView(
            number=ticket.number,
            service=ticket.service,
            service_name=service_name,
            state=ticket.state.value,
            ahead=ahead,
            eta_s=eta,
            point=ticket.point,
            point_name=point_name,
            token=ticket.token,
            track_url=self.track_url(ticket.token),
            issued_at=ticket.issued_at,
            called_at=ticket.called_at,
            language=ticket.language,
        )

    def ticket(self, token: str, *, place: Place | None = None) -> TicketView:
        """The ticket with tracking ``token``.

        ``place``: where it stood in a ``queue_order`` read earlier; used while the ticket still
        waits for that service, so the queue is not read again for it.
        """
        with self.store.read() as s:
            row = s.scalars(select(TicketRow).where(TicketRow.token == token)).one_or_none()
            if row is None:
                raise UnknownTicket("There is no such ticket")
            waiting = row.state == TicketState.WAITING.value
            if place is not None and waiting and row.service.key == place.service:
                ahead, eta = place.ahead, place.eta_s
            else:
                ahead, eta = self._ahead_and_eta(s, self.rules(s), row, self.clock())
            point_name = None
            if row.point_serial is not None:
                point_name = s.scalar(select(PointRow.name).where(PointRow.serial == row.point_serial))
            return self._view(_ticket(row), row.service.name, ahead, eta, point_name)

    def version(self) -> int:
        """The version of the last committed change (the one the board and point states carry)."""
        with self.store.read() as s:
            return self._site_row(s).version

    def queue_order(self) -> tuple[int, dict[str, Place]]:
        """Where every waiting ticket stands, by token, and the version it was read at."""
        with self.store.read() as s:
            # The version first: the queue read after it is at least that new.
            version = self._site_row(s).version
            return version, self._places(s, self.rules(s), self.clock())

    def cancel_ticket(self, token: str) -> TicketView:
        """The client gives up their place."""
        now = self.clock()
        with self.store.write() as s:
            row = s.scalars(
                self.store.for_update(select(TicketRow).where(TicketRow.token == token))
            ).one_or_none()
            if row is None:
                raise UnknownTicket("There is no such ticket")
            cancelled = _ticket(row).cancel(now)
            _apply(row, cancelled)
            self._event(s, row, "cancelled", now, ticket=cancelled)
            self._touch(s, [row.service_id])
            messages = self._render(s)
            view = self._view(cancelled, row.service.name, 0, 0, None)
        self._emit(messages)
        return view

    def once(
        self,
        source: str,
        message_id: str,
        kind: str,
        act: Callable[[Session], tuple[Any, list[Message]]],
        answer: Callable[[dict[str, Any]], T],
    ) -> T:
        """Run ``act`` once per ``message_id`` of ``source``, however often the message is delivered."""
        return self._run_one(Job(source, message_id, kind, act, answer))  # type: ignore[no-any-return]

    def _run_one(self, job: Job) -> Any:
        (result,) = self.run([job])
        if isinstance(result, NextupError):
            raise result
        return result

    def run(self, jobs: list[Job]) -> list[Any]:
        """Do ``jobs`` in one transaction, each once however often delivered; their answers, in order.

        A job refused with a ``NextupError`` gets the error as its answer and changes nothing;
        the others still commit.  The board and point states are rendered once for all jobs,
        which is what lets a busy central keep up: one commit and one set of states per batch.
        Each answer is stored in the same transaction as its effect, and a redelivery gets it again.
        """
        for attempt in range(3):
            try:
                with self.store.write() as s:
                    answers, messages = self._run(s, jobs)
            except IntegrityError:
                continue  # a message committed by another instance meanwhile: answer as it did
            except StoreUnavailable as exc:
                if exc.stale_connection and attempt == 0:
                    continue  # the database had dropped the connection (restarted): the pool has new ones
                raise
            self._emit(messages)
            return answers
        raise RuntimeError(f"{jobs[0].kind} {jobs[0].message_id} kept conflicting")

    def _run(self, s: Session, jobs: list[Job]) -> tuple[list[Any], list[Message]]:
        answers: list[Any] = [None] * len(jobs)
        done: list[tuple[int, Any]] = []
        first: dict[tuple[str, str], int] = {}
        extra: list[Message] = []
        keys = list({(job.source, job.message_id) for job in jobs})
        answered = s.execute(_ANSWERED, {"keys": keys})
        prior = {(source, message_id): response for source, message_id, response in answered}
        for i, job in enumerate(jobs):
            key = (job.source, job.message_id)
            if key in first:
                continue  # delivered twice within one batch: answered below like the first
            first[key] = i
            if key in prior:
                answers[i] = job.answer(prior[key])
                continue
            try:
                response, messages = job.act(s)
            except NextupError as exc:
                answers[i] = exc
                continue
            extra.extend(messages)
            done.append((i, response))
        rendered = self._render(s)
        now = self.clock()
        processed = []
        for i, response in done:
            job = jobs[i]
            stored = response() if callable(response) else response
            processed.append(
                dict(source=job.source, message_id=job.message_id, kind=job.kind, response=stored, at=now)
            )
            answers[i] = job.answer(stored)
        if processed:
            # On the table, in one statement: nothing reads these rows back in this transaction.
            s.execute(insert(_PROCESSED), processed)
        for i, job in enumerate(jobs):
            j = first[(job.source, job.message_id)]
            if j != i:
                answers[i] = answers[j]
        return answers, rendered + extra

    def handle_ticket_request(self, device_id: str, request: TicketRequest) -> TicketReply:
        """A kiosk's request: answered once, and alike however often it is delivered."""
        return self._run_one(self.ticket_request_job(device_id, request))  # type: ignore[no-any-return]

    def ticket_request_job(self, device_id: str, request: TicketRequest) -> Job:
        """A kiosk's request as a job for ``run``; its answer is a ``TicketReply``."""

        def act(s: Session) -> tuple[dict[str, Any], list[Message]]:
            device = self._device(s, device_id, DeviceKind.KIOSK)
            language = request.language or device.language
            try:
                # _issue refuses before it writes: no savepoint needed (it would flush every ticket alone).
                view = self._issue(s, request.service, request.priority, Channel.KIOSK, language, device_id)
            except NextupError as exc:
                return TicketReply.failure(request.request_id, exc.code, exc.message).to_dict(), []
            ticket = IssuedTicket(view.number, view.service, view.ahead, view.eta_s, view.track_url)
            return TicketReply.success(request.request_id, ticket).to_dict(), []

        return Job(f"device:{device_id}", request.request_id, "ticket", act, TicketReply.from_dict)

    def handle_ticket_printed(self, device_id: str, report: TicketPrinted) -> None:
        """Record whether a kiosk's ticket came out of the printer."""
        with self.store.write() as s:
            self._device(s, device_id, DeviceKind.KIOSK)
            row = s.scalars(
                select(TicketRow)
                .where(TicketRow.device_id == device_id, TicketRow.number == report.number)
                .order_by(TicketRow.issued_at.desc())
            ).first()
            if row is None:
                raise UnknownTicket(f"Device {device_id!r} issued no ticket {report.number}")
            if row.printed is report.printed:
                return  # a redelivered report
            row.printed = report.printed
            row.print_error = None if report.printed else (report.reason or "not printed")
            self._event(s, row, "printed" if report.printed else "print_failed", self.clock())

    # --- points --------------------------------------------------------------

    def handle_command(self, device_id: str, command: Command) -> CommandResult:
        """A point unit's button press."""
        return self._run_one(self.command_job(device_id, command))  # type: ignore[no-any-return]

    def command_job(self, device_id: str, command: Command) -> Job:
        """A point unit's button press as a job for ``run``; its answer is a ``CommandResult``."""

        def serial_of_device(s: Session) -> int:
            device = self._device(s, device_id, DeviceKind.POINT)
            if device.point_serial is None:
                raise NotPermitted(f"Device {device_id!r} drives no point")
            return device.point_serial

        return self._point_job(
            serial_of_device,
            PointAction(command.action),
            command.command_id,
            f"device:{device_id}",
            specialist_id=None,
            service=None,
        )

    def point_command(
        self,
        serial: int,
        action: PointAction | str,
        *,
        command_id: str,
        source: str,
        specialist_id: int | None = None,
        service: str | None = None,
    ) -> CommandResult:
        """Do ``action`` at point ``serial`` once per ``command_id``; a refusal is recorded, not raised.

        ``action`` is a PointAction or "transfer" (to ``service``, from the console).
        """
        job = self._point_job(
            lambda s: serial, action, command_id, source, specialist_id=specialist_id, service=service
        )
        return self._run_one(job)  # type: ignore[no-any-return]

    def _point_job(
        self,
        serial_in: Callable[[Session], int],
        action: PointAction | str,
        command_id: str,
        source: str,
        *,
        specialist_id: int | None,
        service: str | None,
    ) -> Job:
        def act(s: Session) -> tuple[Callable[[], dict[str, Any]], list[Message]]:
            serial = serial_in(s)
            point = self._point_at_work(s, serial)
            try:
                # _act refuses before it writes: no savepoint needed.
                services, extra = self._act(s, point, action, specialist_id, service)
                error = None
            except NextupError as exc:
                services, extra = [], []
                error = {"code": exc.code, "message": exc.message}
                why = exc.message
                _log_on_commit(s, "command refused", command_id=command_id, point=serial, reason=why)
            point.last_command_id, point.last_error, point.changed = command_id, error, True
            self._touch(s, services, point.serial)

            def answer() -> dict[str, Any]:
                # The point's state as published with this transaction.
                state = PointState.parse(s.info[_RENDERED][self.topics.point_state(serial)])
                return _command_dict(CommandResult(command_id, error is None, error, state))

            return answer, extra

        return Job(source, command_id, "command", act, _command_result)

    def _act(
        self,
        s: Session,
        point: _PointAtWork,
        action: PointAction | str,
        specialist_id: int | None,
        service_key: str | None,
    ) -> tuple[list[int], list[Message]]:
        """Apply one action; the service ids whose queues changed and any extra messages.

        Every refusal is raised before the first write, so a refused command changes nothing.
        """
        now = self.clock()
        if action == PointAction.NEXT:
            return self._call_next(s, point, specialist_id, now)
        current = self._current_line(s, point.serial)

        def need_current(doing: str) -> Any:
            if current is None:
                raise IllegalTransition(f"Cannot {doing}: no ticket is called at {point.name}")
            return current

        if action == "transfer":
            line = need_current("transfer")
            target = self.rules(s).service(service_key or "")
            if not target.active:
                raise ServiceInactive(f"{target.name} is not taking tickets now")
            target_id = self._configuration(s).service_ids[target.key]
            ticket = _ticket_of(line, line.service_key).transfer(target.key)
            by = (now, point.serial, specialist_id)
            s.execute(
                _UPDATE_TICKET, self._transition(s, line, ticket, "transferred", *by, service_id=target_id)
            )
            return [line.service_id, target_id], []
        action = PointAction(action)
        if action is PointAction.ACTIVATE:
            point.active = True
            return [], []
        if action is PointAction.DEACTIVATE:
            point.active = False
            return [], []
        if action not in _CURRENT_TICKET_ACTIONS:
            raise IllegalTransition(f"Unknown action {action}")
        doing, transition, kind = _CURRENT_TICKET_ACTIONS[action]
        line = need_current(doing)
        ticket = transition(_ticket_of(line, line.service_key), now)
        s.execute(_UPDATE_TICKET, self._transition(s, line, ticket, kind, now, point.serial, specialist_id))
        return [line.service_id], []

    def _call_next(
        self, s: Session, point: _PointAtWork, specialist_id: int | None, now: datetime
    ) -> tuple[list[int], list[Message]]:
        """The client at the point is done, then the next one is called."""
        current = self._current_line(s, point.serial)
        domain_point = Point(
            point.serial, point.name, frozenset(key for _, key in point.services), point.active
        )
        # Every policy calls the first ticket of some class: the heads are all it needs to see.
        heads = self._class_heads(s, point.services)
        by_id = {line.id: line for line, _ in heads}
        policy = self.rules(s).policy
        called, ratio_state = call_next(
            domain_point, [ticket for _, ticket in heads], policy, now, tuple(point.ratio_state)
        )
        # Decided; only now is anything written (nobody waiting leaves the current client called).
        by = (now, point.serial, specialist_id)
        touched: list[int] = []
        writes: list[dict[str, Any]] = []
        if current is not None and point.active:
            served = _ticket_of(current, current.service_key).serve(now)
            writes.append(self._transition(s, current, served, "served", *by))
            touched.append(current.service_id)
        point.ratio_state = list(ratio_state)
        line = by_id[called.id]
        writes.append(self._transition(s, line, called, "called", *by, specialist_id=specialist_id))
        touched.append(line.service_id)
        s.execute(_UPDATE_TICKET, writes)  # one round trip for both
        assert called.called_at is not None
        info = CallInfo(
            called.number,
            point.serial,
            point.name,
            called.service,
            called.called_at.isoformat(),
            called.language,
        )
        return touched, [Message(self.topics.call, info.to_json(), expiry_s=CALL_EXPIRY_S)]

    def _current_line(self, s: Session, serial: int) -> Any:
        """The ticket called at point ``serial``, locked, or None."""
        return s.execute(self._lock_current, {"serial": serial}).first()

    def _transition(
        self,
        s: Session,
        line: Any,
        ticket: Ticket,
        kind: str,
        now: datetime,
        serial: int,
        specialist: int | None,
        **columns: Any,
    ) -> dict[str, Any]:
        """Record the transition of the ticket read as ``line`` to ``ticket`` as event ``kind``;
        the values to write to its row with ``_UPDATE_TICKET``.

        Written before the next read, on the table: a later press of the same batch reads the queue
        as this one left it.
        """
        self._event(s, line.id, kind, now, serial, specialist, ticket=ticket)
        return {
            "ticket_id": line.id,
            "state": ticket.state.value,
            "point_serial": ticket.point,
            "called_at": ticket.called_at,
            "finished_at": ticket.finished_at,
            "calls": ticket.calls,
            "specialist_id": line.specialist_id,
            **columns,
        }

    @staticmethod
    def _event(
        s: Session,
        of: int | TicketRow | dict[str, Any],
        kind: str,
        now: datetime,
        serial: int | None = None,
        specialist_id: int | None = None,
        *,
        ticket: Ticket | None = None,
    ) -> None:
        """Record event ``kind`` of ticket ``of`` (its id, or its row while it may not be inserted yet),
        whose state after it is ``ticket`` (read from the row when not given)."""
        if ticket is None:
            assert isinstance(of, TicketRow)
            ticket = _ticket(of)
        events = s.info.get(EVENTS)
        if events is None:
            events = s.info[EVENTS] = []
            event.listen(s, "before_commit", _insert_events)
        events.append(TicketEvent(of, ticket, kind, now, serial, specialist_id))

    @staticmethod
    @contextmanager
    def savepoint(s: Session) -> Iterator[None]:
        """A savepoint: the tickets, events and log lines recorded in it are forgotten if it rolls back."""
        _insert_new_tickets(s)
        kept = {key: len(s.info.get(key, ())) for key in (EVENTS, _LOG_LINES, _NEW_TICKETS)}
        try:
            with s.begin_nested():
                yield
        except BaseException:
            for key, length in kept.items():
                del s.info.get(key, [])[length:]
            raise

    # --- devices -------------------------------------------------------------

    def handle_status(self, device_id: str, status: DeviceStatus) -> None:
        """A device's retained status: online or offline, and its printer."""
        with self.store.write() as s:
            row = s.get(DeviceRow, device_id)
            if row is None:
                raise UnknownDevice(f"Device {device_id!r} is not in the site's registry")
            if row.kind != status.kind:
                raise NotPermitted(f"Device {device_id!r} is a {row.kind}, not a {status.kind}")
            row.online = status.online
            row.status = status.to_dict()
            row.last_seen = self.clock()
        # Local only: the device's retained status is on the broker already, and central, which
        # listens on that topic, would get its own copy back and handle it again without end.
        self._emit([Message(self.topics.device_status(device_id), status.to_json(), retain=True, local=True)])

    def waiting_at_closing(self) -> list[TicketView]:
        """Tickets still waiting (shown to the admin when the site has closed)."""
        with self.store.read() as s:
            rows = s.scalars(
                select(TicketRow)
                .where(TicketRow.state == TicketState.WAITING.value)
                .order_by(TicketRow.issued_at)
            )
            return [self._view(_ticket(r), r.service.name, 0, 0, None) for r in rows]


def _log_on_commit(s: Session, message: str, **extra: Any) -> None:
    """Log ``message`` once the transaction commits: a batch rolled back and run again did nothing yet."""
    lines = s.info.setdefault(_LOG_LINES, [])
    if not lines:
        event.listen(s, "after_commit", _write_log_lines)
    lines.append((message, extra))


def _before_statement(state: ORMExecuteState) -> None:
    _insert_new_tickets(state.session)


def _insert_new_tickets(s: Session) -> None:
    """Insert the tickets issued since the transaction's last statement, in one statement,
    and set their ids in their rows: before any statement, so every read sees them."""
    rows = s.info.get(_NEW_TICKETS)
    if not rows:
        return
    s.info[_NEW_TICKETS] = []  # first: the statements below come through here too
    if s.get_bind().dialect.name == "sqlite":
        # SQLite cannot tie the ids of a multi-row RETURNING to the rows: the writer numbers them.
        first = reserve_ids(s, _TICKETS.c.id, len(rows))
        for i, row in enumerate(rows):
            row["id"] = first + i
        s.execute(_INSERT_TICKETS, rows)
    else:
        ids = s.execute(_INSERT_TICKETS_RETURNING, rows).scalars().all()
        for row, ticket_id in zip(rows, ids, strict=True):
            row["id"] = ticket_id


def _ticket_id(of: int | TicketRow | dict[str, Any]) -> int:
    if isinstance(of, int):
        return of
    return of["id"] if isinstance(of, dict) else of.id


def _insert_events(s: Session) -> None:
    events: list[TicketEvent] = s.info.get(EVENTS, [])
    # SQLAlchemy calls this when a savepoint is released too: the transaction's events go in at its end.
    if not events or s.in_nested_transaction():
        return
    _insert_new_tickets(s)
    rows = [
        {
            "ticket_id": _ticket_id(e.of),
            "at": e.at,
            "kind": e.kind,
            "point_serial": e.point_serial,
            "service_key": e.ticket.service,
            "specialist_id": e.specialist_id,
        }
        for e in events
    ]
    # On the table, in one statement: nothing reads the events back in the transaction.
    s.execute(_INSERT_EVENTS, rows)


def _write_log_lines(s: Session) -> None:
    if s.in_nested_transaction():
        return  # a savepoint released: the transaction may still roll back
    for message, extra in s.info.pop(_LOG_LINES, ()):
        log.info(message, extra=extra)


def _held(s: Session, kind: type, key: Any, load: Callable[[], Any]) -> Any:
    """What ``load`` reads of ``kind`` by ``key`` (the site row, the configuration's version), once
    per transaction.

    The session's identity map holds unchanged rows weakly: without this, every job of
    a batch would read them again.
    """
    held = s.info.setdefault(_HELD, {})
    if (kind, key) not in held:
        held[kind, key] = load()
    return held[kind, key]


_CURRENT_TICKET_ACTIONS: dict[PointAction, tuple[str, Callable[[Ticket, datetime], Ticket], str]] = {
    PointAction.SERVED: ("mark served", lambda t, now: t.serve(now), "served"),
    PointAction.NO_SHOW: ("mark a no-show", lambda t, now: t.no_show(now), "no_show"),
    PointAction.RECALL: ("recall to the queue", lambda t, now: t.recall(), "recalled"),
}
"""The actions on the ticket called at a point: what a refusal says it cannot do, the domain
transition, and the event it records."""


# --- mapping rows <-> domain -------------------------------------------------


def _service(row: ServiceRow) -> Service:
    return Service(
        key=row.key, name=row.name, prefix=row.prefix, description=row.description or "", active=row.active
    )


def _ticket(row: TicketRow) -> Ticket:
    return _ticket_of(row, row.service.key)


def _ticket_of(line: Any, service: str) -> Ticket:
    """The domain ticket of a ticket row or a line of its columns, of the service with key ``service``."""
    return Ticket(
        number=line.number,
        service=service,
        priority=line.priority,
        priority_rank=line.priority_rank,
        seq=line.seq,
        day=line.day,
        issued_at=line.issued_at,
        channel=Channel(line.channel),
        token=line.token,
        language=line.language,
        state=TicketState(line.state),
        point=line.point_serial,
        called_at=line.called_at,
        finished_at=line.finished_at,
        calls=line.calls,
        id=line.id,
    )


def _apply(row: TicketRow, ticket: Ticket) -> None:
    row.state = ticket.state.value
    row.point_serial = ticket.point
    row.called_at = ticket.called_at
    row.finished_at = ticket.finished_at
    row.calls = ticket.calls


def _command_dict(result: CommandResult) -> dict[str, Any]:
    return {
        "command_id": result.command_id,
        "ok": result.ok,
        "error": result.error,
        "state": result.state.to_dict(),
    }


def _command_result(data: dict[str, Any]) -> CommandResult:
    return CommandResult(data["command_id"], data["ok"], data["error"], PointState.from_dict(data["state"]))
