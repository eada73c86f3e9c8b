"""The admin panel (/admin): the site's registry, opening hours and tickets that need a look.

Every page is for admins only (``role_required(ADMIN)``); every change goes
through ``central.registry`` (one transaction, then the new retained states
are published).  A refused change shows each reason next to its field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from central import registry
from central.coordinator import Coordinator
from central.domain.hours import WEEKDAYS
from central.domain.model import TicketState
from central.registry import InvalidEntry
from central.store.models import DeviceRow, PointRow, PriorityRow, ServiceRow, SiteRow, TicketRow, UserRow

from .auth import ADMIN, SPECIALIST, add_auth_routes, role_required
from .forms import (
    DeviceForm,
    HoursForm,
    LogoutForm,
    MoveForm,
    PointForm,
    PolicyForm,
    PriorityForm,
    ServiceForm,
    UserForm,
)

blueprint = Blueprint("admin", __name__)
add_auth_routes(blueprint)

OPEN = (TicketState.WAITING.value, TicketState.CALLED.value)
SERVICE_FIELDS = ["key", "name", "description", "prefix", "active"]
POINT_FIELDS = ["serial", "name", "services", "specialists", "active"]
USER_FIELDS = ["name", "role", "password", "points", "active"]


def _coordinator() -> Coordinator:
    return current_app.extensions["nextup.coordinator"]


@contextmanager
def _read() -> Iterator[Session]:
    """A read-only session whose rows stay readable after it ends (for the templates)."""
    with _coordinator().store.read() as s:
        yield s
        # The store rolls a read back at the end, which would expire every row; detach them first.
        s.expunge_all()


def _show_errors(form: FlaskForm, exc: InvalidEntry) -> None:
    """Put each reason next to its field; reasons about the whole form go on top."""
    for name, message in exc.errors.items():
        field = form._fields.get(name)
        if field is not None and name != "csrf_token":
            field.errors = [*field.errors, message]
        else:
            flash(message, "error")


def _submit(form: FlaskForm, save: Callable[[], Any], then: Callable[[Any], Any]) -> Any | None:
    """Save a sent form that passes its own checks and answer with ``then(what save returned)``.

    None when there is no answer yet: nothing was sent, the form failed its checks, or the registry
    refused the change (each reason is then next to its field); ``_submit(...) or page`` then shows
    the form again.
    """
    if form.validate_on_submit():
        try:
            saved = save()
        except InvalidEntry as exc:
            _show_errors(form, exc)
        else:
            return then(saved)
    return None


def _back(to: str, message: str) -> Any:
    """Say what was saved and go back to the list it is on."""
    flash(message, "success")
    return redirect(to)


def _form_page(form: FlaskForm, title: str, back: str, fields: list[str], **hints: str) -> Any:
    """A form page; 400 when it was sent back with errors, so scripts and tests see the refusal."""
    page = render_template("admin/form.html", form=form, title=title, back=back, fields=fields, hints=hints)
    return page, 400 if form.errors else 200


def _no_store(response: Any) -> Any:
    # A page with a secret on it must not be kept by the browser or a proxy.
    response = make_response(response)
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.after_request
def _private(response: Any) -> Any:
    response.headers.setdefault("Cache-Control", "private, no-cache")
    response.headers.setdefault("X-Frame-Options", "DENY")
    return response


# --- overview -----------------------------------------------------------------------------------


@blueprint.get("/")
@role_required(ADMIN)
def index() -> Any:
    coordinator = _coordinator()
    with _read() as s:
        site = s.get(SiteRow, 1)
        counts = {
            "services": s.scalar(select(func.count(ServiceRow.id)).where(ServiceRow.active.is_(True))) or 0,
            "points": s.scalar(select(func.count(PointRow.id)).where(PointRow.active.is_(True))) or 0,
            "devices": s.scalar(select(func.count()).select_from(DeviceRow)) or 0,
            "online": s.scalar(select(func.count()).select_from(DeviceRow)
                               .where(DeviceRow.online.is_(True))) or 0,
            "staff": s.scalar(select(func.count(UserRow.id)).where(UserRow.active.is_(True))) or 0,
            "waiting": s.scalar(select(func.count(TicketRow.id))
                                .where(TicketRow.state == TicketState.WAITING.value)) or 0,
            "unprinted": s.scalar(select(func.count(TicketRow.id)).where(TicketRow.printed.is_(False),
                                                                         TicketRow.state.in_(OPEN))) or 0,
        }
        site_name = site.name if site else "Nextup"
    state = coordinator.site_state()
    return render_template("admin/index.html", counts=counts, site_name=site_name, site=state)


# --- services -----------------------------------------------------------------------------------


@blueprint.get("/services")
@role_required(ADMIN)
def services() -> Any:
    with _read() as s:
        waiting = dict(s.execute(select(TicketRow.service_id, func.count(TicketRow.id))
                                 .where(TicketRow.state == TicketState.WAITING.value)
                                 .group_by(TicketRow.service_id)).all())
        rows = [(r, waiting.get(r.id, 0)) for r in s.scalars(select(ServiceRow).order_by(ServiceRow.prefix))]
    return render_template("admin/services.html", rows=rows)


def _save_service(form: ServiceForm, editing: str | None = None) -> str:
    return registry.save_service(_coordinator(), key=form.key.data, name=form.name.data,
                                 prefix=form.prefix.data, description=form.description.data or "",
                                 active=form.active.data, editing=editing)


@blueprint.route("/services/new", methods=["GET", "POST"])
@role_required(ADMIN)
def services_new() -> Any:
    form = ServiceForm()
    return _submit(
        form,
        lambda: _save_service(form),
        lambda key: _back(url_for(".services", _anchor=f"service-{key}"),
                          f"Service {form.name.data.strip()} created."),
    ) or _form_page(form, "New service", url_for(".services"), SERVICE_FIELDS)


@blueprint.route("/services/<key>", methods=["GET", "POST"])
@role_required(ADMIN)
def services_edit(key: str) -> Any:
    with _read() as s:
        row = s.scalars(select(ServiceRow).where(ServiceRow.key == key)).one_or_none()
        if row is None:
            abort(404)
    form = ServiceForm(obj=row)
    form.key.data = row.key
    form.key.render_kw = {"readonly": True}
    return _submit(
        form,
        lambda: _save_service(form, editing=key),
        lambda _: _back(url_for(".services"), f"Service {form.name.data.strip()} saved."),
    ) or _form_page(form, f"Service {row.name}", url_for(".services"), SERVICE_FIELDS)


# --- points -------------------------------------------------------------------------------------


def _point_choices(form: PointForm) -> None:
    with _read() as s:
        form.services.choices = [(r.key, f"{r.name} ({r.prefix})")
                                 for r in s.scalars(select(ServiceRow).order_by(ServiceRow.prefix))]
        form.specialists.choices = [(u.id, u.name) for u in s.scalars(
            select(UserRow).where(UserRow.role == SPECIALIST).order_by(UserRow.name))]


def _save_point(form: PointForm, editing: int | None = None) -> int:
    return registry.save_point(_coordinator(), serial=form.serial.data, name=form.name.data,
                               services=form.services.data, active=form.active.data,
                               specialists=form.specialists.data, editing=editing)


@blueprint.get("/points")
@role_required(ADMIN)
def points() -> Any:
    with _read() as s:
        names = {u.id: u.name for u in s.scalars(select(UserRow))}
        allowed: dict[int, list[str]] = {}
        for user in s.scalars(select(UserRow).where(UserRow.role == SPECIALIST).order_by(UserRow.name)):
            for p in user.points:
                allowed.setdefault(p.serial, []).append(user.name)
        devices: dict[int, list[DeviceRow]] = {}
        for d in s.scalars(select(DeviceRow).where(DeviceRow.point_serial.is_not(None))):
            devices.setdefault(d.point_serial, []).append(d)
        rows = [
            {"row": p, "services": [v.name for v in p.services], "allowed": allowed.get(p.serial, []),
             "working": names.get(p.specialist_id) if p.specialist_id else None,
             "devices": devices.get(p.serial, [])}
            for p in s.scalars(select(PointRow).order_by(PointRow.serial))
        ]
    return render_template("admin/points.html", rows=rows)


@blueprint.route("/points/new", methods=["GET", "POST"])
@role_required(ADMIN)
def points_new() -> Any:
    form = PointForm()
    _point_choices(form)
    return _submit(
        form,
        lambda: _save_point(form),
        lambda serial: _back(url_for(".points"), f"Point {serial} ({form.name.data.strip()}) created."),
    ) or _form_page(form, "New service point", url_for(".points"), POINT_FIELDS)


@blueprint.route("/points/<int:serial>", methods=["GET", "POST"])
@role_required(ADMIN)
def points_edit(serial: int) -> Any:
    with _read() as s:
        row = s.scalars(select(PointRow).where(PointRow.serial == serial)).one_or_none()
        if row is None:
            abort(404)
        current = {"serial": row.serial, "name": row.name, "active": row.active,
                   "services": [v.key for v in row.services],
                   "specialists": [u.id for u in s.scalars(select(UserRow).where(UserRow.role == SPECIALIST))
                                   if row in u.points]}
    form = PointForm(data=current) if request.method == "GET" else PointForm()
    form.serial.data = serial
    form.serial.render_kw = {"readonly": True}
    _point_choices(form)
    return _submit(
        form,
        lambda: _save_point(form, editing=serial),
        lambda _: _back(url_for(".points"), f"Point {serial} saved."),
    ) or _form_page(form, f"Point {serial}: {current['name']}", url_for(".points"), POINT_FIELDS)


# --- staff --------------------------------------------------------------------------------------


def _user_choices(form: UserForm) -> None:
    with _read() as s:
        form.points.choices = [(p.serial, f"{p.serial} · {p.name}")
                               for p in s.scalars(select(PointRow).order_by(PointRow.serial))]


def _save_user(form: UserForm, editing: int | None = None) -> int:
    return registry.save_user(_coordinator(), name=form.name.data, role=form.role.data,
                              password=form.password.data, points=form.points.data, active=form.active.data,
                              editing=editing)


@blueprint.get("/staff")
@role_required(ADMIN)
def users() -> Any:
    with _read() as s:
        working = {p.specialist_id: p
                   for p in s.scalars(select(PointRow).where(PointRow.specialist_id.is_not(None)))}
        rows = [{"row": u, "points": [f"{p.serial}" for p in u.points], "working": working.get(u.id),
                 "has_password": bool(u.password_hash)}
                for u in s.scalars(select(UserRow).order_by(UserRow.role, UserRow.name))]
    return render_template("admin/users.html", rows=rows)


@blueprint.route("/staff/new", methods=["GET", "POST"])
@role_required(ADMIN)
def users_new() -> Any:
    form = UserForm()
    _user_choices(form)
    return _submit(
        form,
        lambda: _save_user(form),
        lambda _: _back(url_for(".users"), f"{form.name.data.strip()} can now sign in."),
    ) or _form_page(form, "New person", url_for(".users"), USER_FIELDS,
                      password="At least 10 characters; stored as an argon2id hash.")


@blueprint.route("/staff/<int:user_id>", methods=["GET", "POST"])
@role_required(ADMIN)
def users_edit(user_id: int) -> Any:
    with _read() as s:
        row = s.get(UserRow, user_id)
        if row is None:
            abort(404)
        current = {"name": row.name, "role": row.role, "active": row.active,
                   "points": [p.serial for p in row.points]}
        has_password = bool(row.password_hash)
    form = UserForm(data=current) if request.method == "GET" else UserForm()
    _user_choices(form)
    hint = ("Leave empty to keep the current password." if has_password
            else "No password yet: this person cannot sign in until given one.")
    return _submit(
        form,
        lambda: _save_user(form, editing=user_id),
        lambda _: _back(url_for(".users"), f"{form.name.data.strip()} saved."),
    ) or _form_page(form, current["name"], url_for(".users"), USER_FIELDS, password=hint)


# --- priority classes and policy ----------------------------------------------------------------


def _priorities_page(
    new: PriorityForm | None = None, policy: PolicyForm | None = None, status: int = 200
) -> Any:
    with _read() as s:
        site = s.get(SiteRow, 1)
        rows = list(s.scalars(select(PriorityRow).order_by(PriorityRow.rank)))
        ratio = list(site.ratio or []) if site else []
        if policy is None:
            policy = PolicyForm(data={"policy": site.policy if site else "strict",
                                      "aging_after_s": site.aging_after_s if site else 600,
                                      "ratio": ", ".join(map(str, ratio))})
    shares = ratio if len(ratio) == len(rows) else [None] * len(rows)
    return render_template("admin/priorities.html", rows=list(zip(rows, shares, strict=True)),
                           new=new or PriorityForm(formdata=None), policy=policy, move=MoveForm,
                           plain=LogoutForm, current_policy=site.policy if site else "strict"), status


def _save_priority(form: PriorityForm, editing: str | None = None) -> str:
    return registry.save_priority(_coordinator(), key=form.key.data, name=form.name.data,
                                  public=form.public.data, editing=editing)


@blueprint.get("/priorities")
@role_required(ADMIN)
def priorities() -> Any:
    return _priorities_page()


@blueprint.post("/priorities/new")
@role_required(ADMIN)
def priorities_new() -> Any:
    form = PriorityForm()
    return _submit(
        form,
        lambda: _save_priority(form),
        lambda _: _back(url_for(".priorities"),
                        f"Priority class {form.name.data.strip()} added (last in the order)."),
    ) or _priorities_page(new=form, status=400)


@blueprint.route("/priorities/<key>", methods=["GET", "POST"])
@role_required(ADMIN)
def priorities_edit(key: str) -> Any:
    with _read() as s:
        row = s.scalars(select(PriorityRow).where(PriorityRow.key == key)).one_or_none()
        if row is None:
            abort(404)
    form = PriorityForm(obj=row)
    form.key.data = key
    form.key.render_kw = {"readonly": True}
    return _submit(
        form,
        lambda: _save_priority(form, editing=key),
        lambda _: _back(url_for(".priorities"), f"Priority class {form.name.data.strip()} saved."),
    ) or _form_page(form, f"Priority class {row.name}", url_for(".priorities"), ["key", "name", "public"])


@blueprint.post("/priorities/move")
@role_required(ADMIN)
def priorities_move() -> Any:
    form = MoveForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        registry.move_priority(_coordinator(), form.key.data, form.direction.data)
    except InvalidEntry as exc:
        flash(" ".join(exc.errors.values()), "error")
    return redirect(url_for(".priorities"))


@blueprint.post("/priorities/<key>/delete")
@role_required(ADMIN)
def priorities_delete(key: str) -> Any:
    if not LogoutForm().validate_on_submit():
        abort(400)
    try:
        registry.delete_priority(_coordinator(), key)
    except InvalidEntry as exc:
        flash(" ".join(exc.errors.values()), "error")
    else:
        flash(f"Priority class {key} removed.", "success")
    return redirect(url_for(".priorities"))


@blueprint.post("/priorities/policy")
@role_required(ADMIN)
def priorities_policy() -> Any:
    form = PolicyForm()
    return _submit(
        form,
        lambda: registry.set_policy(_coordinator(), policy=form.policy.data,
                                    aging_after_s=form.aging_after_s.data, ratio=form.ratio.data),
        lambda _: _back(url_for(".priorities"), "Priority policy saved."),
    ) or _priorities_page(policy=form, status=400)


# --- devices ------------------------------------------------------------------------------------


def _device_choices(form: DeviceForm) -> None:
    with _read() as s:
        form.point.choices = [("", "—")] + [(str(p.serial), f"{p.serial} · {p.name}")
                                           for p in s.scalars(select(PointRow).order_by(PointRow.serial))]


def _broker_dir() -> str | None:
    return current_app.config.get("BROKER_DIR") or None


def _save_device(form: DeviceForm, editing: str | None = None) -> str:
    return registry.save_device(_coordinator(), id=form.id.data, kind=form.kind.data,
                                point=int(form.point.data) if form.point.data else None,
                                language=form.language.data, editing=editing)


@blueprint.get("/devices")
@role_required(ADMIN)
def devices() -> Any:
    with _read() as s:
        names = {p.serial: p.name for p in s.scalars(select(PointRow))}
        rows = list(s.scalars(select(DeviceRow).order_by(DeviceRow.kind, DeviceRow.id)))
    return render_template("admin/devices.html", rows=rows, point_names=names, plain=LogoutForm,
                           broker_dir=_broker_dir())


def _credentials_page(device_id: str, created: bool) -> Any:
    creds = registry.new_credentials(_coordinator(), device_id, _broker_dir())
    return _no_store(render_template("admin/credentials.html", creds=creds, created=created))


@blueprint.route("/devices/new", methods=["GET", "POST"])
@role_required(ADMIN)
def devices_new() -> Any:
    form = DeviceForm()
    _device_choices(form)
    return _submit(
        form,
        lambda: _save_device(form),
        lambda device_id: _credentials_page(device_id, created=True),
    ) or _form_page(form, "New device", url_for(".devices"), ["id", "kind", "point", "language"])


@blueprint.route("/devices/<device_id>", methods=["GET", "POST"])
@role_required(ADMIN)
def devices_edit(device_id: str) -> Any:
    with _read() as s:
        row = s.get(DeviceRow, device_id)
        if row is None:
            abort(404)
        current = {"id": row.id, "kind": row.kind, "language": row.language or "",
                   "point": str(row.point_serial) if row.point_serial is not None else ""}
    form = DeviceForm(data=current) if request.method == "GET" else DeviceForm()
    form.id.data = device_id
    form.id.render_kw = {"readonly": True}
    _device_choices(form)
    return _submit(
        form,
        lambda: _save_device(form, editing=device_id),
        lambda _: _back(url_for(".devices"), f"Device {device_id} saved."),
    ) or _form_page(form, f"Device {device_id}", url_for(".devices"), ["id", "kind", "point", "language"])


@blueprint.post("/devices/<device_id>/credentials")
@role_required(ADMIN)
def devices_credentials(device_id: str) -> Any:
    if not LogoutForm().validate_on_submit():
        abort(400)
    try:
        return _credentials_page(device_id, created=False)
    except InvalidEntry:
        abort(404)


@blueprint.post("/devices/<device_id>/delete")
@role_required(ADMIN)
def devices_delete(device_id: str) -> Any:
    if not LogoutForm().validate_on_submit():
        abort(400)
    try:
        registry.delete_device(_coordinator(), device_id, _broker_dir())
    except InvalidEntry:
        abort(404)
    flash(f"Device {device_id} removed.", "success")
    return redirect(url_for(".devices"))


# --- opening hours ------------------------------------------------------------------------------


@blueprint.route("/hours", methods=["GET", "POST"])
@role_required(ADMIN)
def hours() -> Any:
    weekly, closed = registry.hours_text(_coordinator())
    form = HoursForm(data={**weekly, "closed": closed}) if request.method == "GET" else HoursForm()
    return _submit(
        form,
        lambda: registry.set_hours(_coordinator(), {d: form[d].data or "" for d in WEEKDAYS},
                                   form.closed.data or ""),
        lambda _: _back(url_for(".hours"), "Opening hours saved."),
    ) or (render_template("admin/hours.html", form=form, site=_coordinator().site_state()),
          400 if form.errors else 200)


# --- tickets that need a look -------------------------------------------------------------------


@blueprint.get("/tickets")
@role_required(ADMIN)
def tickets() -> Any:
    coordinator = _coordinator()
    waiting = coordinator.waiting_at_closing()
    with _read() as s:
        unprinted = list(s.scalars(select(TicketRow).where(TicketRow.printed.is_(False))
                                   .order_by(TicketRow.issued_at.desc()).limit(200)))
        unprinted = [{"number": r.number, "service": r.service.name, "state": r.state, "device": r.device_id,
                      "error": r.print_error, "issued_at": r.issued_at} for r in unprinted]
    return render_template("admin/tickets.html", waiting=waiting, unprinted=unprinted,
                           site=coordinator.site_state())
