"""The public pages through Flask's test client over a real store: take a ticket, follow it, the board."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from flask import Flask
from flask.testing import FlaskClient

from central.coordinator import Coordinator, Message
from central.domain import PointAction
from central.web import create_app, live
from central.web.live import LiveHub

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TRANSLATIONS = Path(__file__).resolve().parents[2] / "central" / "web" / "translations"
TOKEN_PATH = re.compile(r"^/t/([A-Za-z0-9_-]+)$")


def site_file(tmp_path: Path, *, extra: str = "", replace: tuple[tuple[str, str], ...] = ()) -> Path:
    """The demo site with ``extra`` TOML added (e.g. opening hours) and texts replaced."""
    text = (EXAMPLES / "demo-site.toml").read_text()
    for old, new in replace:
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "site.toml"
    path.write_text(text.replace("[[priority]]", extra + "\n[[priority]]", 1) if extra else text)
    return path


@pytest.fixture
def make_web(make_store: Callable[..., Any], sqlite_url: str) -> Callable[..., tuple[Flask, Coordinator]]:
    def make(site: Path | None = None, *, clock: Callable[[], datetime] | None = None,
             **config: Any) -> tuple[Flask, Coordinator]:
        store = make_store(sqlite_url, site) if site else make_store(sqlite_url)
        kwargs = {"clock": clock} if clock else {}
        coordinator = Coordinator(store, public_url="http://queue.test", **kwargs)
        return create_app(coordinator, config={"TESTING": True, **config}), coordinator

    return make


@pytest.fixture
def web(make_web: Callable[..., tuple[Flask, Coordinator]]) -> tuple[Flask, Coordinator]:
    return make_web()


def csrf_token(client: FlaskClient, path: str = "/") -> str:
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "the page has no CSRF token"
    return match.group(1)


def take(client: FlaskClient, service: str = "cash", **form: str) -> str:
    """Take a ticket through the front page's form; its token."""
    answer = client.post("/tickets", data={"csrf_token": csrf_token(client), "service": service, **form})
    assert answer.status_code == 303, answer.get_data(as_text=True)
    match = TOKEN_PATH.match(answer.headers["Location"])
    assert match, answer.headers["Location"]
    return match.group(1)


def waiting(coordinator: Coordinator, service: str = "cash") -> int:
    return dict((s.key, n) for s, n in coordinator.services())[service]


def call_next(coordinator: Coordinator, serial: int, command_id: str) -> None:
    result = coordinator.point_command(serial, PointAction.NEXT, command_id=command_id, source="test")
    assert result.ok, result.error


def events(response: Any) -> Iterator[tuple[str, str]]:
    """(event name, data) of a streamed text/event-stream response, as they come; comments as ("", text)."""
    buffer = ""
    for chunk in response.response:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
            if block.startswith(":"):
                yield "", block
            elif "event" in fields:
                yield fields["event"], fields["data"]


# --- the front page ---------------------------------------------------------------


def test_the_front_page_lists_the_active_services_with_how_many_wait(web: tuple[Flask, Coordinator]) -> None:
    app, coordinator = web
    client = app.test_client()
    take(client, "loans")
    take(client, "loans")
    page = client.get("/").get_data(as_text=True)
    assert '<html lang="en">' in page
    for name, description in [("Cash desk", "Deposits and withdrawals"),
                              ("Loans", "Mortgages and personal loans"),
                              ("Accounts", "Opening and closing accounts")]:
        assert name in page and description in page
    assert "2 people waiting" in page and "0 people waiting" in page
    # one public class only: no choice to make
    assert 'name="priority"' not in page


def test_one_tap_takes_a_ticket_and_leads_to_its_page(web: tuple[Flask, Coordinator]) -> None:
    app, coordinator = web
    client = app.test_client()
    token = take(client, "cash")
    view = coordinator.ticket(token)
    assert (view.number, view.state, view.language) == ("A-001", "waiting", "en")
    page = client.get(f"/t/{token}").get_data(as_text=True)
    assert "A-001" in page and "Cash desk" in page and "You are next." in page


def test_a_form_without_its_csrf_token_is_refused_and_takes_no_ticket(make_web: Callable[..., Any]) -> None:
    app, coordinator = make_web(WTF_CSRF_ENABLED=True)
    client = app.test_client()
    refused = client.post("/tickets", data={"service": "cash"})
    assert refused.status_code == 400
    assert "This form has expired" in refused.get_data(as_text=True)
    forged = client.post("/tickets", data={"service": "cash", "csrf_token": "forged"})
    assert forged.status_code == 400
    assert waiting(coordinator) == 0


