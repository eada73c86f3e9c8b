"""The queue's domain: plain Python, no I/O, and nothing else of Nextup's imported."""

from .errors import NextupError
from .hours import OpeningHours, service_day
from .model import (
    Channel,
    DeviceKind,
    Point,
    PointAction,
    PriorityClass,
    Service,
    Ticket,
    TicketState,
    format_number,
)
from .policy import PolicyKind, PriorityPolicy, RatioState
from .queue import SiteRules, call_next, estimate_wait_s, new_ticket, people_ahead

__all__ = [
    "Channel",
    "DeviceKind",
    "NextupError",
    "OpeningHours",
    "Point",
    "PointAction",
    "PolicyKind",
    "PriorityClass",
    "PriorityPolicy",
    "RatioState",
    "Service",
    "SiteRules",
    "Ticket",
    "TicketState",
    "call_next",
    "estimate_wait_s",
    "format_number",
    "new_ticket",
    "people_ahead",
    "service_day",
]
