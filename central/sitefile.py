"""``nextup site apply``: write a checked site file to the database.

The file says what the site is.  Applying it creates and updates what it
declares; priority classes, points and devices it no longer declares are
removed (a class only once no ticket in the queue has it), services only
deactivated (their tickets stay in the history).  Applying the same file
twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from os import PathLike
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from central.coordinator import Coordinator
from central.domain.errors import InvalidSiteFile
from central.registry import open_tickets_by_class
from central.sitespec import SiteSpec, parse_site_file
from central.store import Store
from central.store.migrate import check_schema
from central.store.models import (
    ClosedDateRow,
    DeviceRow,
    OpeningIntervalRow,
    PointRow,
    PriorityRow,
    ServiceRow,
    SiteRow,
    UserRow,
)
from nextup.settings import Settings


class Changes:
    """What an apply changed, for the report."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def note(self, what: str) -> None:
        self.lines.append(what)

    def set(self, row: Any, label: str, **values: Any) -> None:
        for name, value in values.items():
            if getattr(row, name) != value:
                setattr(row, name, value)
                self.note(f"{label}: {name} set")

    def __str__(self) -> str:
        if not self.lines:
            return "site is up to date: nothing changed"
        return "\n".join(self.lines + [f"{len(self.lines)} change(s) applied"])


def apply_site_file(settings: Settings, path: str | PathLike[str]) -> Changes:
    """Check the file at ``path`` whole, then apply it in one transaction."""
    spec = parse_site_file(path)
    check_schema(settings.database)
    store = Store(settings.database)
    try:
        return apply_site(store, spec)
    finally:
        store.close()


def apply_site(store: Store, spec: SiteSpec) -> Changes:
    """Make the database say what ``spec`` says."""
    changes = Changes()
    with store.write() as s:
        _site(s, spec, changes)
        _hours(s, spec, changes)
        _priorities(s, spec, changes)
        services = _services(s, spec, changes)
        points = _points(s, spec, services, changes)
        _devices(s, spec, changes)
        _users(s, spec, points, changes)
        if changes.lines:
            Coordinator.configuration_changed(s)
    return changes


def _site(s: Session, spec: SiteSpec, changes: Changes) -> None:
    values = {
        "name": spec.name,
        "timezone": spec.timezone,
        "language": spec.language,
        "policy": spec.policy.value,
        "aging_after_s": spec.aging_after_s,
        "ratio": list(spec.ratio),
    }
    row = s.get(SiteRow, 1)
    if row is None:
        s.add(SiteRow(id=1, version=0, **values))
        changes.note("site created")
        return
    changes.set(row, "site", **values)


def _hours(s: Session, spec: SiteSpec, changes: Changes) -> None:
    wanted = sorted(
        (day, start.strftime("%H:%M"), end.strftime("%H:%M"))
        for day, intervals in spec.hours.items()
        for start, end in intervals
    )
    have = sorted((r.weekday, r.opens, r.closes) for r in s.scalars(select(OpeningIntervalRow)))
    if wanted != have:
        s.execute(delete(OpeningIntervalRow))
        s.add_all(OpeningIntervalRow(weekday=d, opens=o, closes=c) for d, o, c in wanted)
        changes.note("opening hours replaced")
    closed = set(s.scalars(select(ClosedDateRow.day)))
    if closed != set(spec.closed_dates):
        s.execute(delete(ClosedDateRow))
        s.add_all(ClosedDateRow(day=d) for d in sorted(spec.closed_dates))
        changes.note("closed dates replaced")


