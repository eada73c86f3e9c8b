"""Database tables (SQLAlchemy 2, typed).  One database holds one site."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every database (SQLite keeps no time zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


point_services = Table(
    "point_services",
    Base.metadata,
    Column("point_id", ForeignKey("points.id", ondelete="CASCADE"), primary_key=True),
    Column("service_id", ForeignKey("services.id", ondelete="CASCADE"), primary_key=True),
)

user_points = Table(
    "user_points",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("point_id", ForeignKey("points.id", ondelete="CASCADE"), primary_key=True),
)


class SiteRow(Base):
    """The one row of site-wide settings; ``version`` orders every published state."""

    __tablename__ = "site"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), default="Nextup")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    language: Mapped[str] = mapped_column(String(16), default="en")
    policy: Mapped[str] = mapped_column(String(16), default="strict")
    aging_after_s: Mapped[int] = mapped_column(Integer, default=600)
    ratio: Mapped[list[int]] = mapped_column(JSON, default=list)
    version: Mapped[int] = mapped_column(Integer, default=0)
    # Bumped by every change of services, classes, policy or hours: central caches the rules per value.
    config_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The admin's waiting target for staffing advice: ``staffing_percent`` % of waits under the target.
    staffing_target_s: Mapped[int] = mapped_column(Integer, default=300, server_default="300")
    staffing_percent: Mapped[int] = mapped_column(Integer, default=90, server_default="90")


class OpeningIntervalRow(Base):
    __tablename__ = "opening_intervals"

    id: Mapped[int] = mapped_column(primary_key=True)
    weekday: Mapped[int] = mapped_column(Integer)
    opens: Mapped[str] = mapped_column(String(5))
    closes: Mapped[str] = mapped_column(String(5))


class ClosedDateRow(Base):
    __tablename__ = "closed_dates"

    day: Mapped[date] = mapped_column(Date, primary_key=True)


class PriorityRow(Base):
    __tablename__ = "priorities"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    rank: Mapped[int] = mapped_column(Integer)
    public: Mapped[bool] = mapped_column(Boolean, default=True)


class ServiceRow(Base):
    __tablename__ = "services"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    prefix: Mapped[str] = mapped_column(String(3), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class PointRow(Base):
    __tablename__ = "points"

    id: Mapped[int] = mapped_column(primary_key=True)
    serial: Mapped[int] = mapped_column(Integer, unique=True)
    name: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    ratio_state: Mapped[list[int]] = mapped_column(JSON, default=list)
    last_command_id: Mapped[str | None] = mapped_column(String(128))
    last_error: Mapped[dict[str, str] | None] = mapped_column(JSON)
    specialist_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    services: Mapped[list[ServiceRow]] = relationship(secondary=point_services, order_by=ServiceRow.key)


class DeviceRow(Base):
    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    point_serial: Mapped[int | None] = mapped_column(Integer)
    language: Mapped[str | None] = mapped_column(String(16))
    buttons: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime)


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(256))
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    points: Mapped[list[PointRow]] = relationship(secondary=user_points, order_by=PointRow.serial)


class DayCounterRow(Base):
    """The last number issued per service and day."""

    __tablename__ = "day_counters"

    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)


class TicketRow(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        UniqueConstraint("day", "number"),
        # The queue is read by state and service; history never needs a scan.
        Index("ix_tickets_queue", "state", "service_id", "issued_at"),
        # Each class's first ticket is found by a seek: calling and counting never read the whole queue.
        Index("ix_tickets_class_queue", "state", "service_id", "priority_rank", "issued_at", "seq"),
        Index("ix_tickets_called", "called_at"),
        Index("ix_tickets_point_state", "point_serial", "state"),
        Index("ix_tickets_service_done", "service_id", "state", "finished_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(16))
    day: Mapped[date] = mapped_column(Date)
    seq: Mapped[int] = mapped_column(Integer)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    priority: Mapped[str] = mapped_column(String(32))
    priority_rank: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(16))
    token: Mapped[str] = mapped_column(String(64), unique=True)
    language: Mapped[str | None] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    point_serial: Mapped[int | None] = mapped_column(Integer)
    specialist_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    called_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    calls: Mapped[int] = mapped_column(Integer, default=0)
    device_id: Mapped[str | None] = mapped_column(String(64))
    printed: Mapped[bool | None] = mapped_column(Boolean)
    print_error: Mapped[str | None] = mapped_column(String(256))

    service: Mapped[ServiceRow] = relationship(lazy="joined", innerjoin=True)


class TicketEventRow(Base):
    """A timestamp for every transition of a ticket, for statistics and audit."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    # Set instead of ticket_id when the ticket is not inserted yet: a batch inserts its tickets together.
    ticket: Mapped[TicketRow] = relationship()
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    point_serial: Mapped[int | None] = mapped_column(Integer)
    service_key: Mapped[str | None] = mapped_column(String(32))
    specialist_id: Mapped[int | None] = mapped_column(Integer)


class ProcessedMessageRow(Base):
    """Each request_id and command_id, with the answer it got, so a redelivery is answered alike."""

    __tablename__ = "processed_messages"

    source: Mapped[str] = mapped_column(String(80), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class NumberLeaseRow(Base):
    """A block of one service's numbers of one day, leased to a kiosk to issue while it cannot reach central.

    Blocks are leased from the top of the day's numbers down, and online numbering steps over them
    (central.leases), so no other ticket gets these numbers; ``used_up_to`` is the highest of them an
    offline ticket has arrived for (``first - 1`` when none).
    """

    __tablename__ = "number_leases"
    __table_args__ = (
        Index("ix_number_leases_device_day", "device_id", "day"),
        # Every online ticket looks up its service's leased blocks of the day.
        Index("ix_number_leases_service_day", "service_id", "day"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Not a foreign key, as for tickets: a kiosk removed from the registry leaves its leases as history.
    device_id: Mapped[str] = mapped_column(String(64))
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    prefix: Mapped[str] = mapped_column(String(3))
    first: Mapped[int] = mapped_column(Integer)
    last: Mapped[int] = mapped_column(Integer)
    used_up_to: Mapped[int] = mapped_column(Integer)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime)