def test_the_public_chooses_among_the_public_classes_only(
    tmp_path: Path, make_web: Callable[..., Any],
) -> None:
    site = site_file(tmp_path, replace=(
        ('key = "free"\nname = "Free"',
         'key = "senior"\nname = "Seniors"\n\n[[priority]]\nkey = "free"\nname = "Free"'),
        ("priority_ratio = [3, 1]", "priority_ratio = [3, 2, 1]"),
    ))
    app, coordinator = make_web(site, **{"TICKET_RATE_LIMIT": "1000 per minute"})
    client = app.test_client()
    page = client.get("/").get_data(as_text=True)
    assert re.findall(r'name="priority" value="([a-z]+)"', page)[:2] == ["senior", "free"]
    assert 'value="paid"' not in page

    senior = take(client, "cash", priority="senior")
    assert coordinator.ticket(senior).number == "A-001"
    refused = client.post("/tickets",
                          data={"csrf_token": csrf_token(client), "service": "cash", "priority": "paid"})
    assert refused.status_code == 403
    assert "That kind of ticket is not given out here." in refused.get_data(as_text=True)
    assert waiting(coordinator) == 1


@pytest.mark.parametrize(("form", "status", "message"), [
    ({"service": ""}, 400, "Please choose a service."),
    ({"service": "nope"}, 404, "There is no such service."),
])
def test_a_bad_choice_gets_a_clear_message_and_no_ticket(
    web: tuple[Flask, Coordinator], form: dict[str, str], status: int, message: str,
) -> None:
    app, coordinator = web
    client = app.test_client()
    answer = client.post("/tickets", data={"csrf_token": csrf_token(client), **form})
    assert answer.status_code == status
    assert message in answer.get_data(as_text=True)
    assert sum(n for _, n in coordinator.services()) == 0


def test_taking_tickets_too_fast_is_refused_with_a_friendly_page(make_web: Callable[..., Any]) -> None:
    app, coordinator = make_web(TICKET_RATE_LIMIT="3 per minute")
    client = app.test_client()
    for _ in range(3):
        take(client)
    refused = client.post("/tickets", data={"csrf_token": csrf_token(client), "service": "cash"})
    assert refused.status_code == 429
    assert "Too many tickets" in refused.get_data(as_text=True)
    assert waiting(coordinator) == 3
    # another client address still may
    other = client.post("/tickets", data={"csrf_token": csrf_token(client), "service": "cash"},
                        environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert other.status_code == 303


def test_a_closed_site_says_when_it_opens_and_issues_nothing(
    tmp_path: Path, make_web: Callable[..., Any],
) -> None:
    site = site_file(tmp_path, extra='[hours]\nmon = ["09:00-12:00"]\n')
    tuesday_noon = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)
    app, coordinator = make_web(site, clock=lambda: tuesday_noon)
    client = app.test_client()
    page = client.get("/").get_data(as_text=True)
    assert "We are closed." in page
    assert "We open again on Monday, March 9, 2026 at 09:00." in page
    assert re.search(r'<button type="submit" class="take"[^>]*\sdisabled>', page)

    refused = client.post("/tickets", data={"csrf_token": csrf_token(client), "service": "cash"})
    assert refused.status_code == 409
    assert "We open again on Monday, March 9, 2026 at 09:00." in refused.get_data(as_text=True)
    assert waiting(coordinator) == 0

    german = client.get("/", headers={"Accept-Language": "de-DE,de;q=0.9"}).get_data(as_text=True)
    assert "Wir öffnen wieder am Montag, 9. März 2026 um 09:00 Uhr." in german


def test_a_site_opening_later_today_says_so(tmp_path: Path, make_web: Callable[..., Any]) -> None:
    site = site_file(tmp_path, extra='[hours]\nmon = ["09:00-12:00"]\n')
    app, _ = make_web(site, clock=lambda: datetime(2026, 3, 9, 7, 30, tzinfo=UTC))
    assert "We open again today at 09:00." in app.test_client().get("/").get_data(as_text=True)


# --- the ticket page ---------------------------------------------------------------


def test_the_ticket_page_shows_people_ahead_and_the_estimated_wait(web: tuple[Flask, Coordinator]) -> None:
    app, coordinator = web
    client = app.test_client()
    for _ in range(3):
        take(client)
    token = take(client)
    answer = client.get(f"/t/{token}")
    page = answer.get_data(as_text=True)
    assert "A-004" in page
    assert "3 people ahead of you" in page
    assert re.search(r"Estimated wait: about \d+ min", page)
    assert 'aria-live="polite"' in page
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["Referrer-Policy"] == "no-referrer"


