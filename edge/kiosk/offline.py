"""What a kiosk needs to print tickets while it cannot reach central: its lease and a journal.

``OfflineBook`` holds the blocks of numbers central leased to the kiosk
(``device/<id>/lease``), the highest number the kiosk took from each, and
the tickets it issued offline that central has not acknowledged yet, in the
order they were issued.  Every change is written to a small JSON journal
(written aside, flushed to disk, then renamed over the old one) before the
ticket is printed, so a kiosk that restarts or loses power while offline
neither loses a ticket nor prints a number twice, and can go on issuing
from the lease it had.

The kiosk issues from a block only on the block's day in the site's time
zone: numbering restarts each day, so yesterday's block is dead at midnight.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import threading
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from central.domain.errors import BadPayload
from central.domain.model import format_number
from nextup.contract import LeaseBlock, NumberLease, OfflineTicket

log = logging.getLogger(__name__)

FORMAT = 1


class OfflineBook:
    """The kiosk's leased numbers and unacknowledged offline tickets, kept in ``path`` (None: memory only)."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.RLock()
        self.lease: NumberLease | None = None
        self._taken: dict[int, int] = {}  # block id -> highest number taken
        self._pending: list[OfflineTicket] = []
        self._first_block = 1  # blocks below this id are never issued from (see _load)
        self._distrust: bool = False
        self._load()

    # --- the lease ------------------------------------------------------------

    def set_lease(self, lease: NumberLease) -> bool:
        """Keep ``lease`` unless an equal or newer one is known; True when kept."""
        with self._lock:
            if self.lease is not None and lease.version <= self.lease.version:
                return False
            if self._distrust:
                # After a lost journal, numbers of the blocks held then may have been printed: only newer
                # blocks (the next day's, or a renewal) are safe.
                self._first_block = max([self._first_block, *(b.id + 1 for b in lease.blocks)])
                self._distrust = False
            self.lease = lease
            # Numbers taken from a block central no longer lists are kept only while a ticket of it waits
            # to be sent: once central has them, its lease says how far the block is used.
            keep = {b.id for b in lease.blocks} | {t.lease for t in self._pending}
            self._taken = {k: v for k, v in self._taken.items() if k in keep}
            self._save()
            return True

    def today(self, now: datetime) -> date | None:
        """The site's date at ``now`` (in the lease's time zone), or None without a lease."""
        lease = self.lease
        if lease is None:
            return None
        return _aware(now).astimezone(ZoneInfo(lease.tz)).date()

    def blocks_for(self, service: str, now: datetime) -> list[LeaseBlock]:
        """Today's blocks of ``service``, oldest first."""
        with self._lock:
            today = self.today(now)
            if today is None or self.lease is None:
                return []
            # By grant (id), not by number: central leases each renewal below the block it renews,
            # and the older block is used up first so that it leaves the lease.
            return sorted((b for b in self.lease.blocks
                           if b.service == service and b.day_date == today and b.id >= self._first_block),
                          key=lambda b: b.id)

    def left(self, service: str, now: datetime) -> int:
        """How many numbers of ``service`` the kiosk may still issue today."""
        with self._lock:
            return sum(b.last - self._next(b) + 1 for b in self.blocks_for(service, now))

    def covers_today(self, services: set[str], now: datetime) -> bool:
        """Whether the lease has a block of today for each of ``services``."""
        return all(self.blocks_for(service, now) for service in services)

    def _next(self, block: LeaseBlock) -> int:
        pending = max((t.seq for t in self._pending if t.lease == block.id), default=0)
        return max(block.used_up_to, self._taken.get(block.id, 0), pending) + 1

    # --- offline tickets ----------------------------------------------------------

    def take(self, service: str, now: datetime, *, priority: str | None = None,
             language: str | None = None) -> OfflineTicket | None:
        """A new ticket of ``service`` from today's blocks, journaled before it is returned; None when the
        kiosk holds no number of ``service`` for today."""
        issued = _aware(now).astimezone(UTC)
        with self._lock:
            for block in self.blocks_for(service, issued):
                seq = self._next(block)
                if seq > block.last:
                    continue
                ticket = OfflineTicket(
                    request_id=uuid.uuid4().hex, lease=block.id, service=service,
                    number=format_number(block.prefix, seq), seq=seq, day=block.day,
                    issued_at=issued.isoformat(), priority=priority, language=language,
                    token=secrets.token_urlsafe(24),
                )
                self._taken[block.id] = seq
                self._pending.append(ticket)
                self._save()
                return ticket
            return None

    def track_url(self, ticket: OfflineTicket) -> str | None:
        """The page that follows ``ticket`` once central has it, if central said where that is."""
        lease = self.lease
        if lease is None or not lease.track_base or ticket.token is None:
            return None
        return f"{lease.track_base}{ticket.token}"

    def printed(self, request_id: str, printed: bool, reason: str | None = None) -> OfflineTicket | None:
        """Record whether the ticket of ``request_id`` came out of the printer; the ticket as now sent."""
        with self._lock:
            for i, ticket in enumerate(self._pending):
                if ticket.request_id == request_id:
                    data = ticket.to_dict() | {"printed": printed, "reason": None if printed else reason}
                    self._pending[i] = OfflineTicket.from_dict(data)
                    self._save()
                    return self._pending[i]
            return None

    def acknowledge(self, request_id: str) -> OfflineTicket | None:
        """Central has the ticket of ``request_id`` (or refused it for good): stop sending it."""
        with self._lock:
            for i, ticket in enumerate(self._pending):
                if ticket.request_id == request_id:
                    del self._pending[i]
                    self._save()
                    return ticket
            return None

    @property
    def unsent(self) -> list[OfflineTicket]:
        """The offline tickets central has not acknowledged, in the order they were issued."""
        with self._lock:
            return list(self._pending)

    # --- the journal -----------------------------------------------------------------

    def _save(self) -> None:
        if self.path is None:
            return
        data = {
            "format": FORMAT,
            "lease": self.lease.to_dict() if self.lease is not None else None,
            "taken": {str(k): v for k, v in self._taken.items()},
            "pending": [t.to_dict() for t in self._pending],
            "first_block": self._first_block,
            "distrust": self._distrust,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        aside = self.path.with_name(self.path.name + ".new")
        with open(aside, "w", encoding="utf-8") as f:
            json.dump(data, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(aside, self.path)
        # The rename itself must reach the disk before the ticket is printed.
        with contextlib.suppress(OSError):
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ValueError("not a journal of this format")
            lease = data.get("lease")
            self.lease = NumberLease.from_dict(lease) if lease is not None else None
            self._taken = {int(k): int(v) for k, v in data.get("taken", {}).items()}
            self._pending = [OfflineTicket.from_dict(t) for t in data.get("pending", [])]
            self._first_block = int(data.get("first_block", 1))
            self._distrust = bool(data.get("distrust", False))
        except (OSError, ValueError, TypeError, AttributeError, BadPayload) as exc:
            # Issuing from a journal that cannot be read could print a number twice: start without a lease,
            # trust no block held until now, and keep the damaged file for a person to look at.
            broken = self.path.with_name(self.path.name + ".broken")
            log.error("offline journal %s is unreadable (%s); kept as %s", self.path, exc, broken.name)
            with contextlib.suppress(OSError):
                os.replace(self.path, broken)
            self.lease, self._taken, self._pending = None, {}, []
            self._distrust = True


def _aware(now: datetime) -> datetime:
    # A naive time is the kiosk's local time, as datetime.now() gives it.
    return now if now.tzinfo is not None else now.astimezone()


def journal_path(settings: Any, configured: Any, *, sim: bool) -> Path | None:
    """Where the kiosk keeps its offline journal: ``[kiosk] journal``, else ``<instance>/<id>.offline.json``.

    A sim kiosk keeps none unless its config names one, so tests and demos
    leave no files behind; a kiosk without a journal never issues offline.
    """
    if configured is not None:
        return Path(str(configured))
    if sim:
        return None
    return Path(settings.instance) / f"{settings.device_id}.offline.json"
