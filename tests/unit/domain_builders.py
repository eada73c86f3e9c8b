"""Small builders for the domain's plain objects, shared by the unit tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from central.domain import Channel, Point, Ticket, TicketState, format_number

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)  # a Monday morning

PAID = 0
FREE = 1


def make_ticket(
    seq: int,
    *,
    service: str = "cash",
    prefix: str = "A",
    rank: int = FREE,
    at: datetime | None = None,
    state: TicketState = TicketState.WAITING,
) -> Ticket:
    """A ticket issued ``seq`` minutes after T0 unless ``at`` says otherwise."""
    issued = at if at is not None else T0 + timedelta(minutes=seq)
    return Ticket(
        number=format_number(prefix, seq),
        service=service,
        priority="paid" if rank == PAID else "free",
        priority_rank=rank,
        seq=seq,
        day=issued.date(),
        issued_at=issued,
        channel=Channel.KIOSK,
        token=f"token-{prefix}-{seq}",
        state=state,
    )


def make_point(serial: int = 1, services=("cash",), active: bool = True) -> Point:
    return Point(serial=serial, name=f"Window {serial}", services=frozenset(services), active=active)
