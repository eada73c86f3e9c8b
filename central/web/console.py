"""The specialist's console (/console): work a point from a browser, as its hardware unit would.

A specialist signs in, picks one of the points they may work at (admins may
pick any) and presses the same buttons as on the point unit.  Each button is a
form carrying a command id made when the page was drawn, and goes through
``Coordinator.point_command`` like a hardware press: a form sent twice (a
double click, a reload that re-posts) takes effect once.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, session, url_for
from flask_login import current_user
from sqlalchemy import select

from central import registry
from central.coordinator import Coordinator, _ticket
from central.domain import NextupError, PointAction
from central.domain.model import TicketState
from central.store.models import PointRow, ServiceRow, TicketRow

from . import live
from .auth import ADMIN, SPECIALIST, init_auth, role_required
from .forms import CommandForm, LogoutForm, PickPointForm

blueprint = Blueprint("console", __name__)
blueprint.record_once(lambda state: init_auth(state.app))

ACTIONS = tuple(a.value for a in PointAction) + ("transfer",)
QUEUE_SHOWN = 30
SESSION_POINT = "console_point"


@blueprint.after_request
def _private(response: Any) -> Any:
    response.headers.setdefault("Cache-Control", "private, no-cache")
    response.headers.setdefault("X-Frame-Options", "DENY")
    return response


def _coordinator() -> Coordinator:
    return current_app.extensions["nextup.coordinator"]


@dataclass(frozen=True)
class PointChoice:
    serial: int
    name: str
    active: bool


def _allowed_points() -> list[PointChoice]:
    with _coordinator().store.read() as s:
        rows = [PointChoice(p.serial, p.name, p.active)
                for p in s.scalars(select(PointRow).order_by(PointRow.serial))]
    return [p for p in rows if current_user.may_work_at(p.serial)]


def _point_or_403(serial: int) -> None:
    if not current_user.may_work_at(serial):
        abort(403)


def point_queue(
    coordinator: Coordinator, serial: int, limit: int = QUEUE_SHOWN
) -> tuple[list[dict[str, Any]], int]:
    """The tickets waiting for the services of point ``serial``, in the order this point would call them.

    Returns up to ``limit`` of them and how many wait in all.
    """
    now = coordinator.clock()
    with coordinator.store.read() as s:
        point = s.scalars(select(PointRow).where(PointRow.serial == serial)).one()
        rules = coordinator.rules(s)
        ids = [svc.id for svc in point.services]
        rows = list(s.scalars(select(TicketRow).where(TicketRow.state == TicketState.WAITING.value,
                                                      TicketRow.service_id.in_(ids)).order_by(TicketRow.id)))
        waiting = [_ticket(r) for r in rows]
        ratio_state = tuple(point.ratio_state or ())
    ordered: list[dict[str, Any]] = []
    left = list(waiting)
    # The policy picks one at a time (a ratio depends on what was picked before), so ask it repeatedly.
    while left and len(ordered) < limit:
        chosen, ratio_state = rules.policy.pick(left, now, ratio_state)
        left.remove(chosen)
        ordered.append({"number": chosen.number, "service": rules.services[chosen.service].name,
                        "priority": chosen.priority, "waited_min": _minutes(now, chosen.issued_at)})
    return ordered, len(waiting)


def _signature(coordinator: Coordinator, serial: int) -> str:
    """What the console page of point ``serial`` shows that may change; the page reloads when it does."""
    state = coordinator.point_state(serial)
    queue, waiting = point_queue(coordinator, serial)
    return json.dumps({"active": state.active, "current": state.current.number if state.current else None,
                       "queue": [t["number"] for t in queue], "waiting": waiting}, sort_keys=True)


def _minutes(now: datetime, then: datetime) -> int:
    return max(0, int((now - then).total_seconds() // 60))


@blueprint.get("/")
@role_required(ADMIN, SPECIALIST)
def index() -> Any:
    """Pick a point to work at (or go back to the one picked in this session)."""
    chosen = session.get(SESSION_POINT)
    points = _allowed_points()
    if chosen is not None and any(p.serial == chosen for p in points):
        return redirect(url_for(".point", serial=chosen))
    form = PickPointForm()
    form.point.choices = [(p.serial, f"{p.serial} · {p.name}") for p in points]
    return render_template("console/pick.html", form=form, points=points)


@blueprint.post("/pick")
@role_required(ADMIN, SPECIALIST)
def pick() -> Any:
    form = PickPointForm()
    form.point.choices = [(p.serial, p.name) for p in _allowed_points()]
    if not form.validate_on_submit():
        # Not one of the points this person may work at (or no token): nothing is recorded.
        abort(400 if form.csrf_token.errors else 403)
    serial = form.point.data
    registry.work_at(_coordinator(), serial, current_user.id)
    session[SESSION_POINT] = serial
    return redirect(url_for(".point", serial=serial))


@blueprint.post("/leave")
@role_required(ADMIN, SPECIALIST)
def leave() -> Any:
    if not LogoutForm().validate_on_submit():
        abort(400)
    serial = session.pop(SESSION_POINT, None)
    if serial is not None:
        registry.leave_point(_coordinator(), serial, current_user.id)
    return redirect(url_for(".index"))


@blueprint.get("/<int:serial>")
@role_required(ADMIN, SPECIALIST)
def point(serial: int) -> Any:
    _point_or_403(serial)
    coordinator = _coordinator()
    try:
        state = coordinator.point_state(serial)
    except NextupError:
        abort(404)
    queue, waiting = point_queue(coordinator, serial)
    with coordinator.store.read() as s:
        services = [(r.key, r.name) for r in s.scalars(select(ServiceRow).where(ServiceRow.active.is_(True))
                                                       .order_by(ServiceRow.prefix))]
        row = s.scalars(select(PointRow).where(PointRow.serial == serial)).one()
        provides = [v.name for v in row.services]
        current_service = None
        if state.current is not None:
            current_service = next((name for key, name in services if key == state.current.service),
                                   state.current.service)
    session[SESSION_POINT] = serial

    def command_form() -> CommandForm:
        form = CommandForm(formdata=None, data={"command_id": uuid.uuid4().hex})
        form.service.choices = [(key, name) for key, name in services
                                if state.current is None or key != state.current.service]
        return form

    return render_template("console/point.html", state=state, queue=queue, waiting=waiting, provides=provides,
                           current_service=current_service, command_form=command_form, plain=LogoutForm,
                           serial=serial, signature=_signature(coordinator, serial))


@blueprint.get("/<int:serial>/events")
@role_required(ADMIN, SPECIALIST)
def events(serial: int) -> Any:
    """Server-sent events: the page's signature now and after each change of this point's state."""
    _point_or_403(serial)
    coordinator = _coordinator()
    try:
        coordinator.point_state(serial)
    except NextupError:
        abort(404)
    topic = coordinator.topics.point_state(serial)

    def render(_messages: list[Any]) -> list[live.Event]:
        return [live.Event("point", {"signature": _signature(coordinator, serial)})]

    return live.event_stream(render, topics=lambda t: t == topic)


@blueprint.post("/<int:serial>/<action>")
@role_required(ADMIN, SPECIALIST)
def command(serial: int, action: str) -> Any:
    """One button: the command goes to the coordinator once per command id."""
    _point_or_403(serial)
    if action not in ACTIONS:
        abort(404)
    form = CommandForm()
    if not form.validate_on_submit():
        abort(400)
    result = _coordinator().point_command(
        serial, action, command_id=form.command_id.data, source=f"user:{current_user.id}",
        specialist_id=current_user.id, service=form.service.data if action == "transfer" else None,
    )
    if not result.ok and result.error:
        flash(result.error.get("message") or "The point refused this.", "error")
    return redirect(url_for(".point", serial=serial))
