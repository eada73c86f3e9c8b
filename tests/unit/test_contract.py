"""The MQTT contract: topics, and parsing every payload model."""

from __future__ import annotations

import json

import pytest

from central.domain.errors import BadPayload, NextupError
from nextup.contract import (
    MAX_PAYLOAD_BYTES,
    PAYLOAD_OF_ROUTE,
    Board,
    CallInfo,
    Command,
    Current,
    DeviceConfig,
    DeviceStatus,
    ErrorInfo,
    IssuedTicket,
    PointState,
    Route,
    ServiceInfo,
    SiteState,
    TicketPrinted,
    TicketReply,
    TicketRequest,
    Topics,
    decode,
)

CALL = CallInfo(
    number="A-042", point=3, point_name="Window 3", service="cash", at="2025-03-03T10:00:00+01:00"
)
ISSUED = IssuedTicket(
    number="A-042", service="cash", ahead=4, eta_s=1200, track_url="https://queue.example/t/x"
)

EXAMPLES = [
    TicketRequest(request_id="r-1", service="cash"),
    TicketRequest(request_id="r-2", service="cash", priority="paid", language="de-AT"),
    TicketReply.success("r-1", ISSUED),
    TicketReply.failure("r-1", "closed", "Main branch is closed, opens Monday at 09:00"),
    TicketPrinted(request_id="r-1", number="A-042", printed=True),
    TicketPrinted(request_id="r-1", number="A-042", printed=False, reason="paper out"),
    *[
        Command(command_id=f"c-{a}", action=a)
        for a in ("next", "served", "no_show", "recall", "activate", "deactivate")
    ],
    PointState(
        serial=3,
        name="Window 3",
        active=True,
        current=Current("A-042", "cash"),
        waiting=5,
        last_command_id="c-9",
        version=7,
    ),
    PointState(serial=1, name="Window 1", active=False, current=None, waiting=0),
    SiteState(name="Main branch", open=True, services=[ServiceInfo("cash", "Cash desk", "A", True)]),
    SiteState(name="Main branch", open=False, services=[], opens_at="2025-03-04T09:00:00+01:00"),
    CALL,
    CallInfo(number="L-001", point=1, point_name="Window 1", service="loans", at="t", language="fr"),
    Board(calls=[CALL], waiting={"cash": 4, "loans": 0}, version=3),
    Board(calls=[], waiting={}),
    DeviceConfig(kind="kiosk"),
    DeviceConfig(kind="point", point=3, language="de"),
    DeviceStatus(online=True, kind="kiosk", version="0.1.0", printer="ok", details={"paper": "low"}),
    DeviceStatus(online=False, kind="display", version="0.1.0"),
    ISSUED,
    ErrorInfo(code="closed", message="closed"),
]


@pytest.mark.parametrize("model", EXAMPLES, ids=lambda m: type(m).__name__)
def test_each_payload_model_round_trips_through_json(model):
    raw = model.to_json()
    assert isinstance(raw, bytes)
    assert type(model).parse(raw) == model
    assert type(model).parse(raw.decode("utf-8")) == model


def test_none_fields_are_left_out_of_the_json():
    assert json.loads(TicketRequest(request_id="r", service="cash").to_json()) == {
        "request_id": "r",
        "service": "cash",
    }


def test_a_reply_carries_either_the_ticket_or_the_error():
    ok = json.loads(TicketReply.success("r", ISSUED).to_json())
    assert ok == {"request_id": "r", "ok": True, "ticket": ISSUED.to_dict()}
    failed = json.loads(TicketReply.failure("r", "closed", "Closed").to_json())
    assert failed == {"request_id": "r", "ok": False, "error": {"code": "closed", "message": "Closed"}}


def test_non_ascii_text_is_sent_as_utf8():
    state = PointState(serial=1, name="Schalter Müller", active=True, current=None, waiting=0)
    assert "Müller".encode() in state.to_json()
    assert PointState.parse(state.to_json()).name == "Schalter Müller"


def test_unknown_extra_fields_are_ignored():
    raw = json.dumps({"command_id": "c-1", "action": "next", "from_the_future": {"x": 1}})
    assert Command.parse(raw) == Command(command_id="c-1", action="next")


# --- bad payloads -------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "not JSON"),
        (b"", "not JSON"),
        (b'{"command_id": "c-1",', "not JSON"),
        (b"[1, 2]", "must be a JSON object, not list"),
        (b'"next"', "must be a JSON object, not str"),
        (b"null", "must be a JSON object, not NoneType"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"command_id": "c-\xc3", "action": "next"}', "not UTF-8"),
        ("\ud800", "not valid Unicode"),
        (b" " * (MAX_PAYLOAD_BYTES + 1), "over the limit"),
        (b"[" * 100_000, "over the limit"),
        (b"[" * 5_000 + b"]" * 5_000, "nested too deeply"),
        (b'{"a":' * 2_500 + b"1" + b"}" * 2_500, "nested too deeply"),
        (b'{"command_id": "c-1", "action": "next", "x": NaN}', "NaN is not a JSON value"),
        (b'{"eta_s": Infinity}', "Infinity is not a JSON value"),
    ],
)
def test_a_payload_that_is_not_a_json_object_is_refused_with_the_reason(payload, reason):
    with pytest.raises(BadPayload, match=reason) as caught:
        Command.parse(payload)
    assert caught.value.code == "bad_payload"
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, NextupError)


