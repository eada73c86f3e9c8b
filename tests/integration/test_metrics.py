"""/metrics: what central counts, through the broker, the store and the web."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.request import Request, urlopen

from helpers import TOPICS, command, wait_until
from prometheus_client.parser import text_string_to_metric_families

from central.coordinator import Coordinator
from central.domain import Channel
from central.web import create_app


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition: (name, sorted labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def scrape(central: Any, headers: dict[str, str] | None = None) -> dict[Any, float]:
    request = Request(f"http://127.0.0.1:{central.http_port}/metrics", headers=headers or {})
    with urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        return samples(response.read().decode())


def test_a_ticket_from_press_to_served_is_counted_once_with_its_wait_and_service_time(
        central: Any, mqtt_peer: Any) -> None:
    kiosk = mqtt_peer(central.device_urls["kiosk-1"])
    kiosk.subscribe(TOPICS.ticket_reply("kiosk-1"))
    request_id = uuid.uuid4().hex
    payload = json.dumps({"request_id": request_id, "service": "cash"})
    kiosk.publish(TOPICS.ticket_request("kiosk-1"), payload)
    kiosk.publish(TOPICS.ticket_request("kiosk-1"), payload)  # delivered twice: one ticket
    assert json.loads(kiosk.next_message().payload)["ok"]

    point = mqtt_peer(central.device_urls["point-1"])
    point.subscribe(TOPICS.point_state(1))
    for action in ("next", "served", "served"):  # the second "served" is refused: nothing is called
        command(point, "point-1", action)
    commands = ("nextup_mqtt_request_seconds_count", (("kind", "command"),))
    wait_until(lambda: scrape(central).get(commands) == 3, 10, "three commands timed")

    got = scrape(central)
    assert got[("nextup_tickets_issued_total", (("channel", "kiosk"), ("service", "cash")))] == 1
    assert got[("nextup_calls_total", (("service", "cash"),))] == 1
    assert got[("nextup_ticket_outcomes_total", (("outcome", "served"), ("service", "cash")))] == 1
    assert got[("nextup_wait_seconds_count", (("service", "cash"),))] == 1
    assert got[("nextup_service_seconds_count", (("service", "cash"),))] == 1
    assert 0 < got[("nextup_service_seconds_sum", (("service", "cash"),))] < 60
    assert got[("nextup_mqtt_request_seconds_count", (("kind", "ticket_request"),))] == 2
    assert got[("nextup_waiting", (("service", "cash"),))] == 0
    assert got[("nextup_mqtt_connected", ())] == 1


def test_rejections_are_counted_by_reason_and_devices_online_by_kind(central: Any, mqtt_peer: Any) -> None:
    point = mqtt_peer(central.device_urls["point-2"])
    point.publish(TOPICS.command("point-2"), b"{not json")
    point.publish(TOPICS.command("point-2"), json.dumps({"command_id": "x", "action": "dance"}))
    status = {"online": True, "kind": "point", "version": "test"}
    point.publish(TOPICS.device_status("point-2"), json.dumps(status), retain=True)

    online = ("nextup_devices_online", (("kind", "point"),))
    got = wait_until(lambda: (lambda m: m if m.get(online) == 1 else None)(scrape(central)), 10,
                     "a point online")
    assert sum(v for (name, _), v in got.items() if name == "nextup_rejections_total") == 2
    assert got[("nextup_devices", (("kind", "point"),))] == 4
    assert got[("nextup_devices_online", (("kind", "kiosk"),))] == 0


def test_reconnects_to_the_broker_are_counted(central: Any, broker: Any) -> None:
    assert scrape(central)[("nextup_mqtt_reconnects_total", ())] == 0
    broker.stop()
    wait_until(lambda: not central.bridge.connected.is_set(), 10, "central to lose the broker")
    broker.start()
    assert central.bridge.wait_connected(15)
    assert scrape(central)[("nextup_mqtt_reconnects_total", ())] >= 1


def test_web_requests_are_timed_by_route(make_store: Any, sqlite_url: str) -> None:
    coordinator = Coordinator(make_store(sqlite_url))
    app = create_app(coordinator)
    client = app.test_client()
    token = coordinator.issue_ticket("loans", channel=Channel.WEB).token
    assert client.get(f"/t/{token}").status_code == 200
    assert client.get("/t/no-such-ticket").status_code == 404
    got = samples(client.get("/metrics").text)
    assert got[("nextup_http_request_seconds_count", (("method", "GET"), ("route", "/t/<token>")))] == 2
    not_found = (("method", "GET"), ("route", "/t/<token>"), ("status", "404"))
    assert got[("nextup_http_requests_total", not_found)] == 1
    assert got[("nextup_tickets_issued_total", (("channel", "web"), ("service", "loans")))] == 1


def test_metrics_ask_for_the_token_when_one_is_set(make_store: Any, sqlite_url: str) -> None:
    app = create_app(Coordinator(make_store(sqlite_url)), config={"METRICS_TOKEN": "s3cret-metrics-token"})
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    answer = client.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics-token"})
    assert answer.status_code == 200 and b"nextup_waiting" in answer.data
