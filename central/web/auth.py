"""Who is signed in, and what they may do: sign-in, sign-out and ``role_required``.

Staff pages (the admin panel, the console, the dashboard) share one sign-in at
/admin/login (5 attempts a minute per address: LOGIN_RATE_LIMIT).  A page
says who may use it with ``@role_required("admin")`` or
``@role_required("admin", "specialist")``: an anonymous visitor is sent to the
sign-in page, a signed-in user of another role gets 403.

The session is Flask's signed cookie: HttpOnly, SameSite=Lax, Secure on every
request that came over HTTPS (and always with NEXTUP_SESSION_COOKIE_SECURE=true,
e.g. behind a TLS proxy), expiring after PERMANENT_SESSION_LIFETIME without a request (Flask
checks the signature's age, so an old cookie is refused by the server, not
only forgotten by the browser).  Signing in clears the session first, so
nothing from before (a planted CSRF token, another user's data) survives it.
A user's session id carries a fingerprint of their password hash: a new
password, a removed user or a deactivated one ends every session at once.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from flask_login import UserMixin, current_user, login_user, logout_user
from sqlalchemy import select

from central.store.models import UserRow
from central.users import ROLES, verify_password

from .extensions import limiter, login_manager

F = TypeVar("F", bound=Callable[..., Any])

ADMIN = "admin"
SPECIALIST = "specialist"
DEFAULT_LOGIN_LIMIT = "5 per minute"
WRONG_SIGN_IN = "Wrong name or password."
IDLE_TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class StaffUser(UserMixin):
    """A signed-in person, as the database had them at the start of this request."""

    id: int
    name: str
    role: str
    points: tuple[int, ...]
    fingerprint: str

    def get_id(self) -> str:
        return f"{self.id}:{self.fingerprint}"

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    def may_work_at(self, serial: int) -> bool:
        """Admins may work at any point; a specialist only at the points given to them."""
        return self.is_admin or serial in self.points


def _fingerprint(password_hash: str) -> str:
    key = current_app.secret_key
    key_bytes = key.encode() if isinstance(key, str) else bytes(key or b"")
    return hmac.new(key_bytes, password_hash.encode(), hashlib.sha256).hexdigest()[:16]


def _user(row: UserRow) -> StaffUser:
    assert row.password_hash
    return StaffUser(row.id, row.name, row.role, tuple(p.serial for p in row.points),
                     _fingerprint(row.password_hash))


def _may_sign_in(row: UserRow | None) -> bool:
    # A user from the site file has no password until `nextup user add` or the admin panel gives one.
    return row is not None and row.active and bool(row.password_hash) and row.role in ROLES


def _store() -> Any:
    return current_app.extensions["nextup.coordinator"].store


@login_manager.user_loader
def load_user(user_id: str) -> StaffUser | None:
    raw_id, _, fingerprint = user_id.partition(":")
    if not raw_id.isdigit():
        return None
    with _store().read() as s:
        row = s.get(UserRow, int(raw_id))
        if not _may_sign_in(row):
            return None
        user = _user(row)
    return user if hmac.compare_digest(user.fingerprint, fingerprint) else None


def role_required(*roles: str) -> Callable[[F], F]:
    """Let only signed-in users with one of ``roles`` use the view.

    Anonymous visitors are sent to sign in; a signed-in user of another role gets 403.
    """
    unknown = set(roles) - set(ROLES)
    if not roles or unknown:
        raise ValueError(f"role_required takes roles among {ROLES}, not {roles}")

    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        guarded.nextup_roles = roles  # type: ignore[attr-defined]
        return guarded  # type: ignore[return-value]

    return decorate


def _login_limit() -> str:
    return current_app.config.get("LOGIN_RATE_LIMIT", DEFAULT_LOGIN_LIMIT)


def _safe_next(target: str | None, fallback: str) -> str:
    """Only a path on this site: a sign-in must not send anyone elsewhere."""
    if not target:
        return fallback
    parts = urlsplit(target)
    elsewhere = parts.scheme or parts.netloc or target.startswith("//") or "\\" in target
    if elsewhere or not target.startswith("/"):
        return fallback
    return target


def _home_for(user: StaffUser) -> str:
    return url_for("admin.index") if user.is_admin else url_for("console.index")


@limiter.limit(_login_limit, methods=["POST"])
def login() -> Any:
    """Sign in with name and password; one generic message whatever was wrong."""
    from .forms import LoginForm

    form = LoginForm()
    error = None
    status = 200
    if form.validate_on_submit():
        with _store().read() as s:
            row = s.scalars(select(UserRow).where(UserRow.name == form.name.data.strip())).one_or_none()
            stored = row.password_hash if _may_sign_in(row) else None
            ok = verify_password(stored, form.password.data)
            user = _user(row) if ok and row is not None else None
        if user is not None:
            target = _safe_next(request.args.get("next"), _home_for(user))
            session.clear()  # a fresh session: nothing of the anonymous one carries over
            login_user(user)
            session.permanent = True
            return redirect(target)
        error = WRONG_SIGN_IN
        status = 401
    elif request.method == "POST":
        status = 400
    return render_template("auth/login.html", form=form, error=error), status


def logout() -> Any:
    """Sign out (a POST with the CSRF token, so no other site can sign anyone out)."""
    from .forms import LogoutForm

    if LogoutForm().validate_on_submit():
        logout_user()
        session.clear()
        flash("You are signed out.", "info")
    return redirect(url_for("admin.login"))


class _SessionInterface(SecureCookieSessionInterface):
    """The cookie is Secure when configured so, and whenever the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or (request.is_secure if request else False)


