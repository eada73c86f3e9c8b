"""The admin's dashboard, statistics and CSV export through Flask's test client over a real store."""

from __future__ import annotations

import csv
import html
import io
import json
import re
import secrets
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import PASSWORD, Clock, csrf_token, sign_in
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select

from central.coordinator import Coordinator
from central.domain import Channel
from central.domain.staffing import required_points
from central.store.models import SiteRow, UserRow
from central.users import set_user
from central.web import create_app, svgchart

SVG = "{http://www.w3.org/2000/svg}"


def session_token(app: Any, client: Any) -> str:
    """A valid form token for ``client``'s session, made as Flask-WTF makes it (for those with no form)."""
    with client.session_transaction() as session:
        raw = session.setdefault("csrf_token", secrets.token_hex(20))
    return URLSafeTimedSerializer(app.secret_key, salt="wtf-csrf-token").dumps(raw)


def text_of(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def row(page: str, marker: str) -> str:
    """The text of the table row carrying ``marker`` (e.g. ``data-service="cash"``)."""
    start = page.index(marker)
    return text_of(page[page.rindex("<tr", 0, start): page.index("</tr>", start)])


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 3, 10, 9, 0, tzinfo=UTC))


@pytest.fixture
def coordinator(sqlite_url: str, make_store: Any, clock: Clock) -> Coordinator:
    store = make_store(sqlite_url)
    set_user(store, "boss", "admin", PASSWORD)
    set_user(store, "sam", "specialist", PASSWORD)
    return Coordinator(store, clock=clock)


@pytest.fixture
def app(coordinator: Coordinator) -> Any:
    return create_app(coordinator, config={"SECRET_KEY": "test-secret-for-the-dashboard",
                                           "LIVE_HEARTBEAT_S": 0.2, "LIVE_LIFETIME_S": 30})


@pytest.fixture
def admin(app: Any) -> Any:
    client = app.test_client()
    assert sign_in(client, "boss").status_code == 302
    return client


def press(coordinator: Coordinator, serial: int, action: str, specialist: int | None = None) -> None:
    result = coordinator.point_command(serial, action, command_id=uuid.uuid4().hex, source="test",
                                       specialist_id=specialist)
    assert result.ok, result.error


def sam_id(coordinator: Coordinator) -> int:
    with coordinator.store.read() as s:
        return s.scalars(select(UserRow.id).where(UserRow.name == "sam")).one()


def busy_morning(coordinator: Coordinator, clock: Clock) -> None:
    """Three cash clients served in 4 minutes each, then a queue; sam calls at window 1."""
    for _ in range(3):
        coordinator.issue_ticket("cash", channel=Channel.KIOSK)
    for _ in range(3):
        press(coordinator, 1, "next", sam_id(coordinator))
        clock.advance(minutes=4)
        press(coordinator, 1, "served")
    for _ in range(6):
        coordinator.issue_ticket("cash", channel=Channel.KIOSK)
        clock.advance(minutes=1)
    coordinator.issue_ticket("loans", channel=Channel.WEB)
    clock.advance(minutes=2)
    press(coordinator, 1, "next", sam_id(coordinator))


# --- who may look ----------------------------------------------------------------------------

PAGES = ["/admin/dashboard", "/admin/dashboard/live", "/admin/dashboard/events", "/admin/stats",
         "/admin/stats/tickets.csv?from=2026-03-01&to=2026-03-10"]


@pytest.mark.parametrize("url", PAGES)
def test_anonymous_visitors_are_sent_to_sign_in(app: Any, url: str) -> None:
    response = app.test_client().get(url)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login?next=")


@pytest.mark.parametrize("url", PAGES)
def test_specialists_may_not_look(app: Any, url: str) -> None:
    client = app.test_client()
    assert sign_in(client, "sam").status_code == 302
    assert client.get(url).status_code == 403