def _sync(
    s: Session,
    model: type,
    key: str,
    specs: dict[Any, Any],
    changes: Changes,
    label: str,
    values: Callable[[Any], dict[str, Any]],
    *,
    link: tuple[str, Callable[[Any, Any], bool]] | None = None,
    remove: bool = True,
) -> dict[Any, Any]:
    """Create, update and remove rows of ``model`` so that they match ``specs`` (by ``key``).

    ``values(spec)`` gives the row's columns; ``link`` names a relationship and a function
    that sets it from the spec and says whether it changed.
    """
    rows = {getattr(r, key): r for r in s.scalars(select(model))}
    for k, spec in specs.items():
        row = rows.get(k)
        if row is None:
            row = rows[k] = model(**{key: k}, **values(spec))
            s.add(row)
            if link is not None:
                link[1](row, spec)
            changes.note(f"{label} {k} created")
            continue
        changes.set(row, f"{label} {k}", **values(spec))
        if link is not None and link[1](row, spec):
            changes.note(f"{label} {k}: {link[0]} set")
    for k in list(rows):
        if k not in specs and remove:
            s.delete(rows.pop(k))
            changes.note(f"{label} {k} removed")
    s.flush()
    return rows


def _priorities(s: Session, spec: SiteSpec, changes: Changes) -> None:
    # As the admin panel does: a class goes only once nobody in the queue has it. Removed
    # anyway, its tickets would keep a rank no class has and go after every other class.
    removed = set(s.scalars(select(PriorityRow.key))) - {p.key for p in spec.priorities}
    busy = open_tickets_by_class(s, removed)
    if busy:
        raise InvalidSiteFile(
            "\n".join(
                f"priority class {key} is not in the file but {busy[key]} of its tickets are in the queue: "
                "keep the class until they are served"
                for key in sorted(busy)
            )
        )
    _sync(
        s,
        PriorityRow,
        "key",
        {p.key: p for p in spec.priorities},
        changes,
        "priority class",
        lambda p: {"name": p.name, "rank": p.rank, "public": p.public},
    )


def _services(s: Session, spec: SiteSpec, changes: Changes) -> dict[str, ServiceRow]:
    wanted = {v.key: v for v in spec.services}
    rows = _sync(
        s,
        ServiceRow,
        "key",
        wanted,
        changes,
        "service",
        lambda v: {"name": v.name, "description": v.description, "prefix": v.prefix, "active": v.active},
        remove=False,
    )
    for key, row in rows.items():
        if key not in wanted and row.active:
            row.active = False
            changes.note(f"service {key} deactivated (no longer in the file)")
    return rows


def _points(
    s: Session, spec: SiteSpec, services: dict[str, ServiceRow], changes: Changes
) -> dict[int, PointRow]:
    def link(row: PointRow, p: Any) -> bool:
        if sorted(v.key for v in row.services) == sorted(p.services):
            return False
        row.services = [services[k] for k in sorted(p.services)]
        return True

    return _sync(
        s,
        PointRow,
        "serial",
        {p.serial: p for p in spec.points},
        changes,
        "point",
        lambda p: {"name": p.name, "active": p.active},
        link=("services", link),
    )


def _devices(s: Session, spec: SiteSpec, changes: Changes) -> None:
    def buttons(d: Any) -> dict[str, dict[str, str | None]] | None:
        if d.buttons is None:
            return None
        return {name: {"service": b.service, "priority": b.priority} for name, b in d.buttons.items()}

    _sync(
        s,
        DeviceRow,
        "id",
        {d.id: d for d in spec.devices},
        changes,
        "device",
        lambda d: {
            "kind": d.kind.value,
            "point_serial": d.point,
            "language": d.language,
            "buttons": buttons(d),
        },
    )


def _users(s: Session, spec: SiteSpec, points: dict[int, PointRow], changes: Changes) -> None:
    def link(row: UserRow, u: Any) -> bool:
        if sorted(p.serial for p in row.points) == sorted(u.points):
            return False
        row.points = [points[n] for n in sorted(u.points)]
        return True

    # Users made with `nextup user add` and not in the file are kept.
    _sync(
        s,
        UserRow,
        "name",
        {u.name: u for u in spec.users},
        changes,
        "user",
        lambda u: {"role": u.role},
        link=("points", link),
        remove=False,
    )
