"""The broker killed with SIGKILL and started again with the project's configuration.

Central, a kiosk and two point units run against it; the last changes before
the kill are younger than the broker's autosave interval, so the broker comes
back with older retained states (or none).  Everyone must reconnect on their
own, central must put the retained states right from its database, a press
made while the broker was away must take effect once, and no printed ticket
may go missing.  What a hard kill can lose, and why, is in broker/README.md.
"""

from __future__ import annotations

from typing import Any

import pytest
from escpos.printer import Dummy
from faults_support import TOPICS, Client, query, wait_until

from edge.kiosk import Kiosk
from edge.kiosk.render import parse
from edge.pointbutton import PointUnit
from nextup.contract import Board
from nextup.settings import load

SAVING = "Saving in-memory database"
FAST = {"reconnect_min_s": 0.1, "reconnect_max_s": 0.5}


def settings(broker: Any, central: Any, device_id: str, tmp_path: Any, toml: str = "") -> Any:
    config = tmp_path / f"{device_id}.toml"
    config.write_text(toml)
    return load(config, env={"NEXTUP_DEVICE_ID": device_id, "NEXTUP_MQTT_URL": central.device_urls[device_id],
                             "NEXTUP_SITE": broker.site})


def issue(kiosk: Kiosk, service: str) -> str:
    """Press a kiosk button; the number printed on the ticket."""
    before = len(kiosk.printed)
    kiosk.runtime.press(service)
    wait_until(lambda: len(kiosk.printed) > before, 10, "the ticket")
    lines = ["".join(t for _, t in b.runs) for b in parse(kiosk.printed[-1]) if hasattr(b, "runs")]
    return lines[3]  # site, service, blank, number


def press(unit: PointUnit, central: Any, button: str, serial: int) -> None:
    """Press and wait until central's answer reached the unit."""
    before = central.coordinator.point_state(serial).last_command_id
    unit.runtime.press(button)
    wait_until(lambda: unit.state is not None and unit.state.last_command_id not in (None, before), 10,
               f"point {serial} to answer {button}")


def retained(client: Client, topics: set[str], seen: dict[str, bytes],
             wait: float = 0.05) -> dict[str, bytes]:
    for message in client.drain(wait):
        if message.topic in topics:
            seen[message.topic] = bytes(message.payload)
    return seen


@pytest.mark.timeout(90)
def test_broker_killed_and_restarted_everyone_reconnects_and_states_come_back_right(
        broker: Any, make_central: Any, tmp_path: Any, sqlite_url: str) -> None:
    central = make_central(http=False)
    kiosk_settings = settings(broker, central, "kiosk-1", tmp_path, "[kiosk]\nholdoff_s = 0.01\n")
    point = "[point]\nholdoff_s = 0.01\n"
    with Kiosk(kiosk_settings, sim=True, printer=Dummy(), **FAST) as kiosk, \
            PointUnit(settings(broker, central, "point-1", tmp_path, point), sim=True, **FAST) as unit1, \
            PointUnit(settings(broker, central, "point-2", tmp_path, point), sim=True, **FAST) as unit2:
        for device in (kiosk, unit1, unit2):
            assert device.runtime.wait_ready(10)
        wait_until(lambda: "cash" in kiosk.button_names, 10, "the kiosk's buttons")
        printed = [issue(kiosk, "cash") for _ in range(4)]
        press(unit1, central, "next", 1)
        # A broker that has run a while has saved everyone's session: wait for its next autosave.
        saves = broker.log_path.read_text().count(SAVING)
        wait_until(lambda: broker.log_path.read_text().count(SAVING) > saves, 10, "the broker's autosave",
                   every=0.1)
        # The last changes before the kill: younger than the broker's autosave, so not on its disk.
        printed.append(issue(kiosk, "accounts"))
        press(unit2, central, "next", 2)
        press(unit1, central, "next", 1)

        broker.kill()
        wait_until(lambda: not unit1.runtime.connected and not central.bridge.connected.is_set(), 10,
                   "everyone to notice the broker is gone")
        # A press while the broker is away waits in the unit and goes out once it is back.
        unit1.runtime.press("served")
        board_version = central.coordinator.board().version
        broker.start()
        # The premise: the broker came back with an older board than central's (or none at all).
        early = Client(broker.central_url)
        try:
            early.subscribe(TOPICS.board)
            restored = retained(early, {TOPICS.board}, {}, wait=0.3).get(TOPICS.board)
            central_back = central.bridge.connected.is_set()
        finally:
            early.close()
        if not central_back:
            assert restored is None or Board.parse(restored).version < board_version, "nothing was lost"

        for device in (kiosk, unit1, unit2):
            assert device.runtime.wait_ready(15), f"{device.device_id} did not reconnect"
        wait_until(central.bridge.connected.is_set, 15, "central to reconnect")
        assert central.bridge.reconnects >= 1
        wait_until(lambda: central.coordinator.point_state(1).current is None, 10, "the press made offline")

        # A newcomer reads the retained states: what the database says, not what the broker had saved.
        observer = Client(broker.central_url)
        try:
            expected = {m.topic: m.payload for m in central.coordinator.snapshot()}
            observer.subscribe(TOPICS.site_state, TOPICS.board, TOPICS.all_point_states,
                               f"{TOPICS.root}/device/+/config")
            seen: dict[str, bytes] = {}
            wait_until(lambda: retained(observer, set(expected), seen) == expected, 10,
                       "the retained states to match the database")
        finally:
            observer.close()
        # The units show central's state again.
        for unit, serial in ((unit1, 1), (unit2, 2)):
            wait_until(lambda unit=unit, serial=serial: unit.state == central.coordinator.point_state(serial),
                       10, f"point unit {serial} to show central's state")
        # Central knows the devices are back.
        online = "SELECT count(*) FROM devices WHERE online AND id IN ('kiosk-1', 'point-1', 'point-2')"
        wait_until(lambda: query(sqlite_url, online) == [(3,)], 10, "the devices to be online")
        # And the site goes on: the kiosk still prints.
        printed.append(issue(kiosk, "loans"))

    # Every printed ticket is in the queue, once; the press made offline took effect once.
    numbers = [n for (n,) in query(sqlite_url, "SELECT number FROM tickets")]
    assert sorted(numbers) == sorted(printed)
    served = "SELECT count(*) FROM ticket_events WHERE kind = 'served' AND point_serial = 1"
    assert query(sqlite_url, served) == [(2,)]  # the second "next" served the first call; "served" the second