def test_only_admins_set_the_staffing_target(app: Any, coordinator: Coordinator) -> None:
    client = app.test_client()
    assert sign_in(client, "sam").status_code == 302
    response = client.post("/admin/dashboard/staffing",
                           data={"csrf_token": session_token(app, client), "target_s": 60, "percent": 50})
    assert response.status_code == 403
    anonymous = app.test_client()
    response = anonymous.post(
        "/admin/dashboard/staffing",
        data={"csrf_token": session_token(app, anonymous), "target_s": 60, "percent": 50})
    assert response.status_code == 302
    with coordinator.store.read() as s:
        site = s.get(SiteRow, 1)
        assert (site.staffing_target_s, site.staffing_percent) == (300, 90)


# --- the live dashboard -----------------------------------------------------------------------


def test_the_dashboard_shows_each_queue_each_point_and_the_advice(
    admin: Any, coordinator: Coordinator, clock: Clock
) -> None:
    busy_morning(coordinator, clock)
    page = admin.get("/admin/dashboard").get_data(as_text=True)

    cash = row(page, 'data-service="cash"')
    # A-004..A-009 came at 09:12..09:17; at 09:20 A-004 is at window 1, five wait, the longest since 09:13.
    assert cash.startswith("Cash desk A 5 7:00 ")
    assert "9 " in cash  # arrivals in the last hour
    assert "4:00" in cash  # measured service time
    expected = required_points(9 / 3600, 240, 300, 0.9).points
    assert f"needs {expected}" in cash
    assert "3 of 3" in cash  # windows 1, 2 and 4 provide cash
    loans = row(page, 'data-service="loans"')
    assert loans.startswith("Loans B 1 2:00 ")
    assert "no data" in loans and "service time is unknown" in loans

    window1 = row(page, 'data-point="1"')
    # No point unit has connected to a broker in this test: each shows as offline.
    assert window1 == "Window 1 #1 active unit offline A-004 cash · for 0:00 sam cash"
    window3 = row(page, 'data-point="3"')
    assert window3 == "Window 3 #3 active unit offline – – accounts, loans"
    assert "advice aims at 90 % of waits under 5:00" in text_of(page)
    assert 'href="/admin/dashboard"' in page and 'href="/admin/stats"' in page  # in the admins' top bar


def test_a_short_service_is_flagged(admin: Any, coordinator: Coordinator, clock: Clock) -> None:
    busy_morning(coordinator, clock)
    for serial in (2, 4):
        press(coordinator, serial, "deactivate")
    page = admin.get("/admin/dashboard/live").get_data(as_text=True)
    needed = required_points(9 / 3600, 240, 300, 0.9).points
    assert needed > 1
    cash = row(page, 'data-service="cash"')
    assert f"Needs {needed} active points, has 1: open {needed - 1} more" in cash
    assert 'class="tag bad">needs' in page
    assert "inactive" in row(page, 'data-point="2"')


def test_the_event_stream_sends_the_live_part_again_after_each_change(
    admin: Any, coordinator: Coordinator
) -> None:
    response = admin.get("/admin/dashboard/events", buffered=False)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    chunks = response.iter_encoded()

    def next_event() -> dict[str, Any]:
        for chunk in chunks:
            text = chunk.decode()
            if text.startswith("event: dashboard"):
                return json.loads(text.split("data: ", 1)[1])
        raise AssertionError("the stream ended")

    try:
        first = next_event()
        assert row(first["html"], 'data-service="cash"').startswith("Cash desk A 0 ")
        coordinator.issue_ticket("cash", channel=Channel.KIOSK)
        second = next_event()
        assert row(second["html"], 'data-service="cash"').startswith("Cash desk A 1 0:00 ")
        press(coordinator, 2, "next")
        third = next_event()
        assert row(third["html"], 'data-service="cash"').startswith("Cash desk A 0 ")
        assert "A-001" in row(third["html"], 'data-point="2"')
    finally:
        response.close()
    assert admin.application.extensions["nextup.live"].open_streams == 0


def test_the_polling_fallback_follows_changes(admin: Any, coordinator: Coordinator, clock: Clock) -> None:
    before = admin.get("/admin/dashboard/live").get_data(as_text=True)
    assert "Window 4 #4 active unit offline – –" in row(before, 'data-point="4"')
    coordinator.issue_ticket("accounts", channel=Channel.WEB)
    press(coordinator, 4, "next")
    after = admin.get("/admin/dashboard/live").get_data(as_text=True)
    assert row(after, 'data-point="4"').startswith("Window 4 #4 active unit offline C-001 accounts")
    assert "<html" not in after  # a fragment, not a page
    page = admin.get("/admin/dashboard").get_data(as_text=True)
    assert 'data-events="/admin/dashboard/events"' in page and 'data-fragment="/admin/dashboard/live"' in page
    assert admin.get("/static/js/dashboard.js").status_code == 200