def test_the_ticket_page_reveals_nothing_of_other_tickets(web: tuple[Flask, Coordinator]) -> None:
    app, coordinator = web
    client = app.test_client()
    first = take(client)
    second = take(client)
    page = client.get(f"/t/{second}").get_data(as_text=True)
    assert "A-002" in page
    assert "A-001" not in page and first not in page


def test_a_called_ticket_says_where_to_go(web: tuple[Flask, Coordinator]) -> None:
    app, coordinator = web
    client = app.test_client()
    token = take(client)
    call_next(coordinator, 1, "c1")
    page = client.get(f"/t/{token}").get_data(as_text=True)
    assert "It&#39;s your turn!" in page or "It's your turn!" in page
    assert "Go to Window 1" in page
    assert "state-called" in page
    assert 'id="cancel"' not in page


def test_an_unknown_ticket_is_a_404_that_reveals_nothing(web: tuple[Flask, Coordinator]) -> None:
    app, coordinator = web
    client = app.test_client()
    real = take(client)
    for token in ["x" * 32, real[:-1], "a" * 300, "A-001", "%00"]:
        answer = client.get(f"/t/{token}")
        assert answer.status_code == 404, token
        page = answer.get_data(as_text=True)
        assert "There is no ticket at this address." in page
        assert "A-001" not in page.replace(token, "") and real not in page
    assert client.get(f"/t/{'x' * 32}/events").status_code == 404
    no_csrf = client.post(f"/t/{'x' * 32}/cancel", data={"csrf_token": csrf_token(client)})
    assert no_csrf.status_code == 404


def test_cancelling_gives_up_the_place_once(web: tuple[Flask, Coordinator]) -> None:
    app, coordinator = web
    client = app.test_client()
    token = take(client)
    refused = client.post(f"/t/{token}/cancel")
    assert refused.status_code == 400
    assert coordinator.ticket(token).state == "waiting"

    done = client.post(f"/t/{token}/cancel", data={"csrf_token": csrf_token(client)})
    assert done.status_code == 303 and done.headers["Location"] == f"/t/{token}"
    assert coordinator.ticket(token).state == "cancelled"
    page = client.get(f"/t/{token}").get_data(as_text=True)
    assert "You have cancelled this ticket." in page and "Take a new ticket" in page

    again = client.post(f"/t/{token}/cancel", data={"csrf_token": csrf_token(client)})
    assert again.status_code == 409
    assert "This ticket can no longer be cancelled." in again.get_data(as_text=True)


def test_the_pages_speak_german_to_a_german_browser(web: tuple[Flask, Coordinator]) -> None:
    app, coordinator = web
    client = app.test_client()
    german = {"Accept-Language": "de-CH, de;q=0.9, en;q=0.5"}
    front = client.get("/", headers=german).get_data(as_text=True)
    assert '<html lang="de">' in front
    assert "Ticket ziehen" in front and "0 Personen warten" in front
    answer = client.post("/tickets", headers=german,
                         data={"csrf_token": csrf_token(client), "service": "cash"})
    token = TOKEN_PATH.match(answer.headers["Location"]).group(1)
    assert coordinator.ticket(token).language == "de"
    take(client)
    later = take(client)
    page = client.get(f"/t/{later}", headers=german).get_data(as_text=True)
    assert "Ihr Ticket" in page and "2 Personen vor Ihnen" in page
    assert "Bitte zu {point}" in page  # the live script's words come translated too
    assert "Ticket nicht gefunden" in client.get("/t/nothing", headers=german).get_data(as_text=True)
    board = client.get("/board", headers=german).get_data(as_text=True)
    assert "Wartende" in board and '<html lang="de">' in board


def test_the_compiled_german_catalog_matches_its_source() -> None:
    folder = TRANSLATIONS / "de" / "LC_MESSAGES"
    def entries(catalog: Any) -> dict[Any, Any]:
        return {_tuple(m.id): _tuple(m.string) for m in catalog if m.id}

    with open(folder / "messages.po", "rb") as f:
        source = entries(read_po(f))
    with open(folder / "messages.mo", "rb") as f:
        compiled = entries(read_mo(f))
    assert compiled == source, "run: pybabel compile -d central/web/translations"
    assert all(all(v) if isinstance(v, tuple) else v for v in source.values()), "every message has German"


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list | tuple) else value


# --- live updates -----------------------------------------------------------------


