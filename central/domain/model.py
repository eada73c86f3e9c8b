"""The things of a service hall: services, points, priority classes, tickets.

Plain frozen dataclasses.  A transition returns a new ticket and leaves the
old one as it was, so a failed check never leaves anything half changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum

from .errors import IllegalTransition

# \Z, not $: "$" also matches before a final newline, which would let "cash\n" pass as a key.
SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}\Z")
PREFIX = re.compile(r"^[A-Z]{1,3}\Z")


class TicketState(StrEnum):
    WAITING = "waiting"
    CALLED = "called"
    SERVED = "served"
    NO_SHOW = "no_show"
    CANCELLED = "cancelled"


FINAL_STATES = frozenset({TicketState.SERVED, TicketState.NO_SHOW, TicketState.CANCELLED})


class Channel(StrEnum):
    KIOSK = "kiosk"
    WEB = "web"
    API = "api"


class DeviceKind(StrEnum):
    KIOSK = "kiosk"
    POINT = "point"
    DISPLAY = "display"


class PointAction(StrEnum):
    NEXT = "next"
    SERVED = "served"
    NO_SHOW = "no_show"
    RECALL = "recall"
    ACTIVATE = "activate"
    DEACTIVATE = "deactivate"


@dataclass(frozen=True)
class Service:
    key: str
    name: str
    prefix: str
    description: str = ""
    active: bool = True


@dataclass(frozen=True)
class PriorityClass:
    """A class of customers; a lower rank is called first (0 = highest)."""

    key: str
    name: str
    rank: int
    public: bool = True


@dataclass(frozen=True)
class Point:
    """A service point (counter, window); clients know it by its serial."""

    serial: int
    name: str
    services: frozenset[str]
    active: bool = True

    def __post_init__(self) -> None:
        # A list or set from a site file or a store row would make the point unhashable.
        object.__setattr__(self, "services", frozenset(self.services))

    def provides(self, service: str) -> bool:
        return service in self.services


@dataclass(frozen=True)
class Ticket:
    """One client's place in a queue.

    ``issued_at`` orders the queue: a ticket recalled or transferred keeps its
    place, and a ticket issued offline enters at the time it was printed.
    """

    number: str
    service: str
    priority: str
    priority_rank: int
    seq: int
    day: date
    issued_at: datetime
    channel: Channel = Channel.API
    token: str = ""
    language: str | None = None
    state: TicketState = TicketState.WAITING
    point: int | None = None
    called_at: datetime | None = None
    finished_at: datetime | None = None
    calls: int = 0
    id: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        # A store hands back plain strings; the rules compare states by identity.
        object.__setattr__(self, "state", TicketState(self.state))
        object.__setattr__(self, "channel", Channel(self.channel))

    def _require(self, *states: TicketState, doing: str) -> None:
        if self.state not in states:
            allowed = " or ".join(s.value for s in states)
            raise IllegalTransition(
                f"Cannot {doing} ticket {self.number}: it is {self.state.value}, not {allowed}"
            )

    def call(self, point: int, now: datetime) -> Ticket:
        self._require(TicketState.WAITING, doing="call")
        return replace(self, state=TicketState.CALLED, point=point, called_at=now, calls=self.calls + 1)

    def serve(self, now: datetime) -> Ticket:
        self._require(TicketState.CALLED, doing="serve")
        return replace(self, state=TicketState.SERVED, finished_at=now)

    def no_show(self, now: datetime) -> Ticket:
        self._require(TicketState.CALLED, doing="mark as no-show")
        return replace(self, state=TicketState.NO_SHOW, finished_at=now)

    def cancel(self, now: datetime) -> Ticket:
        self._require(TicketState.WAITING, doing="cancel")
        return replace(self, state=TicketState.CANCELLED, finished_at=now)

    def recall(self) -> Ticket:
        """Back to the queue, in the place it had."""
        self._require(TicketState.CALLED, doing="recall")
        return replace(self, state=TicketState.WAITING, point=None, called_at=None)

    def transfer(self, service: str) -> Ticket:
        """Back to the queue of another service, keeping its issue time."""
        self._require(TicketState.CALLED, TicketState.WAITING, doing="transfer")
        return replace(self, state=TicketState.WAITING, service=service, point=None, called_at=None)

    @property
    def service_s(self) -> float | None:
        """How long the client was at the point, once served."""
        if self.state is TicketState.SERVED and self.called_at and self.finished_at:
            return (self.finished_at - self.called_at).total_seconds()
        return None


def format_number(prefix: str, seq: int) -> str:
    """'A', 42 -> 'A-042'."""
    return f"{prefix}-{seq:03d}"
