"""Where every waiting ticket stands, worked out once per change of the queue and shared by every page.

A ticket page following its ticket live needs the people ahead and the
estimated wait after every change.  Asking the coordinator for each page reads
the whole waiting queue once per page: with a hall of 1,000 phones watching, a
call costs 1,000 reads of the queue.  ``Positions`` reads it once per board
version (the number the coordinator publishes with every committed change), on
behalf of the first page that asks, and every other page looks its ticket up.

The order is the coordinator's: the same light rows, the site policy's
``call_order`` and the domain's ``estimate_wait_s``, as in
``Coordinator.ticket``; only how often it is worked out differs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from flask import Flask, current_app

from central.coordinator import Coordinator, Message, Place, TicketView
from central.domain import TicketState

EXTENSION = "nextup.positions"
# With the aging policy the order moves with time alone; a page opened on a quiet queue
# gets an order at most this old (a change of the queue always brings a new one).
MAX_AGE_S = 5.0


@dataclass(frozen=True)
class QueueOrder:
    """Every waiting ticket's place (by token) as of board ``version``."""

    version: int
    places: Mapping[str, Place]
    read_at: float


class Positions:
    """The queue order of a coordinator, read at most once per board version, shared by all threads."""

    def __init__(self, coordinator: Coordinator, *, max_age_s: float = MAX_AGE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.coordinator = coordinator
        self.max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._order: QueueOrder | None = None
        self.reads = 0
        """How many times the queue was read (for tests and benchmarks)."""

    def order(self, version: int | None = None) -> QueueOrder:
        """The order at board ``version`` or later; ``None``: the order now (the database's version)."""
        now = version is None
        if version is None:
            version = self.coordinator.version()
        order = self._fresh(version, now)
        if order is not None:
            return order
        # One reader per version: the streams woken by a change wait here for its result.
        with self._lock:
            order = self._fresh(version, now)
            if order is None:
                order = self._read()
                self._order = order
            return order

    def place(self, token: str, version: int | None = None) -> Place | None:
        """The place of the waiting ticket ``token``; None when it is not waiting (or not known yet)."""
        return self.order(version).places.get(token)

    def _fresh(self, version: int, now: bool) -> QueueOrder | None:
        order = self._order
        if order is None or order.version < version:
            return None
        if now and self._clock() - order.read_at > self.max_age_s:
            return None
        return order

    def _read(self) -> QueueOrder:
        version, places = self.coordinator.queue_order()
        self.reads += 1
        return QueueOrder(version, places, self._clock())

    def ticket(self, token: str, known: TicketView | None = None, version: int | None = None) -> TicketView:
        """The ticket ``token`` as ``Coordinator.ticket`` gives it, from the shared order while it waits.

        ``known``: the view a page already has; while the ticket still waits in the same service only
        its place changes, so no read of the ticket is needed.  Raises ``UnknownTicket``.
        """
        place = self.place(token, version)
        if place is not None:
            waiting = TicketState.WAITING.value
            if known is not None and known.state == waiting and known.service == place.service:
                return replace(known, ahead=place.ahead, eta_s=place.eta_s)
        # Called, finished or moved since the order was read: the coordinator counts this one.
        return self.coordinator.ticket(token, place=place)


def board_version(messages: Iterable[Message], board_topic: str) -> int | None:
    """The newest board version among ``messages`` (None when there is no board among them)."""
    versions = [m.version for m in messages if m.topic == board_topic and m.version is not None]
    return max(versions) if versions else None


def init_app(app: Flask) -> Positions:
    """The app's shared queue order, made on first use."""
    positions = app.extensions.get(EXTENSION)
    if positions is None:
        positions = app.extensions.setdefault(EXTENSION, Positions(app.extensions["nextup.coordinator"]))
    return positions


def positions(app: Flask | None = None) -> Positions:
    """The shared queue order of ``app`` (default: the current app)."""
    return init_app(app if app is not None else current_app._get_current_object())  # type: ignore[attr-defined]
