"""The staff pages in Debian's chromium against a running central: an admin sets up, a specialist works.

Screenshots go to $NEXTUP_SCREENSHOTS when set (to look at them), else to the test's temp dir.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import PASSWORD
from playwright.sync_api import expect
from sqlalchemy import select

from central.domain import Channel
from central.store.models import PointRow, ServiceRow, UserRow
from central.users import set_user
from nextup.contract import DeviceStatus

DESK = {"viewport": {"width": 1366, "height": 860}}
TABLET = {"viewport": {"width": 800, "height": 1100}, "has_touch": True}






@pytest.fixture
def staff(central: Any) -> Any:
    store = central.coordinator.store
    set_user(store, "boss", "admin", PASSWORD)
    set_user(store, "sam", "specialist", PASSWORD)
    with store.write() as s:
        sam = s.scalars(select(UserRow).where(UserRow.name == "sam")).one()
        sam.points = list(s.scalars(select(PointRow).where(PointRow.serial.in_([1, 2]))))
    return central


@pytest.fixture
def open_page(browser: Any, staff: Any) -> Iterator[Callable[..., Any]]:
    contexts: list[Any] = []
    base = f"http://127.0.0.1:{staff.http_port}"

    def open_page(path: str, device: dict[str, Any] = DESK) -> Any:
        context = browser.new_context(base_url=base, locale="en-US", **device)
        contexts.append(context)
        page = context.new_page()
        page.goto(path)
        return page

    yield open_page
    for context in contexts:
        context.close()


def sign_in(page: Any, name: str) -> None:
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_admin_signs_in_and_creates_a_service_and_a_point(
    staff: Any, open_page: Callable[..., Any], shots: Callable[[Any, str], Path]
) -> None:
    coordinator = staff.coordinator
    coordinator.issue_ticket("cash", channel=Channel.WEB)
    coordinator.handle_status(
        "kiosk-1", DeviceStatus(online=True, kind="kiosk", version="0.1.0", printer="ok")
    )
    page = open_page("/admin/")
    expect(page).to_have_url(f"http://127.0.0.1:{staff.http_port}/admin/login?next=%2Fadmin%2F")
    shots(page, "admin-login")

    page.get_by_label("Name").fill("boss")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong name or password.")
    shots(page, "admin-login-refused")

    sign_in(page, "boss")
    expect(page.get_by_role("heading", name="Demo branch")).to_be_visible()
    shots(page, "admin-overview")

    # A new service, first with a prefix already taken: the reason sits next to the field.
    page.get_by_role("link", name="Services", exact=True).click()
    page.get_by_role("link", name="New service").click()
    page.get_by_label("Key").fill("passports")
    page.get_by_label("Name").fill("Passports")
    page.get_by_label("Description").fill("New passports and renewals")
    page.get_by_label("Ticket prefix").fill("A")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#prefix-error")).to_have_text("The prefix A is already used by Cash desk.")
    shots(page, "admin-service-refused")
    page.get_by_label("Ticket prefix").fill("P")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Service Passports created.")
    expect(page.locator("#service-passports")).to_contain_text("Passports")
    shots(page, "admin-services")

    # A new point that provides it, with sam allowed there.
    page.get_by_role("link", name="Points", exact=True).click()
    shots(page, "admin-points")
    page.get_by_role("link", name="New point").click()
    page.get_by_label("Serial").fill("5")
    page.get_by_label("Name").fill("Window 5")
    page.get_by_label("Passports (P)").check()
    page.get_by_label("sam").check()
    shots(page, "admin-point-form")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Point 5 (Window 5) created.")
    row = page.locator("tr", has=page.get_by_role("cell", name="Window 5", exact=True))
    expect(row).to_contain_text("Passports")
    expect(row).to_contain_text("sam")

    with coordinator.store.read() as s:
        point = s.scalars(select(PointRow).where(PointRow.serial == 5)).one()
        assert [v.key for v in point.services] == ["passports"]
        assert s.scalars(select(ServiceRow.prefix).where(ServiceRow.key == "passports")).one() == "P"
    assert "passports" in [svc.key for svc in coordinator.site_state().services]

    for name, shot in (
        ("Staff", "admin-staff"),
        ("Priorities", "admin-priorities"),
        ("Devices", "admin-devices"),
        ("Hours", "admin-hours"),
        ("Tickets", "admin-tickets"),
    ):
        page.get_by_role("link", name=name, exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        shots(page, shot)

    page.get_by_role("link", name="Devices", exact=True).click()
    page.get_by_role("link", name="New device").click()
    page.get_by_label("Id").fill("point-5")
    page.get_by_label("Kind").select_option("point")
    page.get_by_label("Point (for a point unit)").select_option("5")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("it is shown only this once")).to_be_visible()
    assert len(page.locator("#device-password").inner_text().strip()) >= 22
    shots(page, "admin-device-credentials")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Staff sign-in")).to_be_visible()


def test_specialist_works_a_point_from_the_console(
    staff: Any, open_page: Callable[..., Any], shots: Callable[[Any, str], Path]
) -> None:
    coordinator = staff.coordinator
    tickets = [
        coordinator.issue_ticket(svc, "free", channel=Channel.WEB) for svc in ("cash", "accounts", "cash")
    ]
    paid = coordinator.issue_ticket("cash", "paid", channel=Channel.KIOSK)
    page = open_page("/console/", TABLET)
    sign_in(page, "sam")
    expect(page.get_by_role("heading", name="Where do you work today?")).to_be_visible()
    shots(page, "console-pick")
    page.get_by_role("button", name="Window 2").click()
    expect(page.get_by_role("heading", name="Window 2")).to_be_visible()
    expect(page.locator("#queue li")).to_have_count(4)
    shots(page, "console-idle")

    page.get_by_role("button", name="Call next").click()
    expect(page.locator("#current-number")).to_have_text(paid.number)  # paid first: ratio 3 paid : 1 free
    expect(page.locator("#queue li")).to_have_count(3)
    shots(page, "console-serving")
    page.get_by_role("button", name="Served").click()
    expect(page.locator("#current-number")).to_have_text("Nobody called")
    page.get_by_role("button", name="Call next").click()
    expect(page.locator("#current-number")).to_have_text(tickets[0].number)
    page.get_by_role("button", name="Transfer").click()  # to the first other service in the list
    expect(page.locator("#current-number")).to_have_text("Nobody called")
    assert coordinator.ticket(tickets[0].token).state == "waiting"

    page.get_by_role("button", name="Pause this point (inactive)").click()
    page.get_by_role("button", name="Call next (2 waiting)").wait_for()
    expect(page.get_by_role("button", name="Call next (2 waiting)")).to_be_disabled()
    shots(page, "console-inactive")
    page.get_by_role("button", name="Open this point (active)").click()
    expect(page.get_by_role("button", name="Call next (2 waiting)")).to_be_enabled()