# --- the staffing target ----------------------------------------------------------------------


def test_the_admin_sets_the_staffing_target(app: Any, admin: Any, coordinator: Coordinator) -> None:
    page = admin.get("/admin/dashboard").get_data(as_text=True)
    assert re.search(r'<input[^>]*name="target_s"[^>]*value="300"', page)
    assert re.search(r'<input[^>]*name="percent"[^>]*value="90"', page)
    response = admin.post("/admin/dashboard/staffing",
                          data={"csrf_token": csrf_token(page), "target_s": "120", "percent": "80"})
    assert response.status_code == 302
    with coordinator.store.read() as s:
        site = s.get(SiteRow, 1)
        assert (site.staffing_target_s, site.staffing_percent) == (120, 80)
    page = admin.get("/admin/dashboard").get_data(as_text=True)
    assert "Staffing advice now aims at 80 % of waits under 2:00" in html.unescape(page)
    assert "advice aims at 80 % of waits under 2:00" in text_of(page)


@pytest.mark.parametrize(
    ("target", "percent", "message"),
    [("0", "90", "Between 1 second and 24 hours"), ("300", "100", "no queue promises 100 %"),
     ("soon", "90", "Not a valid integer value"), ("300", "", "A percentage is required")],
)
def test_a_bad_staffing_target_is_refused_and_changes_nothing(
    admin: Any, coordinator: Coordinator, target: str, percent: str, message: str
) -> None:
    page = admin.get("/admin/dashboard").get_data(as_text=True)
    response = admin.post("/admin/dashboard/staffing",
                          data={"csrf_token": csrf_token(page), "target_s": target, "percent": percent})
    assert response.status_code == 400
    assert message in html.unescape(response.get_data(as_text=True))
    with coordinator.store.read() as s:
        site = s.get(SiteRow, 1)
        assert (site.staffing_target_s, site.staffing_percent) == (300, 90)


def test_the_staffing_form_needs_its_csrf_token(admin: Any, coordinator: Coordinator) -> None:
    response = admin.post("/admin/dashboard/staffing", data={"target_s": "120", "percent": "80"})
    assert response.status_code == 400
    with coordinator.store.read() as s:
        assert s.get(SiteRow, 1).staffing_target_s == 300


# --- statistics and the export ----------------------------------------------------------------


def test_the_statistics_page_shows_tables_and_charts(
    admin: Any, coordinator: Coordinator, clock: Clock
) -> None:
    busy_morning(coordinator, clock)
    clock.advance(minutes=3)
    press(coordinator, 1, "no_show")
    response = admin.get("/admin/stats?from=2026-03-10&to=2026-03-10")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    text = text_of(page)
    assert "10 Mar 2026 to 10 Mar 2026" in text and "(UTC)" in text
    # A-001..A-003 waited 0, 4 and 8 minutes and took 4 each; A-004 waited 8 minutes and did not come.
    cash = row(page, "<td>Cash desk</td>")
    assert cash == "Cash desk 9 3 1 0 25.0 % 5:00 8:00 4:00 4:00"
    assert row(page, "<td>Loans</td>") == "Loans 1 0 0 0 – – – – –"
    assert row(page, "<td>Window 1</td>") == "Window 1 4 3 1 0 25.0 % 5:00 8:00 4:00 4:00"
    assert row(page, "<td>sam</td>").startswith("sam 4 3 1 0 25.0 %")
    charts = re.findall(r"<svg.*?</svg>", page, flags=re.S)
    titles = [ET.fromstring(svg).find(f"{SVG}title").text for svg in charts]
    assert titles == ["Tickets per service and hour of the day",
                      "Waits and service times by service (m:ss)",
                      "Waits and service times by point (m:ss)",
                      "Waits and service times by specialist (m:ss)"]
    assert 'href="/admin/stats/tickets.csv?from=2026-03-10&amp;to=2026-03-10"' in page


