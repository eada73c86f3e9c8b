"""The ``nextup`` command as a person runs it: a real process, a real database file."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NEXTUP = [sys.executable, "-m", "nextup.cli"]


def nextup(
    *args: str, env: dict[str, str], stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*NEXTUP, *args], env=env, input=stdin, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "NEXTUP_DATABASE_URL": f"sqlite:///{tmp_path / 'site.sqlite3'}"}


def rows(tmp_path: Path, query: str) -> list[tuple]:
    with sqlite3.connect(tmp_path / "site.sqlite3") as db:
        return db.execute(query).fetchall()


def test_site_apply_twice_changes_nothing_the_second_time(env: dict[str, str], tmp_path: Path) -> None:
    assert nextup("db", "upgrade", env=env).returncode == 0
    first = nextup("site", "apply", str(EXAMPLES / "demo-site.toml"), env=env)
    assert first.returncode == 0, first.stderr
    assert "service cash created" in first.stdout
    second = nextup("site", "apply", str(EXAMPLES / "demo-site.toml"), env=env)
    assert second.returncode == 0
    assert second.stdout.strip() == "site is up to date: nothing changed"


def test_bad_site_file_is_rejected_whole_with_line_and_reason(env: dict[str, str], tmp_path: Path) -> None:
    nextup("db", "upgrade", env=env)
    nextup("site", "apply", str(EXAMPLES / "demo-site.toml"), env=env)
    before = rows(tmp_path, "SELECT serial, name FROM points ORDER BY serial")
    bad = tmp_path / "bad.toml"
    text = (EXAMPLES / "demo-site.toml").read_text()
    text = text.replace('name = "Window 1"', 'name = "Renamed"')  # a valid change that must not land
    text = text.replace('services = ["cash", "loans", "accounts"]', 'services = ["cash", "mortgages"]')
    bad.write_text(text)
    result = nextup("site", "apply", str(bad), env=env)
    assert result.returncode == 1
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "mortgages" in t)
    assert f"bad.toml:{line}:" in result.stderr and "mortgages" in result.stderr
    assert rows(tmp_path, "SELECT serial, name FROM points ORDER BY serial") == before


def test_central_refuses_to_start_on_an_old_schema(env: dict[str, str]) -> None:
    result = nextup("central", "--http", "127.0.0.1:0", env=env, timeout=30)
    assert result.returncode == 1
    assert "run `nextup db upgrade`" in result.stderr


def test_user_add_reads_the_password_from_stdin_and_hashes_it(env: dict[str, str], tmp_path: Path) -> None:
    nextup("db", "upgrade", env=env)
    result = nextup("user", "add", "ada", "--role", "admin", env=env, stdin="correct horse battery\n")
    assert result.returncode == 0, result.stderr
    [(role, password_hash)] = rows(tmp_path, "SELECT role, password_hash FROM users WHERE name = 'ada'")
    assert role == "admin" and password_hash.startswith("$argon2id$")
    assert "correct horse" not in password_hash


def test_user_add_refuses_a_short_password(env: dict[str, str], tmp_path: Path) -> None:
    nextup("db", "upgrade", env=env)
    result = nextup("user", "add", "bob", "--role", "specialist", env=env, stdin="short\n")
    assert result.returncode == 1 and "at least" in result.stderr
    assert rows(tmp_path, "SELECT name FROM users") == []


def test_broker_credentials_give_every_registered_device_its_own_password(
    env: dict[str, str], tmp_path: Path
) -> None:
    nextup("db", "upgrade", env=env)
    nextup("site", "apply", str(EXAMPLES / "demo-site.toml"), env=env)
    result = nextup("broker", "credentials", "--dir", str(tmp_path / "broker"), env=env)
    assert result.returncode == 0, result.stderr
    passwords = json.loads((tmp_path / "broker" / "credentials.json").read_text())
    assert set(passwords) == {"central", "kiosk-1", "point-1", "point-2", "point-3", "point-4", "display-1"}
    assert len(set(passwords.values())) == len(passwords)
    again = nextup("broker", "credentials", "--dir", str(tmp_path / "broker"), "--rotate", "kiosk-1", env=env)
    assert again.returncode == 0
    rotated = json.loads((tmp_path / "broker" / "credentials.json").read_text())
    assert rotated["kiosk-1"] != passwords["kiosk-1"] and rotated["point-1"] == passwords["point-1"]


@pytest.mark.skipif(shutil.which("mosquitto_pub") is None, reason="needs mosquitto-clients")
def test_a_person_with_mosquitto_pub_gets_a_ticket_and_calls_it(
    env: dict[str, str], tmp_path: Path, broker, mqtt_peer
) -> None:
    """The issue's 'done when': nextup central, then mosquitto_pub/mosquitto_sub alone."""
    from urllib.parse import urlsplit

    nextup("db", "upgrade", env=env)
    nextup("site", "apply", str(EXAMPLES / "demo-site.toml"), env=env)
    kiosk = urlsplit(broker.add_device("kiosk-1", "kiosk"))
    point = urlsplit(broker.add_device("point-1", "point"))
    central = subprocess.Popen(
        [*NEXTUP, "central", "--http", "127.0.0.1:0"],
        env={**env, "NEXTUP_MQTT_URL": broker.central_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        board = mqtt_peer(broker.add_device("display-1", "display"))
        board.subscribe("nextup/main/board")
        board.next_message(timeout=20)  # central is up once it published the retained board

        def client(tool: str, url, *args: str) -> list[str]:
            return [
                tool,
                "-V",
                "mqttv5",
                "-h",
                "127.0.0.1",
                "-p",
                str(broker.port),
                "-u",
                url.username,
                "-P",
                url.password,
                *args,
            ]

        reply = subprocess.Popen(
            client(
                "mosquitto_sub", kiosk, "-t", "nextup/main/device/kiosk-1/ticket/reply", "-C", "1", "-W", "10"
            ),
            stdout=subprocess.PIPE,
            text=True,
        )
        subprocess.run(
            client(
                "mosquitto_pub",
                kiosk,
                "-q",
                "1",
                "-t",
                "nextup/main/device/kiosk-1/ticket/request",
                "-m",
                '{"request_id": "by-hand", "service": "cash"}',
            ),
            check=True,
            timeout=10,
        )
        out, _ = reply.communicate(timeout=15)
        assert json.loads(out)["ticket"]["number"] == "A-001"
        subprocess.run(
            client(
                "mosquitto_pub",
                point,
                "-q",
                "1",
                "-t",
                "nextup/main/device/point-1/command",
                "-m",
                '{"command_id": "press-1", "action": "next"}',
            ),
            check=True,
            timeout=10,
        )
        while True:
            state = json.loads(board.next_message(timeout=10).payload)
            if state["calls"]:
                break
        assert state["calls"][0]["number"] == "A-001" and state["calls"][0]["point_name"] == "Window 1"
    finally:
        central.terminate()
        central.wait(timeout=15)
    assert central.returncode == 0


def test_site_apply_keeps_a_priority_class_while_its_tickets_are_in_the_queue(
        env: dict[str, str], tmp_path: Path) -> None:
    from central.coordinator import Coordinator
    from central.domain import Channel
    from central.store import Store

    nextup("db", "upgrade", env=env)
    nextup("site", "apply", str(EXAMPLES / "demo-site.toml"), env=env)
    store = Store(env["NEXTUP_DATABASE_URL"])
    try:
        Coordinator(store).issue_ticket("cash", "paid", channel=Channel.KIOSK)
    finally:
        store.close()
    text = (EXAMPLES / "demo-site.toml").read_text()
    without_paid = text.replace('[[priority]]\nkey = "paid"\nname = "Paid"\npublic = false\n', "")
    without_paid = without_paid.replace('priority_policy = "ratio"\npriority_ratio = [3, 1]\n', "")
    assert without_paid.count("[[priority]]") == 1
    (tmp_path / "fewer.toml").write_text(without_paid)

    result = nextup("site", "apply", str(tmp_path / "fewer.toml"), env=env)
    assert result.returncode == 1
    assert "priority class paid is not in the file but 1 of its tickets are in the queue" in result.stderr
    assert rows(tmp_path, "SELECT key FROM priorities ORDER BY key") == [("free",), ("paid",)]
