"""Changing what the site is, one change at a time (the admin panel's side of ``nextup site apply``).

Each function checks its input whole, writes the change in one transaction
and then publishes the retained states again, so devices and pages learn it
at once.  Bad input raises ``InvalidEntry`` with one message per field and
changes nothing.  The rules are the site file's (``central.sitespec``), so a
service the panel accepts is one the site file would accept too.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from central.coordinator import Coordinator
from central.domain.errors import NextupError
from central.domain.hours import WEEKDAYS
from central.domain.model import PREFIX, SLUG, DeviceKind, TicketState
from central.domain.policy import PolicyKind
from central.sitespec import _INTERVAL, DEVICE_ID, LANGUAGE, USER_NAME, _as_date, _as_times
from central.store.models import (
    ClosedDateRow,
    DeviceRow,
    OpeningIntervalRow,
    PointRow,
    PriorityRow,
    ServiceRow,
    SiteRow,
    TicketRow,
    UserRow,
)
from central.users import MIN_PASSWORD, ROLES, BadPassword, hash_password

log = logging.getLogger(__name__)

SLUG_RULE = "use lowercase letters, digits, _ and - (up to 32), starting with a letter or digit"
OPEN_STATES = (TicketState.WAITING.value, TicketState.CALLED.value)


class InvalidEntry(NextupError, ValueError):
    """What a person entered cannot be saved; ``errors`` maps each field to why."""

    code = "invalid"

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()))


class _Problems:
    def __init__(self) -> None:
        self.errors: dict[str, str] = {}

    def __call__(self, field: str, message: str) -> None:
        self.errors.setdefault(field, message)

    def raise_any(self) -> None:
        if self.errors:
            raise InvalidEntry(self.errors)

    def key(self, key: str) -> None:
        """A key as links and devices use it (a slug)."""
        if not SLUG.match(key):
            self("key", f"The key {key!r} is not valid: {SLUG_RULE}." if key else "A key is required.")

    def name(self, name: str, longest: int) -> None:
        """A name people read: present, and at most ``longest`` characters."""
        if not name:
            self("name", "A name is required.")
        elif len(name) > longest:
            self("name", f"At most {longest} characters.")

    def new_or_edited(self, row: Any, editing: object, *, missing: str, field: str,
                      taken: Callable[[Any], str]) -> None:
        """An edit needs its row, else ``missing`` refuses the whole form; a new entry, ``field`` free."""
        if editing is not None and row is None:
            raise InvalidEntry({"form": missing})
        if editing is None and row is not None:
            self(field, taken(row))


def _write(coordinator: Coordinator, change: Any) -> Any:
    """Run ``change(session)`` in one transaction, then publish what changed."""
    try:
        with coordinator.store.write() as s:
            result = change(s)
            coordinator.configuration_changed(s)
    except IntegrityError as exc:
        # Another admin saved the same key at the same moment: the database's unique rule caught it.
        log.warning("registry change refused by the database: %s", exc.orig)
        raise InvalidEntry({"form": "Someone else changed this at the same time; please try again."}) from exc
    coordinator.publish_snapshot()
    return result


def _text(value: str | None) -> str:
    return (value or "").strip()


# --- services -----------------------------------------------------------------------------------


def save_service(
    coordinator: Coordinator, *, key: str, name: str, prefix: str, description: str = "", active: bool = True,
    editing: str | None = None,
) -> str:
    """Create service ``key`` or, with ``editing``, update that service (its key stays)."""
    key, name, prefix, description = _text(editing or key), _text(name), _text(prefix), _text(description)
    problem = _Problems()
    problem.key(key)
    problem.name(name, longest=128)
    if not PREFIX.match(prefix):
        problem("prefix", "1 to 3 uppercase letters, e.g. A." if prefix else "A prefix is required.")

    def change(s: Session) -> str:
        row = s.scalars(select(ServiceRow).where(ServiceRow.key == key)).one_or_none()
        problem.new_or_edited(row, editing, missing=f"There is no service {key!r}.", field="key",
                              taken=lambda used: f"The key {key!r} is already used by {used.name}.")
        other = s.scalars(select(ServiceRow).where(ServiceRow.prefix == prefix)).one_or_none()
        if other is not None and other is not row:
            problem("prefix", f"The prefix {prefix} is already used by {other.name}.")
        problem.raise_any()
        if row is None:
            row = ServiceRow(key=key)
            s.add(row)
        row.name, row.prefix, row.description, row.active = name, prefix, description, active
        return key

    problem.raise_any()
    return _write(coordinator, change)


# --- points -------------------------------------------------------------------------------------


def save_point(
    coordinator: Coordinator, *, serial: int | None, name: str, services: Iterable[str] = (),
    active: bool = True, specialists: Iterable[int] | None = None, editing: int | None = None,
) -> int:
    """Create point ``serial`` or, with ``editing``, update that point (its serial stays).

    ``specialists`` (user ids) are the people allowed to work here; None leaves them as they are.
    """
    serial = editing if editing is not None else serial
    name = _text(name)
    wanted = list(dict.fromkeys(services))
    problem = _Problems()
    if serial is None:
        problem("serial", "A serial is required.")
    elif not 1 <= serial <= 9999:
        problem("serial", "A number from 1 to 9999.")
    problem.name(name, longest=64)
    problem.raise_any()

    def change(s: Session) -> int:
        row = s.scalars(select(PointRow).where(PointRow.serial == serial)).one_or_none()
        problem.new_or_edited(row, editing, missing=f"There is no point {serial}.", field="serial",
                              taken=lambda used: f"Serial {serial} is already used by {used.name}.")
        rows = {r.key: r for r in s.scalars(select(ServiceRow).where(ServiceRow.key.in_(wanted)))}
        missing = [k for k in wanted if k not in rows]
        if missing:
            problem("services", f"No such service: {', '.join(missing)}.")
        people: list[UserRow] = []
        if specialists is not None:
            ids = list(dict.fromkeys(specialists))
            people = list(s.scalars(select(UserRow).where(UserRow.id.in_(ids))))
            if len(people) != len(ids):
                problem("specialists", "One of the chosen people does not exist any more.")
        problem.raise_any()
        if row is None:
            row = PointRow(serial=serial, ratio_state=[])
            s.add(row)
        row.name, row.active = name, active
        row.services = [rows[k] for k in sorted(wanted)]
        if specialists is not None:
            s.flush()
            chosen = {u.id for u in people}
            for user in s.scalars(select(UserRow)):
                here = row in user.points
                if user.id in chosen and not here:
                    user.points = sorted([*user.points, row], key=lambda p: p.serial)
                elif user.id not in chosen and here:
                    user.points = [p for p in user.points if p is not row]
        return serial  # type: ignore[return-value]

    return _write(coordinator, change)


def work_at(coordinator: Coordinator, serial: int, user_id: int | None) -> None:
    """Record who works at point ``serial`` now (None: nobody), so statistics know who served whom."""

    def change(s: Session) -> None:
        row = s.scalars(select(PointRow).where(PointRow.serial == serial)).one_or_none()
        if row is None:
            raise InvalidEntry({"point": f"There is no point {serial}."})
        if user_id is not None:
            # One person works at one point at a time.
            for other in s.scalars(select(PointRow).where(PointRow.specialist_id == user_id)):
                if other is not row:
                    other.specialist_id = None
        row.specialist_id = user_id

    with coordinator.store.write() as s:
        change(s)


def leave_point(coordinator: Coordinator, serial: int, user_id: int) -> None:
    """``user_id`` stops working at point ``serial`` (if someone else took it over meanwhile, they stay)."""
    with coordinator.store.write() as s:
        row = s.scalars(select(PointRow).where(PointRow.serial == serial)).one_or_none()
        if row is not None and row.specialist_id == user_id:
            row.specialist_id = None


# --- people -------------------------------------------------------------------------------------


def save_user(
    coordinator: Coordinator, *, name: str, role: str, password: str | None = None,
    points: Iterable[int] = (), active: bool = True, editing: int | None = None,
) -> int:
    """Create a user (a password is required) or, with ``editing`` (an id), update one.

    On an update an empty password keeps the one they have.
    """
    name, password = _text(name), password or ""
    serials = list(dict.fromkeys(points))
    problem = _Problems()
    if not USER_NAME.match(name):
        problem("name", "Letters, digits, _ . @ - (up to 64)." if name else "A name is required.")
    if role not in ROLES:
        problem("role", f"One of {', '.join(ROLES)}.")
    password_hash = None
    if password:
        try:
            password_hash = hash_password(password)
        except BadPassword:
            problem("password", f"At least {MIN_PASSWORD} characters.")
    elif editing is None:
        problem("password", "A password is required for a new person.")
    problem.raise_any()

    def change(s: Session) -> int:
        row = s.get(UserRow, editing) if editing is not None else None
        if editing is not None and row is None:
            raise InvalidEntry({"form": "This person does not exist any more."})
        other = s.scalars(select(UserRow).where(UserRow.name == name)).one_or_none()
        if other is not None and other is not row:
            problem("name", f"The name {name!r} is already taken.")
        found = {p.serial: p for p in s.scalars(select(PointRow).where(PointRow.serial.in_(serials)))}
        missing = [str(n) for n in serials if n not in found]
        if missing:
            problem("points", f"No such point: {', '.join(missing)}.")
        problem.raise_any()
        if row is None:
            row = UserRow(name=name)
            s.add(row)
        row.name, row.role, row.active = name, role, active
        if password_hash is not None:
            row.password_hash = password_hash
        row.points = [found[n] for n in sorted(serials)]
        if not active:
            for p in s.scalars(select(PointRow).where(PointRow.specialist_id == row.id)):
                p.specialist_id = None
        s.flush()
        return row.id

    return _write(coordinator, change)


# --- priority classes and the policy ------------------------------------------------------------


def _site(s: Session) -> SiteRow:
    row = s.get(SiteRow, 1)
    if row is None:
        row = SiteRow(id=1, name="Nextup", timezone="UTC", language="en", policy="strict", aging_after_s=600,
                      ratio=[], version=0)
        s.add(row)
        s.flush()
    return row


def open_tickets_by_class(s: Session, keys: Iterable[str]) -> dict[str, int]:
    """How many tickets of each of the classes ``keys`` are in the queue (waiting or called),
    for the classes that have any: a class goes only once none are."""
    counts = (
        select(TicketRow.priority, func.count(TicketRow.id))
        .where(TicketRow.state.in_(OPEN_STATES), TicketRow.priority.in_(list(keys)))
        .group_by(TicketRow.priority)
    )
    return dict(s.execute(counts).tuples().all())


def _ranked(s: Session) -> list[PriorityRow]:
    return list(s.scalars(select(PriorityRow).order_by(PriorityRow.rank)))


def _place(ranked: list[PriorityRow], key: str) -> int:
    """Where class ``key`` stands in ``ranked``."""
    index = next((i for i, r in enumerate(ranked) if r.key == key), None)
    if index is None:
        raise InvalidEntry({"key": f"There is no priority class {key!r}."})
    return index


def save_priority(
    coordinator: Coordinator, *, key: str, name: str, public: bool = True, editing: str | None = None
) -> str:
    """Create priority class ``key`` (last in the order) or, with ``editing``, change name or ``public``."""
    key, name = _text(editing or key), _text(name)
    problem = _Problems()
    problem.key(key)
    problem.name(name, longest=64)
    problem.raise_any()

    def change(s: Session) -> str:
        row = s.scalars(select(PriorityRow).where(PriorityRow.key == key)).one_or_none()
        problem.new_or_edited(row, editing, missing=f"There is no priority class {key!r}.", field="key",
                              taken=lambda used: f"The key {key!r} is already used by {used.name}.")
        problem.raise_any()
        if row is None:
            ranked = _ranked(s)
            site = _site(s)
            row = PriorityRow(key=key, rank=len(ranked), name=name, public=public)
            s.add(row)
            if site.ratio:
                # A ratio has one share per class; the new class starts with one share.
                site.ratio = [*site.ratio, 1]
        row.name, row.public = name, public
        return key

    return _write(coordinator, change)


def move_priority(coordinator: Coordinator, key: str, direction: str) -> None:
    """Move class ``key`` one place "up" (higher priority) or "down"; a ratio's shares move with it."""
    if direction not in ("up", "down"):
        raise InvalidEntry({"direction": "up or down"})

    def change(s: Session) -> None:
        ranked = _ranked(s)
        index = _place(ranked, key)
        other = index - 1 if direction == "up" else index + 1
        if not 0 <= other < len(ranked):
            return
        ranked[index], ranked[other] = ranked[other], ranked[index]
        site = _site(s)
        if len(site.ratio or []) == len(ranked):
            ratio = list(site.ratio)
            ratio[index], ratio[other] = ratio[other], ratio[index]
            site.ratio = ratio
        _rerank(s, ranked)

    _write(coordinator, change)


