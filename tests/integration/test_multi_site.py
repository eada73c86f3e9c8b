"""Two sites, each with its broker bridged to one central broker, each with its own central and database."""

from __future__ import annotations

import json
import queue
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import command, wait_state

from broker.bridging import BridgeConfig, render_bridge, render_hub_acl, write_bridge, write_hub_credentials
from broker.mosquitto import RunningBroker, reload
from central.runner import Central
from nextup.contract import Board, TicketReply, Topics
from nextup.settings import Settings

SITES = ("north", "south")


@pytest.fixture
def hub_and_sites(make_broker: Callable[..., RunningBroker], make_store: Any, tmp_path: Path) -> Any:
    """A central broker, a bridged broker per site, a central per site (SQLite each) on the central broker."""
    hub = make_broker()
    passwords = write_hub_credentials(hub.config.directory, SITES, central_password=hub.passwords["central"])
    assert hub.pid is not None
    reload(hub.pid)
    sites = {}
    for site in SITES:
        broker = make_broker(site=site)
        for device_id, kind in (("kiosk-1", "kiosk"), ("point-1", "point"), ("display-1", "display")):
            broker.add_device(device_id, kind)
        bridge = BridgeConfig(site=site, host=hub.host, port=hub.port, password=passwords[f"bridge-{site}"])
        write_bridge(broker.config.config_file, bridge)
        broker.stop()
        broker.start()
        sites[site] = broker
    centrals = {}
    for site in SITES:
        url = f"sqlite:///{tmp_path / f'{site}.sqlite3'}"
        make_store(url).close()
        settings = Settings(site=site, database_url=url, mqtt_url=hub.central_url,
                            central_id=f"central-{site}", public_url=f"http://{site}.nextup.test")
        centrals[site] = Central(settings).start()
        assert centrals[site].bridge.wait_connected(10)
    yield hub, sites, centrals, passwords
    for central in centrals.values():
        central.stop()


def _ticket(peer: Any, site: str, service: str) -> TicketReply:
    topics = Topics(site)
    request_id = uuid.uuid4().hex
    peer.publish(topics.ticket_request("kiosk-1"), json.dumps({"request_id": request_id, "service": service}))
    while True:
        msg = peer.next_message(timeout=10)
        if msg.topic == topics.ticket_reply("kiosk-1"):
            reply = TicketReply.parse(msg.payload)
            if reply.request_id == request_id:
                return reply


def _board(peer: Any, site: str, waiting: dict[str, int]) -> Board:
    deadline = time.monotonic() + 10
    while True:
        msg = peer.next_message(timeout=max(0.1, deadline - time.monotonic()))
        if msg.topic == Topics(site).board:
            board = Board.parse(msg.payload)
            if {k: board.waiting[k] for k in waiting} == waiting:
                return board


def test_each_site_is_served_by_its_own_central_through_the_central_broker(
        hub_and_sites: Any, mqtt_peer: Any) -> None:
    hub, sites, centrals, _ = hub_and_sites
    kiosks = {site: mqtt_peer(b.url("kiosk-1")) for site, b in sites.items()}
    displays = {site: mqtt_peer(b.url("display-1")) for site, b in sites.items()}
    for site in SITES:
        kiosks[site].subscribe(Topics(site).ticket_reply("kiosk-1"))
        displays[site].subscribe(Topics(site).board)

    # Each hall's kiosk gets its ticket from its own site's central, through two brokers each way.
    first = _ticket(kiosks["north"], "north", "cash")
    assert first.ok and first.ticket.number == "A-001"
    assert first.ticket.track_url.startswith("http://north.nextup.test/t/")
    for _ in range(2):
        assert _ticket(kiosks["south"], "south", "loans").ok
    assert _board(displays["north"], "north", {"cash": 1, "loans": 0}).waiting["loans"] == 0
    assert _board(displays["south"], "south", {"cash": 0, "loans": 2})

    # A press at a point of one hall calls that hall's ticket.
    point = mqtt_peer(sites["south"].url("point-1"))
    point.subscribe(Topics("south").point_state(1))
    command(point, "point-1", "next", "c-1", topics=Topics("south"))
    # Point 1 of the demo site serves cash: nothing waits there at the south site.
    state = wait_state(point, 1, "c-1", topics=Topics("south"), timeout=10)
    assert state.last_error and state.current is None
    command(point, "point-1", "deactivate", "c-2", topics=Topics("south"))
    assert wait_state(point, 1, "c-2", topics=Topics("south"), timeout=10).active is False

    with centrals["north"].store.read() as s, centrals["south"].store.read() as t:
        from sqlalchemy import func, select

        from central.store.models import TicketRow
        assert s.scalar(select(func.count(TicketRow.id))) == 1
        assert t.scalar(select(func.count(TicketRow.id))) == 2


def test_a_site_sees_nothing_of_another_site(hub_and_sites: Any, mqtt_peer: Any) -> None:
    hub, sites, centrals, passwords = hub_and_sites
    # The north broker's own central account may read everything it holds: still nothing of south.
    spy = mqtt_peer(sites["north"].central_url)
    spy.subscribe("nextup/#")
    kiosk = mqtt_peer(sites["south"].url("kiosk-1"))
    kiosk.subscribe(Topics("south").ticket_reply("kiosk-1"))
    assert _ticket(kiosk, "south", "cash").ok
    time.sleep(0.3)
    seen = []
    while not spy.messages.empty():
        seen.append(spy.messages.get().topic)
    assert seen and all(topic.startswith("nextup/north/") for topic in seen), seen
    # And the central broker refuses a bridge user outside its site.
    bridge = mqtt_peer(f"mqtt://bridge-north:{passwords['bridge-north']}@{hub.host}:{hub.port}",
                       client_id="not-the-bridge")
    if not bridge.subscribe(Topics("south").board).is_failure:  # Mosquitto grants it, then delivers nothing
        with pytest.raises(queue.Empty):
            bridge.next_message(1)


def test_the_bridge_section_and_the_central_acl_name_only_the_site() -> None:
    text = render_bridge(BridgeConfig(site="north", host="central.example", port=8883, password="pw-123",
                                      cafile="/etc/nextup/ca.pem"))
    assert "topic nextup/north/# both 1" in text
    assert "remote_username bridge-north" in text and "address central.example:8883" in text
    assert "bridge_cafile /etc/nextup/ca.pem" in text
    acl = render_hub_acl(["north", "south"])
    assert "user bridge-south\ntopic readwrite nextup/south/#" in acl
    with pytest.raises(ValueError):
        render_bridge(BridgeConfig(site="North Hall", host="h", port=1, password="x"))
    with pytest.raises(ValueError):
        render_bridge(BridgeConfig(site="north", host="h", port=1, password="two words"))
