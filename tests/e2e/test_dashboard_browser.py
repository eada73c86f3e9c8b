"""The admin's dashboard and statistics in Debian's chromium against a running central and broker.

Part of yesterday and the last hour and a half of today are played through the
coordinator with a clock the test drives, so the pages show real numbers.
Screenshots go to $NEXTUP_SCREENSHOTS when set (to look at them), else to the test's temp dir.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import PASSWORD, Clock
from playwright.sync_api import expect
from sqlalchemy import select

from central.coordinator import Coordinator
from central.domain import Channel
from central.store.models import UserRow
from central.users import set_user
from nextup.contract import PointState, Topics

DESKTOP = {"viewport": {"width": 1366, "height": 900}}
WAIT_MS = 10_000
# Clients a minute per service, and the mean minutes each takes at the point.
# About three quarters of what windows 1-3 can take, so queues come and go.
PACE = {"cash": (0.3, 4.0), "loans": (0.05, 10.0), "accounts": (0.1, 5.0)}
DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo-site.toml"


def play_hall(coordinator: Coordinator, clock: Clock, start: datetime, end: datetime, rng: random.Random,
              specialists: dict[int, int], *, drain: bool) -> None:
    """Minute by minute: clients arrive at random, each point calls the next when free and serves.

    With ``drain`` the doors close at ``end`` and the points serve whoever is left, so no ticket
    of this session waits into the next one.
    """
    busy_until: dict[int, datetime] = {}  # points with a client, until when
    clock.now = start
    while clock.now < end or (drain and (busy_until or any(
            coordinator.point_state(serial).waiting for serial in specialists))):
        if clock.now < end:
            for service, (per_minute, _) in PACE.items():
                if rng.random() < per_minute:
                    coordinator.issue_ticket(service, channel=rng.choice([Channel.KIOSK, Channel.KIOSK,
                                                                          Channel.WEB]))
        for serial, specialist in specialists.items():
            if serial in busy_until:
                if clock.now < busy_until[serial]:
                    continue
                state = press(coordinator, serial, "no_show" if rng.random() < 0.06 else "served", specialist)
                del busy_until[serial]
            else:
                state = coordinator.point_state(serial)
            if state.waiting:
                called = press(coordinator, serial, "next", specialist).current
                assert called is not None
                mean = PACE[called.service][1]
                busy_until[serial] = clock.now + timedelta(minutes=max(1.0, rng.expovariate(1 / mean)))
        clock.now += timedelta(minutes=1)


def press(coordinator: Coordinator, serial: int, action: str, specialist: int | None = None) -> PointState:
    result = coordinator.point_command(serial, action, command_id=uuid.uuid4().hex, source="test",
                                       specialist_id=specialist)
    assert result.ok, result.error
    return result.state


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database of the demo site holding part of yesterday and today's last hour and a half (made once)."""
    from central.sitefile import apply_site
    from central.sitespec import parse_site_file
    from central.store import Store
    from central.store.migrate import upgrade

    path = tmp_path_factory.mktemp("history") / "nextup.sqlite3"
    url = f"sqlite:///{path}"
    upgrade(url)
    store = Store(url)
    try:
        apply_site(store, parse_site_file(DEMO))
        set_user(store, "boss", "admin", PASSWORD)
        names = {1: "amira", 2: "ben", 3: "chloe"}
        for name in names.values():
            set_user(store, name, "specialist", PASSWORD)
        with store.read() as s:
            ids = {u.name: u.id for u in s.scalars(select(UserRow))}
        specialists = {serial: ids[name] for serial, name in names.items()}
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        clock = Clock(now)
        coordinator = Coordinator(store, clock=clock)
        rng = random.Random(7)
        yesterday = now - timedelta(days=1)
        play_hall(coordinator, clock, yesterday - timedelta(hours=2.5), yesterday, rng, specialists,
                  drain=True)
        play_hall(coordinator, clock, now - timedelta(hours=1.5), now - timedelta(minutes=1), rng,
                  specialists, drain=False)
        with store.engine.connect() as connection:  # one file to copy: fold the WAL back in
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        store.close()
    return path