def _rerank(s: Session, ranked: list[PriorityRow]) -> None:
    # Ranks are unique only by convention, but move them out of the way first so no two ever meet.
    for i, row in enumerate(ranked):
        row.rank = 1000 + i
    s.flush()
    for i, row in enumerate(ranked):
        row.rank = i


def delete_priority(coordinator: Coordinator, key: str) -> None:
    """Remove class ``key`` when no waiting or called ticket has it (tickets served keep its key)."""

    def change(s: Session) -> None:
        ranked = _ranked(s)
        index = _place(ranked, key)
        if len(ranked) == 1:
            raise InvalidEntry({"key": "The site needs at least one priority class."})
        busy = open_tickets_by_class(s, [key]).get(key)
        if busy:
            raise InvalidEntry({"key": f"{busy} ticket(s) of this class are still in the queue."})
        site = _site(s)
        if len(site.ratio or []) == len(ranked):
            site.ratio = [share for i, share in enumerate(site.ratio) if i != index]
        s.delete(ranked.pop(index))
        s.flush()
        _rerank(s, ranked)

    _write(coordinator, change)


def parse_ratio(text: str) -> list[int] | None:
    """``"3, 1"`` or ``"3:1"`` as shares; None when it is not a list of whole numbers."""
    parts = [p for p in text.replace(":", ",").replace(" ", ",").split(",") if p]
    if not parts or not all(p.isdigit() for p in parts):
        return None
    return [int(p) for p in parts]


