"""Two central instances on one PostgreSQL sharing a site's devices through MQTT 5 shared subscriptions."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_until
from sqlalchemy import func, select

from broker.mosquitto import RunningBroker
from central.runner import Central
from central.store.models import DeviceRow, TicketEventRow, TicketRow
from edge.pointbutton import PointUnit
from nextup.contract import Board, Topics
from nextup.settings import Settings, load

POINTS = 50
PRESSES = 2  # each point calls this many tickets
EXTRA = 10  # tickets left waiting at the end


def hall_site(points: int) -> str:
    """A site file of one service (first come, first served) with ``points`` points, each with its unit."""
    parts = ['[site]\nname = "Big hall"\ntimezone = "UTC"\nlanguage = "en"\npriority_policy = "strict"\n',
             '[[priority]]\nkey = "all"\nname = "Everyone"\n',
             '[[service]]\nkey = "cash"\nname = "Cash desk"\nprefix = "A"\n',
             '[[device]]\nid = "kiosk-1"\nkind = "kiosk"\n',
             '[[device]]\nid = "display-1"\nkind = "display"\n']
    for n in range(1, points + 1):
        parts.append(f'[[point]]\nserial = {n}\nname = "Window {n}"\nservices = ["cash"]\n')
        parts.append(f'[[device]]\nid = "point-{n}"\nkind = "point"\npoint = {n}\n')
    return "\n".join(parts)


@pytest.fixture
def hall(tmp_path: Path, postgres_url: str, broker: RunningBroker,
         make_store: Any) -> Iterator[Callable[..., Any]]:
    """Start shared central instances (``instance("a")``) of a 50-point hall on PostgreSQL."""
    site_file = tmp_path / "hall.toml"
    site_file.write_text(hall_site(POINTS))
    make_store(postgres_url, site_file).close()
    started: list[Central] = []

    def instance(name: str) -> Central:
        settings = Settings(site=broker.site, database_url=postgres_url, mqtt_url=broker.central_url,
                            central_id=f"central-{broker.site}-{name}", public_url="http://nextup.test")
        central = Central(settings, shared=True)
        started.append(central)
        central.start()
        assert central.bridge.wait_connected(10), "central did not connect to the broker"
        return central

    instance.site_file = site_file  # type: ignore[attr-defined]
    yield instance
    for central in started:
        central.stop()


def _units(broker: RunningBroker, folder: Path, count: int) -> list[PointUnit]:
    folder.mkdir()
    units = []
    for n in range(1, count + 1):
        device = f"point-{n}"
        path = folder / f"{device}.toml"
        path.write_text("[point]\nholdoff_s = 0.000001\nconfirm_timeout_s = 30\n")
        settings = load(path, env={"NEXTUP_DEVICE_ID": device, "NEXTUP_SITE": broker.site,
                                   "NEXTUP_MQTT_URL": broker.add_device(device, "point")})
        units.append(PointUnit(settings, sim=True))
    return units


def test_fifty_points_pressing_next_across_two_instances_call_each_ticket_once_in_order(
        hall: Any, broker: RunningBroker, tmp_path: Path, postgres_url: str) -> None:
    from central.coordinator import Coordinator
    from central.domain import Channel
    from central.store import Store

    store = Store(postgres_url)
    try:
        issued = [Coordinator(store).issue_ticket("cash", channel=Channel.API).number
                  for _ in range(POINTS * PRESSES + EXTRA)]
    finally:
        store.close()
    a, b = hall("a"), hall("b")
    calls = {"a": 0, "b": 0}
    lock = threading.Lock()

    def counter(name: str) -> Callable[[list[Any]], None]:
        def count(messages: list[Any]) -> None:
            with lock:
                calls[name] += sum(m.topic == a.coordinator.topics.call for m in messages)
        return count

    a.coordinator.add_listener(counter("a"))
    b.coordinator.add_listener(counter("b"))

    units = _units(broker, tmp_path / "units", POINTS)
    for unit in units:
        unit.start()
    try:
        for unit in units:
            wait_until(lambda unit=unit: unit.state is not None, 30, f"{unit.device_id}'s state")
        start = threading.Barrier(POINTS)
        refused: list[str] = []

        def press_next(unit: PointUnit) -> None:
            start.wait()
            for _ in range(PRESSES):
                command = unit.press("next")
                assert command is not None

                def answered(sent: str = command.command_id) -> Any:
                    return unit.state is not None and unit.state.last_command_id == sent and unit.state

                state = wait_until(answered, 30, f"{unit.device_id} to see its command")
                if state.last_error:
                    refused.append(f"{unit.device_id}: {state.last_error}")

        threads = [threading.Thread(target=press_next, args=(u,)) for u in units]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads)
        assert refused == []
    finally:
        for unit in units:
            unit.close()

    with a.store.read() as s:
        called = list(s.scalars(select(TicketEventRow.ticket_id).where(TicketEventRow.kind == "called")))
        by_state = dict(s.execute(select(TicketRow.state, func.count()).group_by(TicketRow.state)).all())
        waiting = list(s.scalars(select(TicketRow.number).where(TicketRow.state == "waiting")
                                 .order_by(TicketRow.seq)))
        called_numbers = set(s.scalars(select(TicketRow.number).where(TicketRow.id.in_(called))))
    assert len(called) == POINTS * PRESSES
    assert len(set(called)) == len(called), "a ticket was called twice"
    # First come, first served: exactly the first tickets were called, none was skipped.
    assert called_numbers == set(issued[:POINTS * PRESSES])
    assert waiting == issued[POINTS * PRESSES:]
    assert by_state == {"served": POINTS * (PRESSES - 1), "called": POINTS, "waiting": EXTRA}
    # Both instances did part of the work.
    assert calls["a"] + calls["b"] == POINTS * PRESSES
    assert calls["a"] > 0 and calls["b"] > 0, calls


def _retained_board(mqtt_peer: Any, url: str) -> Board:
    peer = mqtt_peer(url)
    peer.subscribe(Topics("main").board)
    board = Board.parse(peer.next_message().payload)
    peer.close()
    return board


def test_an_instance_does_not_publish_a_board_older_than_one_the_broker_has(
        hall: Any, broker: RunningBroker, mqtt_peer: Any) -> None:
    a, b = hall("a"), hall("b")
    from central.domain import Channel

    old: list[Any] = []
    a.coordinator.add_listener(old.extend)
    a.coordinator.issue_ticket("cash", channel=Channel.API)
    a.coordinator.remove_listener(old.extend)
    stale = next(m for m in old if m.topic == a.coordinator.topics.board)

    display = mqtt_peer(broker.add_device("display-1", "display"))
    display.subscribe(Topics("main").board)
    b.coordinator.issue_ticket("cash", channel=Channel.API)
    newest = b.coordinator.board().version
    wait_until(lambda: a.bridge.retained.newest(stale.topic) == newest, 5, "instance a to see b's board")

    a.bridge.publish([stale])  # e.g. a publish that lost the race to the other instance's
    b.coordinator.issue_ticket("cash", channel=Channel.API)
    seen = []
    while not seen or seen[-1] < newest + 1:
        seen.append(Board.parse(display.next_message().payload).version)
    assert seen == sorted(seen), f"the board went back in time: {seen}"
    assert a.bridge.retained.dropped >= 1
    assert _retained_board(mqtt_peer, broker.central_url).version == newest + 1


def test_a_stale_retained_board_is_replaced_by_the_newest(
        hall: Any, broker: RunningBroker, mqtt_peer: Any) -> None:
    a, b = hall("a"), hall("b")
    from central.domain import Channel

    a.coordinator.issue_ticket("cash", channel=Channel.API)
    stale = a.coordinator.board()
    b.coordinator.issue_ticket("cash", channel=Channel.API)
    newest = b.coordinator.board().version
    assert newest > stale.version
    wait_until(lambda: _retained_board(mqtt_peer, broker.central_url).version == newest, 5,
               "the newest board")

    # An instance that published before it could see the newer state: the broker now holds an older board.
    late = mqtt_peer(broker.central_url, client_id="late-instance")
    assert not late.publish(Topics("main").board, stale.to_json(), retain=True).is_failure

    board = wait_until(lambda: (lambda got: got if got.version == newest else None)(
        _retained_board(mqtt_peer, broker.central_url)), 5, "the newest board to be retained again")
    assert board.waiting == {"cash": 2}
    assert a.bridge.retained.republished + b.bridge.retained.republished >= 1


def test_one_instance_alone_publishes_every_state_as_before(hall: Any, broker: RunningBroker,
                                                            mqtt_peer: Any) -> None:
    a = hall("a")
    from central.domain import Channel

    a.coordinator.issue_ticket("cash", channel=Channel.API)
    assert wait_until(lambda: _retained_board(mqtt_peer, broker.central_url).waiting == {"cash": 1}, 5)


def test_shared_instances_get_client_ids_stable_across_restarts_and_distinct_per_folder(
        tmp_path: Path) -> None:
    from central.runner import shared_central_id

    a = Settings(site="main", instance=str(tmp_path / "a"))
    b = Settings(site="main", instance=str(tmp_path / "b"))
    assert shared_central_id(a) == shared_central_id(Settings(site="main", instance=str(tmp_path / "a")))
    assert shared_central_id(a) != shared_central_id(b)
    assert shared_central_id(a).startswith("central-main-")


def test_nextup_central_is_shared_by_flag_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from nextup.cli import central

    assert central.make_context("central", ["--shared"]).params["shared"] is True
    assert central.make_context("central", []).params["shared"] is False
    monkeypatch.setenv("NEXTUP_SHARED", "1")
    assert central.make_context("central", []).params["shared"] is True


def test_every_instance_takes_every_status_in_order_so_the_newest_is_stored_last(
        hall: Any, broker: RunningBroker, mqtt_peer: Any) -> None:
    a, b = hall("a"), hall("b")
    statuses: dict[str, list[bool]] = {"a": [], "b": []}
    for name, central in (("a", a), ("b", b)):
        def listen(messages: list[Any], seen: list[bool] = statuses[name]) -> None:
            seen.extend(b'"online":true' in m.payload for m in messages if m.topic.endswith("/status"))
        central.coordinator.add_listener(listen)
    kiosk = mqtt_peer(broker.add_device("kiosk-1", "kiosk"))
    sent = [n % 2 == 0 for n in range(21)]  # online, offline, ..., online: a device coming and going
    for online in sent:
        payload = f'{{"online": {"true" if online else "false"}, "kind": "kiosk", "version": "t"}}'
        assert not kiosk.publish(Topics("main").device_status("kiosk-1"), payload, retain=True).is_failure
    # Split between the instances, two could store them out of order; each takes them all instead.
    wait_until(lambda: statuses["a"] == statuses["b"] == sent, 10, "each instance to take every status")
    with a.coordinator.store.read() as s:
        assert s.get(DeviceRow, "kiosk-1").online is True
