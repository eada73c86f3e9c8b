"""The admin panel through Flask's test client over a real store: sign-in, roles, CSRF, the registry."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest
from helpers import PASSWORD, csrf_token, sign_in
from sqlalchemy import func, select

from central.coordinator import Coordinator, Message
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
from central.users import set_user, verify_password
from central.web import create_app


def form_token(client: Any, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return csrf_token(response.get_data(as_text=True))


def send(
    client: Any, url: str, data: dict[str, Any] | None = None, *, page: str | None = None, **kwargs: Any
) -> Any:
    """Post a form as a browser does: with the CSRF token of the page it is on (``page``, else ``url``)."""
    return client.post(url, data={"csrf_token": form_token(client, page or url), **(data or {})}, **kwargs)


def field_errors(page: str, field: str) -> str:
    """The block of form field ``field`` (label, input, errors): what the page shows next to it."""
    start = page.find(f'for="{field}"')
    if start < 0:
        start = page.find(f'id="{field}"')
    assert start >= 0, f"no field {field} on the page"
    block_start = page.rfind('<div class="field', 0, start)
    end = page.find('<div class="field', start)
    return html.unescape(page[block_start : end if end > 0 else len(page)])


@pytest.fixture
def site(sqlite_url: str, make_store: Any) -> Any:
    """The demo site, an admin ``boss`` and a specialist ``sam`` allowed at point 1."""
    store = make_store(sqlite_url)
    set_user(store, "boss", "admin", PASSWORD)
    set_user(store, "sam", "specialist", PASSWORD)
    with store.write() as s:
        sam = s.scalars(select(UserRow).where(UserRow.name == "sam")).one()
        sam.points = [s.scalars(select(PointRow).where(PointRow.serial == 1)).one()]
    return store


@pytest.fixture
def published() -> list[Message]:
    return []


@pytest.fixture
def app(site: Any, published: list[Message], tmp_path: Path) -> Any:
    coordinator = Coordinator(site)
    coordinator.add_listener(published.extend)
    return create_app(coordinator, config={"SECRET_KEY": "test-secret-key-for-the-admin-tests"})


@pytest.fixture
def admin(app: Any) -> Any:
    client = app.test_client()
    assert sign_in(client, "boss").status_code == 302
    return client


@pytest.fixture
def specialist(app: Any) -> Any:
    client = app.test_client()
    assert sign_in(client, "sam").status_code == 302
    return client


def count(store: Any, model: Any) -> int:
    with store.read() as s:
        return s.scalar(select(func.count()).select_from(model))


# --- sign-in ------------------------------------------------------------------------------------


def test_admin_signs_in_and_lands_on_the_panel(app: Any) -> None:
    client = app.test_client()
    response = sign_in(client, "boss")
    assert response.status_code == 302 and response.location == "/admin/"
    assert "Overview" in client.get("/admin/").get_data(as_text=True)


def test_sign_in_cookie_is_httponly_lax_and_expires_when_idle(app: Any) -> None:
    client = app.test_client()
    response = sign_in(client, "boss")
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Expires=" in cookie
    assert "Secure" not in cookie
    assert app.permanent_session_lifetime.total_seconds() == 30 * 60


def test_sign_in_over_https_gets_a_secure_cookie(app: Any) -> None:
    client = app.test_client()
    page = client.get("/admin/login", base_url="https://localhost").get_data(as_text=True)
    # Over HTTPS the CSRF check also wants the Referer of this site, as browsers send it.
    response = client.post(
        "/admin/login",
        base_url="https://localhost",
        headers={"Referer": "https://localhost/admin/login"},
        data={"csrf_token": csrf_token(page), "name": "boss", "password": PASSWORD},
    )
    assert response.status_code == 302
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("session="))
    assert "; Secure" in cookie


def test_sign_in_starts_a_fresh_session(app: Any) -> None:
    client = app.test_client()
    before = csrf_token(client.get("/admin/login").get_data(as_text=True))
    with client.session_transaction() as session:
        session["planted"] = "by someone else"
    client.post("/admin/login", data={"csrf_token": before, "name": "boss", "password": PASSWORD})
    with client.session_transaction() as session:
        assert "planted" not in session
        assert session.permanent
    # The old form token belonged to the old session.
    assert form_token(client, "/admin/services/new") != before


def test_wrong_password_gives_one_generic_message_and_changes_nothing(app: Any, site: Any) -> None:
    with site.read() as s:
        hash_before = s.scalars(select(UserRow.password_hash).where(UserRow.name == "boss")).one()
    client = app.test_client()
    wrong = sign_in(client, "boss", "not the password")
    unknown = sign_in(client, "nobody", "not the password")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "Wrong name or password." in response.get_data(as_text=True)
    assert wrong.get_data(as_text=True).count("Wrong name") == 1
    assert client.get("/admin/").status_code == 302
    with site.read() as s:
        assert s.scalars(select(UserRow.password_hash).where(UserRow.name == "boss")).one() == hash_before


def test_user_from_the_site_file_cannot_sign_in_until_given_a_password(app: Any, site: Any) -> None:
    with site.write() as s:
        s.add(UserRow(name="newbie", role="admin", password_hash=None, active=True))
    client = app.test_client()
    for attempt in ("", "anything at all", PASSWORD):
        response = sign_in(client, "newbie", attempt)
        assert response.status_code in (400, 401)
        assert client.get("/admin/").status_code == 302
    set_user(site, "newbie", "admin", PASSWORD)
    assert sign_in(client, "newbie").status_code == 302


def test_deactivated_user_is_signed_out_at_the_next_request(app: Any, admin: Any, site: Any) -> None:
    assert admin.get("/admin/").status_code == 200
    with site.write() as s:
        s.scalars(select(UserRow).where(UserRow.name == "boss")).one().active = False
    assert admin.get("/admin/").status_code == 302


def test_a_new_password_ends_the_sessions_of_the_old_one(app: Any, admin: Any, site: Any) -> None:
    set_user(site, "boss", "admin", "another long password")
    assert admin.get("/admin/").status_code == 302


def test_sign_in_is_rate_limited_per_address(app: Any) -> None:
    client = app.test_client()
    statuses = [sign_in(client, "boss", f"guess number {i}").status_code for i in range(6)]
    assert statuses[:5] == [401] * 5
    assert statuses[5] == 429
    assert "Too many sign-in attempts" in sign_in(client, "boss", "again").get_data(as_text=True)
    # Even the right password waits for the limit to pass.
    assert sign_in(client, "boss").status_code == 429


def test_sign_in_does_not_redirect_to_another_site(app: Any) -> None:
    client = app.test_client()
    page = client.get("/admin/login").get_data(as_text=True)
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        response = client.post(
            f"/admin/login?next={target}",
            data={"csrf_token": csrf_token(page), "name": "boss", "password": PASSWORD},
        )
        assert response.status_code == 302 and response.location == "/admin/"
        send(client, "/admin/logout", page="/admin/")
        page = client.get("/admin/login").get_data(as_text=True)
        if target == "//evil.example/":
            break  # stay under the sign-in limit; the third form is covered by the unit of _safe_next below


def test_safe_next_keeps_only_local_paths() -> None:
    from central.web.auth import _safe_next

    assert _safe_next("/admin/points", "/x") == "/admin/points"
    for bad in ("https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)", ""):
        assert _safe_next(bad, "/x") == "/x"


def test_sign_out_ends_the_session(admin: Any) -> None:
    response = send(admin, "/admin/logout", page="/admin/")
    assert response.status_code == 302
    assert admin.get("/admin/").status_code == 302


# --- roles and CSRF on every route --------------------------------------------------------------

PUBLIC = {"admin.login", "admin.logout"}


def sample_url(app: Any, rule: Any, user_id: int) -> str:
    """A URL of ``rule`` with real values of the demo site for its arguments."""
    from flask import url_for

    values: dict[str, Any] = {}
    for arg in rule.arguments:
        if arg == "key":
            values[arg] = "paid" if "priorit" in rule.endpoint else "cash"
        elif arg == "serial":
            values[arg] = 1
        elif arg == "device_id":
            values[arg] = "kiosk-1"
        elif arg == "user_id":
            values[arg] = user_id
        elif arg == "action":
            values[arg] = "next"
        else:
            pytest.fail(f"{rule.rule}: give the role sweep a sample value for <{arg}>")
    with app.test_request_context():
        return url_for(rule.endpoint, **values)


@pytest.fixture
def sam_id(site: Any) -> int:
    with site.read() as s:
        return s.scalars(select(UserRow.id).where(UserRow.name == "sam")).one()


def staff_rules(app: Any, prefix: str) -> list[Any]:
    rules = [r for r in app.url_map.iter_rules() if r.rule.startswith(prefix) and r.endpoint not in PUBLIC]
    assert rules
    return rules


def snapshot(store: Any) -> dict[str, Any]:
    """Everything the admin panel may change, to prove a refused request changed nothing."""
    with store.read() as s:
        return {
            "services": sorted(
                (r.key, r.name, r.prefix, r.active, r.description) for r in s.scalars(select(ServiceRow))
            ),
            "points": sorted(
                (r.serial, r.name, r.active, r.specialist_id, tuple(v.key for v in r.services))
                for r in s.scalars(select(PointRow))
            ),
            "users": sorted(
                (r.name, r.role, r.active, r.password_hash, tuple(p.serial for p in r.points))
                for r in s.scalars(select(UserRow))
            ),
            "priorities": sorted((r.key, r.name, r.rank, r.public) for r in s.scalars(select(PriorityRow))),
            "site": [(r.policy, r.aging_after_s, r.ratio) for r in s.scalars(select(SiteRow))],
            "devices": sorted(
                (r.id, r.kind, r.point_serial, r.language) for r in s.scalars(select(DeviceRow))
            ),
            "hours": sorted((r.weekday, r.opens, r.closes) for r in s.scalars(select(OpeningIntervalRow))),
            "closed": sorted(s.scalars(select(ClosedDateRow.day))),
        }


def test_every_admin_route_refuses_anonymous_and_specialists(
    app: Any, site: Any, specialist: Any, sam_id: int
) -> None:
    anonymous = app.test_client()
    anon_token = form_token(anonymous, "/admin/login")
    sam_token = form_token(specialist, "/console/1")
    before = snapshot(site)
    checked = 0
    for rule in staff_rules(app, "/admin"):
        url = sample_url(app, rule, sam_id)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            data = {"csrf_token": anon_token} if method == "POST" else None
            response = anonymous.open(url, method=method, data=data)
            assert response.status_code == 302, f"anonymous {method} {url}"
            assert response.location.startswith("/admin/login"), f"anonymous {method} {url}"
            data = {"csrf_token": sam_token} if method == "POST" else None
            response = specialist.open(url, method=method, data=data)
            assert response.status_code == 403, f"specialist {method} {url}"
            checked += 1
    assert checked >= 20
    assert snapshot(site) == before


def test_every_console_route_refuses_anonymous(app: Any, sam_id: int) -> None:
    anonymous = app.test_client()
    anon_token = form_token(anonymous, "/admin/login")
    for rule in staff_rules(app, "/console"):
        url = sample_url(app, rule, sam_id)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            data = {"csrf_token": anon_token} if method == "POST" else None
            response = anonymous.open(url, method=method, data=data)
            assert response.status_code == 302 and response.location.startswith("/admin/login"), url


def test_every_form_post_without_its_token_is_refused(app: Any, site: Any, admin: Any, sam_id: int) -> None:
    before = snapshot(site)
    posts = [
        r
        for r in app.url_map.iter_rules()
        if "POST" in r.methods and r.rule.startswith(("/admin", "/console"))
    ]
    assert len(posts) >= 15
    for rule in posts:
        url = sample_url(app, rule, sam_id)
        response = admin.post(url, data={"name": "Changed", "key": "changed", "prefix": "Z", "serial": "1"})
        assert response.status_code == 400, f"POST {url} without a CSRF token"
        response = admin.post(url, data={"csrf_token": "forged", "name": "Changed"})
        assert response.status_code == 400, f"POST {url} with a forged CSRF token"
    assert snapshot(site) == before


# --- services -----------------------------------------------------------------------------------


def test_admin_creates_a_service_and_it_is_published(admin: Any, site: Any, published: list[Message]) -> None:
    response = send(
        admin,
        "/admin/services/new",
        {
            "key": "passports",
            "name": "Passports",
            "description": "New and renewed",
            "prefix": "P",
            "active": "y",
        },
    )
    assert response.status_code == 302
    with site.read() as s:
        row = s.scalars(select(ServiceRow).where(ServiceRow.key == "passports")).one()
        assert (row.name, row.prefix, row.description, row.active) == (
            "Passports",
            "P",
            "New and renewed",
            True,
        )
    site_state = [m for m in published if m.topic.endswith("/site")]
    assert site_state and b'"passports"' in site_state[-1].payload
    assert "Passports" in admin.get("/admin/services").get_data(as_text=True)


def test_duplicate_prefix_is_shown_next_to_the_prefix_field(admin: Any, site: Any) -> None:
    before = snapshot(site)
    response = send(admin, "/admin/services/new", {"key": "passports", "name": "Passports", "prefix": "A"})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "The prefix A is already used by Cash desk." in field_errors(page, "prefix")
    assert "already used" not in field_errors(page, "name")
    assert 'value="passports"' in page  # what was typed stays in the form
    assert snapshot(site) == before


def test_empty_name_and_bad_key_are_shown_next_to_their_fields(admin: Any, site: Any) -> None:
    before = snapshot(site)
    response = send(admin, "/admin/services/new", {"key": "Not A Slug", "name": "  ", "prefix": "q"})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "A name is required." in field_errors(page, "name")
    assert "Lowercase letters" in field_errors(page, "key")
    assert "uppercase letters" in field_errors(page, "prefix")
    assert snapshot(site) == before


def test_duplicate_key_is_refused(admin: Any, site: Any) -> None:
    response = send(admin, "/admin/services/new", {"key": "cash", "name": "Cash 2", "prefix": "Q"})
    assert response.status_code == 400
    assert "already used by Cash desk" in field_errors(response.get_data(as_text=True), "key")
    assert count(site, ServiceRow) == 3


def test_editing_a_service_keeps_its_key_and_may_keep_its_own_prefix(admin: Any, site: Any) -> None:
    response = send(
        admin,
        "/admin/services/cash",
        {"key": "hijacked", "name": "Cashier", "prefix": "A", "description": ""},
    )
    assert response.status_code == 302
    with site.read() as s:
        keys = set(s.scalars(select(ServiceRow.key)))
        row = s.scalars(select(ServiceRow).where(ServiceRow.key == "cash")).one()
        assert (row.name, row.active) == ("Cashier", False)  # the box was not ticked
    assert "hijacked" not in keys


def test_unknown_service_page_is_404(admin: Any) -> None:
    assert admin.get("/admin/services/nope").status_code == 404


# --- points -------------------------------------------------------------------------------------


def test_admin_creates_a_point_with_services_and_specialists(admin: Any, site: Any) -> None:
    with site.read() as s:
        sam = s.scalars(select(UserRow).where(UserRow.name == "sam")).one().id
    response = send(
        admin,
        "/admin/points/new",
        {
            "serial": "7",
            "name": "Window 7",
            "services": ["cash", "loans"],
            "specialists": [str(sam)],
            "active": "y",
        },
    )
    assert response.status_code == 302
    with site.read() as s:
        row = s.scalars(select(PointRow).where(PointRow.serial == 7)).one()
        assert [v.key for v in row.services] == ["cash", "loans"]
        user = s.get(UserRow, sam)
        assert [p.serial for p in user.points] == [1, 7]


def test_duplicate_serial_is_shown_next_to_the_serial_field(admin: Any, site: Any) -> None:
    before = snapshot(site)
    response = send(
        admin, "/admin/points/new", {"serial": "1", "name": "Another window", "services": ["cash"]}
    )
    assert response.status_code == 400
    assert "Serial 1 is already used by Window 1." in field_errors(response.get_data(as_text=True), "serial")
    assert snapshot(site) == before


def test_point_serial_must_be_a_positive_number(admin: Any, site: Any) -> None:
    for serial, message in (
        ("0", "A number from 1 to 9999."),
        ("", "A serial is required."),
        ("x", "Not a valid integer value."),
    ):
        response = send(admin, "/admin/points/new", {"serial": serial, "name": "W"})
        assert response.status_code == 400
        assert message in field_errors(response.get_data(as_text=True), "serial"), serial
    assert count(site, PointRow) == 4


def test_editing_a_point_replaces_its_services_and_specialists(admin: Any, site: Any) -> None:
    response = send(
        admin,
        "/admin/points/1",
        {"serial": "99", "name": "Window One", "services": ["accounts"], "active": "y"},
    )
    assert response.status_code == 302
    with site.read() as s:
        row = s.scalars(select(PointRow).where(PointRow.serial == 1)).one()
        assert (row.name, [v.key for v in row.services]) == ("Window One", ["accounts"])
        assert s.scalars(select(UserRow).where(UserRow.name == "sam")).one().points == []


# --- staff --------------------------------------------------------------------------------------


def test_admin_creates_a_specialist_who_can_then_sign_in(app: Any, admin: Any, site: Any) -> None:
    response = send(
        admin,
        "/admin/staff/new",
        {
            "name": "ria",
            "role": "specialist",
            "password": "a long enough password",
            "points": ["2", "3"],
            "active": "y",
        },
    )
    assert response.status_code == 302
    with site.read() as s:
        row = s.scalars(select(UserRow).where(UserRow.name == "ria")).one()
        assert row.password_hash.startswith("$argon2id$")
        assert verify_password(row.password_hash, "a long enough password")
        assert [p.serial for p in row.points] == [2, 3]
    client = app.test_client()
    assert sign_in(client, "ria", "a long enough password").location == "/console/"


def test_new_person_needs_a_long_enough_password_and_a_free_name(admin: Any, site: Any) -> None:
    before = snapshot(site)
    response = send(admin, "/admin/staff/new", {"name": "sam", "role": "specialist", "password": "short"})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "At least 10 characters." in field_errors(page, "password")
    response = send(
        admin, "/admin/staff/new", {"name": "sam", "role": "specialist", "password": "long enough password"}
    )
    assert "already taken" in field_errors(response.get_data(as_text=True), "name")
    response = send(admin, "/admin/staff/new", {"name": "nopass", "role": "specialist"})
    assert "A password is required" in field_errors(response.get_data(as_text=True), "password")
    assert snapshot(site) == before


def test_editing_a_person_without_a_password_keeps_theirs(admin: Any, site: Any) -> None:
    with site.read() as s:
        row = s.scalars(select(UserRow).where(UserRow.name == "sam")).one()
        sam, old_hash = row.id, row.password_hash
    response = send(
        admin,
        f"/admin/staff/{sam}",
        {"name": "sam", "role": "specialist", "password": "", "points": ["4"], "active": "y"},
    )
    assert response.status_code == 302
    with site.read() as s:
        row = s.get(UserRow, sam)
        assert row.password_hash == old_hash and [p.serial for p in row.points] == [4]


# --- priorities ---------------------------------------------------------------------------------


def test_priority_classes_are_added_ordered_and_the_policy_is_set(admin: Any, site: Any) -> None:
    page = "/admin/priorities"
    assert send(admin, "/admin/priorities/new", {"key": "vip", "name": "VIP"}, page=page).status_code == 302
    with site.read() as s:
        assert [r.key for r in s.scalars(select(PriorityRow).order_by(PriorityRow.rank))] == [
            "paid",
            "free",
            "vip",
        ]
        assert s.get(SiteRow, 1).ratio == [3, 1, 1]  # the new class got one share
        assert s.scalars(select(PriorityRow).where(PriorityRow.key == "vip")).one().public is False
    assert (
        send(admin, "/admin/priorities/move", {"key": "vip", "direction": "up"}, page=page).status_code == 302
    )
    with site.read() as s:
        assert [r.key for r in s.scalars(select(PriorityRow).order_by(PriorityRow.rank))] == [
            "paid",
            "vip",
            "free",
        ]
    response = send(
        admin,
        "/admin/priorities/policy",
        {"policy": "ratio", "aging_after_s": "600", "ratio": "3, 1"},
        page=page,
    )
    assert response.status_code == 400
    assert "Give 3 shares" in field_errors(response.get_data(as_text=True), "ratio")
    response = send(
        admin, "/admin/priorities/policy", {"policy": "aging", "aging_after_s": "300", "ratio": ""}, page=page
    )
    assert response.status_code == 302
    with site.read() as s:
        row = s.get(SiteRow, 1)
        assert (row.policy, row.aging_after_s, row.ratio) == ("aging", 300, [])


def test_the_public_flag_of_a_class_is_edited(admin: Any, site: Any) -> None:
    response = send(admin, "/admin/priorities/paid", {"key": "paid", "name": "Paid", "public": "y"})
    assert response.status_code == 302
    with site.read() as s:
        assert s.scalars(select(PriorityRow).where(PriorityRow.key == "paid")).one().public is True


def test_a_class_with_tickets_in_the_queue_is_not_removed(admin: Any, app: Any, site: Any) -> None:
    from central.domain import Channel

    app.extensions["nextup.coordinator"].issue_ticket("cash", "free", channel=Channel.WEB)
    response = send(admin, "/admin/priorities/free/delete", page="/admin/priorities", follow_redirects=True)
    assert "still in the queue" in response.get_data(as_text=True)
    assert count(site, PriorityRow) == 2
    send(admin, "/admin/priorities/paid/delete", page="/admin/priorities")
    with site.read() as s:
        assert [(r.key, r.rank) for r in s.scalars(select(PriorityRow))] == [("free", 0)]
        assert s.get(SiteRow, 1).ratio == [1]


# --- devices ------------------------------------------------------------------------------------


def secret_on(page: str) -> str:
    found = re.search(r'id="device-password">([^<]+)<', page)
    assert found
    return html.unescape(found.group(1))


def test_new_device_shows_its_broker_password_once(admin: Any, site: Any, published: list[Message]) -> None:
    response = send(admin, "/admin/devices/new", {"id": "point-7", "kind": "point", "point": "3"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    password = secret_on(response.get_data(as_text=True))
    assert len(password) >= 22  # at least 128 random bits in URL-safe base64
    with site.read() as s:
        row = s.get(DeviceRow, "point-7")
        assert (row.kind, row.point_serial, row.online) == ("point", 3, False)
    assert any(m.topic.endswith("/device/point-7/config") for m in published)
    devices = admin.get("/admin/devices").get_data(as_text=True)
    assert "point-7" in devices and password not in devices


def test_device_credentials_are_written_for_the_broker_when_configured(
    app: Any, site: Any, tmp_path: Path
) -> None:
    from broker.mosquitto import ACL_FILE, read_passwords

    app.config["BROKER_DIR"] = str(tmp_path / "broker")
    client = app.test_client()
    sign_in(client, "boss")
    response = send(client, "/admin/devices/new", {"id": "kiosk-2", "kind": "kiosk"})
    password = secret_on(response.get_data(as_text=True))
    kept = read_passwords(tmp_path / "broker")
    assert kept["kiosk-2"] == password
    assert {"kiosk-1", "point-1", "display-1"} <= set(kept)
    assert "kiosk-2" in (tmp_path / "broker" / ACL_FILE).read_text()
    # A new password replaces the old one.
    response = send(client, "/admin/devices/kiosk-2/credentials", page="/admin/devices")
    assert secret_on(response.get_data(as_text=True)) != password
    assert read_passwords(tmp_path / "broker")["kiosk-2"] != password


def test_device_form_refuses_a_point_unit_without_a_point_and_a_taken_id(admin: Any, site: Any) -> None:
    before = snapshot(site)
    response = send(admin, "/admin/devices/new", {"id": "point-9", "kind": "point", "point": ""})
    assert response.status_code == 400
    assert "needs the point it drives" in field_errors(response.get_data(as_text=True), "point")
    response = send(admin, "/admin/devices/new", {"id": "kiosk-1", "kind": "kiosk"})
    assert "already used" in field_errors(response.get_data(as_text=True), "id")
    assert snapshot(site) == before


def test_device_list_shows_online_state_and_printer(admin: Any, app: Any) -> None:
    from nextup.contract import DeviceStatus

    app.extensions["nextup.coordinator"].handle_status(
        "kiosk-1", DeviceStatus(online=True, kind="kiosk", version="1.2.3", printer="paper_out")
    )
    page = admin.get("/admin/devices").get_data(as_text=True)
    row = page[page.find("<strong>kiosk-1</strong>") :]
    row = row[: row.find("</tr>")]
    assert "online" in row and "paper out" in row and "1.2.3" in row


def test_removing_a_device_takes_it_out_of_the_registry(admin: Any, site: Any) -> None:
    response = send(admin, "/admin/devices/display-1/delete", page="/admin/devices")
    assert response.status_code == 302
    with site.read() as s:
        assert s.get(DeviceRow, "display-1") is None


# --- hours and tickets --------------------------------------------------------------------------


def test_opening_hours_and_closed_dates_are_replaced(admin: Any, site: Any, published: list[Message]) -> None:
    response = send(
        admin,
        "/admin/hours",
        {"mon": "09:00-13:00, 14:00-18:00", "tue": "8:30-12:00", "closed": "2026-12-25\n2026-12-26"},
    )
    assert response.status_code == 302
    with site.read() as s:
        assert sorted((r.weekday, r.opens, r.closes) for r in s.scalars(select(OpeningIntervalRow))) == [
            (0, "09:00", "13:00"),
            (0, "14:00", "18:00"),
            (1, "08:30", "12:00"),
        ]
        assert [d.isoformat() for d in s.scalars(select(ClosedDateRow.day).order_by(ClosedDateRow.day))] == [
            "2026-12-25",
            "2026-12-26",
        ]
    assert any(m.topic.endswith("/site") for m in published)
    page = admin.get("/admin/hours").get_data(as_text=True)
    assert 'value="09:00-13:00, 14:00-18:00"' in page


def test_bad_hours_are_shown_next_to_their_day_and_change_nothing(admin: Any, site: Any) -> None:
    before = snapshot(site)
    response = send(
        admin,
        "/admin/hours",
        {
            "mon": "09:00-13:00, 12:00-15:00",
            "wed": "18:00-09:00",
            "fri": "nine to five",
            "closed": "25.12.2026",
        },
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "overlaps" in field_errors(page, "mon")
    assert "does not start before it ends" in field_errors(page, "wed")
    assert "is not an interval" in field_errors(page, "fri")
    assert "is not a date" in field_errors(page, "closed")
    assert snapshot(site) == before


def test_tickets_page_lists_waiting_and_unprinted_tickets(admin: Any, app: Any, site: Any) -> None:
    from central.domain import Channel
    from central.store.models import TicketRow

    coordinator = app.extensions["nextup.coordinator"]
    waiting = coordinator.issue_ticket("loans", channel=Channel.WEB)
    lost = coordinator.issue_ticket("cash", channel=Channel.KIOSK, device_id="kiosk-1")
    with site.write() as s:
        row = s.scalars(select(TicketRow).where(TicketRow.number == lost.number)).one()
        row.printed, row.print_error = False, "paper_out"
    page = admin.get("/admin/tickets").get_data(as_text=True)
    waiting_part, unprinted_part = page.split("Not printed", 1)
    assert waiting.number in waiting_part and lost.number in waiting_part
    assert lost.number in unprinted_part and "paper_out" in unprinted_part
    assert waiting.number not in unprinted_part


# --- the registry on both databases -------------------------------------------------------------


def test_panel_changes_land_alike_on_sqlite_and_postgresql(database_url: str, make_store: Any) -> None:
    store = make_store(database_url)
    set_user(store, "boss", "admin", PASSWORD)
    app = create_app(Coordinator(store), config={"SECRET_KEY": "test-secret-key-for-the-admin-tests"})
    client = app.test_client()
    assert sign_in(client, "boss").status_code == 302

    assert (
        send(
            client,
            "/admin/services/new",
            {"key": "passports", "name": "Passports", "prefix": "P", "active": "y"},
        ).status_code
        == 302
    )
    assert (
        send(client, "/admin/services/new", {"key": "visas", "name": "Visas", "prefix": "P"}).status_code
        == 400
    )
    assert (
        send(
            client,
            "/admin/staff/new",
            {
                "name": "ria",
                "role": "specialist",
                "password": "a long enough password",
                "points": ["1"],
                "active": "y",
            },
        ).status_code
        == 302
    )
    with store.read() as s:
        ria = s.scalars(select(UserRow.id).where(UserRow.name == "ria")).one()
    assert (
        send(
            client,
            "/admin/points/new",
            {
                "serial": "9",
                "name": "Window 9",
                "services": ["passports", "cash"],
                "specialists": [str(ria)],
                "active": "y",
            },
        ).status_code
        == 302
    )
    assert (
        send(
            client, "/admin/priorities/move", {"key": "free", "direction": "up"}, page="/admin/priorities"
        ).status_code
        == 302
    )
    assert send(client, "/admin/hours", {"mon": "09:00-17:00", "closed": "2026-12-24"}).status_code == 302
    with store.read() as s:
        point = s.scalars(select(PointRow).where(PointRow.serial == 9)).one()
        assert [v.key for v in point.services] == ["cash", "passports"]
        assert [p.serial for p in s.get(UserRow, ria).points] == [1, 9]
        assert [r.key for r in s.scalars(select(PriorityRow).order_by(PriorityRow.rank))] == ["free", "paid"]
        assert s.get(SiteRow, 1).ratio == [1, 3]
        assert s.scalar(select(func.count()).select_from(OpeningIntervalRow)) == 1
        assert s.scalar(select(func.count()).select_from(ServiceRow)) == 4
