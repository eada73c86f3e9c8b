"""Numbers leased to kiosks, so that a kiosk cut off from central keeps serving the hall.

Numbering stays central's.  A kiosk asks for a lease of the services its
buttons issue (``device/<id>/lease/request``, on every connection and each
new day); central leases a block of ``LEASE_SIZE`` numbers of today for each
and publishes every block the kiosk holds today, retained, on
``device/<id>/lease``.  Nobody uses a block while central is reachable.

Blocks come from the top of the day's numbers (see ``TOP``): the first block
of a service and day is ``[TOP - LEASE_SIZE + 1, TOP]``, each further one
(another kiosk, a renewal) sits just below the lowest leased so far.  Leases
are taken every morning but normally never used, and taking them from the
bottom would make the day's first online ticket A-051; from the top, online
numbering starts at A-001 and an offline ticket is recognisably high.  The
two never meet: online numbering steps past every leased block it reaches
(``next_online_seq``), and a block that would reach down to the online
numbers goes above everything issued or leased instead.  Both happen with
the day's counter row locked, so neither can slip between the other's read
and write.

While it cannot reach central, the kiosk prints tickets from its blocks
("position confirmed on screen") and journals them; when the connection is
back each arrives as ``device/<id>/ticket/offline`` and enters the queue
waiting, at the time it was printed, once (the request id is stored with its
answer, as for every request, and a day's number is unique in the database).
Central renews a block when half of it is used.

Midnight: numbering restarts each day in the site's time zone, and a block
belongs to one day.  A kiosk never issues from a block of another day, so a
kiosk offline across midnight issues nothing until it gets today's lease.  An
offline ticket that reaches central after its day is over is recorded (its
number stays used, statistics see it) but as cancelled, event ``expired``:
the hall it was printed in has closed, and calling it today would be wrong.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from central.domain import Channel, DeviceKind, Ticket, service_day
from central.domain.errors import NextupError
from central.domain.model import format_number
from central.store.models import (
    DayCounterRow,
    DeviceRow,
    NumberLeaseRow,
    ServiceRow,
    TicketRow,
)
from nextup.contract import (
    ErrorInfo,
    LeaseBlock,
    LeaseRequest,
    NumberLease,
    OfflineTicket,
    OfflineTicketAck,
)

if TYPE_CHECKING:
    from central.coordinator import Coordinator, Message
    from central.store import Store

log = logging.getLogger(__name__)

# Keys of Session.info: the day counters this transaction holds locked, and the leased blocks it read.
_COUNTERS = "nextup.day_counters"
_LEASED = "nextup.leased_blocks"
_UNWRITTEN = "nextup.unwritten_counters"

LEASE_SIZE = 50
"""Numbers per block: what a kiosk can print for one service in one outage before it needs a renewal."""

TOP = 999
"""The highest number of the first block of a service and day.

