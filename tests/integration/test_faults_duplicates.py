"""Duplicates: every device message delivered twice more, out of order, changes nothing beyond the first.

A replaying client with central's broker account listens to the device
topics while a kiosk and four point units work, then publishes every message
it saw twice again, shuffled, with its MQTT 5 properties (response topic,
correlation data) as they were.

Device statuses are left out on purpose: a status carries no id or sequence,
so an old "offline" delivered after a newer "online" would be believed; the
broker keeps one publisher's messages on a topic in order, so only a
replaying client could do that.
"""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

import pytest
from faults_support import TOPICS, Client, command, db_snapshot, ticket_request, wait_until

from nextup.contract import PointState, TicketReply

REPLAYED = ("ticket/request", "ticket/printed", "command", "ticket/offline", "lease/request")
SCRIPT = ("next", "recall", "next", "no_show", "next", "served", "deactivate", "next", "activate", "next",
          "served", "served")


def wait_state(peer: Client, serial: int, command_id: str) -> PointState:
    def seen() -> PointState | None:
        for message in peer.drain(0.05):
            state = PointState.parse(message.payload)
            if state.serial == serial and state.last_command_id == command_id:
                return state
        return None

    return wait_until(seen, 10, f"point {serial} to answer {command_id}")


def wait_reply(kiosk: Client, request_id: str, replies: dict[str, list[TicketReply]]) -> TicketReply:
    def seen() -> bool:
        for message in kiosk.drain(0.05):
            reply = TicketReply.parse(message.payload)
            assert message.properties.CorrelationData == reply.request_id.encode()
            replies.setdefault(reply.request_id, []).append(reply)
        return request_id in replies

    wait_until(seen, 10, f"the reply to {request_id}")
    return replies[request_id][0]


@pytest.mark.timeout(90)
def test_every_message_replayed_twice_out_of_order_changes_nothing(
        broker: Any, make_central: Any, sqlite_url: str) -> None:
    central = make_central(http=False)
    rng = random.Random(99)
    replayer = Client(broker.central_url)
    replayer.subscribe(*[f"{TOPICS.root}/device/+/{leaf}" for leaf in REPLAYED])
    kiosk = Client(central.device_urls["kiosk-1"])
    kiosk.subscribe(TOPICS.ticket_reply("kiosk-1"))
    points = {n: Client(central.device_urls[f"point-{n}"]) for n in (1, 2, 3, 4)}
    for n, peer in points.items():
        peer.subscribe(TOPICS.point_state(n))
    replies: dict[str, list[TicketReply]] = {}
    try:
        # A morning's work, each step answered before the next.
        for i in range(24):
            request_id = uuid.uuid4().hex
            kiosk.publish(TOPICS.ticket_request("kiosk-1"), ticket_request(request_id, rng.choice(
                ["cash", "loans", "accounts"])), response_topic=TOPICS.ticket_reply("kiosk-1"),
                correlation=request_id.encode())
            reply = wait_reply(kiosk, request_id, replies)
            report = {"request_id": request_id, "number": reply.ticket.number, "printed": i % 7 != 3}
            kiosk.wait_acked([kiosk.publish(TOPICS.ticket_printed("kiosk-1"), json.dumps(report))])
        for action in SCRIPT:
            for serial, peer in points.items():
                command_id = uuid.uuid4().hex
                peer.publish(TOPICS.command(f"point-{serial}"), command(command_id, action))
                wait_state(peer, serial, command_id)
        # Every message central got reached the replayer too.
        seen = wait_until(lambda: _collect(replayer, 24 * 2 + len(SCRIPT) * 4), 10,
                          "the replayer to see all")
        before = db_snapshot(sqlite_url)
        board_before = central.coordinator.board()
        first_replies = {k: v[0] for k, v in replies.items()}

        replay = seen * 2
        rng.shuffle(replay)
        for message in replay:
            props = message.properties
            replayer.publish(message.topic, message.payload,
                             response_topic=getattr(props, "ResponseTopic", None),
                             correlation=getattr(props, "CorrelationData", None))
        # The same publisher's messages reach central in order: an answered marker means all were handled.
        marker = next(m for m in seen if m.topic.endswith("/ticket/request"))
        replayer.publish(marker.topic, marker.payload, response_topic=TOPICS.ticket_reply("kiosk-1"),
                         correlation=b"marker")
        wait_until(lambda: any(m.properties.CorrelationData == b"marker" for m in _keep(kiosk, replies)),
                   30, "central to work through the replay")
    finally:
        for peer in [replayer, kiosk, *points.values()]:
            peer.close()

    assert db_snapshot(sqlite_url) == before
    assert central.coordinator.board() == board_before
    # Each request was answered again, alike.
    for request_id, answers in replies.items():
        assert all(a == first_replies[request_id] for a in answers), request_id
    assert sum(len(a) for a in replies.values()) >= len(first_replies) * 3
    assert sum(central.bridge.rejections.counts.values()) == 0


def _collect(replayer: Client, expected: int) -> list[Any] | None:
    got = getattr(replayer, "_seen", [])
    got += replayer.drain()
    replayer._seen = got  # type: ignore[attr-defined]
    return got if len(got) >= expected else None


def _keep(kiosk: Client, replies: dict[str, list[TicketReply]]) -> list[Any]:
    messages = kiosk.drain(0.05)
    for message in messages:
        reply = TicketReply.parse(message.payload)
        replies.setdefault(reply.request_id, []).append(reply)
    return messages
