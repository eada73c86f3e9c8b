"""The queue's rules: who may take a ticket, who is called next, how long a wait is."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from .errors import (
    NothingWaiting,
    PointInactive,
    PriorityNotAllowed,
    ServiceInactive,
    SiteClosed,
    UnknownPriority,
    UnknownService,
)
from .hours import OpeningHours, service_day
from .model import Channel, Point, PriorityClass, Service, Ticket, TicketState, format_number
from .policy import PriorityPolicy, RatioState

STANDARD = PriorityClass(key="standard", name="Standard", rank=0, public=True)
"""The one class of a site that declares none."""

DEFAULT_SERVICE_S = 300.0
"""Assumed service time until a service has served someone."""


@dataclass(frozen=True)
class SiteRules:
    """What a site allows: its services, classes, policy and hours."""

    name: str
    tz: tzinfo
    services: Mapping[str, Service] = field(default_factory=dict)
    priorities: tuple[PriorityClass, ...] = ()
    policy: PriorityPolicy = PriorityPolicy()
    hours: OpeningHours = OpeningHours()
    language: str = "en"

    @property
    def classes(self) -> tuple[PriorityClass, ...]:
        return tuple(sorted(self.priorities, key=lambda p: p.rank)) or (STANDARD,)

    def service(self, key: str) -> Service:
        try:
            return self.services[key]
        except KeyError:
            raise UnknownService(f"There is no service {key!r}") from None

    def priority(self, key: str | None, channel: Channel) -> PriorityClass:
        """The class a ticket gets; without ``key``, the lowest the channel may take."""
        # Channel("web") so that a plain string never counts as the kiosk's wider rights.
        kiosk = Channel(channel) is Channel.KIOSK
        allowed = [p for p in self.classes if kiosk or p.public]
        if key is None:
            if not allowed:
                raise PriorityNotAllowed("No priority class may be taken here")
            return allowed[-1]
        chosen = next((p for p in self.classes if p.key == key), None)
        if chosen is None:
            raise UnknownPriority(f"There is no priority class {key!r}")
        if chosen not in allowed:
            raise PriorityNotAllowed(f"Priority class {chosen.name!r} is not given out here")
        return chosen

    def is_open(self, now: datetime) -> bool:
        return self.hours.is_open(now, self.tz)

    def check_open(self, now: datetime) -> None:
        if self.is_open(now):
            return
        opens = self.hours.next_opening(now, self.tz)
        when = opens.strftime("%A %d %B at %H:%M") if opens else "a date not yet set"
        raise SiteClosed(f"{self.name} is closed, opens {when}", opens_at=opens)

    def check_can_issue(
        self, service_key: str, priority_key: str | None, channel: Channel, now: datetime
    ) -> tuple[Service, PriorityClass]:
        """The service and class of a new ticket, or the reason there is none."""
        service = self.service(service_key)
        if not service.active:
            raise ServiceInactive(f"{service.name} is not taking tickets now")
        priority = self.priority(priority_key, channel)
        self.check_open(now)
        return service, priority


def new_ticket(
    site: SiteRules,
    service: Service,
    priority: PriorityClass,
    *,
    seq: int,
    now: datetime,
    channel: Channel,
    token: str,
    language: str | None = None,
) -> Ticket:
    """A waiting ticket with the ``seq``-th number of its service's day."""
    return Ticket(
        number=format_number(service.prefix, seq),
        service=service.key,
        priority=priority.key,
        priority_rank=priority.rank,
        seq=seq,
        day=service_day(now, site.tz),
        issued_at=now,
        channel=channel,
        token=token,
        language=language or site.language,
    )


def call_next(
    point: Point,
    waiting: Sequence[Ticket],
    policy: PriorityPolicy,
    now: datetime,
    ratio_state: RatioState = (),
) -> tuple[Ticket, RatioState]:
    """Call the next ticket to ``point``: the called ticket and the point's ratio state after."""
    if not point.active:
        raise PointInactive(f"{point.name} is inactive: activate it before calling")
    candidates = [t for t in waiting if t.state is TicketState.WAITING and point.provides(t.service)]
    if not candidates:
        raise NothingWaiting(f"Nobody is waiting for the services of {point.name}")
    chosen, ratio_state = policy.pick(candidates, now, ratio_state)
    return chosen.call(point.serial, now), ratio_state


def people_ahead(ticket: Ticket, waiting: Sequence[Ticket], policy: PriorityPolicy, now: datetime) -> int:
    """How many of the same service would be called before ``ticket``."""
    if ticket.state is not TicketState.WAITING:
        return 0
    same_service = [t for t in waiting if t.service == ticket.service and t.state is TicketState.WAITING]
    if ticket not in same_service:
        same_service.append(ticket)
    return policy.call_order(same_service, now).index(ticket)


def estimate_wait_s(
    ahead: int,
    recent_service_s: Sequence[float],
    active_points: int,
    default_service_s: float = DEFAULT_SERVICE_S,
) -> int:
    """Seconds until a ticket with ``ahead`` people before it is likely called.

    The active points of the service work through the people ahead in
    parallel, each taking the recent mean service time.
    """
    mean = sum(recent_service_s) / len(recent_service_s) if recent_service_s else default_service_s
    rounds = math.ceil(ahead / max(active_points, 1))
    return int(round(rounds * mean))