Ticket numbers have three digits (A-001 to A-999) and a hall rarely issues
hundreds of one service a day, while offline numbers are rarer still: leased
from here downward they stay clear of the online ones.  Numbering goes on
past it (A-1000) on a day that needs more.
"""

WAITING = "waiting"
EXPIRED = "expired"


class NotLeased(NextupError, PermissionError):
    """An offline ticket whose number is not in a block leased to its kiosk."""

    code = "not_leased"


class NumberTaken(NextupError, ValueError):
    """An offline ticket whose number another ticket already has."""

    code = "number_taken"


# --- granting ---------------------------------------------------------------------


def grant_leases(coordinator: Coordinator, device_id: str, request: LeaseRequest) -> NumberLease:
    """Make sure kiosk ``device_id`` holds today's numbers of the requested services; publish its lease.

    Services that are unknown or not active get no block.  Idempotent: a block
    is added only where less than half a block is left.
    """
    now = coordinator.clock()
    with coordinator.store.write() as s:
        _lock_kiosk(coordinator, s, device_id)
        tz = coordinator.rules(s).tz
        today = service_day(now, tz)
        wanted = list(
            s.scalars(
                select(ServiceRow)
                .where(ServiceRow.key.in_(request.services), ServiceRow.active.is_(True))
                .order_by(ServiceRow.key)
            )
        )
        for service in wanted:
            _top_up(coordinator, s, device_id, service, today, now)
        lease, message = _lease(coordinator, s, device_id, today)
    coordinator._emit([message])
    return lease


def _lock_kiosk(coordinator: Coordinator, s: Session, device_id: str) -> DeviceRow:
    # Locking the kiosk's row serialises its grants: two instances answering the same request
    # must not each add a block.
    coordinator._device(s, device_id, DeviceKind.KIOSK)
    return s.scalars(coordinator.store.for_update(select(DeviceRow).where(DeviceRow.id == device_id))).one()


def _top_up(
    coordinator: Coordinator, s: Session, device_id: str, service: ServiceRow, day: date, now: datetime
) -> NumberLeaseRow | None:
    """A new block of ``service`` for the kiosk when it has half a block or less left today."""
    rows = s.scalars(
        select(NumberLeaseRow).where(
            NumberLeaseRow.device_id == device_id,
            NumberLeaseRow.service_id == service.id,
            NumberLeaseRow.day == day,
        )
    ).all()
    left = sum(r.last - r.used_up_to for r in rows)
    if left > LEASE_SIZE // 2:
        return None
    first = _reserve(coordinator, s, service.id, day, LEASE_SIZE)
    row = NumberLeaseRow(
        device_id=device_id,
        service_id=service.id,
        day=day,
        prefix=service.prefix,
        first=first,
        last=first + LEASE_SIZE - 1,
        used_up_to=first - 1,
        granted_at=now,
    )
    s.add(row)
    s.info.get(_LEASED, {}).pop((service.id, day), None)
    s.flush()
    log.info(
        "numbers leased",
        extra={
            "device": device_id,
            "service": service.key,
            "day": day.isoformat(),
            "first": row.first,
            "last": row.last,
        },
    )
    return row


def _reserve(coordinator: Coordinator, s: Session, service_id: int, day: date, count: int) -> int:
    """Lease ``count`` numbers of the service's day, from the top down; the first of them."""
    counter = lock_day_counter(coordinator.store, s, service_id, day)
    low, high = s.execute(
        select(func.min(NumberLeaseRow.first), func.max(NumberLeaseRow.last)).where(
            NumberLeaseRow.service_id == service_id, NumberLeaseRow.day == day
        )
    ).one()
    first = TOP - count + 1 if low is None else low - count
    if first <= counter:
        # A busy day: online numbering has come up to the leased numbers; lease above everything.
        first = max(counter, high or 0) + 1
    return first


def lock_day_counter(store: Store, s: Session, service_id: int, day: date) -> int:
    """The last online number of the service's day, its counter row locked until the transaction ends.

    Online numbering and leasing both start here, so each sees the other's
    numbers.  The row is created (at 0) when the day has none yet.
    """
    counters = s.info.setdefault(_COUNTERS, {})
    if (service_id, day) in counters:
        return counters[service_id, day]  # locked earlier in this transaction
    where = (DayCounterRow.service_id == service_id, DayCounterRow.day == day)
    last = s.scalar(store.for_update(select(DayCounterRow.last).where(*where)))
    if last is None:
        try:
            with s.begin_nested():
                s.add(DayCounterRow(service_id=service_id, day=day, last=0))
        except IntegrityError:
            pass  # another writer created today's counter first: wait for its lock as below
        last = s.scalar(store.for_update(select(DayCounterRow.last).where(*where)))
    counters[service_id, day] = last
    return last


