"""Structured logs: one line per event, JSON off a terminal, and one press followed from device to central."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from central.domain import Channel
from edge.pointbutton import PointUnit
from nextup import logs
from nextup.settings import load

REPO = Path(__file__).resolve().parents[2]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The root logger's lines as ``logs.setup`` writes them off a terminal; the old set-up restored after."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    stream = io.StringIO()
    logs.setup("test", stream=stream)
    yield stream
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_off_a_terminal_each_event_is_one_json_line_with_its_fields(captured: io.StringIO) -> None:
    log = logging.getLogger("nextup.test")
    log.info("ticket issued\nsecond line", extra={"ticket": "A-001", "command_id": "c1", "when": object()})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed", extra={"request_id": "r1"})
    first, second = lines(captured)
    assert first["message"] == "ticket issued\nsecond line"
    assert (first["level"], first["logger"], first["program"]) == ("info", "nextup.test", "test")
    assert (first["ticket"], first["command_id"]) == ("A-001", "c1")
    assert first["when"].startswith("<object object")
    assert first["time"].endswith("+00:00")
    assert second["level"] == "error" and second["request_id"] == "r1"
    assert "ValueError: boom" in second["exception"]


def test_on_a_terminal_lines_are_for_people_with_the_fields_after_the_message() -> None:
    stream = Terminal()
    handler = logs.setup("test", stream=stream)
    try:
        logging.getLogger("nextup.test").warning("refused", extra={"reason": "bad_payload"})
    finally:
        logging.getLogger().removeHandler(handler)
    text = stream.getvalue()
    assert "WARNING nextup.test: refused  reason=bad_payload" in text
    assert not text.startswith("{")


def test_one_press_is_followed_by_its_command_id_from_the_unit_to_central(
        central: Any, broker: Any, tmp_path: Path, captured: io.StringIO) -> None:
    number = central.coordinator.issue_ticket("cash", channel=Channel.API).number
    path = tmp_path / "point.toml"
    path.write_text("[point]\nholdoff_s = 0.000001\n")
    settings = load(path, env={"NEXTUP_DEVICE_ID": "point-1", "NEXTUP_SITE": broker.site,
                               "NEXTUP_MQTT_URL": central.device_urls["point-1"]})
    with PointUnit(settings, sim=True) as unit:
        deadline = time.monotonic() + 10
        while unit.state is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        command = unit.press("next")
        assert command is not None
        while unit.state.last_command_id != command.command_id:
            assert time.monotonic() < deadline
            time.sleep(0.01)

    press = [e for e in lines(captured) if e.get("command_id") == command.command_id]
    by_logger = {e["logger"]: e for e in press}
    assert set(by_logger) == {"edge.pointbutton.app", "central.bridge"}, press
    assert by_logger["edge.pointbutton.app"]["device"] == "point-1"
    done = by_logger["central.bridge"]
    assert (done["device"], done["point"], done["ticket"]) == ("point-1", 1, number)
    assert done["message"] == "command next done"
    # The broker's log names the same device, so its connection can be found between the two.
    assert "as point-1" in broker.log_tail(200)


def test_nextup_central_writes_json_lines_to_a_pipe(broker: Any, make_store: Any, sqlite_url: str,
                                                    tmp_path: Path) -> None:
    make_store(sqlite_url).close()
    env = {**os.environ, "NEXTUP_DATABASE_URL": sqlite_url, "NEXTUP_MQTT_URL": broker.central_url,
           "NEXTUP_SITE": broker.site, "NEXTUP_INSTANCE": str(tmp_path)}
    process = subprocess.Popen([sys.executable, "-m", "nextup.cli", "central", "--http", "127.0.0.1:0"],
                               env=env, cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               text=True)
    try:
        assert process.stderr is not None
        events = []
        deadline = time.monotonic() + 30
        while not any(e["message"].startswith("nextup central:") for e in events):
            assert time.monotonic() < deadline and process.poll() is None
            events.append(json.loads(process.stderr.readline()))
    finally:
        process.terminate()
        process.wait(15)
    assert all(e["program"] == "central" for e in events)
    assert any(e["logger"] == "central.bridge" and e["message"] == "central connected to the broker"
               and e["session_present"] is False for e in events)


def test_a_flood_of_one_kind_of_line_is_cut_to_a_minutes_allowance_and_a_count_of_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    flood = logs.RateLimitedLog(logging.getLogger("test.flood"), per_minute=3, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="test.flood"):
        for n in range(10):
            flood.log("bad", logging.WARNING, "bad message %d", n, device="kiosk-1")
        flood.log("other", logging.WARNING, "another kind")
        now[0] = 60.0
        flood.log("bad", logging.WARNING, "bad message %d", 10)
    assert [r.getMessage() for r in caplog.records] == [
        "bad message 0", "bad message 1", "bad message 2", "another kind",
        "7 more lines (bad) were not logged", "bad message 10",
    ]
    assert caplog.records[0].device == "kiosk-1"
