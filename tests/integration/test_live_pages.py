"""Ticket pages following their tickets live through central's own HTTP server (waitress, real broker).

A hall full of phones watches: every page's stream must show its own people
ahead after each call, more pages than a handful must stream at once, the
queue must be read once per change for all of them, and pages over the cap
must still learn of the call by polling.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from central.coordinator import Coordinator, TicketView
from central.domain import Channel
from central.web import live, positions

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
OLD_CAP = 24  # streams central served at most before it made a thread for each


class Page:
    """One ticket page's EventSource: the ``ticket`` events of ``/t/<token>/events``, as they come."""

    def __init__(self, base: str, token: str) -> None:
        self.token = token
        self.response = urllib.request.urlopen(f"{base}/t/{token}/events", timeout=20)
        self.status = self.response.status

    def tickets(self) -> Iterator[dict[str, Any]]:
        event = None
        for raw in self.response:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[len("event: "):]
            elif line.startswith("data: ") and event == "ticket":
                yield json.loads(line[len("data: "):])

    def next_ticket(self) -> dict[str, Any]:
        return next(self.tickets())

    def close(self) -> None:
        self.response.close()


def base_url(central: Any) -> str:
    return f"http://127.0.0.1:{central.http_port}"


def issue(coordinator: Coordinator, count: int, service: str = "cash") -> list[TicketView]:
    return [coordinator.issue_ticket(service, channel=Channel.WEB) for _ in range(count)]


def call_next(coordinator: Coordinator, serial: int = 1) -> None:
    result = coordinator.point_command(serial, "next", command_id=uuid.uuid4().hex, source="test")
    assert result.ok, result.error


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def test_a_live_page_shows_its_people_ahead_after_each_call(central: Any) -> None:
    c = central.coordinator
    tickets = issue(c, 6)
    third, sixth = Page(base_url(central), tickets[2].token), Page(base_url(central), tickets[5].token)
    assert (third.next_ticket()["ahead"], sixth.next_ticket()["ahead"]) == (2, 5)

    call_next(c)
    assert (third.next_ticket()["ahead"], sixth.next_ticket()["ahead"]) == (1, 4)
    assert c.ticket(tickets[5].token).ahead == 4
    call_next(c)
    assert (third.next_ticket()["ahead"], sixth.next_ticket()["ahead"]) == (0, 3)

    call_next(c)
    called = third.next_ticket()
    assert (called["state"], called["number"]) == ("called", tickets[2].number)
    assert called["point_name"] == "Window 1"
    assert sixth.next_ticket() | {"eta_s": None} == {
        "number": tickets[5].number, "service": "cash", "service_name": "Cash desk", "state": "waiting",
        "ahead": 2, "eta_s": None, "point": None, "point_name": None, "called_at": None}
    third.close()
    sixth.close()


def test_a_live_page_follows_its_ticket_to_another_service(central: Any) -> None:
    c = central.coordinator
    issue(c, 2, "loans")
    mine = issue(c, 1)[0]
    page = Page(base_url(central), mine.token)
    assert page.next_ticket()["ahead"] == 0
    call_next(c)
    assert page.next_ticket()["state"] == "called"
    moved = c.point_command(1, "transfer", command_id="t1", source="test", service="loans")
    assert moved.ok, moved.error
    now = page.next_ticket()
    assert (now["state"], now["service"], now["ahead"], now["point"]) == ("waiting", "loans", 2, None)
    page.close()


def test_many_pages_stream_at_once_and_share_one_read_of_the_queue(central: Any) -> None:
    c = central.coordinator
    pages_count = OLD_CAP * 5
    tickets = issue(c, pages_count + 1)
    base = base_url(central)
    pages = [Page(base, t.token) for t in tickets[1:]]
    assert {p.status for p in pages} == {200}
    assert [p.next_ticket()["ahead"] for p in pages] == list(range(1, pages_count + 1))
    assert live.hub(central.app).open_streams == pages_count
    # Every stream holds a thread, and ordinary requests are still answered beside them.
    assert get_json(f"{base}/api/v1/tickets/{tickets[-1].token}")["ahead"] == pages_count

    order = positions.positions(central.app)
    reads = order.reads
    call_next(c)
    assert [p.next_ticket()["ahead"] for p in pages] == list(range(pages_count))
    assert order.reads == reads + 1, "the queue is read once for all the pages of a change"
    for page in pages:
        page.close()


def test_pages_over_the_cap_poll_and_learn_of_the_call(make_central: Callable[..., Any]) -> None:
    central = make_central(web_config={"LIVE_MAX_STREAMS": 2})
    c = central.coordinator
    tickets = issue(c, 4)
    base = base_url(central)
    streaming = [Page(base, t.token) for t in tickets[1:3]]
    over = Page(base, tickets[3].token)
    assert [p.status for p in streaming] == [200, 200]
    assert over.status == 204  # EventSource stops; the page polls the API instead
    over.close()
    assert get_json(f"{base}/api/v1/tickets/{tickets[3].token}")["ahead"] == 3

    call_next(c)
    assert [p.next_ticket()["ahead"] for p in streaming] == [1, 2]  # their first event, as opened
    assert [p.next_ticket()["ahead"] for p in streaming] == [0, 1]
    assert get_json(f"{base}/api/v1/tickets/{tickets[3].token}")["ahead"] == 2
    for page in streaming:
        page.close()


# --- the shared order against the coordinator's own answer -----------------------------------------


POLICIES = {
    "ratio": "",  # the demo site's: 3 paid, then 1 free
    "aging": 'priority_policy = "aging"\naging_after_s = 120\n',
    "strict": 'priority_policy = "strict"\n',
}


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_the_shared_order_gives_every_ticket_what_the_coordinator_gives(
    policy: str, tmp_path: Path, make_store: Callable[..., Any], sqlite_url: str
) -> None:
    text = (EXAMPLES / "demo-site.toml").read_text()
    if POLICIES[policy]:
        text = text.replace('priority_policy = "ratio"\npriority_ratio = [3, 1]\n', POLICIES[policy])
        assert POLICIES[policy] in text
    site = tmp_path / "site.toml"
    site.write_text(text)
    moment = [datetime(2026, 3, 2, 9, 0, tzinfo=UTC)]
    c = Coordinator(make_store(sqlite_url, site), clock=lambda: moment[0])
    tokens = []
    for i in range(24):  # paid and free mixed, over 12 minutes: the aging policy lifts the early ones
        moment[0] += timedelta(seconds=30)
        tokens.append(c.issue_ticket(["cash", "loans"][i % 2], "paid" if i % 3 == 0 else "free",
                                     channel=Channel.KIOSK).token)
    call_next(c, 4)
    order = positions.Positions(c)
    for token in tokens:
        assert order.ticket(token) == c.ticket(token), token
    assert order.reads == 1