def test_the_ticket_stream_sends_the_ticket_then_each_change(web: tuple[Flask, Coordinator]) -> None:
    app, coordinator = web
    client = app.test_client()
    first = take(client)
    mine = take(client)
    response = client.get(f"/t/{mine}/events")
    assert response.mimetype == "text/event-stream"
    stream = (e for e in events(response) if e[0])
    name, data = next(stream)
    assert name == "ticket" and '"ahead":1' in data and '"number":"A-002"' in data
    assert first not in data and mine not in data  # the token stays in the URL, never in the data

    call_next(coordinator, 1, "c1")
    name, data = next(stream)
    assert '"ahead":0' in data

    call_next(coordinator, 1, "c2")
    name, data = next(stream)
    assert '"state":"called"' in data and '"point_name":"Window 1"' in data
    coordinator.point_command(1, PointAction.SERVED, command_id="c3", source="test")
    name, data = next(stream)
    assert '"state":"served"' in data
    assert next(stream, None) is None, "a finished ticket's stream ends"
    response.close()
    assert live.hub(app).open_streams == 0


def test_the_board_stream_and_page_show_each_call(web: tuple[Flask, Coordinator]) -> None:
    app, coordinator = web
    client = app.test_client()
    take(client, "loans")
    take(client, "cash")
    page = client.get("/board").get_data(as_text=True)
    assert "Demo branch" in page and "Welcome! Please take a ticket." in page
    response = client.get("/board/events")
    stream = (e for e in events(response) if e[0])
    name, data = next(stream)
    assert name == "board" and '"calls":[]' in data

    call_next(coordinator, 3, "c1")  # Window 3: loans
    name, data = next(stream)
    board = json.loads(data)
    assert board["calls"][0] | {"at": None} == {"number": "B-001", "point": 3, "point_name": "Window 3",
                                                 "service": "loans", "service_name": "Loans", "at": None}
    assert {w["key"]: w["count"] for w in board["waiting"]} == {"cash": 1, "loans": 0, "accounts": 0}
    response.close()

    page = client.get("/board").get_data(as_text=True)
    assert re.search(r'class="call newest"[^>]*>\s*<span class="call-number">B-001</span>', page)
    polled = client.get("/board.json").get_json()
    assert polled["calls"][0]["point_name"] == "Window 3"
    # by prefix, as the hall reads them
    assert [w["key"] for w in polled["waiting"]] == ["cash", "loans", "accounts"]


def test_streams_beat_and_end_after_their_lifetime(make_web: Callable[..., Any]) -> None:
    app, _ = make_web(LIVE_LIFETIME_S=0.5, LIVE_HEARTBEAT_S=0.05)
    response = app.test_client().get("/board/events")
    seen = list(events(response))  # ends by itself
    assert seen[0][0] == "board"
    assert ("", ": heartbeat") in seen
    assert live.hub(app).open_streams == 0


def test_a_full_hub_turns_new_streams_to_polling(make_web: Callable[..., Any]) -> None:
    app, coordinator = make_web(LIVE_MAX_STREAMS=1)
    client = app.test_client()
    token = take(client)
    held = client.get("/board/events")
    assert held.status_code == 200
    turned = client.get(f"/t/{token}/events")
    assert turned.status_code == 204
    assert client.get(f"/api/v1/tickets/{token}").get_json()["number"] == "A-001"
    held.close()
    freed = client.get(f"/t/{token}/events")
    assert freed.status_code == 200
    freed.close()


def test_a_slow_client_loses_old_messages_and_never_holds_up_the_coordinator(
    web: tuple[Flask, Coordinator],
) -> None:
    _, coordinator = web
    hub = LiveHub(coordinator, queue_size=3)
    slow = hub.subscribe()
    quiet = hub.subscribe(lambda topic: topic.endswith("/nothing"))
    assert slow is not None and quiet is not None
    batches = [[Message(f"nextup/main/x/{i}", b"{}")] for i in range(10)]
    done = threading.Event()

    def publish() -> None:
        for batch in batches:
            hub.publish(batch)
        done.set()

    threading.Thread(target=publish).start()
    assert done.wait(5), "the listener blocked on a client nobody reads"
    assert [m.topic for m in slow.wait(0)] == ["nextup/main/x/7", "nextup/main/x/8", "nextup/main/x/9"]
    assert slow.dropped == 7
    assert quiet.wait(0) == []
    hub.close()
    assert slow.closed and quiet.closed and hub.open_streams == 0
    assert hub.subscribe() is None


def test_the_hub_hears_the_coordinator_once_per_app(web: tuple[Flask, Coordinator]) -> None:
    app, coordinator = web
    hub = live.hub(app)
    assert live.init_app(app) is hub
    assert coordinator._listeners.count(hub.publish) == 1