def test_a_payload_just_under_the_limit_is_read():
    padding = "x" * (MAX_PAYLOAD_BYTES - 100)
    raw = json.dumps({"command_id": "c-1", "action": "next", "pad": padding}).encode()
    assert len(raw) <= MAX_PAYLOAD_BYTES
    assert Command.parse(raw).action == "next"


def test_decode_accepts_bytes_bytearray_and_str():
    for raw in (b'{"a": 1}', bytearray(b'{"a": 1}'), '{"a": 1}'):
        assert decode(raw) == {"a": 1}


@pytest.mark.parametrize(
    ("model", "data", "message"),
    [
        (Command, {"action": "next"}, "field 'command_id' is missing"),
        (Command, {"command_id": None, "action": "next"}, "field 'command_id' is missing"),
        (Command, {"command_id": "c-1"}, "field 'action' is missing"),
        (Command, {"command_id": 7, "action": "next"}, "field 'command_id' must be a string, not int"),
        (Command, {"command_id": "", "action": "next"}, "field 'command_id' must have 1 to 128 characters"),
        (Command, {"command_id": "c" * 129, "action": "next"}, "field 'command_id' must have 1 to 128"),
        (Command, {"command_id": "c-1", "action": "dance"}, "field 'action' must be one of .* not 'dance'"),
        (Command, {"command_id": "\ud800", "action": "next"}, "field 'command_id' is not valid Unicode"),
        (TicketRequest, {"request_id": "r", "service": "Cash Desk"}, "field 'service' has an invalid value"),
        (TicketRequest, {"request_id": "r", "service": "cash\n"}, "field 'service' has an invalid value"),
        (
            TicketRequest,
            {"request_id": "r", "service": "cash", "priority": 1},
            "field 'priority' must be a string",
        ),
        (TicketRequest, {"request_id": "r", "service": "cash", "language": "german"}, "field 'language'"),
        (
            TicketRequest,
            {"request_id": ["r"], "service": "cash"},
            "field 'request_id' must be a string, not list",
        ),
        (TicketReply, {"request_id": "r"}, "field 'ok' must be true or false"),
        (TicketReply, {"request_id": "r", "ok": 1}, "field 'ok' must be true or false"),
        (TicketReply, {"request_id": "r", "ok": True}, "field 'ticket' must be an object"),
        (TicketReply, {"request_id": "r", "ok": False, "error": "closed"}, "field 'error' must be an object"),
        (
            TicketReply,
            {"request_id": "r", "ok": True, "ticket": {**ISSUED.to_dict(), "eta_s": "soon"}},
            "in ticket: field 'eta_s' must be an integer",
        ),
        (
            TicketReply,
            {"request_id": "r", "ok": False, "error": {"code": "x"}},
            "in error: field 'message' is missing",
        ),
        (
            TicketPrinted,
            {"request_id": "r", "number": "A-001", "printed": "yes"},
            "field 'printed' must be true",
        ),
        (IssuedTicket, {**ISSUED.to_dict(), "ahead": -1}, "field 'ahead' must be at least 0"),
        (IssuedTicket, {**ISSUED.to_dict(), "ahead": True}, "field 'ahead' must be an integer"),
        (IssuedTicket, {**ISSUED.to_dict(), "ahead": 2.0}, "field 'ahead' must be an integer"),
        (
            PointState,
            {"serial": 0, "name": "W", "active": True, "waiting": 0},
            "field 'serial' must be at least 1",
        ),
        (
            PointState,
            {"serial": 1, "name": "W", "active": True, "waiting": 0, "current": "A-1"},
            "field 'current' must be an object",
        ),
        (
            PointState,
            {"serial": 1, "name": "W", "active": True, "waiting": 0, "current": {}},
            "in current: field 'number' is missing",
        ),
        (SiteState, {"name": "M", "open": True}, "field 'services' must be a list"),
        (
            SiteState,
            {"name": "M", "open": True, "services": ["cash"]},
            "field 'services': item 0 must be an object",
        ),
        (
            SiteState,
            {"name": "M", "open": True, "services": [{"key": "cash", "name": "C", "prefix": "A"}]},
            r"in services\[0\]: field 'active' must be true or false",
        ),
        (Board, {"waiting": {}}, "field 'calls' must be a list"),
        (Board, {"calls": []}, "field 'waiting' must be an object"),
        (Board, {"calls": [], "waiting": {"cash": "4"}}, "field 'waiting' must map service keys to counts"),
        (
            Board,
            {"calls": [CALL.to_dict(), {**CALL.to_dict(), "point": "3"}], "waiting": {}},
            r"in calls\[1\]: field 'point' must be an integer",
        ),
        (Board, {"calls": [7], "waiting": {}}, "field 'calls': item 0 must be an object"),
        (DeviceConfig, {"kind": "toaster"}, "field 'kind' must be one of display, kiosk, point"),
        (DeviceConfig, {"kind": "point", "point": "3"}, "field 'point' must be an integer"),
        (DeviceStatus, {"online": True, "kind": "kiosk", "version": "1", "details": []}, "field 'details'"),
        (CallInfo, {**CALL.to_dict(), "language": "xx\n"}, "field 'language' has an invalid value"),
    ],
)
def test_a_bad_field_is_refused_with_a_message_naming_it(model, data, message):
    with pytest.raises(BadPayload, match=message):
        model.parse(json.dumps(data))


