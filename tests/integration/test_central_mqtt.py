"""Central through a real Mosquitto: kiosk requests, point commands, retained states."""

from __future__ import annotations

import contextlib
import json
import queue
import time
from typing import Any

import pytest
from helpers import TOPICS, command, latest_board, request_ticket, wait_state, wait_until
from sqlalchemy import text

from central.store.models import DeviceRow
from nextup.contract import Board, PointState, TicketReply


@pytest.fixture
def kiosk(central: Any, mqtt_peer: Any) -> Any:
    peer = mqtt_peer(central.device_urls["kiosk-1"])
    peer.subscribe(TOPICS.ticket_reply("kiosk-1"))
    return peer


@pytest.fixture
def point1(central: Any, mqtt_peer: Any) -> Any:
    peer = mqtt_peer(central.device_urls["point-1"])
    peer.subscribe(TOPICS.point_state(1))
    return peer


@pytest.fixture
def display(central: Any, mqtt_peer: Any) -> Any:
    peer = mqtt_peer(central.device_urls["display-1"])
    peer.subscribe(TOPICS.board)
    peer.subscribe(TOPICS.call)
    return peer


def test_kiosk_request_gets_a_numbered_ticket_on_its_response_topic(kiosk: Any) -> None:
    first = request_ticket(kiosk, "cash")
    second = request_ticket(kiosk, "cash")
    assert first.ok and second.ok
    assert (first.ticket.number, second.ticket.number) == ("A-001", "A-002")
    assert (first.ticket.ahead, second.ticket.ahead) == (0, 1)
    assert first.ticket.track_url.startswith("http://nextup.test/t/")


def test_ticket_is_called_served_and_the_board_shows_it(kiosk: Any, point1: Any, display: Any) -> None:
    ticket = request_ticket(kiosk, "cash").ticket
    command_id = command(point1, "point-1", "next")
    state = wait_state(point1, 1, command_id)
    assert state.current is not None and state.current.number == ticket.number
    assert state.last_error is None
    board = latest_board(display, state.version)
    assert board.calls[0].number == ticket.number and board.calls[0].point_name == "Window 1"

    served = command(point1, "point-1", "served")
    assert wait_state(point1, 1, served).current is None


def test_redelivered_request_is_answered_alike_and_issues_one_ticket(kiosk: Any, central: Any) -> None:
    first = request_ticket(kiosk, "cash", request_id="same-id")
    again = request_ticket(kiosk, "cash", request_id="same-id")
    assert again == first
    assert central.coordinator.services()[1][0].key == "cash"
    assert dict((s.key, n) for s, n in central.coordinator.services())["cash"] == 1


def test_redelivered_command_does_nothing_twice(kiosk: Any, point1: Any, central: Any) -> None:
    request_ticket(kiosk, "cash")
    request_ticket(kiosk, "cash")
    command(point1, "point-1", "next", command_id="press-1")
    state = wait_state(point1, 1, "press-1")
    command(point1, "point-1", "next", command_id="press-1")
    command(point1, "point-1", "served", command_id="press-2")
    wait_state(point1, 1, "press-2")
    waiting = dict((s.key, n) for s, n in central.coordinator.services())
    assert state.current.number == "A-001"
    assert waiting["cash"] == 1, "the repeated next must not have called A-002"


def test_refused_command_changes_nothing_and_says_why(point1: Any, central: Any) -> None:
    command_id = command(point1, "point-1", "next")
    state = wait_state(point1, 1, command_id)
    assert state.current is None
    assert state.last_error["code"] == "nothing_waiting"
    assert "Nobody is waiting" in state.last_error["message"]