def test_the_statistics_page_defaults_to_the_last_week(admin: Any) -> None:
    page = admin.get("/admin/stats").get_data(as_text=True)
    assert 'name="from" value="2026-03-04"' in page and 'name="to" value="2026-03-10"' in page
    assert "Tickets per day" in page  # a line over the seven days


@pytest.mark.parametrize(
    ("query", "message"),
    [("from=2026-03-10&to=2026-03-01", "The end date is before the start date."),
     ("from=yesterday&to=2026-03-01", "is not a date like 2026-11-28"),
     ("from=2026-03-10", "The end date is missing."),
     ("from=2020-01-01&to=2026-03-01", "Pick at most 366 days.")],
)
def test_a_bad_range_gets_a_clear_error(admin: Any, query: str, message: str) -> None:
    response = admin.get(f"/admin/stats?{query}")
    assert response.status_code == 400
    assert message in html.unescape(response.get_data(as_text=True))


def test_the_csv_export_has_a_header_and_one_row_per_ticket(
    admin: Any, coordinator: Coordinator, clock: Clock
) -> None:
    busy_morning(coordinator, clock)
    response = admin.get("/admin/stats/tickets.csv?from=2026-03-10&to=2026-03-10")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == \
        'attachment; filename="nextup-tickets-2026-03-10-to-2026-03-10.csv"'
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["number"] for r in rows] == [f"A-00{i}" for i in range(1, 10)] + ["B-001"]
    assert rows[0] == {
        "number": "A-001", "service": "cash", "priority": "free", "channel": "kiosk",
        "issued_at": "2026-03-10T09:00:00+00:00", "called_at": "2026-03-10T09:00:00+00:00",
        "finished_at": "2026-03-10T09:04:00+00:00", "state": "served", "point": "Window 1",
        "specialist": "sam", "wait_s": "0", "service_s": "240",
    }
    assert (rows[2]["wait_s"], rows[2]["service_s"], rows[2]["called_at"]) == ("480", "240",
                                                                               "2026-03-10T09:08:00+00:00")
    a004 = rows[3]
    assert (a004["state"], a004["issued_at"], a004["called_at"], a004["wait_s"], a004["service_s"]) == \
        ("called", "2026-03-10T09:12:00+00:00", "2026-03-10T09:20:00+00:00", "480", "")
    waiting = rows[4]
    assert (waiting["state"], waiting["called_at"], waiting["point"], waiting["wait_s"]) == \
        ("waiting", "", "", "")
    assert (rows[-1]["service"], rows[-1]["channel"]) == ("loans", "web")
    empty = admin.get("/admin/stats/tickets.csv?from=2026-03-11&to=2026-03-12").get_data(as_text=True)
    assert empty.splitlines() == [",".join(
        ["number", "service", "priority", "channel", "issued_at", "called_at", "finished_at", "state",
         "point", "specialist", "wait_s", "service_s"])]


@pytest.mark.parametrize("query",
                         ["from=2026-03-10", "from=2026-03-10&to=2026-03-09", "from=10.03.2026&to=x"])
def test_a_bad_csv_range_is_refused_in_plain_words(admin: Any, query: str) -> None:
    response = admin.get(f"/admin/stats/tickets.csv?{query}")
    assert response.status_code == 400
    assert response.mimetype == "text/plain"
    assert "date" in response.get_data(as_text=True)


# --- the charts --------------------------------------------------------------------------------


def bars(svg: str) -> list[ET.Element]:
    return ET.fromstring(svg).findall(f"{SVG}rect[{SVG}title]")


def test_bar_heights_follow_the_values_and_names_are_escaped() -> None:
    svg = str(svgchart.bar_chart(["<b>", "two"], [("Cash & co", [10, 25]), ("Loans", [5, None])],
                                 title="Waits <test>"))
    root = ET.fromstring(svg)  # well-formed, whatever the names held
    assert root.find(f"{SVG}title").text == "Waits <test>"
    drawn = bars(svg)
    assert [b.find(f"{SVG}title").text for b in drawn] == [
        "<b>: Cash & co 10", "<b>: Loans 5", "two: Cash & co 25", "two: Loans –"]
    heights = [float(b.get("height")) for b in drawn]
    assert heights[0] == pytest.approx(2 * heights[1])
    assert heights[2] == pytest.approx(2.5 * heights[0])
    assert heights[3] == 0
    assert "<b>" not in svg.replace("&lt;b&gt;", "")


