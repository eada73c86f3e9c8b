"""The offline-kiosk topics through the real broker and the real central: rights, lease, answers."""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from central import leases
from central.store.models import TicketRow
from nextup.contract import NumberLease, OfflineTicket, OfflineTicketAck, Topics

NOT_AUTHORIZED = 135
topics = Topics("main")


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(leases, "LEASE_SIZE", 8)


@pytest.fixture
def kiosk(central: Any, mqtt_peer: Any) -> Any:
    peer = mqtt_peer(central.device_urls["kiosk-1"])
    peer.subscribe(topics.device_tree("kiosk-1"))
    return peer


def next_on(peer: Any, topic: str) -> Any:
    while True:
        message = peer.next_message()
        if message.topic == topic:
            return message


def ticket_count(central: Any) -> int:
    with central.store.read() as s:
        return s.scalar(select(func.count(TicketRow.id)))


def test_a_kiosk_asks_for_its_lease_and_gets_it_retained_on_its_own_topic(central, kiosk, mqtt_peer):
    kiosk.publish(topics.lease_request("kiosk-1"), b'{"services": ["cash", "loans"]}')

    lease = NumberLease.parse(next_on(kiosk, topics.lease("kiosk-1")).payload)
    # From the top of the day's numbers: the online ones start at 001 as if no kiosk held a lease.
    top = leases.TOP
    assert [(b.service, b.first, b.last) for b in lease.blocks] == [
        ("cash", top - 7, top), ("loans", top - 7, top)]
    # Retained: a kiosk that connects later (or again) finds it.
    late = mqtt_peer(central.device_urls["kiosk-1"])
    late.subscribe(topics.lease("kiosk-1"))
    assert NumberLease.parse(late.next_message().payload) == lease


def test_an_offline_ticket_sent_twice_enters_once_and_is_answered_each_time(central, kiosk):
    kiosk.publish(topics.lease_request("kiosk-1"), b'{"services": ["cash"]}')
    [block] = NumberLease.parse(next_on(kiosk, topics.lease("kiosk-1")).payload).blocks
    number = f"A-{block.first:03d}"
    ticket = OfflineTicket(request_id=uuid.uuid4().hex, lease=block.id, service="cash", number=number,
                           seq=block.first, day=block.day, issued_at=datetime.now(UTC).isoformat(),
                           token=secrets.token_urlsafe(24), printed=True)

    answers = []
    for _ in range(2):
        kiosk.publish(topics.ticket_offline("kiosk-1"), ticket.to_json())
        answers.append(OfflineTicketAck.parse(next_on(kiosk, topics.ticket_offline_ack("kiosk-1")).payload))

    assert answers[0] == answers[1] == OfflineTicketAck(ticket.request_id, True, number, "waiting")
    assert ticket_count(central) == 1
    assert central.coordinator.ticket(ticket.token).number == number


def test_a_malformed_offline_ticket_changes_nothing_and_gets_no_answer(central, kiosk):
    bad = {"request_id": "r1", "lease": 1, "service": "cash", "number": "A-001", "seq": 1,
           "day": "2026-03-10", "issued_at": "2026-03-10T09:00:00"}  # a time without its offset

    kiosk.publish(topics.ticket_offline("kiosk-1"), json.dumps(bad))
    kiosk.publish(topics.lease_request("kiosk-1"), b'{"services": ["cash"]}')

    # The lease answers the later message: the earlier one was handled (refused) before it.
    before_lease = []
    while (message := kiosk.next_message()).topic != topics.lease("kiosk-1"):
        before_lease.append(message.topic)
    assert topics.ticket_offline_ack("kiosk-1") not in before_lease
    assert ticket_count(central) == 0
    assert central.bridge.rejections.counts.get("bad_payload") == 1


def test_only_a_kiosk_sends_offline_tickets_and_lease_requests_and_only_central_answers(broker, mqtt_peer):
    kiosk = mqtt_peer(broker.add_device("kiosk-1", "kiosk"))
    point = mqtt_peer(broker.add_device("point-1", "point"))
    display = mqtt_peer(broker.add_device("display-1", "display"))

    assert not kiosk.publish(topics.ticket_offline("kiosk-1"), b"{}").is_failure
    assert not kiosk.publish(topics.lease_request("kiosk-1"), b"{}").is_failure
    # A kiosk cannot give itself numbers, acknowledge its own tickets, or send for another kiosk.
    assert kiosk.publish(topics.lease("kiosk-1"), b"{}", retain=True).value == NOT_AUTHORIZED
    assert kiosk.publish(topics.ticket_offline_ack("kiosk-1"), b"{}").value == NOT_AUTHORIZED
    assert kiosk.publish(topics.ticket_offline("kiosk-2"), b"{}").value == NOT_AUTHORIZED
    for device, device_id in ((point, "point-1"), (display, "display-1")):
        assert device.publish(topics.ticket_offline(device_id), b"{}").value == NOT_AUTHORIZED
        assert device.publish(topics.lease_request(device_id), b"{}").value == NOT_AUTHORIZED
