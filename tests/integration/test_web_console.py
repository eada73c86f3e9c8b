"""The specialist console: the point's buttons in a browser, with the hardware unit's dedupe."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from helpers import PASSWORD, TOPICS, command, csrf_token, sign_in, wait_state
from sqlalchemy import func, select

from central.coordinator import Coordinator
from central.domain import Channel
from central.store.models import PointRow, TicketEventRow, TicketRow, UserRow
from central.users import set_user
from central.web import create_app


def button(page: str, action: str) -> dict[str, str]:
    """The hidden fields of the console form that does ``action``."""
    found = re.search(rf'<form method="post" action="/console/\d+/{action}"[^>]*>(.*?)</form>', page, re.S)
    assert found, f"no {action} button on the page"
    fields = dict(
        re.findall(r'<input id="[^"]*" name="([^"]+)" type="hidden" value="([^"]*)"', found.group(1))
    )
    assert set(fields) == {"csrf_token", "command_id"}
    assert re.fullmatch(r"[0-9a-f]{32}", fields["command_id"])
    return fields


def current_number(page: str) -> str:
    found = re.search(r'id="current-number">([^<]+)<', page)
    assert found
    return found.group(1).strip()


def queue_numbers(page: str) -> list[str]:
    found = re.search(r'<ol id="queue">(.*?)</ol>', page, re.S)
    return re.findall(r'<span class="num">([^<]+)</span>', found.group(1)) if found else []


def add_staff(store: Any) -> None:
    set_user(store, "boss", "admin", PASSWORD)
    set_user(store, "sam", "specialist", PASSWORD)
    with store.write() as s:
        sam = s.scalars(select(UserRow).where(UserRow.name == "sam")).one()
        sam.points = list(s.scalars(select(PointRow).where(PointRow.serial.in_([1, 2]))))


def user_id(store: Any, name: str) -> int:
    with store.read() as s:
        return s.scalars(select(UserRow.id).where(UserRow.name == name)).one()


@pytest.fixture
def site(sqlite_url: str, make_store: Any) -> Any:
    store = make_store(sqlite_url)
    add_staff(store)
    return store


@pytest.fixture
def coordinator(site: Any) -> Coordinator:
    return Coordinator(site)


@pytest.fixture
def app(coordinator: Coordinator) -> Any:
    return create_app(coordinator, config={"SECRET_KEY": "test-secret-key-for-the-console-tests"})


@pytest.fixture
def sam(app: Any) -> Any:
    client = app.test_client()
    assert sign_in(client, "sam").location == "/console/"
    return client


def pick(client: Any, serial: int) -> Any:
    page = client.get("/console/", follow_redirects=True).get_data(as_text=True)
    token = csrf_token(page)
    return client.post("/console/pick", data={"csrf_token": token, "point": str(serial)})


def press(client: Any, serial: int, action: str, **extra: str) -> tuple[Any, dict[str, str]]:
    page = client.get(f"/console/{serial}").get_data(as_text=True)
    fields = button(page, action)
    return client.post(f"/console/{serial}/{action}", data={**fields, **extra}), fields


def test_specialist_picks_only_the_points_allowed(sam: Any, site: Any) -> None:
    page = sam.get("/console/").get_data(as_text=True)
    assert "Window 1" in page and "Window 2" in page and "Window 3" not in page
    assert pick(sam, 3).status_code == 403
    assert sam.get("/console/3").status_code == 403
    response = pick(sam, 2)
    assert response.status_code == 302 and response.location == "/console/2"
    with site.read() as s:
        assert s.scalars(select(PointRow.specialist_id).where(PointRow.serial == 2)).one() == user_id(
            site, "sam"
        )
        assert s.scalars(select(PointRow.specialist_id).where(PointRow.serial == 3)).one() is None
    # Back at /console the picked point opens directly.
    assert sam.get("/console/").location == "/console/2"


def test_a_specialist_works_at_one_point_at_a_time(sam: Any, site: Any) -> None:
    pick(sam, 1)
    pick(sam, 2)
    with site.read() as s:
        working = dict(s.execute(select(PointRow.serial, PointRow.specialist_id)).all())
    assert working[1] is None and working[2] == user_id(site, "sam")


def test_leaving_a_point_frees_it(sam: Any, site: Any) -> None:
    pick(sam, 1)
    page = sam.get("/console/1").get_data(as_text=True)
    token = csrf_token(page)
    assert sam.post("/console/leave", data={"csrf_token": token}).location == "/console/"
    with site.read() as s:
        assert s.scalars(select(PointRow.specialist_id).where(PointRow.serial == 1)).one() is None
    assert "Where do you work today?" in sam.get("/console/").get_data(as_text=True)


def test_admin_may_work_at_any_point(app: Any) -> None:
    client = app.test_client()
    sign_in(client, "boss")
    page = client.get("/console/").get_data(as_text=True)
    assert all(f"Window {n}" in page for n in (1, 2, 3, 4))
    assert client.get("/console/3").status_code == 200


def test_queue_shows_waiting_tickets_in_call_order(sam: Any, coordinator: Coordinator) -> None:
    # Ratio 3 paid : 1 free, so a paid ticket issued later is called before the free ones.
    free = [coordinator.issue_ticket("cash", "free", channel=Channel.WEB).number for _ in range(2)]
    paid = coordinator.issue_ticket("cash", "paid", channel=Channel.KIOSK).number
    coordinator.issue_ticket("loans", channel=Channel.WEB)  # not a service of point 1
    page = sam.get("/console/1").get_data(as_text=True)
    assert queue_numbers(page) == [paid, *free]
    assert "3 waiting" in page


def test_next_served_no_show_and_recall_from_the_console(
    sam: Any, coordinator: Coordinator, site: Any
) -> None:
    a, b = (coordinator.issue_ticket("cash", "free", channel=Channel.WEB) for _ in range(2))
    pick(sam, 1)
    response, _ = press(sam, 1, "next")
    assert response.status_code == 302 and response.location == "/console/1"
    page = sam.get("/console/1").get_data(as_text=True)
    assert current_number(page) == a.number and queue_numbers(page) == [b.number]
    press(sam, 1, "recall")
    assert coordinator.ticket(a.token).state == "waiting"
    press(sam, 1, "next")
    press(sam, 1, "no_show")
    assert coordinator.ticket(a.token).state == "no_show"
    press(sam, 1, "next")
    press(sam, 1, "served")
    assert coordinator.ticket(b.token).state == "served"
    with site.read() as s:
        sam_id = user_id(site, "sam")
        kinds = [
            (e.kind, e.specialist_id)
            for e in s.scalars(
                select(TicketEventRow).where(TicketEventRow.kind != "issued").order_by(TicketEventRow.id)
            )
        ]
    assert kinds == [
        ("called", sam_id),
        ("recalled", sam_id),
        ("called", sam_id),
        ("no_show", sam_id),
        ("called", sam_id),
        ("served", sam_id),
    ]


def test_double_submitted_button_takes_effect_once(sam: Any, coordinator: Coordinator, site: Any) -> None:
    a, b = (coordinator.issue_ticket("cash", "free", channel=Channel.WEB) for _ in range(2))
    page = sam.get("/console/1").get_data(as_text=True)
    fields = button(page, "next")
    first = sam.post("/console/1/next", data=fields)
    second = sam.post("/console/1/next", data=fields)
    assert first.status_code == second.status_code == 302
    # The second "next" would have served A and called B; the repeat did nothing.
    assert coordinator.ticket(a.token).state == "called"
    assert coordinator.ticket(b.token).state == "waiting"
    with site.read() as s:
        assert s.scalar(select(func.count(TicketEventRow.id)).where(TicketEventRow.kind == "called")) == 1
    # A fresh page has fresh command ids, so the next press does go through.
    press(sam, 1, "next")
    assert coordinator.ticket(b.token).state == "called"


def test_each_drawn_button_has_its_own_command_id(sam: Any) -> None:
    first = button(sam.get("/console/1").get_data(as_text=True), "next")["command_id"]
    second = button(sam.get("/console/1").get_data(as_text=True), "next")["command_id"]
    assert first != second


def test_refused_action_shows_its_message(sam: Any) -> None:
    response, _ = press(sam, 1, "next")
    page = sam.get(response.location).get_data(as_text=True)
    assert "Nobody is waiting for the services of Window 1" in page
    assert "Nobody called" in page


def test_transfer_moves_the_ticket_to_another_service(sam: Any, coordinator: Coordinator) -> None:
    a = coordinator.issue_ticket("cash", "free", channel=Channel.WEB)
    press(sam, 1, "next")
    response, _ = press(sam, 1, "transfer", service="loans")
    assert response.status_code == 302
    view = coordinator.ticket(a.token)
    assert (view.state, view.service) == ("waiting", "loans")
    # Transfer to a service that does not exist is refused with its reason.
    b = coordinator.issue_ticket("cash", "free", channel=Channel.WEB)
    press(sam, 1, "next")
    response, _ = press(sam, 1, "transfer", service="nope")
    assert "nope" in sam.get("/console/1").get_data(as_text=True).lower()
    assert coordinator.ticket(b.token).state == "called"


def test_deactivate_and_activate_the_point(sam: Any, coordinator: Coordinator) -> None:
    press(sam, 1, "deactivate")
    assert coordinator.point_state(1).active is False
    page = sam.get("/console/1").get_data(as_text=True)
    assert "inactive" in page
    press(sam, 1, "activate")
    assert coordinator.point_state(1).active is True


def test_a_forged_command_id_is_refused(sam: Any, coordinator: Coordinator) -> None:
    coordinator.issue_ticket("cash", "free", channel=Channel.WEB)
    page = sam.get("/console/1").get_data(as_text=True)
    fields = button(page, "next")
    for bad in ("", "not-hex", "A" * 32, "0" * 31):
        assert sam.post("/console/1/next", data={**fields, "command_id": bad}).status_code == 400
    assert coordinator.point_state(1).current is None


def test_unknown_action_is_404(sam: Any) -> None:
    fields = button(sam.get("/console/1").get_data(as_text=True), "next")
    assert sam.post("/console/1/explode", data=fields).status_code == 404


# --- the console and the hardware unit at the same point, through the real broker -----------------


def test_hardware_press_and_console_click_stay_consistent(central: Any, mqtt_peer: Any) -> None:
    add_staff(central.coordinator.store)
    coordinator = central.coordinator
    tickets = [coordinator.issue_ticket("cash", "free", channel=Channel.WEB) for _ in range(3)]
    unit = mqtt_peer(central.device_urls["point-1"])
    unit.subscribe(TOPICS.point_state(1))
    console = central.app.test_client()
    sign_in(console, "sam")
    pick(console, 1)

    # The unit calls the first ticket; the console shows it.
    press_id = command(unit, "point-1", "next")
    assert wait_state(unit, 1, press_id).current.number == tickets[0].number
    page = console.get("/console/1").get_data(as_text=True)
    assert current_number(page) == tickets[0].number
    assert queue_numbers(page) == [t.number for t in tickets[1:]]

    # The console marks it a no-show; the unit's retained state learns it.
    response, fields = press(console, 1, "no_show")
    state = wait_state(unit, 1, fields["command_id"])
    assert state.current is None and state.waiting == 2
    assert coordinator.ticket(tickets[0].token).state == "no_show"

    # The unit's "next" and the console's "next", each delivered twice, call exactly two tickets.
    press_id = command(unit, "point-1", "next")
    command(unit, "point-1", "next", press_id)
    assert wait_state(unit, 1, press_id).current.number == tickets[1].number
    page = console.get("/console/1").get_data(as_text=True)
    fields = button(page, "next")
    console.post("/console/1/next", data=fields)
    console.post("/console/1/next", data=fields)
    state = wait_state(unit, 1, fields["command_id"])
    assert state.current.number == tickets[2].number and state.waiting == 0
    assert [coordinator.ticket(t.token).state for t in tickets] == ["no_show", "served", "called"]
    with coordinator.store.read() as s:
        calls = s.scalar(select(func.count(TicketEventRow.id)).where(TicketEventRow.kind == "called"))
        assert calls == 3
        called = s.scalars(select(TicketRow).where(TicketRow.state == "called")).one()
        assert called.specialist_id == user_id(coordinator.store, "sam")
    assert current_number(console.get("/console/1").get_data(as_text=True)) == tickets[2].number


def test_the_page_learns_of_changes_at_its_point_through_server_sent_events(
    sam: Any, coordinator: Coordinator
) -> None:
    page = sam.get("/console/1").get_data(as_text=True)
    rendered = json.loads(re.search(r"var rendered = (\"(?:[^\"\\]|\\.)*\");", page).group(1))
    response = sam.get("/console/1/events", buffered=False)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    chunks = response.iter_encoded()

    def next_signature() -> dict[str, Any]:
        for chunk in chunks:
            text = chunk.decode()
            if text.startswith("event: point"):
                return json.loads(json.loads(text.split("data: ", 1)[1])["signature"])
        raise AssertionError("the stream ended")

    try:
        assert next_signature() == json.loads(rendered)
        coordinator.issue_ticket("loans", channel=Channel.WEB)  # not served at point 1: no event
        a = coordinator.issue_ticket("cash", "free", channel=Channel.WEB)
        assert next_signature() == {"active": True, "current": None, "queue": [a.number], "waiting": 1}
        coordinator.point_command(1, "next", command_id=uuid.uuid4().hex, source="device:point-1")
        assert next_signature() == {"active": True, "current": a.number, "queue": [], "waiting": 0}
    finally:
        response.close()


def test_the_event_stream_is_for_the_points_a_specialist_may_work_at(sam: Any) -> None:
    assert sam.get("/console/3/events").status_code == 403
