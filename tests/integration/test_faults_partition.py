"""A point unit cut off from the network: presses within the expiry take effect once, later ones are dropped.

The unit runs in its own network namespace, joined to the host by a veth
pair with link-local addresses; the broker listens on the host's end.  The
test cuts the unit off by taking its end of the link down (its TCP
connection stays open: nothing tells it the link is gone), presses buttons
through the unit's stdin (see ``faults_point_driver``), and brings the link
back.  Needs root for ``ip netns``; skipped where namespaces cannot be made.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from faults_support import query, wait_until

from central.domain import Channel

DRIVER = Path(__file__).resolve().parent.parent / "faults_point_driver.py"
EXPIRY_S = 6


@dataclass
class Namespace:
    name: str
    host_link: str
    unit_link: str
    host_address: str
    unit_address: str

    def run(self, *args: str) -> None:
        subprocess.run(["ip", "netns", "exec", self.name, *args], check=True, capture_output=True)

    def cut(self) -> None:
        """Take the unit's end of the link down: its packets go nowhere, and nothing arrives."""
        self.run("ip", "link", "set", self.unit_link, "down")

    def mend(self) -> None:
        self.run("ip", "link", "set", self.unit_link, "up")


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True)


@pytest.fixture
def netns() -> Iterator[Namespace]:
    tag = f"{random.randrange(16**6):06x}"
    # A random /30 of the link-local range, so that parallel runs do not collide.
    base = 4 * random.randrange(64)
    subnet = f"169.254.{random.randrange(1, 255)}"
    ns = Namespace(f"nxt{tag}", f"nxh{tag}", f"nxu{tag}", f"{subnet}.{base + 1}", f"{subnet}.{base + 2}")
    made = _ip("netns", "add", ns.name)
    if made.returncode != 0:
        pytest.skip(f"cannot make a network namespace here: {made.stderr.strip()}")
    try:
        steps = [
            ["link", "add", ns.host_link, "type", "veth", "peer", "name", ns.unit_link],
            ["link", "set", ns.unit_link, "netns", ns.name],
            ["addr", "add", f"{ns.host_address}/30", "dev", ns.host_link],
            ["link", "set", ns.host_link, "up"],
            ["-n", ns.name, "addr", "add", f"{ns.unit_address}/30", "dev", ns.unit_link],
            ["-n", ns.name, "link", "set", ns.unit_link, "up"],
            ["-n", ns.name, "link", "set", "lo", "up"],
        ]
        for step in steps:
            done = _ip(*step)
            if done.returncode != 0:
                raise RuntimeError(f"ip {' '.join(step)}: {done.stderr.strip()}")
        yield ns
    finally:
        _ip("netns", "del", ns.name)  # takes the veth pair with it
        _ip("link", "del", ns.host_link)


@pytest.fixture
def broker(make_broker: Any, netns: Namespace) -> Any:
    """The site's broker, listening on the host's end of the unit's link."""
    return make_broker(host=netns.host_address)


class Unit:
    """The driver process inside the namespace."""

    def __init__(self, netns: Namespace, config: Path, log: Path) -> None:
        self.log_path = log
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        with open(log, "wb") as err:
            self.process = subprocess.Popen(
                ["ip", "netns", "exec", netns.name, sys.executable, str(DRIVER), str(config)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        assert line == "ready", f"the unit did not start: {line!r}\n{self.log()}"

    def press(self, button: str) -> str:
        """Press ``button``; the id of the command the unit sent for it."""
        sent = len(self.sent())
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"press {button}\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == f"pressed {button}"
        return wait_until(lambda: self.sent()[sent:], 5, "the unit to send the command")[0]

    def sent(self) -> list[str]:
        return re.findall(r"sent \w+ \(([0-9a-f]{32})\)", self.log())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def processed(url: str) -> list[str]:
    return [m for (m,) in query(url, "SELECT message_id FROM processed_messages "
                                     "WHERE source = 'device:point-1' ORDER BY at")]


@pytest.mark.timeout(90)
def test_presses_of_a_cut_off_unit_count_within_their_expiry_and_are_dropped_after(
        broker: Any, make_central: Any, netns: Namespace, sqlite_url: str, tmp_path: Path) -> None:
    central = make_central(http=False)
    for _ in range(4):
        central.coordinator.issue_ticket("cash", channel=Channel.WEB)
    config = tmp_path / "point-1.toml"
    config.write_text(
        f'device_id = "point-1"\nsite = "{broker.site}"\nmqtt_url = "{central.device_urls["point-1"]}"\n'
        f"[point]\ncommand_expiry_s = {EXPIRY_S}\nconfirm_timeout_s = 2\nholdoff_s = 0.01\n")
    unit = Unit(netns, config, tmp_path / "point-1.log")
    try:
        def current() -> str | None:
            state = central.coordinator.point_state(1)
            return state.current.number if state.current else None

        first = unit.press("next")
        wait_until(lambda: processed(sqlite_url) == [first], 10, "the first press to count")
        assert current() == "A-001"

        # Cut off, pressed, back well within the expiry: it counts, once.
        netns.cut()
        within = unit.press("next")
        time.sleep(2)
        assert processed(sqlite_url) == [first], "a press went through a link that was down"
        netns.mend()
        wait_until(lambda: processed(sqlite_url) == [first, within], 15, "the press made while cut off")
        assert current() == "A-002"

        # Cut off for longer than the expiry: the press is dropped, and the unit says so.
        netns.cut()
        late = unit.press("next")
        time.sleep(EXPIRY_S + 3)
        netns.mend()
        wait_until(lambda: "not sending an expired message" in unit.log(), 20, "the unit to drop the press")
        # Pressed again once back, the unit works; the late press never arrived before it.
        again = unit.press("served")
        wait_until(lambda: again in processed(sqlite_url), 15, "a press after the link is back")
        assert late not in processed(sqlite_url)
        assert processed(sqlite_url) == [first, within, again]
        assert current() is None
        called = query(sqlite_url, "SELECT count(*) FROM ticket_events WHERE kind = 'called'")
        assert called == [(2,)]
    finally:
        unit.close()
    assert "Traceback" not in unit.log(), unit.log()[-3000:]
