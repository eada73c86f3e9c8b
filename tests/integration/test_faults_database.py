"""The database away: PostgreSQL behind a relay that the test cuts (every connection closed, new ones
refused) and restores.

Central must hold what devices send meanwhile, acknowledging none of it, and do each once when the
database is back; a message whose MQTT expiry ran out while it waited is dropped with a logged reason
(its sender gave up on it); stopped during the outage, central leaves the messages to its next start.
A connection the server dropped (a restart between two presses) costs nothing but a new connection.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import urllib.error
import urllib.request
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from faults_support import TOPICS, Client, command, query, ticket_request, wait_until

from central.web import outage_log
from nextup.contract import PointState, TicketReply, TicketRequest


class Relay:
    """A TCP relay to ``upstream`` on a port of its own, which can be cut and restored."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.restore()

    def url(self, url: str) -> str:
        """``url`` with its host and port those of the relay."""
        parts = urlsplit(url)
        netloc = f"{parts.username}@127.0.0.1:{self.port}" if parts.username else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def restore(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def cut(self) -> None:
        """Close every connection through the relay and refuse new ones until ``restore``."""
        assert self._listener is not None
        self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        self._listener.close()
        self._listener = None
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            _shut(sock)

    def close(self) -> None:
        if self._listener is not None:
            self.cut()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                near, _ = listener.accept()
            except OSError:
                return
            far = socket.create_connection(self.upstream)
            with self._lock:
                self._sockets |= {near, far}
            for a, b in ((near, far), (far, near)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    _shut(sink)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # the other direction shut it already
        sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def relay(postgres_url: str) -> Any:
    parts = urlsplit(postgres_url)
    relay = Relay((parts.hostname or "127.0.0.1", parts.port or 5432))
    yield relay
    relay.close()


def ask(kiosk: Client, request_id: str, service: str = "cash") -> None:
    kiosk.publish(TOPICS.ticket_request("kiosk-1"), ticket_request(request_id, service),
                  response_topic=TOPICS.ticket_reply("kiosk-1"), correlation=request_id.encode())


def collect(peer: Client, seen: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Replies (by request id) and point states (by last command id) that ``peer`` got so far."""
    for message in peer.drain(0.05):
        if message.topic.endswith("/state"):
            answer: Any = PointState.parse(message.payload)
            key = answer.last_command_id
        else:
            answer = TicketReply.parse(message.payload)
            key = answer.request_id
        seen.setdefault(key, []).append(answer)
    return seen


def unavailable_logged(caplog: pytest.LogCaptureFixture) -> bool:
    return any("database is unavailable" in r.getMessage() for r in caplog.records)


@pytest.mark.timeout(120)
def test_database_away_holds_every_message_and_does_each_once_when_it_is_back(
        broker: Any, make_central: Any, postgres_url: str, relay: Relay,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    central = make_central(database=relay.url(postgres_url), http=False)
    kiosk = Client(central.device_urls["kiosk-1"])
    kiosk.subscribe(TOPICS.ticket_reply("kiosk-1"))
    point = Client(central.device_urls["point-1"])
    point.subscribe(TOPICS.point_state(1))
    replies: dict[str, list[Any]] = {}
    states: dict[str, list[Any]] = {}
    try:
        before = uuid.uuid4().hex
        ask(kiosk, before)
        wait_until(lambda: before in collect(kiosk, replies), 10, "a ticket before the outage")

        relay.cut()
        during = [uuid.uuid4().hex for _ in range(3)]
        for request_id in during:
            ask(kiosk, request_id, "loans")
        late, call = uuid.uuid4().hex, uuid.uuid4().hex
        point.publish(TOPICS.command("point-1"), command(late, "next"), expiry_s=1)
        point.publish(TOPICS.command("point-1"), command(call, "next"))
        wait_until(lambda: unavailable_logged(caplog), 10, "central to notice the database is away")
        threading.Event().wait(3)  # longer than the command's expiry
        assert not set(during) & set(collect(kiosk, replies))
        assert call not in collect(point, states)

        relay.restore()
        wait_until(lambda: set(during) <= set(collect(kiosk, replies)), 30, "the requests' replies")
        wait_until(lambda: call in collect(point, states), 30, "the point's state after its press")
        threading.Event().wait(0.5)  # anything answered twice would arrive meanwhile
        collect(kiosk, replies)
    finally:
        kiosk.close()
        point.close()

    assert all(len(replies[r]) == 1 and replies[r][0].ok for r in [before, *during])
    numbers = [r[0].ticket.number for r in replies.values()]
    assert sorted(numbers) == sorted(n for (n,) in query(postgres_url, "SELECT number FROM tickets"))
    assert len(set(numbers)) == 4
    # The late press was dropped, the later one called once: the first ticket for loans or cash.
    assert late not in states
    assert states[call][-1].current.number in numbers
    called = query(postgres_url, "SELECT count(*) FROM ticket_events WHERE kind = 'called'")
    assert called == [(1,)]
    assert central.bridge.rejections.counts == {"expired": 1}
    assert any("the database is back" in r.getMessage() for r in caplog.records)


@pytest.mark.timeout(120)
def test_central_stopped_while_the_database_is_away_leaves_its_messages_to_the_next_start(
        broker: Any, make_central: Any, postgres_url: str, relay: Relay,
        caplog: pytest.LogCaptureFixture) -> None:
    url = relay.url(postgres_url)
    central = make_central(database=url, http=False)
    point = Client(central.device_urls["point-1"])
    point.subscribe(TOPICS.point_state(1))
    kiosk = Client(central.device_urls["kiosk-1"])
    states: dict[str, list[Any]] = {}
    try:
        ask(kiosk, uuid.uuid4().hex)
        wait_until(lambda: query(postgres_url, "SELECT count(*) FROM tickets") == [(1,)], 10, "a ticket")
        relay.cut()
        call = uuid.uuid4().hex
        point.wait_acked([point.publish(TOPICS.command("point-1"), command(call, "next"))])
        wait_until(lambda: unavailable_logged(caplog), 10, "central to notice the database is away")
        central.stop()  # without waiting for the database
        relay.restore()
        make_central(database=url, http=False)
        wait_until(lambda: call in collect(point, states), 30, "the press, done by the next start")
    finally:
        kiosk.close()
        point.close()
    assert query(postgres_url, "SELECT count(*) FROM ticket_events WHERE kind = 'called'") == [(1,)]


def test_a_connection_the_database_dropped_costs_no_request(
        make_central: Any, postgres_url: str) -> None:
    """After a restart of PostgreSQL the pool's connections are dead; the next request must not fail."""
    name = f"nextup-{uuid.uuid4().hex[:8]}"
    url = f"{postgres_url}&application_name={name}"
    central = make_central(database=url, http=False)
    central.coordinator.handle_ticket_request("kiosk-1", TicketRequest(uuid.uuid4().hex, "cash"))
    dropped = query(postgres_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE application_name = :name", name=name)
    assert dropped and all(ok for (ok,) in dropped)
    reply = central.coordinator.handle_ticket_request("kiosk-1", TicketRequest(uuid.uuid4().hex, "cash"))
    assert reply.ok


@pytest.mark.timeout(60)
def test_pages_and_api_say_the_queue_is_unreachable_while_the_database_is_away(
        make_central: Any, postgres_url: str, relay: Relay, caplog: pytest.LogCaptureFixture) -> None:
    central = make_central(database=relay.url(postgres_url))
    base = f"http://127.0.0.1:{central.http_port}"
    relay.cut()
    with caplog.at_level(logging.ERROR, logger="central.web"):
        for _ in range(outage_log.per_minute + 5):
            with pytest.raises(urllib.error.HTTPError) as page:
                urllib.request.urlopen(f"{base}/", timeout=10)
    assert page.value.code == 503
    assert page.value.headers["Retry-After"] == "5"
    assert "please try again in a moment" in page.value.read().decode()
    said = [r for r in caplog.records if r.name == "central.web"]
    assert 0 < len(said) <= outage_log.per_minute, "each failed page logged: an outage would flood the disk"
    with pytest.raises(urllib.error.HTTPError) as api:
        urllib.request.urlopen(f"{base}/api/v1/services", timeout=10)
    assert api.value.code == 503
    assert json.loads(api.value.read())["error"]["code"] == "unavailable"
    relay.restore()
    with urllib.request.urlopen(f"{base}/api/v1/services", timeout=10) as back:
        assert back.status == 200
