"""Bad input: 10,000 generated payloads through the real broker into central change nothing and crash nothing.

The generator is a seeded ``random.Random``: every payload is wrong in at
least one way that central must notice (not UTF-8, not JSON, not an object,
nested too deep, NaN, a field of the wrong type, missing, too long or out of
its choices, a payload over the contract's 16 KiB), often with unknown fields
added, or is well formed but comes from a device that does not exist or may
not send it.  They go to every topic central listens on, at QoS 1, in one
window.  (The JSON API's bad input is the schemathesis run's job.)
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from faults_support import TOPICS, Client, db_snapshot, wait_until

from central.bridge import RejectionLog
from central.domain.errors import BadPayload
from nextup.contract import MAX_PAYLOAD_BYTES, PAYLOAD_OF_ROUTE

N = 10_000
MAX_PACKET = 20_480  # the broker's max_packet_size: a bigger packet would cost us the connection
LEAVES = ("ticket/request", "ticket/printed", "command", "status", "ticket/offline", "lease/request")
ROLE_OF_LEAF = {"ticket/request": "kiosk-1", "ticket/printed": "kiosk-1", "command": "point-1",
                "status": "point-2", "ticket/offline": "kiosk-1", "lease/request": "kiosk-1"}
WRONG_ROLE = {"ticket/request": "point-1", "ticket/printed": "display-1", "command": "kiosk-1",
              "status": "display-1", "ticket/offline": "point-3", "lease/request": "display-1"}


def well_formed(leaf: str, rng: random.Random) -> dict[str, Any]:
    rid = uuid.UUID(int=rng.getrandbits(128)).hex
    return {
        "ticket/request": {"request_id": rid, "service": "cash", "priority": "free", "language": "en"},
        "ticket/printed": {"request_id": rid, "number": "A-001", "printed": True},
        "command": {"command_id": rid, "action": "next"},
        "status": {"online": True, "kind": "point", "version": "1.0"},
        "ticket/offline": {"request_id": rid, "lease": 1, "service": "cash", "number": "A-900", "seq": 900,
                           "day": "2026-01-05", "issued_at": "2026-01-05T09:00:00+00:00"},
        "lease/request": {"services": ["cash", "loans"]},
    }[leaf]


def wrong_value(rng: random.Random) -> Any:
    return rng.choice([
        0, -1, 2**70, 1.5, True, False, None, [], [1, "a"], {}, {"x": {"y": []}}, "",
        "x" * rng.choice([129, 300, 5000, 15000]), "not a slug!", "\ud800", "\u0000", "ünïcödé" * 50,
    ])


def unknown_fields(rng: random.Random) -> dict[str, Any]:
    return {f"extra_{rng.randrange(10**6)}": wrong_value(rng) for _ in range(rng.randrange(1, 4))}


def deep(rng: random.Random) -> bytes:
    depth = rng.choice([200, 1000, 3000, 9000])
    if rng.random() < 0.5:
        return ("[" * depth + "]" * depth).encode()
    return ('{"a":' * depth + "1" + "}" * depth).encode()


def broken_object(leaf: str, rng: random.Random) -> bytes:
    """A JSON object of ``leaf``'s shape with required fields missing or wrong (a few "wrong" values
    happen to be right for some field: the contract's own parser sorts those out)."""
    model = PAYLOAD_OF_ROUTE[TOPICS.route(TOPICS.root + "/device/x/" + leaf).kind]  # type: ignore[union-attr]
    while True:
        payload = well_formed(leaf, rng)
        required = [k for k in payload if k not in ("priority", "language")]
        for key in rng.sample(required, rng.randrange(1, len(required) + 1)):
            if rng.random() < 0.25:
                del payload[key]
            else:
                payload[key] = wrong_value(rng)
        if rng.random() < 0.5:
            payload.update(unknown_fields(rng))
        data = json.dumps(payload).encode()
        try:
            model.parse(data)
        except BadPayload:
            return data


def _json(data: Any) -> bytes:
    return json.dumps(data).encode()


