"""The hall display's state machine: what it keeps of site, board and call messages."""

from __future__ import annotations

import json
from datetime import datetime

from edge.display.render import waiting_rows
from edge.display.state import DisplayState
from nextup.contract import Board, CallInfo, ServiceInfo, SiteState


def call(number: str, point: int = 1, at: str = "2024-05-06T09:00:00", **extra: str) -> CallInfo:
    return CallInfo(number=number, point=point, point_name=f"Window {point}", service="cash", at=at, **extra)


def board(*numbers: str, version: int = 0, **waiting: int) -> bytes:
    return Board(calls=[call(n) for n in numbers], waiting=waiting, version=version).to_json()


SITE = SiteState(
    name="Main branch",
    open=True,
    services=[ServiceInfo("cash", "Cash desk", "A", True), ServiceInfo("loans", "Loans", "B", True),
              ServiceInfo("old", "Old desk", "C", False)],
)


def test_a_board_older_than_the_last_one_seen_is_ignored() -> None:
    state = DisplayState()
    assert state.on_board(board("A-002", version=5, cash=1))
    assert not state.on_board(board("A-001", version=4, cash=9))
    shown = state.view().board
    assert shown is not None and [c.number for c in shown.calls] == ["A-002"] and shown.waiting == {"cash": 1}
    assert state.on_board(board("A-003", version=5, cash=0)), "the same version again is taken"
    assert state.on_board(board("A-004", version=6))


def test_a_bad_payload_changes_nothing() -> None:
    state = DisplayState()
    state.on_board(board("A-001", version=1, cash=2))
    state.on_site(SITE.to_json())
    before = state.view(datetime(2024, 1, 1))
    assert not state.on_board(b"not json")
    assert not state.on_board(json.dumps({"calls": "x", "waiting": {}}))
    assert not state.on_board(json.dumps({"calls": [], "waiting": {"cash": "many"}}))
    assert not state.on_site(json.dumps({"name": "x"}))
    assert state.on_call(b"\xff\xfe") is None
    assert state.on_call(json.dumps({"number": "A-1"})) is None
    assert state.view(datetime(2024, 1, 1)) == before


def test_a_call_goes_on_top_of_the_board_at_once() -> None:
    state = DisplayState()
    state.on_board(board("A-001", "A-000", version=3, cash=4))
    got = state.on_call(call("B-007", point=2).to_json())
    assert got is not None and got.number == "B-007"
    shown = state.view().board
    assert shown is not None
    assert [c.number for c in shown.calls] == ["B-007", "A-001", "A-000"]
    assert shown.waiting == {"cash": 4}


def test_a_call_delivered_twice_is_announced_once_but_a_recall_again() -> None:
    state = DisplayState()
    first = call("A-042", point=3, at="2024-05-06T09:00:00").to_json()
    assert state.on_call(first) is not None
    assert state.on_call(first) is None
    recall = call("A-042", point=3, at="2024-05-06T09:02:00").to_json()
    assert state.on_call(recall) is not None
    shown = state.view().board
    assert shown is not None
    assert [c.number for c in shown.calls] == ["A-042"], "a recall does not list it twice"


def test_a_call_before_any_board_makes_one() -> None:
    state = DisplayState()
    state.on_call(call("A-001").to_json())
    shown = state.view().board
    assert shown is not None and [c.number for c in shown.calls] == ["A-001"] and shown.waiting == {}


def test_the_view_says_whether_the_broker_is_there() -> None:
    state = DisplayState()
    assert not state.view().online
    state.set_online(True)
    assert state.view().online
    state.on_board(board("A-001", version=1))
    state.set_online(False)
    view = state.view()
    assert not view.online and view.board is not None, "the last board stays while offline"


def test_waiting_counts_follow_the_site_and_hide_no_waiting_client() -> None:
    shown = Board.parse(board(version=1, loans=3, cash=12, old=0, vip=2))
    assert waiting_rows(shown, SITE) == [("Cash desk", 12), ("Loans", 3), ("vip", 2)]
    assert waiting_rows(shown, None) == [("cash", 12), ("loans", 3), ("old", 0), ("vip", 2)]
    assert waiting_rows(None, SITE) == [("Cash desk", 0), ("Loans", 0)]


def test_the_view_redraws_once_a_minute_not_every_second() -> None:
    state = DisplayState()
    a = state.view(datetime(2024, 5, 6, 9, 41, 1)).clock_key()
    b = state.view(datetime(2024, 5, 6, 9, 41, 59)).clock_key()
    c = state.view(datetime(2024, 5, 6, 9, 42, 0)).clock_key()
    assert a == b != c