def next_online_seq(store: Store, s: Session, service_id: int, day: date) -> int:
    """The next number of the service's day for a ticket issued through central, never a leased one.

    When the next number falls into a leased block, numbering goes on past the
    highest leased number of the day.
    """
    seq = lock_day_counter(store, s, service_id, day) + 1
    # The day's leased blocks, read once per transaction (a batch of tickets shares them).
    leased = s.info.setdefault(_LEASED, {})
    blocks = leased.get((service_id, day))
    if blocks is None:
        blocks = leased[service_id, day] = s.execute(
            select(NumberLeaseRow.first, NumberLeaseRow.last).where(
                NumberLeaseRow.service_id == service_id, NumberLeaseRow.day == day
            )
        ).all()
    if any(first <= seq <= last for first, last in blocks):
        seq = max(last for _, last in blocks) + 1
    s.info[_COUNTERS][service_id, day] = seq
    # Written once when the transaction commits, not once per ticket of a batch.
    unwritten = s.info.setdefault(_UNWRITTEN, set())
    if not unwritten and not event.contains(s, "before_commit", _write_counters):
        event.listen(s, "before_commit", _write_counters)
    unwritten.add((service_id, day))
    return seq


def _write_counters(s: Session) -> None:
    if s.in_nested_transaction():
        return  # a savepoint: the counters go with the whole transaction, never with a part of it
    counters = s.info[_COUNTERS]
    table = DayCounterRow.__table__
    for service_id, day in sorted(s.info.pop(_UNWRITTEN, ())):
        # On the table: an ORM update would first match it against every row the batch holds.
        s.execute(
            update(table)
            .where(table.c.service_id == service_id, table.c.day == day)
            .values(last=counters[service_id, day])
        )


def _blocks(s: Session, device_id: str, day: date) -> list[LeaseBlock]:
    rows = s.execute(
        select(NumberLeaseRow, ServiceRow.key)
        .join(ServiceRow, ServiceRow.id == NumberLeaseRow.service_id)
        .where(
            NumberLeaseRow.device_id == device_id,
            NumberLeaseRow.day == day,
            NumberLeaseRow.used_up_to < NumberLeaseRow.last,
        )
        .order_by(NumberLeaseRow.id)
    )
    return [
        LeaseBlock(
            id=r.id,
            service=key,
            prefix=r.prefix,
            day=r.day.isoformat(),
            first=r.first,
            last=r.last,
            used_up_to=r.used_up_to,
        )
        for r, key in rows
    ]


def _lease(coordinator: Coordinator, s: Session, device_id: str, day: date) -> tuple[NumberLease, Message]:
    from central.coordinator import Message

    lease = NumberLease(
        version=coordinator._bump_version(s),
        tz=coordinator._site_row(s).timezone,
        blocks=_blocks(s, device_id, day),
        track_base=coordinator.track_url(""),
    )
    return lease, Message(coordinator.topics.lease(device_id), lease.to_json(), retain=True)


# --- offline tickets --------------------------------------------------------------


def accept_offline_ticket(
    coordinator: Coordinator, device_id: str, ticket: OfflineTicket
) -> OfflineTicketAck:
    """Enter a ticket kiosk ``device_id`` printed offline: once, at its issue time; answer the kiosk.

    A ticket outside the kiosk's blocks, or with a number another ticket has,
    is refused for good (the answer says why); either answer is stored with
    the request id, so a redelivery gets the same one and changes nothing.
    """
    from central.coordinator import Message

    def act(s: Session) -> tuple[dict[str, Any], list[Message]]:
        _lock_kiosk(coordinator, s, device_id)
        try:
            with coordinator.savepoint(s):
                ack, messages = _enter(coordinator, s, device_id, ticket)
        except NextupError as exc:
            log.warning(
                "offline ticket refused",
                extra={"device": device_id, "ticket": ticket.number, "reason": exc.message},
            )
            refusal = OfflineTicketAck(
                ticket.request_id, False, ticket.number, error=ErrorInfo(exc.code, exc.message)
            )
            return refusal.to_dict(), []
        return ack.to_dict(), messages

    ack = coordinator.once(
        f"device:{device_id}", ticket.request_id, "offline", act, OfflineTicketAck.from_dict
    )
    # A redelivered ticket is answered again: the kiosk may have missed the first answer.
    coordinator._emit([Message(coordinator.topics.ticket_offline_ack(device_id), ack.to_json())])
    return ack