@pytest.fixture
def hall(history: Path, sqlite_url: str, make_central: Callable[..., Any],
         mqtt_peer: Callable[..., Any]) -> Any:
    """A running central on a copy of ``history``; point units 1-3 are connected, window 4's is not."""
    shutil.copyfile(history, sqlite_url.removeprefix("sqlite:///"))
    central = make_central()
    topics = Topics(central.settings.site)
    for serial in (1, 2, 3):
        device = f"point-{serial}"
        peer = mqtt_peer(central.device_urls[device])
        status = {"online": True, "kind": "point", "version": "test"}
        peer.publish(topics.device_status(device), json.dumps(status), retain=True)
    return central






@pytest.fixture
def admin_page(browser: Any, hall: Any) -> Iterator[Callable[..., Any]]:
    """A signed-in admin's page on ``hall``; ``prepare`` may set up the context first."""
    contexts: list[Any] = []

    def open_page(path: str, prepare: Callable[[Any], None] | None = None) -> Any:
        context = browser.new_context(base_url=f"http://127.0.0.1:{hall.http_port}", **DESKTOP)
        contexts.append(context)
        if prepare:
            prepare(context)
        page = context.new_page()
        page.goto(path)
        page.get_by_label("Name").fill("boss")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name=re.compile("Sign in", re.I)).click()
        expect(page).to_have_url(re.compile(re.escape(path) + "$"))
        return page

    yield open_page
    for context in contexts:
        context.close()


def waiting_cell(page: Any, service: str) -> Any:
    return page.locator(f'tr[data-service="{service}"] td.waiting')


def test_the_dashboard_follows_the_hall_by_itself(
    hall: Any, admin_page: Callable[..., Any], shots: Callable[[Any, str], Path]
) -> None:
    page = admin_page("/admin/dashboard")
    expect(page.locator("#live-state")).to_have_text("live", timeout=WAIT_MS)
    before = int(waiting_cell(page, "loans").inner_text())
    shots(page, "dashboard")

    hall.coordinator.issue_ticket("loans", channel=Channel.KIOSK)
    expect(waiting_cell(page, "loans")).to_have_text(str(before + 1), timeout=WAIT_MS)
    press(hall.coordinator, 4, "deactivate")
    expect(page.locator('tr[data-point="4"]')).to_contain_text("inactive", timeout=WAIT_MS)
    # The longest wait ticks in the page between updates.
    longest = page.locator('tr[data-service="loans"] td.longest span')
    first = longest.inner_text()
    expect(longest).not_to_have_text(first, timeout=WAIT_MS)
    shots(page, "dashboard-after-changes")


def test_the_dashboard_polls_when_it_gets_no_event_stream(
    hall: Any, admin_page: Callable[..., Any]
) -> None:
    def without_events(context: Any) -> None:
        context.route("**/dashboard/events", lambda route: route.fulfill(status=204))

    page = admin_page("/admin/dashboard", prepare=without_events)
    expect(page.locator("#live-state")).to_have_text("live (polling)", timeout=WAIT_MS)
    before = int(waiting_cell(page, "accounts").inner_text())
    hall.coordinator.issue_ticket("accounts", channel=Channel.WEB)
    expect(waiting_cell(page, "accounts")).to_have_text(str(before + 1), timeout=WAIT_MS)


def test_the_admin_changes_the_staffing_target(hall: Any, admin_page: Callable[..., Any]) -> None:
    page = admin_page("/admin/dashboard")
    page.get_by_label("Target wait (seconds)").fill("600")
    page.get_by_label("Share of clients served within it (%)").fill("80")
    page.get_by_role("button", name="Save target").click()
    expect(page.locator(".flash.success")).to_contain_text("80 % of waits under 10:00")
    expect(page.locator(".live-meta")).to_contain_text("80 % of waits under 10:00")


def test_the_statistics_show_charts_and_export_csv(
    hall: Any, admin_page: Callable[..., Any], shots: Callable[[Any, str], Path]
) -> None:
    page = admin_page("/admin/stats")
    expect(page.get_by_role("heading", name="Statistics")).to_be_visible()
    assert page.locator("svg.chart").count() >= 4
    expect(page.get_by_role("img", name="Tickets per service and hour of the day")).to_be_visible()
    shots(page, "statistics")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download tickets (CSV)").click()
    body = Path(info.value.path()).read_text()
    lines = body.splitlines()
    assert lines[0].startswith("number,service,priority,channel,issued_at")
    assert len(lines) > 50
