"""Helpers many test modules share: waiting until something holds, a hand-moved clock, signing in
to the staff pages, and playing a device over MQTT.

The MQTT helpers take a conftest ``MqttPeer`` (from the ``mqtt_peer`` fixture) logged in as
the device, and speak the contract of site ``main`` unless given other ``topics``.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from nextup.contract import Board, PointState, TicketReply, Topics

TIMEOUT = 5.0
TOPICS = Topics("main")
PASSWORD = "correct horse battery staple"
"""The password the web tests give the people they make."""
CSRF_TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def wait_until(predicate: Callable[[], Any], timeout: float = TIMEOUT, what: str = "condition",
               every: float = 0.01) -> Any:
    """Poll ``predicate`` until it returns something true; its value, or TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(every)


class Clock:
    """A clock the test moves by hand (``now``, ``advance``), for code that takes a clock."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def csrf_token(page: str) -> str:
    """The CSRF token of the first form on a staff page."""
    found = CSRF_TOKEN.search(page)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def sign_in(client: Any, name: str, password: str = PASSWORD) -> Any:
    """Sign ``name`` in on a Flask test client's staff sign-in form; the response (302 when it worked)."""
    page = client.get("/admin/login").get_data(as_text=True)
    form = {"csrf_token": csrf_token(page), "name": name, "password": password}
    return client.post("/admin/login", data=form)


def command(peer: Any, device: str, action: str, command_id: str | None = None, *,
            topics: Topics = TOPICS) -> str:
    """Press a point unit's button: publish its command (the broker must accept it); the command id."""
    command_id = command_id or uuid.uuid4().hex
    payload = json.dumps({"command_id": command_id, "action": action})
    assert not peer.publish(topics.command(device), payload).is_failure
    return command_id


def wait_state(peer: Any, serial: int, command_id: str, *, topics: Topics = TOPICS,
               timeout: float | None = None) -> PointState:
    """The state of point ``serial`` once it reflects ``command_id`` (``peer`` subscribed to it)."""
    while True:
        msg = peer.next_message(timeout)
        if msg.topic == topics.point_state(serial):
            state = PointState.parse(msg.payload)
            if state.last_command_id == command_id:
                return state


def latest_board(peer: Any, version_at_least: int, *, topics: Topics = TOPICS) -> Board:
    """The first board of at least ``version_at_least`` (``peer`` subscribed to the board)."""
    while True:
        msg = peer.next_message()
        if msg.topic == topics.board:
            board = Board.parse(msg.payload)
            if board.version >= version_at_least:
                return board


def request_ticket(peer: Any, service: str, request_id: str | None = None, *, kiosk: str = "kiosk-1",
                   topics: Topics = TOPICS, **extra: Any) -> TicketReply:
    """Send a kiosk ticket request with an MQTT 5 response topic and wait for its reply."""
    request_id = request_id or uuid.uuid4().hex
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = topics.ticket_reply(kiosk)
    props.CorrelationData = request_id.encode()
    payload = json.dumps({"request_id": request_id, "service": service, **extra})
    peer.client.publish(topics.ticket_request(kiosk), payload, qos=1, properties=props)
    while True:
        msg = peer.next_message()
        if msg.topic == topics.ticket_reply(kiosk):
            reply = TicketReply.parse(msg.payload)
            if reply.request_id == request_id:
                assert msg.properties.CorrelationData == request_id.encode()
                return reply