def _enter(
    coordinator: Coordinator, s: Session, device_id: str, ticket: OfflineTicket
) -> tuple[OfflineTicketAck, list[Message]]:
    lease = s.scalars(
        coordinator.store.for_update(
            select(NumberLeaseRow).where(
                NumberLeaseRow.id == ticket.lease, NumberLeaseRow.device_id == device_id
            )
        )
    ).one_or_none()
    service = None if lease is None else s.get(ServiceRow, lease.service_id)
    if lease is None or service is None:
        raise NotLeased(f"Device {device_id!r} holds no lease {ticket.lease}")
    if service.key != ticket.service or lease.day.isoformat() != ticket.day:
        raise NotLeased(
            f"Lease {lease.id} is for {service.key} of {lease.day}, not {ticket.service} of {ticket.day}"
        )
    in_block = lease.first <= ticket.seq <= lease.last
    if not in_block or ticket.number != format_number(lease.prefix, ticket.seq):
        first, last = format_number(lease.prefix, lease.first), format_number(lease.prefix, lease.last)
        raise NotLeased(f"{ticket.number} (number {ticket.seq}) is outside lease {lease.id}: {first}-{last}")
    taken = s.scalar(
        select(TicketRow.id).where(TicketRow.day == lease.day, TicketRow.number == ticket.number)
    )
    if taken is not None:
        raise NumberTaken(f"{ticket.number} of {lease.day} is already issued")

    now = coordinator.clock()
    rules = coordinator.rules(s)
    today = service_day(now, rules.tz)
    try:
        priority = rules.priority(ticket.priority, Channel.KIOSK)
    except NextupError:
        # The ticket is in a person's hand already: a class removed meanwhile must not lose their place.
        priority = rules.priority(None, Channel.KIOSK)
    issued = issue_time(ticket.issued, granted=lease.granted_at, now=now, day=lease.day, tz=rules.tz)
    token = ticket.token
    if token is None or s.scalar(select(TicketRow.id).where(TicketRow.token == token)) is not None:
        token = secrets.token_urlsafe(24)
    device = s.get(DeviceRow, device_id)
    entered = Ticket(
        number=ticket.number,
        service=service.key,
        priority=priority.key,
        priority_rank=priority.rank,
        seq=ticket.seq,
        day=lease.day,
        issued_at=issued,
        channel=Channel.KIOSK,
        token=token,
        language=ticket.language or (device.language if device else None) or rules.language,
    )
    expired = lease.day < today
    if expired:
        entered = entered.cancel(now)  # a ticket of a day gone by is entered as it ended
    row = coordinator._add_waiting(
        s,
        entered,
        service.id,
        device_id=device_id,
        printed=ticket.printed,
        print_error=(ticket.reason or "not printed") if ticket.printed is False else None,
    )
    coordinator._event(s, row, "offline", now, ticket=entered)
    state = WAITING
    if expired:
        coordinator._event(s, row, EXPIRED, now, ticket=entered)
        state = EXPIRED
    lease.used_up_to = max(lease.used_up_to, ticket.seq)
    if lease.day == today and service.active:
        _top_up(coordinator, s, device_id, service, today, now)  # renew when half used
    log.info(
        "offline ticket entered",
        extra={"ticket": ticket.number, "device": device_id, "state": state, "issued_at": issued.isoformat()},
    )
    _, lease_message = _lease(coordinator, s, device_id, today)
    if state == WAITING:
        coordinator._touch(s, [service.id])
    return OfflineTicketAck(ticket.request_id, True, ticket.number, state), [lease_message]


def issue_time(claimed: datetime, *, granted: datetime, now: datetime, day: date, tz: Any) -> datetime:
    """When an offline ticket enters the queue: the kiosk's time, kept within what can be true.

    Not before its block was granted, not in the future, and within its day: a
    kiosk's clock may be wrong, and a ticket must not jump the queue for it.
    """
    start = datetime.combine(day, time(), tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), tz).astimezone(UTC) - timedelta(microseconds=1)
    low = max(granted, start)
    high = max(low, min(now, end))
    return min(max(claimed.astimezone(UTC), low), high)
