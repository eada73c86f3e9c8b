"""The public pages in Debian's chromium against a running central and broker: a phone and a TV.

Screenshots go to $NEXTUP_SCREENSHOTS when set (to look at them), else to the test's temp dir.
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import command
from playwright.sync_api import expect

from central.domain import Channel
from nextup.contract import Topics

PHONE = {
    "viewport": {"width": 360, "height": 740},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
TV = {"viewport": {"width": 1920, "height": 1080}}
SMALL_TV = {"viewport": {"width": 1280, "height": 720}}
WAIT_MS = 10_000

# Count what the page asks of the phone: vibrations and chime notes (headless chromium plays no sound).
RECORDER = """
window.__vibrations = [];
navigator.vibrate = function (pattern) { window.__vibrations.push(pattern); return true; };
window.__notes = 0;
const original = AudioContext.prototype.createOscillator;
AudioContext.prototype.createOscillator = function () { window.__notes += 1; return original.call(this); };
window.__spoken = [];
speechSynthesis.speak = function (u) { window.__spoken.push([u.text, u.lang]); };
"""


@pytest.fixture
def open_page(browser: Any, central: Any) -> Iterator[Callable[..., Any]]:
    """Pages on central in new browser contexts (phone, TV ...); all closed before central stops."""
    contexts: list[Any] = []
    base = f"http://127.0.0.1:{central.http_port}"

    def open_page(
        path: str,
        *,
        device: dict[str, Any],
        locale: str = "en-US",
        prepare: Callable[[Any], Any] = lambda context: None,
    ) -> Any:
        context = browser.new_context(base_url=base, locale=locale, **device)
        context.add_init_script(RECORDER)
        contexts.append(context)
        prepare(context)
        page = context.new_page()
        page.goto(path)
        return page

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def point(central: Any, mqtt_peer: Callable[..., Any]) -> Callable[[int, str], None]:
    """Press a point unit's button: its command over MQTT with the point's own broker login."""
    topics = Topics(central.settings.site)
    peers: dict[int, Any] = {}

    def press(serial: int, action: str = "next") -> None:
        device = f"point-{serial}"
        peer = peers.get(serial) or peers.setdefault(serial, mqtt_peer(central.device_urls[device]))
        command(peer, device, action, topics=topics)

    return press


def test_a_customer_follows_their_ticket_on_a_phone_until_called(
    central: Any,
    open_page: Callable[..., Any],
    point: Callable[..., None],
    shots: Callable[..., Path],
) -> None:
    # someone took a ticket at the kiosk before
    central.coordinator.issue_ticket("cash", channel=Channel.KIOSK)
    page = open_page("/", device=PHONE)
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", name="Cash desk")).to_be_visible()
    cash = page.locator("li.service", has=page.get_by_role("heading", name="Cash desk"))
    expect(cash.locator(".waiting")).to_have_text("1 person waiting")
    shots(page, "phone-services")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360, "nothing sticks out sideways"

    page.get_by_role("button", name="Take a ticket: Cash desk").click()
    expect(page).to_have_url(re.compile(r"/t/[A-Za-z0-9_-]{20,}$"))
    expect(page.locator("#ticket-number")).to_have_text("A-002")
    status = page.locator("#status")
    expect(status).to_have_attribute("aria-live", "polite")
    expect(status.locator(".ahead")).to_have_text("1 person ahead of you")
    shots(page, "phone-ticket-waiting")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360

    page.get_by_role("button", name="Turn on sound and vibration").click()
    expect(page.get_by_role("button", name="Sound and vibration are on")).to_have_attribute(
        "aria-pressed", "true"
    )
    notes_before = page.evaluate("window.__notes")

    point(1)  # Window 1 calls A-001
    expect(status.locator(".ahead")).to_have_text("You are next.", timeout=WAIT_MS)
    assert page.evaluate("window.__vibrations.length") == 1  # the test tap's buzz only

    point(1)  # ... and then A-002
    expect(status.locator(".go")).to_have_text("Go to Window 1", timeout=WAIT_MS)
    expect(page.locator("body")).to_have_class(re.compile(r"\bstate-called\b"))
    expect(page).to_have_title(re.compile("Go to Window 1"))
    expect(page.locator("#cancel")).to_be_hidden()
    assert page.evaluate("window.__vibrations")[-1] == [400, 150, 400, 150, 800]
    assert page.evaluate("window.__notes") == notes_before + 2, "the two notes of the chime"
    shots(page, "phone-ticket-called")

    point(1, "served")
    expect(status).to_have_text("Thank you for your visit.", timeout=WAIT_MS)
    expect(page.get_by_role("link", name="Take a new ticket")).to_be_visible()


def test_a_phone_without_live_events_follows_by_polling(
    central: Any,
    open_page: Callable[..., Any],
    point: Callable[..., None],
) -> None:
    central.app.config["LIVE_POLL_S"] = 1
    ticket = central.coordinator.issue_ticket("loans", channel=Channel.WEB)
    central.coordinator.issue_ticket("loans", channel=Channel.WEB)
    polls: list[str] = []

    def without_events(context: Any) -> None:
        # as behind a proxy that refuses event streams (or a server with no room for one more)
        context.route("**/events", lambda route: route.fulfill(status=204))
        context.on("request", lambda r: polls.append(r.url) if "/api/v1/tickets/" in r.url else None)

    page = open_page(f"/t/{ticket.token}", device=PHONE, prepare=without_events)
    expect(page.locator("#status .ahead")).to_have_text("You are next.")
    point(3)  # Window 3 provides loans
    expect(page.locator("#status .go")).to_have_text("Go to Window 3", timeout=WAIT_MS)
    assert polls, "the page polled the API"


def test_cancelling_on_the_phone_gives_up_the_place(central: Any, open_page: Callable[..., Any]) -> None:
    ticket = central.coordinator.issue_ticket("accounts", channel=Channel.WEB)
    page = open_page(f"/t/{ticket.token}", device=PHONE)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel my ticket").click()
    expect(page.locator("#status")).to_have_text("You have cancelled this ticket.")
    assert central.coordinator.ticket(ticket.token).state == "cancelled"


def test_the_pages_in_german_on_a_phone(
    central: Any,
    open_page: Callable[..., Any],
    shots: Callable[[Any, str], Path],
) -> None:
    page = open_page("/", device=PHONE, locale="de-DE")
    expect(page.locator("html")).to_have_attribute("lang", "de")
    expect(page.get_by_role("heading", name="Ticket ziehen")).to_be_visible()
    shots(page, "phone-services-de")
    page.get_by_role("button", name="Ticket ziehen: Loans").click()
    expect(page.locator("#status .ahead")).to_have_text("Sie sind als Nächstes dran.")
    shots(page, "phone-ticket-de")
    missing = page.goto("/t/nothing-here")
    assert missing is not None and missing.status == 404
    expect(page.get_by_role("heading", name="Ticket nicht gefunden")).to_be_visible()
    shots(page, "phone-not-found-de")


def test_the_board_on_a_tv_shows_each_call_and_announces_it(
    central: Any,
    open_page: Callable[..., Any],
    point: Callable[..., None],
    shots: Callable[..., Path],
) -> None:
    for service in ["cash"] * 4 + ["loans"] * 2 + ["accounts"] * 2:
        central.coordinator.issue_ticket(service, channel=Channel.KIOSK)
    page = open_page("/board", device=TV)
    expect(page.locator("#board-site")).to_have_text("Demo branch")
    expect(page.locator("#board-clock")).to_have_text(re.compile(r"^\d\d:\d\d$"))
    expect(page.locator("#no-calls")).to_be_visible()
    shots(page, "tv-board-empty")

    page.get_by_role("button", name="Sound and voice: off").click()
    expect(page.get_by_role("button", name="Sound and voice: on")).to_have_attribute("aria-pressed", "true")
    notes = page.evaluate("window.__notes")

    point(1)
    newest = page.locator(".call.newest")
    expect(newest.locator(".call-number")).to_have_text("A-001", timeout=WAIT_MS)
    expect(newest.locator(".call-point")).to_have_text("Window 1")
    point(3)
    expect(newest.locator(".call-number")).to_have_text("B-001", timeout=WAIT_MS)
    expect(newest.locator(".call-point")).to_have_text("Window 3")
    expect(page.locator(".call").nth(1)).to_contain_text("A-001")
    waiting = page.locator("#waiting-list li")
    expect(waiting.nth(0)).to_contain_text("Cash desk")
    expect(waiting.nth(0).locator(".waiting-count")).to_have_text("3")
    expect(waiting.nth(1).locator(".waiting-count")).to_have_text("1")
    assert page.evaluate("window.__notes") == notes + 4, "a chime for each call"
    assert page.evaluate("window.__spoken") == [
        ["Ticket A 1, please go to Window 1.", "en"],
        ["Ticket B 1, please go to Window 3.", "en"],
    ]
    for _ in range(2):
        point(2)
        point(4)
    expect(page.locator(".call")).to_have_count(6, timeout=WAIT_MS)
    shots(page, "tv-board-1080p")
    page.set_viewport_size(SMALL_TV["viewport"])
    shots(page, "tv-board-720p")
    assert page.evaluate("document.documentElement.scrollHeight") <= 720, "the board fits the screen"


def test_the_board_keeps_live_past_a_stream_lifetime(
    central: Any,
    open_page: Callable[..., Any],
    point: Callable[..., None],
) -> None:
    central.app.config.update(LIVE_LIFETIME_S=1.0, LIVE_HEARTBEAT_S=0.3)
    central.coordinator.issue_ticket("cash", channel=Channel.KIOSK)
    central.coordinator.issue_ticket("cash", channel=Channel.KIOSK)
    streams: list[str] = []

    def count_streams(context: Any) -> None:
        context.on("request", lambda r: streams.append(r.url) if r.url.endswith("/board/events") else None)

    page = open_page("/board", device=SMALL_TV, prepare=count_streams)
    for _ in range(100):  # several streams come and go
        if len(streams) >= 3:
            break
        page.wait_for_timeout(100)
    assert len(streams) >= 3, "EventSource reconnects after each stream's end"
    point(1)
    expect(page.locator(".call.newest .call-number")).to_have_text("A-001", timeout=WAIT_MS)


def test_the_server_streams_events_through_waitress_as_they_happen(central: Any) -> None:
    ticket = central.coordinator.issue_ticket("cash", channel=Channel.WEB)
    url = f"http://127.0.0.1:{central.http_port}/t/{ticket.token}/events"
    with urllib.request.urlopen(url, timeout=10) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        assert stream.readline() == b"retry: 2000\n"
        stream.readline()
        first = stream.readline().decode()
        assert first == "event: ticket\n"
        assert '"state":"waiting"' in stream.readline().decode()
        stream.readline()
        central.coordinator.point_command(1, "next", command_id="c1", source="test")
        assert stream.readline() == b"event: ticket\n"
        assert '"state":"called"' in stream.readline().decode()
