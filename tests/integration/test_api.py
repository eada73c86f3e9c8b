"""The JSON API over the same coordinator and store as the devices."""

from __future__ import annotations

from typing import Any

import pytest

from central.coordinator import Coordinator
from central.domain import Channel
from central.web import create_app


@pytest.fixture
def coordinator(sqlite_url: str, make_store: Any) -> Coordinator:
    return Coordinator(make_store(sqlite_url), public_url="https://queue.example")


@pytest.fixture
def client(coordinator: Coordinator) -> Any:
    app = create_app(coordinator, config={"TESTING": True})
    return app.test_client()


def test_services_lists_active_services_with_waiting_counts(client: Any, coordinator: Coordinator) -> None:
    coordinator.issue_ticket("loans", channel=Channel.KIOSK)
    body = client.get("/api/v1/services").get_json()
    assert [(s["key"], s["waiting"]) for s in body["services"]] == [
        ("accounts", 0),
        ("cash", 0),
        ("loans", 1),
    ]


def test_post_ticket_returns_201_with_number_ahead_and_tracking(
    client: Any, coordinator: Coordinator
) -> None:
    coordinator.issue_ticket("cash", channel=Channel.KIOSK)  # a kiosk ticket is in the same queue
    response = client.post("/api/v1/tickets", json={"service": "cash"})
    assert response.status_code == 201
    body = response.get_json()
    assert (body["number"], body["ahead"]) == ("A-002", 1)
    assert len(body["token"]) >= 32  # 24 random bytes, url-safe
    assert body["track_url"] == f"https://queue.example/t/{body['token']}"
    assert response.headers["Location"] == f"/api/v1/tickets/{body['token']}"


def test_ticket_shows_its_point_once_called(client: Any, coordinator: Coordinator) -> None:
    token = client.post("/api/v1/tickets", json={"service": "cash"}).get_json()["token"]
    coordinator.point_command(1, "next", command_id="c1", source="test")
    body = client.get(f"/api/v1/tickets/{token}").get_json()
    assert (body["state"], body["point"], body["point_name"], body["ahead"]) == ("called", 1, "Window 1", 0)


def test_public_api_cannot_take_a_non_public_class(client: Any) -> None:
    response = client.post("/api/v1/tickets", json={"service": "cash", "priority": "paid"})
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "priority_not_allowed"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"service": "nope"}, 404, "unknown_service"),
        ({}, 400, "bad_payload"),
        ({"service": 7}, 400, "bad_payload"),
        ({"service": "cash", "priority": "gold"}, 404, "unknown_priority"),
        ({"service": "cash", "language": "<script>"}, 400, "bad_payload"),
    ],
)
def test_bad_ticket_requests_get_a_json_error_and_change_nothing(
    client: Any, coordinator: Coordinator, body: dict, status: int, code: str
) -> None:
    response = client.post("/api/v1/tickets", json=body)
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code
    assert all(n == 0 for _, n in coordinator.services())


def test_non_json_body_is_a_400(client: Any) -> None:
    response = client.post(
        "/api/v1/tickets", data="service=cash", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "bad_payload"


def test_unknown_ticket_and_route_are_json_404s(client: Any) -> None:
    assert client.get("/api/v1/tickets/not-a-token").get_json()["error"]["code"] == "unknown_ticket"
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"


def test_cancel_gives_up_the_place(client: Any, coordinator: Coordinator) -> None:
    first = client.post("/api/v1/tickets", json={"service": "cash"}).get_json()
    second = client.post("/api/v1/tickets", json={"service": "cash"}).get_json()
    assert client.post(f"/api/v1/tickets/{first['token']}/cancel").get_json()["state"] == "cancelled"
    assert client.get(f"/api/v1/tickets/{second['token']}").get_json()["ahead"] == 0
    again = client.post(f"/api/v1/tickets/{first['token']}/cancel")
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "illegal_transition"


def test_board_shows_calls_newest_first(client: Any, coordinator: Coordinator) -> None:
    for _ in range(2):
        client.post("/api/v1/tickets", json={"service": "cash"})
    coordinator.point_command(1, "next", command_id="c1", source="test")
    coordinator.point_command(2, "next", command_id="c2", source="test")
    board = client.get("/api/v1/board").get_json()
    assert [(c["number"], c["point_name"]) for c in board["calls"]] == [
        ("A-002", "Window 2"),
        ("A-001", "Window 1"),
    ]
    assert board["waiting"]["cash"] == 0


def test_health_reports_database_and_broker(coordinator: Coordinator) -> None:
    class DisconnectedBridge:
        connected = __import__("threading").Event()

    ok = create_app(coordinator).test_client().get("/api/v1/health")
    assert ok.status_code == 200 and ok.get_json()["checks"] == {"database": "ok"}
    degraded = create_app(coordinator, bridge=DisconnectedBridge()).test_client().get("/api/v1/health")
    assert degraded.status_code == 503 and degraded.get_json()["checks"]["broker"] == "disconnected"


def test_health_through_the_running_central(central: Any) -> None:
    import json
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{central.http_port}/api/v1/health", timeout=5) as response:
        assert json.load(response) == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}