def set_policy(
    coordinator: Coordinator, *, policy: str, aging_after_s: int | None, ratio: str | None
) -> None:
    """The priority policy: strict, aging (after ``aging_after_s``) or ratio (shares per class, in order)."""
    problem = _Problems()
    if policy not in tuple(k.value for k in PolicyKind):
        problem("policy", "Strict, aging or ratio.")
    if aging_after_s is None or aging_after_s <= 0:
        problem("aging_after_s", "More than 0 seconds.")
    shares: list[int] = []
    if _text(ratio):
        parsed = parse_ratio(_text(ratio))
        if parsed is None or any(share <= 0 for share in parsed):
            problem("ratio", "Whole numbers more than 0, one per class, e.g. 3, 1.")
        else:
            shares = parsed
    elif policy == PolicyKind.RATIO:
        problem("ratio", "A ratio needs one share per class, in their order, e.g. 3, 1.")
    problem.raise_any()

    def change(s: Session) -> None:
        classes = len(_ranked(s))
        if shares and len(shares) != classes:
            raise InvalidEntry({"ratio": f"Give {classes} share{'s' if classes != 1 else ''}, one per class "
                                         f"in their order (got {len(shares)})."})
        site = _site(s)
        site.policy, site.aging_after_s, site.ratio = policy, aging_after_s, shares
        if policy == PolicyKind.RATIO:
            # A new ratio starts a new cycle at every point.
            for p in s.scalars(select(PointRow)):
                p.ratio_state = []

    _write(coordinator, change)


