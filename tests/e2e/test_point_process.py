"""``nextup point --sim`` as a process: systemd readiness and watchdog, sim presses, clean and hard stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest
from edge_support import ScriptedCentral
from helpers import wait_until

from nextup.contract import Command, DeviceStatus


@pytest.fixture
def observer(broker, central):
    peer = ScriptedCentral(broker, client_id="observer")
    peer.subscribe(peer.topics.device_status("point-1"), peer.topics.command("point-1"))
    yield peer
    peer.close()


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(10)
    yield path, sock
    sock.close()


def start_point(broker, central, notify_path=None) -> subprocess.Popen:
    env = {**os.environ, "NEXTUP_DEVICE_ID": "point-1", "NEXTUP_MQTT_URL": central.device_urls["point-1"],
           "NEXTUP_SITE": broker.site}
    env.pop("NOTIFY_SOCKET", None)
    if notify_path is not None:
        env.update(NOTIFY_SOCKET=str(notify_path), WATCHDOG_USEC="200000")
    return subprocess.Popen([sys.executable, "-m", "nextup", "point", "--sim"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def status(observer: ScriptedCentral, online: bool) -> DeviceStatus:
    message = observer.expect(observer.topics.device_status("point-1"),
                              lambda m: DeviceStatus.parse(m.payload).online is online, timeout=10)
    return DeviceStatus.parse(message.payload)


def notifications(sock: socket.socket, until: str) -> list[str]:
    seen: list[str] = []
    while until not in seen:
        seen += sock.recv(4096).decode().split("\n")
    return seen


def test_the_point_process_tells_systemd_it_is_ready_and_alive_and_goes_offline_on_sigterm(
        broker, central, observer, notify_socket):
    path, sock = notify_socket
    process = start_point(broker, central, path)
    try:
        assert status(observer, True).kind == "point"
        assert "READY=1" in notifications(sock, "READY=1")
        notifications(sock, "WATCHDOG=1")
        notifications(sock, "WATCHDOG=1")  # again and again while it runs

        observer.publish(observer.topics.sim_press("point-1"), b"recall")
        command = Command.parse(observer.expect(observer.topics.command("point-1")).payload)
        assert command.action == "recall"

        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        assert status(observer, False).kind == "point"
        assert "STOPPING=1" in notifications(sock, "STOPPING=1")
    finally:
        process.kill()
        process.wait()


def test_a_point_process_that_dies_is_reported_offline_by_its_will(broker, central, observer):
    process = start_point(broker, central)
    try:
        status(observer, True)
        wait_until(lambda: device_online(central, "point-1") is True, what="central to see it online")
        process.kill()
        process.wait()
        assert status(observer, False).kind == "point"  # its will: it could say nothing itself
        wait_until(lambda: device_online(central, "point-1") is False, what="central to see it offline")
    finally:
        process.kill()
        process.wait()


def device_online(central, device_id: str) -> bool | None:
    from central.store.models import DeviceRow

    with central.store.read() as s:
        return s.get(DeviceRow, device_id).online
