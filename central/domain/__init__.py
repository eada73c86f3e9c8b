"""The queue's domain: plain Python, no I/O, and nothing else of Nextup's imported.

The names below are imported from their modules on first use, not with the
package: every edge program imports ``central.domain.errors`` and
``central.domain.model`` for the contract, and importing the queue, the
policies and the opening hours as well would cost each of them memory
(against a 40 MB budget) for code only central runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_MODULE_OF = {
    "NextupError": "errors",
    "OpeningHours": "hours",
    "service_day": "hours",
    "Channel": "model",
    "DeviceKind": "model",
    "Point": "model",
    "PointAction": "model",
    "PriorityClass": "model",
    "Service": "model",
    "Ticket": "model",
    "TicketState": "model",
    "format_number": "model",
    "PolicyKind": "policy",
    "PriorityPolicy": "policy",
    "RatioState": "policy",
    "SiteRules": "queue",
    "call_next": "queue",
    "estimate_wait_s": "queue",
    "new_ticket": "queue",
    "people_ahead": "queue",
}

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


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULE_OF))