# --- devices ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """A device's broker login, shown once when it is made."""

    user: str
    password: str
    written: bool  # True when the broker's password file has it; else it must be entered by hand


def save_device(
    coordinator: Coordinator, *, id: str, kind: str, point: int | None = None, language: str | None = None,
    editing: str | None = None,
) -> str:
    """Add device ``id`` to the registry or, with ``editing``, change its kind, point or language."""
    device_id, language = _text(editing or id), _text(language) or None
    problem = _Problems()
    if not DEVICE_ID.match(device_id):
        problem("id", "Letters, digits, _ . - (up to 64), e.g. point-5." if device_id
                else "An id is required.")
    kinds = tuple(k.value for k in DeviceKind)
    if kind not in kinds:
        problem("kind", f"One of {', '.join(kinds)}.")
    if kind == DeviceKind.POINT and point is None:
        problem("point", "A point unit needs the point it drives.")
    if kind != DeviceKind.POINT:
        point = None
    if language is not None and not LANGUAGE.match(language):
        problem("language", 'A language code, e.g. "en" or "pt-BR".')
    problem.raise_any()

    def change(s: Session) -> str:
        row = s.get(DeviceRow, device_id)
        problem.new_or_edited(row, editing, missing=f"There is no device {device_id!r}.", field="id",
                              taken=lambda used: f"The id {device_id!r} is already used by a {used.kind}.")
        if point is not None and s.scalar(select(PointRow.id).where(PointRow.serial == point)) is None:
            problem("point", f"There is no point {point}.")
        problem.raise_any()
        if row is None:
            row = DeviceRow(id=device_id, online=False)
            s.add(row)
        if row.kind != kind:
            row.buttons = None  # a kiosk's buttons mean nothing to another kind
        row.kind, row.point_serial, row.language = kind, point, language
        return device_id

    return _write(coordinator, change)