GENERATORS: list[tuple[str, Callable[[str, random.Random], bytes]]] = [
    ("not UTF-8", lambda leaf, rng: rng.randbytes(rng.randrange(1, 64)) + b"\xff\xfe"),
    ("not JSON", lambda leaf, rng: rng.choice([b"", b"{", b"{'a': 1}", b"nul", b"\x00", b'{"a":}'])),
    ("not an object", lambda leaf, rng: _json(rng.choice([[], [1], 1, "s", None, True, 1.5]))),
    ("deep", lambda leaf, rng: deep(rng)),
    ("NaN", lambda leaf, rng: b'{"request_id": NaN, "x": Infinity}'),
    ("over 16 KiB", lambda leaf, rng: _json({**well_formed(leaf, rng), "pad": "x" * MAX_PAYLOAD_BYTES})),
    ("broken fields", broken_object),
    ("broken fields", broken_object),
    ("broken fields", broken_object),
    ("unknown device", lambda leaf, rng: _json({**well_formed(leaf, rng), **unknown_fields(rng)})),
    ("wrong role", lambda leaf, rng: _json(well_formed(leaf, rng))),
]


def generate(rng: random.Random) -> tuple[str, str, bytes]:
    """(what, topic, payload)."""
    leaf = rng.choice(LEAVES)
    what, make = rng.choice(GENERATORS)
    payload = make(leaf, rng)
    if what == "unknown device":
        device = rng.choice(["ghost-1", "kiosk-9", "point-99", "x" * 64])
    elif what == "wrong role":
        device = WRONG_ROLE[leaf]
    elif rng.random() < 0.05:
        what, device = "bad device id", rng.choice(["-dash-first", "a" * 65, "spa ce", "ü"])
    else:
        device = rng.choice([ROLE_OF_LEAF[leaf], "kiosk-1", "point-1", "display-1", "ghost-2"])
    if leaf == "status" and not payload:
        payload = b"\x00"  # an empty status is a cleared retained message, rightly ignored
    return what, f"{TOPICS.root}/device/{device}/{leaf}", payload[: MAX_PACKET - 1000]


WINDOW = 500


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.timeout(240)
def test_ten_thousand_bad_payloads_change_nothing_and_are_each_rejected_once(
        broker: Any, make_central: Any, sqlite_url: str) -> None:
    central = make_central(http=False)
    bridge = central.bridge
    lines = Lines()
    watched = [logging.getLogger(name) for name in ("central.bridge", "central.coordinator",
                                                    "central.leases")]
    for logger in watched:
        logger.addHandler(lines)
    rng = random.Random(20241127)
    messages = [generate(rng) for _ in range(N)]
    before = db_snapshot(sqlite_url)
    sender = Client(broker.central_url)
    try:
        # In windows: a flood of 10,000 at once would pass the broker's queue limit for central
        # (max_queued_bytes), and the broker rightly drops what is over it.
        for start in range(0, N, WINDOW):
            window = messages[start:start + WINDOW]
            sender.wait_acked([sender.publish(topic, payload) for _, topic, payload in window], timeout=60)
            sent = start + len(window)
            wait_until(lambda sent=sent: sum(bridge.rejections.counts.values()) >= sent, 60,
                       f"central to reject {sent} (so far {sum(bridge.rejections.counts.values())})",
                       every=0.05)
        time.sleep(0.5)  # nothing more trickles in: each was rejected once, not twice
    finally:
        sender.close()
        for logger in watched:
            logger.removeHandler(lines)

    assert sum(bridge.rejections.counts.values()) == N, bridge.rejections.counts
    assert db_snapshot(sqlite_url) == before

    crashes = [r for r in lines.records if r.levelno >= logging.ERROR]
    assert crashes == [], [r.getMessage() for r in crashes[:5]]
    rejected = [r for r in lines.records if r.getMessage().startswith("rejected: ")]
    assert rejected and all(getattr(r, "reason", None) for r in rejected)
    reasons = set(bridge.rejections.counts)
    # Rate-limited: at most a minute's allowance per reason, plus one "N more" line each.
    per_minute = RejectionLog().per_minute
    assert len(lines.records) <= len(reasons) * (per_minute + 1), len(lines.records)

    # Central is still there and still right.
    reply_peer = Client(central.device_urls["kiosk-1"])
    try:
        reply_peer.subscribe(TOPICS.ticket_reply("kiosk-1"))
        request_id = uuid.uuid4().hex
        reply_peer.publish(TOPICS.ticket_request("kiosk-1"),
                           json.dumps({"request_id": request_id, "service": "cash"}).encode())
        reply = json.loads(reply_peer.drain(10)[0].payload)
        assert reply["ok"] and reply["ticket"]["number"] == "A-001"
    finally:
        reply_peer.close()