@pytest.mark.parametrize(
    "model",
    sorted({type(m) for m in EXAMPLES} - {Current}, key=lambda m: m.__name__),
    ids=lambda m: m.__name__,
)
def test_an_empty_object_is_refused_by_every_model(model):
    with pytest.raises(BadPayload, match="field '"):
        model.parse(b"{}")


# --- topics -------------------------------------------------------------------

TOPICS = Topics("main")


def test_every_topic_starts_with_the_site_root():
    assert TOPICS.ticket_request("kiosk-1") == "nextup/main/device/kiosk-1/ticket/request"
    assert TOPICS.ticket_reply("kiosk-1") == "nextup/main/device/kiosk-1/ticket/reply"
    assert TOPICS.command("point-1") == "nextup/main/device/point-1/command"
    assert TOPICS.device_config("point-1") == "nextup/main/device/point-1/config"
    assert TOPICS.device_status("point-1") == "nextup/main/device/point-1/status"
    assert TOPICS.point_state(3) == "nextup/main/point/3/state"
    assert TOPICS.site_state == "nextup/main/site"
    assert TOPICS.board == "nextup/main/board"
    assert TOPICS.call == "nextup/main/call"
    assert TOPICS.sim_press("kiosk-1") == "nextup/main/sim/kiosk-1/press"


@pytest.mark.parametrize(
    ("maker", "kind"),
    [
        (TOPICS.ticket_request, "ticket_request"),
        (TOPICS.ticket_printed, "ticket_printed"),
        (TOPICS.command, "command"),
        (TOPICS.device_status, "status"),
    ],
)
def test_route_tells_which_device_sent_a_topic_and_what_it_is(maker, kind):
    assert TOPICS.route(maker("kiosk-1.hall_2")) == Route(kind, "kiosk-1.hall_2")
    assert kind in PAYLOAD_OF_ROUTE


@pytest.mark.parametrize(
    "topic",
    [
        "nextup/other/device/kiosk-1/command",  # another site
        "nextup/main/device/kiosk-1/ticket/reply",  # central's own reply
        "nextup/main/device/kiosk-1/config",
        "nextup/main/device/kiosk-1/command/extra",
        "nextup/main/device//command",
        "nextup/main/device/-bad/command",
        "nextup/main/device/kiosk-1\n/command",
        "nextup/main/point/1/state",
        "nextup/main/board",
        "nextup/mainly/device/kiosk-1/command",
        "elsewhere/main/device/kiosk-1/command",
        "",
    ],
)
def test_route_ignores_topics_that_are_not_a_devices_message_to_central(topic):
    assert TOPICS.route(topic) is None


def test_central_subscribes_to_what_route_understands():
    subscriptions = TOPICS.central_subscriptions()
    assert subscriptions == [
        "nextup/main/device/+/ticket/request",
        "nextup/main/device/+/ticket/printed",
        "nextup/main/device/+/command",
        "nextup/main/device/+/status",
        "nextup/main/device/+/ticket/offline",
        "nextup/main/device/+/lease/request",
    ]
    for pattern in subscriptions:
        assert TOPICS.route(pattern.replace("+", "kiosk-1")) is not None
    shared = TOPICS.central_subscriptions(shared=True)
    assert [t for t in shared if not t.startswith("$share/central/nextup/main/")] == [
        "nextup/main/device/+/status"  # every instance takes every status, in order
    ]


@pytest.mark.parametrize("site", ["", "Main", "main branch", "main/x", "main\n", "-main", "a" * 33, "+", "#"])
def test_a_bad_site_key_is_refused(site):
    with pytest.raises(ValueError, match="not a slug"):
        Topics(site)


@pytest.mark.parametrize("device_id", ["", "kiosk/1", "kiosk+", "#", "kiosk-1\n", "-kiosk", "k" * 65])
def test_a_bad_device_id_never_becomes_a_topic(device_id):
    with pytest.raises(ValueError, match="device id"):
        TOPICS.command(device_id)
    with pytest.raises(ValueError, match="device id"):
        TOPICS.sim_press(device_id)