def test_request_for_unknown_service_gets_a_readable_refusal(kiosk: Any) -> None:
    reply = request_ticket(kiosk, "nonsense")
    assert not reply.ok
    assert reply.error.code == "unknown_service"
    assert "nonsense" in reply.error.message


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[1,2]",
        b'{"request_id": 5, "service": "cash"}',
        b'{"service": "cash"}',
        b"\xff\xfe",
        b"[" * 15_000,
        b'{"request_id": "x", "service": "' + b"a" * 17_000 + b'"}',
    ],
)
def test_malformed_requests_change_nothing_and_central_stays_up(
    payload: bytes, kiosk: Any, central: Any
) -> None:
    kiosk.publish(TOPICS.ticket_request("kiosk-1"), payload)
    reply = request_ticket(kiosk, "cash")
    assert reply.ok and reply.ticket.number == "A-001"


def test_kiosk_cannot_send_point_commands(central: Any, mqtt_peer: Any, point1: Any) -> None:
    kiosk = mqtt_peer(central.device_urls["kiosk-1"])
    # The broker's ACL refuses it; central would refuse it too.
    assert kiosk.publish(
        TOPICS.command("point-1"), json.dumps({"command_id": "x", "action": "next"})
    ).is_failure
    central.bridge.handle(
        TOPICS.command("kiosk-1"), json.dumps({"command_id": "y", "action": "next"}).encode()
    )
    assert central.bridge.rejections.counts.get("not_permitted") == 1


def test_unknown_device_is_rejected_and_logged(central: Any) -> None:
    payload = json.dumps({"request_id": "r", "service": "cash"}).encode()
    central.bridge.handle(TOPICS.ticket_request("ghost-9"), payload)
    assert central.bridge.rejections.counts == {"unknown_device": 1}
    assert dict((s.key, n) for s, n in central.coordinator.services())["cash"] == 0


def test_central_republishes_retained_states_on_start(broker: Any, make_central: Any, mqtt_peer: Any) -> None:
    first = make_central()
    first.coordinator.issue_ticket("loans", channel=__import__("central.domain").domain.Channel.API)
    first.stop()
    broker.stop()
    broker.start()  # retained messages that were not saved are gone
    make_central()
    display = mqtt_peer(first.device_urls["display-1"])
    display.subscribe(TOPICS.board)
    board = Board.parse(display.next_message().payload)
    assert board.waiting["loans"] == 1


def test_a_burst_of_requests_is_answered_each_once_in_arrival_order(kiosk: Any, point1: Any) -> None:
    # Sent without waiting: central takes what has arrived into shared transactions.
    ids = [f"burst-{n}" for n in range(40)]
    for request_id in ids:
        payload = json.dumps({"request_id": request_id, "service": "cash"})
        kiosk.client.publish(TOPICS.ticket_request("kiosk-1"), payload, qos=1)
    replies = {}
    while len(replies) < len(ids):
        msg = kiosk.next_message()
        reply = TicketReply.parse(msg.payload)
        assert reply.request_id not in replies, "answered twice"
        replies[reply.request_id] = reply
    numbers = [replies[r].ticket.number for r in ids]
    assert numbers == [f"A-{n:03d}" for n in range(1, 41)]
    assert [replies[r].ticket.ahead for r in ids] == list(range(40))
    called = command(point1, "point-1", "next")
    assert wait_state(point1, 1, called).current.number == "A-001"


def test_a_device_status_is_recorded_and_not_sent_back_to_the_devices_topic(
    central: Any, broker: Any, mqtt_peer: Any
) -> None:
    watcher = mqtt_peer(broker.central_url)
    watcher.subscribe(TOPICS.device_status("kiosk-1"))
    kiosk = mqtt_peer(central.device_urls["kiosk-1"])
    status = {"online": True, "kind": "kiosk", "version": "test"}
    kiosk.client.publish(TOPICS.device_status("kiosk-1"), json.dumps(status), qos=1, retain=True)
    wait_until(lambda: _online(central, "kiosk-1"), what="the kiosk online")
    # Central listens on this topic: a copy of its own would come back to it, again and again.
    seen = []
    with contextlib.suppress(queue.Empty):
        while len(seen) < 10:
            seen.append(watcher.next_message(0.5))
    assert len(seen) == 1, f"{len(seen)} status messages or more: central sent the status back"