def test_stacked_bars_sit_on_each_other() -> None:
    svg = str(svgchart.bar_chart(["09", "10"], [("A", [3, 1]), ("B", [2, 4])], title="t", stacked=True))
    a9, b9, a10, b10 = bars(svg)
    assert float(b9.get("y")) + float(b9.get("height")) == pytest.approx(float(a9.get("y")))
    assert float(a9.get("x")) == float(b9.get("x"))
    # Both stacks reach 5, so both tops are at the same height.
    assert float(b9.get("y")) == pytest.approx(float(b10.get("y")))


def test_a_line_chart_has_a_point_per_value() -> None:
    svg = str(svgchart.line_chart(["1 Mar", "2 Mar", "3 Mar"], [("Tickets", [4, None, 8])], title="Per day"))
    root = ET.fromstring(svg)
    dots = root.findall(f"{SVG}circle")
    assert [d.find(f"{SVG}title").text for d in dots] == ["1 Mar: 4", "3 Mar: 8"]
    assert float(dots[0].get("cy")) > float(dots[1].get("cy"))
    assert root.find(f"{SVG}polyline") is not None


def test_empty_charts_still_draw() -> None:
    ET.fromstring(str(svgchart.bar_chart([], [], title="Nothing")))
    ET.fromstring(str(svgchart.line_chart([], [("x", [])], title="Nothing")))
    assert svgchart.nice_ceiling(0) == 1
    assert [svgchart.nice_ceiling(v) for v in (7, 12, 24, 180, 1000)] == [10, 20, 25, 200, 1000]
    assert [svgchart.minutes(v) for v in (0, 59.6, 600, 3725)] == ["0:00", "1:00", "10:00", "1:02:05"]


def test_time_axes_step_in_round_minutes() -> None:
    assert [svgchart.time_ceiling(v) for v in (0, 50, 241, 1476, 3000, 50000)] == \
        [60, 60, 480, 2400, 3600, 86400]
    svg = str(svgchart.bar_chart(["a"], [("Wait", [1476])], title="t", fmt=svgchart.minutes,
                                 scale=svgchart.time_ceiling))
    ticks = [t.text for t in ET.fromstring(svg).findall(f"{SVG}text") if t.get("text-anchor") == "end"]
    assert ticks == ["0:00", "10:00", "20:00", "30:00", "40:00"]


def test_sites_in_other_time_zones_show_local_times(
    sqlite_url: str, make_store: Any, tmp_path: Path, clock: Clock
) -> None:
    demo = Path(__file__).resolve().parents[2] / "examples" / "demo-site.toml"
    site = tmp_path / "tokyo.toml"
    site.write_text(demo.read_text().replace('timezone = "UTC"', 'timezone = "Asia/Tokyo"'))
    store = make_store(sqlite_url, site)
    set_user(store, "boss", "admin", PASSWORD)
    coordinator = Coordinator(store, clock=clock)
    clock.now = datetime(2026, 3, 10, 16, 30, tzinfo=UTC)  # 01:30 on the 11th in Tokyo
    coordinator.issue_ticket("cash", channel=Channel.KIOSK)
    client = create_app(coordinator, config={"SECRET_KEY": "tz"}).test_client()
    assert sign_in(client, "boss").status_code == 302
    body = client.get("/admin/stats/tickets.csv?from=2026-03-11&to=2026-03-11").get_data(as_text=True)
    assert "2026-03-11T01:30:00+09:00" in body
    page = client.get("/admin/dashboard").get_data(as_text=True)
    assert "Updated 01:30:00" in text_of(page)
    stats_page = client.get("/admin/stats?from=2026-03-11&to=2026-03-11").get_data(as_text=True)
    assert "01: Cash desk 1" in html.unescape(stats_page)  # the bar of the local hour