def _refresh_session() -> None:
    # Each request of a signed-in user restarts the idle clock (with SESSION_REFRESH_EACH_REQUEST).
    if current_user.is_authenticated:
        session.permanent = True


ADMIN_NAV = [
    ("admin.index", "Overview"), ("admin.services", "Services"), ("admin.points", "Points"),
    ("admin.users", "Staff"), ("admin.priorities", "Priorities"), ("admin.devices", "Devices"),
    ("admin.hours", "Hours"), ("admin.tickets", "Tickets"),
]


def add_staff_nav(app: Flask, endpoint: str, label: str) -> None:
    """Show a link to ``endpoint`` in the admins' top bar (e.g. the live dashboard)."""
    app.extensions.setdefault("nextup.staff_nav", []).append((endpoint, label))


def _current_staff() -> dict[str, Any]:
    from .forms import LogoutForm

    app = current_app
    nav = [(e, label) for e, label in ADMIN_NAV + app.extensions.get("nextup.staff_nav", [])
           if e in app.view_functions]
    return {"staff_user": current_user, "logout_form": LogoutForm, "staff_nav": nav}


def init_auth(app: Flask) -> None:
    """Set up sign-in for ``app`` once (called when the first staff blueprint is registered)."""
    if app.extensions.get("nextup.auth"):
        return
    app.extensions["nextup.auth"] = True
    # Flask's own defaults are made for long-lived sites; staff sessions are short and never cross-site.
    if app.config.get("SESSION_COOKIE_SAMESITE") is None:
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    lifetime = app.config.get("PERMANENT_SESSION_LIFETIME")
    if isinstance(lifetime, int | float):  # seconds, e.g. NEXTUP_PERMANENT_SESSION_LIFETIME=900
        app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(seconds=lifetime)
    elif lifetime is None or lifetime == timedelta(days=31):
        app.config["PERMANENT_SESSION_LIFETIME"] = IDLE_TIMEOUT
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_REFRESH_EACH_REQUEST"] = True
    app.session_interface = _SessionInterface()
    login_manager.login_view = "admin.login"
    login_manager.login_message = "Please sign in."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "strong"
    app.before_request(_refresh_session)
    app.context_processor(_current_staff)


def too_many_sign_ins(error: Any) -> Any:
    """The sign-in page again, saying why, with the limiter's 429 (and its Retry-After, if any)."""
    from .forms import LoginForm

    if request.endpoint != "admin.login":
        return error
    page = render_template("auth/login.html", form=LoginForm(formdata=None),
                           error="Too many sign-in attempts from here. Please wait a minute and try again.")
    return page, 429


def add_auth_routes(blueprint: Blueprint) -> None:
    """Put /login and /logout on ``blueprint`` (the admin one) and set up auth when it is registered."""
    blueprint.register_error_handler(429, too_many_sign_ins)
    blueprint.add_url_rule("/login", "login", login, methods=["GET", "POST"])
    blueprint.add_url_rule("/logout", "logout", logout, methods=["POST"])
    blueprint.record_once(lambda state: init_auth(state.app))
