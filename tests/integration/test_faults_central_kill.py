"""Central killed with SIGKILL in the middle of a burst of ticket requests and point commands, then restarted.

``nextup central`` runs as a child process against the real broker and a SQLite
file; a kiosk and four point units (plain MQTT clients with the devices'
credentials) keep sending while it dies and while it is down.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from typing import Any

import pytest
from faults_support import TOPICS, CentralProcess, Client, command, query, ticket_request, wait_until

from nextup.contract import PointState, TicketReply

SERVICES = ("cash", "loans", "accounts")
POINTS = (1, 2, 3, 4)
REQUESTS_BEFORE_KILL = 240  # sent in one burst: central is still working through them when it dies
REQUESTS_WHILE_DOWN = 40
KILL_AFTER_REPLIES = 60


@pytest.fixture
def site(broker: Any, sqlite_url: str, make_store: Any) -> dict[str, str]:
    make_store(sqlite_url).close()
    urls = {"kiosk-1": broker.add_device("kiosk-1", "kiosk")}
    urls.update({f"point-{n}": broker.add_device(f"point-{n}", "point") for n in POINTS})
    return urls


def replies_of(kiosk: Client, seen: dict[str, list[TicketReply]], lock: threading.Lock) -> None:
    for message in kiosk.drain():
        reply = TicketReply.parse(message.payload)
        assert message.properties.CorrelationData == reply.request_id.encode()
        with lock:
            seen[reply.request_id].append(reply)


@pytest.mark.timeout(120)
def test_central_killed_mid_burst_loses_no_request_and_does_nothing_twice(
        broker: Any, sqlite_url: str, site: dict[str, str], tmp_path: Any) -> None:
    rng = random.Random(7)
    central = CentralProcess(tmp_path, database_url=sqlite_url, mqtt_url=broker.central_url)
    kiosk = Client(site["kiosk-1"])
    kiosk.subscribe(TOPICS.ticket_reply("kiosk-1"))
    points = {n: Client(site[f"point-{n}"]) for n in POINTS}
    for n, peer in points.items():
        peer.subscribe(TOPICS.point_state(n))
    observer = Client(broker.central_url)
    observer.subscribe(TOPICS.site_state)
    try:
        central.start()
        # Central publishes its retained states once its subscriptions are in place.
        wait_until(lambda: observer.drain(0.1), 30, "central to start")

        replies: dict[str, list[TicketReply]] = defaultdict(list)
        lock = threading.Lock()
        sent_requests: list[str] = []
        sent_commands: dict[int, list[str]] = defaultdict(list)
        actions: dict[str, str] = {}
        infos: list[Any] = []
        command_infos: list[tuple[Client, Any]] = []

        def send_request() -> None:
            request_id = uuid.uuid4().hex
            sent_requests.append(request_id)
            infos.append(kiosk.publish(TOPICS.ticket_request("kiosk-1"),
                                       ticket_request(request_id, rng.choice(SERVICES)),
                                       response_topic=TOPICS.ticket_reply("kiosk-1"),
                                       correlation=request_id.encode()))

        def send_command(serial: int) -> None:
            command_id = uuid.uuid4().hex
            sent_commands[serial].append(command_id)
            action = actions[command_id] = rng.choice(("next", "next", "next", "served", "no_show"))
            command_infos.append((points[serial], points[serial].client.publish(
                TOPICS.command(f"point-{serial}"), command(command_id, action), qos=1)))

        for i in range(REQUESTS_BEFORE_KILL):
            send_request()
            if i % 4 == 3:
                send_command(rng.choice(POINTS))

        def answered() -> int:
            replies_of(kiosk, replies, lock)
            return len(replies)

        wait_until(lambda: answered() >= KILL_AFTER_REPLIES, 30, "the first replies", every=0.001)
        central.kill()
        answered_before_kill = answered()
        assert answered_before_kill < REQUESTS_BEFORE_KILL, "the kill came after the burst: nothing to prove"

        # Devices keep pressing while central is down: the broker keeps it in central's session.
        for i in range(REQUESTS_WHILE_DOWN):
            send_request()
            if i % 4 == 0:
                send_command(rng.choice(POINTS))
        kiosk.wait_acked(infos)
        for peer, info in command_infos:
            peer.wait_acked([info])

        central.start()
        wait_until(lambda: answered() == len(sent_requests), 60,
                   f"a reply to every request ({len(replies)} of {len(sent_requests)})", every=0.05)
        total_commands = sum(len(c) for c in sent_commands.values())
        wait_until(lambda: query(sqlite_url, "SELECT count(*) FROM processed_messages WHERE kind = 'command'")
                   == [(total_commands,)], 30, "every command to be processed")
        time.sleep(0.5)  # let late duplicates of replies arrive
        replies_of(kiosk, replies, lock)
        states = {n: peer.drain() for n, peer in points.items()}
    finally:
        central.stop()
        for peer in [kiosk, observer, *points.values()]:
            peer.close()

    log = central.log()
    assert central.starts == 2 and "failed to handle" not in log, log[-3000:]

    # Every request got an answer, and a redelivered one got the same answer.
    assert set(replies) == set(sent_requests)
    for request_id, answers in replies.items():
        assert all(a == answers[0] for a in answers), f"request {request_id} answered differently"
        assert answers[0].ok, answers[0]

    # Each answered request is exactly one ticket, and no number was given twice.
    tickets = query(sqlite_url, "SELECT number, day FROM tickets")
    numbers = Counter(tickets)
    assert all(n == 1 for n in numbers.values()), [t for t, n in numbers.items() if n > 1]
    assert len(tickets) == len(sent_requests)
    assert {(r[0].ticket.number) for r in replies.values()} == {t[0] for t in tickets}
    processed = query(sqlite_url, "SELECT message_id FROM processed_messages WHERE kind = 'ticket'")
    assert sorted(p[0] for p in processed) == sorted(sent_requests)
    issued = Counter(r[0] for r in query(sqlite_url,
                                         "SELECT ticket_id FROM ticket_events WHERE kind = 'issued'"))
    assert len(issued) == len(tickets) and set(issued.values()) == {1}

    # Every command took effect once: one record each, as many calls and no-shows as succeeded,
    # and each point unit heard the answer to its last press, given after the restart.
    rows = query(sqlite_url,
                 "SELECT source, message_id, response FROM processed_messages WHERE kind = 'command'")
    done: dict[int, Counter[str]] = defaultdict(Counter)
    for source, message_id, response in rows:
        serial = int(source.removeprefix("device:point-"))
        assert message_id in sent_commands[serial]
        result = json.loads(response) if isinstance(response, str) else response
        done[serial][actions[message_id] if result["ok"] else "refused"] += 1
    for serial in POINTS:
        assert sum(done[serial].values()) == len(sent_commands[serial])
        events = dict(query(sqlite_url, "SELECT kind, count(*) FROM ticket_events WHERE point_serial = :p "
                                        "GROUP BY kind", p=serial))
        assert events.get("called", 0) == done[serial]["next"], (serial, events, done[serial])
        assert events.get("no_show", 0) == done[serial]["no_show"], (serial, events, done[serial])
        last = [PointState.parse(m.payload) for m in states[serial]][-1]
        assert last.last_command_id == sent_commands[serial][-1]
    called_twice = query(sqlite_url, "SELECT ticket_id FROM ticket_events WHERE kind = 'called' "
                                     "GROUP BY ticket_id HAVING count(*) > 1")
    assert called_twice == []