def delete_device(coordinator: Coordinator, device_id: str, broker_dir: str | None = None) -> None:
    """Remove a device from the registry (and its broker login, when the broker's files are here)."""

    def change(s: Session) -> None:
        row = s.get(DeviceRow, device_id)
        if row is None:
            raise InvalidEntry({"id": f"There is no device {device_id!r}."})
        s.delete(row)

    _write(coordinator, change)
    if broker_dir:
        _write_broker_files(coordinator, broker_dir, rotate=())


def new_credentials(coordinator: Coordinator, device_id: str, broker_dir: str | None = None) -> Credentials:
    """A fresh broker password for ``device_id`` (the old one stops working once the broker reloads).

    With ``broker_dir`` the broker's password file and ACL are rewritten for every registered
    device; without it the password is only made, for a person to enter into the broker.
    """
    with coordinator.store.read() as s:
        if s.get(DeviceRow, device_id) is None:
            raise InvalidEntry({"id": f"There is no device {device_id!r}."})
    if not broker_dir:
        return Credentials(device_id, secrets.token_urlsafe(24), written=False)  # 192 random bits
    passwords = _write_broker_files(coordinator, broker_dir, rotate=(device_id,))
    return Credentials(device_id, passwords[device_id], written=True)


def _write_broker_files(coordinator: Coordinator, broker_dir: str, rotate: Iterable[str]) -> dict[str, str]:
    from broker.mosquitto import write_credentials

    with coordinator.store.read() as s:
        devices = [(d.id, d.kind) for d in s.scalars(select(DeviceRow).order_by(DeviceRow.id))]
    return write_credentials(broker_dir, coordinator.topics.site, devices, rotate=list(rotate))


# --- opening hours ------------------------------------------------------------------------------


def set_hours(coordinator: Coordinator, weekly: Mapping[str, str], closed: str) -> None:
    """Replace the opening hours and closed dates.

    ``weekly`` maps a weekday ("mon".."sun") to intervals like "09:00-13:00, 14:00-18:00" (empty:
    closed that day); ``closed`` lists dates, one per line or separated by commas.  No interval on
    any day means always open, as in a site file without [hours].
    """
    problem = _Problems()
    intervals: list[tuple[int, str, str]] = []
    for day, name in enumerate(WEEKDAYS):
        text = _text(weekly.get(name))
        found: list[tuple[Any, Any, str]] = []
        for part in (p.strip() for p in text.replace(";", ",").split(",")):
            if not part:
                continue
            times = _as_times(_INTERVAL.match(part))
            if times is None:
                problem(name, f'"{part}" is not an interval like 09:00-13:00.')
            elif times[0] >= times[1]:
                problem(name, f'"{part}" does not start before it ends.')
            else:
                found.append((*times, part))
        found.sort()
        for before, after in zip(found, found[1:], strict=False):
            if after[0] < before[1]:
                problem(name, f'"{after[2]}" overlaps "{before[2]}".')
        intervals += [(day, start.strftime("%H:%M"), end.strftime("%H:%M")) for start, end, _ in found]
    days: set[date] = set()
    for part in (p.strip() for p in _text(closed).replace(",", "\n").splitlines()):
        if not part:
            continue
        day_ = _as_date(part)
        if day_ is None:
            problem("closed", f'"{part}" is not a date like 2026-12-25.')
        else:
            days.add(day_)
    problem.raise_any()

    def change(s: Session) -> None:
        s.execute(delete(OpeningIntervalRow))
        s.execute(delete(ClosedDateRow))
        s.add_all(OpeningIntervalRow(weekday=d, opens=o, closes=c) for d, o, c in intervals)
        s.add_all(ClosedDateRow(day=d) for d in sorted(days))

    _write(coordinator, change)


def hours_text(coordinator: Coordinator) -> tuple[dict[str, str], str]:
    """The opening hours as the hours form shows them."""
    with coordinator.store.read() as s:
        weekly: dict[str, list[str]] = {name: [] for name in WEEKDAYS}
        for row in s.scalars(select(OpeningIntervalRow).order_by(OpeningIntervalRow.weekday,
                                                                 OpeningIntervalRow.opens)):
            weekly[WEEKDAYS[row.weekday]].append(f"{row.opens}-{row.closes}")
        closed = [d.isoformat() for d in s.scalars(select(ClosedDateRow.day).order_by(ClosedDateRow.day))]
    return {k: ", ".join(v) for k, v in weekly.items()}, "\n".join(closed)