def _online(central: Any, device_id: str) -> bool:
    with central.coordinator.store.read() as s:
        return bool(s.get(DeviceRow, device_id).online)


def test_a_message_that_fails_unexpectedly_does_not_sink_the_others_of_its_batch(
    central: Any, kiosk: Any
) -> None:
    # A service gone from the database behind central's back (its cached rules still offer it):
    # issuing it fails with a database error, not a refusal central knows how to answer.
    with central.coordinator.store.write() as s:
        gone = "(SELECT id FROM services WHERE key = 'accounts')"
        s.execute(text(f"DELETE FROM point_services WHERE service_id = {gone}"))
        s.execute(text("DELETE FROM services WHERE key = 'accounts'"))
    batch = [
        (TOPICS.ticket_request("kiosk-1"), json.dumps({"request_id": rid, "service": service}).encode(), None)
        for rid, service in (("first", "cash"), ("broken", "accounts"), ("last", "cash"))
    ]
    central.bridge.handle_batch(batch)
    replies = {}
    with contextlib.suppress(queue.Empty):
        while True:
            reply = TicketReply.parse(kiosk.next_message(1).payload)
            replies[reply.request_id] = reply
    assert set(replies) == {"first", "last"}
    assert (replies["first"].ticket.number, replies["last"].ticket.number) == ("A-001", "A-002")


def _states_of(peer: Any, serial: int) -> list[PointState]:
    states = []
    with contextlib.suppress(queue.Empty):
        while True:
            msg = peer.next_message(0.3)
            if msg.topic == TOPICS.point_state(serial):
                states.append(PointState.parse(msg.payload))
    return states


@pytest.fixture
def point2(central: Any, mqtt_peer: Any) -> Any:
    """Point 2's unit (cash and accounts) following its state, the retained one already read."""
    peer = mqtt_peer(central.device_urls["point-2"])
    peer.subscribe(TOPICS.point_state(2))
    assert [s.waiting for s in _states_of(peer, 2)] == [0]
    return peer


def test_a_point_whose_only_news_is_its_waiting_count_waits_its_pause_but_a_pressed_one_does_not(
    central: Any, kiosk: Any, point1: Any, point2: Any
) -> None:
    central.bridge.hold_s = 60  # longer than the test: every count-only state of point 2 is held
    for _ in range(3):
        request_ticket(kiosk, "cash")
    called = wait_state(point1, 1, command(point1, "point-1", "next"))
    assert called.current.number == "A-001" and called.waiting == 2
    assert _states_of(point2, 2) == [], "point 2 only saw its count change: held for the pause"

    central.stop()  # what is held goes out before central leaves
    last = _states_of(point2, 2)
    assert [(s.waiting, s.version) for s in last] == [(2, called.version)]


def test_a_held_waiting_count_follows_after_the_pause_newest_only(
    central: Any, kiosk: Any, point2: Any
) -> None:
    central.bridge.hold_s = 0.5
    began = time.monotonic()
    for _ in range(12):
        request_ticket(kiosk, "cash")
    pauses = (time.monotonic() - began) / central.bridge.hold_s
    states = [point2.next_message()]
    while PointState.parse(states[-1].payload).waiting < 12:
        states.append(point2.next_message())
    counts = [PointState.parse(m.payload).waiting for m in states]
    assert counts == sorted(counts) and counts[-1] == 12
    assert len(counts) <= pauses + 2, f"{counts}: more than one state per pause"
    assert _states_of(point2, 2) == [], "nothing after the newest"


def test_a_held_count_overtaken_by_the_points_own_press_is_never_sent(
    central: Any, kiosk: Any, point2: Any
) -> None:
    central.bridge.hold_s = 60
    request_ticket(kiosk, "cash")
    request_ticket(kiosk, "cash")  # point 2's count (2) is held
    called = wait_state(point2, 2, command(point2, "point-2", "next"))
    assert (called.current.number, called.waiting) == ("A-001", 1)
    central.stop()
    assert _states_of(point2, 2) == [], "the held state is older than the one the press sent"
