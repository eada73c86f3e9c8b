"""Helpers for the edge device tests: a test that plays central through the real broker."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from helpers import TIMEOUT
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from nextup.contract import Topics
from nextup.settings import Settings, load


def device_settings(broker: Any, device_id: str, kind: str, tmp_path: Path | None = None,
                    toml: str = "", **env: str) -> Settings:
    """Settings of a device registered with ``broker``: credentials from the broker, keys from ``toml``."""
    url = broker.add_device(device_id, kind)
    config = None
    if tmp_path is not None and toml:
        config = tmp_path / f"{device_id}.toml"
        config.write_text(toml, encoding="utf-8")
    return load(config, env={"NEXTUP_DEVICE_ID": device_id, "NEXTUP_MQTT_URL": url,
                             "NEXTUP_SITE": broker.site, **env})


class ScriptedCentral:
    """The test playing central: a persistent MQTT 5 session with central's credentials.

    Its session (and so its subscriptions and what waits for it) survives a
    broker restart, as the real central's does.
    """

    def __init__(self, broker: Any, client_id: str = "central-test") -> None:
        self.topics = Topics(broker.site)
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._unread: list[mqtt.MQTTMessage] = []
        self.connected = threading.Event()
        self._acks: dict[int, threading.Event] = {}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        user, password = "central", broker.passwords["central"]
        self.client.username_pw_set(user, password)
        self.client.reconnect_delay_set(0.1, 0.5)  # type: ignore[arg-type]
        self.client.on_connect = lambda c, u, f, rc, p: self.connected.set()
        self.client.on_disconnect = lambda c, u, f, rc, p: self.connected.clear()
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 300
        self.client.connect(broker.host, broker.port, keepalive=30, clean_start=False, properties=props)
        self.client.loop_start()
        if not self.connected.wait(TIMEOUT):
            raise TimeoutError("central could not connect")

    def subscribe(self, *topics: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda c, u, mid, rcs, p: done.set()
        self.client.subscribe([(t, 1) for t in topics])
        if not done.wait(TIMEOUT):
            raise TimeoutError(f"no SUBACK for {topics}")

    def publish(self, topic: str, payload: Any, *, retain: bool = False,
                properties: Properties | None = None) -> None:
        data = payload.to_json() if hasattr(payload, "to_json") else payload
        info = self.client.publish(topic, data, qos=1, retain=retain, properties=properties)
        info.wait_for_publish(TIMEOUT)

    def reply(self, request: mqtt.MQTTMessage, payload: Any) -> None:
        """Answer a request on its MQTT 5 response topic with its correlation data."""
        props = Properties(PacketTypes.PUBLISH)
        props.CorrelationData = request.properties.CorrelationData
        self.publish(request.properties.ResponseTopic, payload, properties=props)

    def expect(self, topic: str, where: Callable[[mqtt.MQTTMessage], bool] = lambda m: True,
               timeout: float = TIMEOUT) -> mqtt.MQTTMessage:
        """The next message on ``topic`` that ``where`` accepts.

        Earlier messages on ``topic`` that it does not accept are dropped;
        messages on other topics stay for a later ``expect``.
        """
        deadline = time.monotonic() + timeout
        while True:
            for i, message in enumerate(self._unread):
                if message.topic == topic:
                    del self._unread[i]
                    if where(message):
                        return message
                    break
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no message on {topic}")
                try:
                    self._unread.append(self.messages.get(timeout=left))
                except queue.Empty:
                    continue

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class NetworkPrinterSim:
    """A thermal printer on TCP (as on port 9100) that answers ESC/POS status queries.

    python-escpos's own ``Network`` printer talks to it; ``paper`` ("ok",
    "low", "out") and ``online`` set what it answers, ``received`` holds what
    it was sent (status queries taken out).
    """

    STATUS_ONLINE = b"\x10\x04\x01"
    STATUS_PAPER = b"\x10\x04\x04"

    def __init__(self) -> None:
        import socket

        self.paper = "ok"
        self.online = True
        self.received = bytearray()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"tcp:127.0.0.1:{self.port}"

    def _serve(self) -> None:
        self._server.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                continue
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: Any) -> None:
        conn.settimeout(0.1)
        pending = b""
        with conn:
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                pending += chunk
                for query in (self.STATUS_ONLINE, self.STATUS_PAPER):
                    while query in pending:
                        before, _, pending = pending.partition(query)
                        self.received += before
                        conn.sendall(self._answer(query))
                # keep a possible partial query for the next chunk
                keep = 2 if pending.endswith(b"\x10\x04") else (1 if pending.endswith(b"\x10") else 0)
                self.received += pending[: len(pending) - keep]
                pending = pending[len(pending) - keep :]

    def _answer(self, query: bytes) -> bytes:
        if query == self.STATUS_ONLINE:
            return bytes([0x12 | (0 if self.online else 0x08)])
        return bytes([{"ok": 0x12, "low": 0x1E, "out": 0x72}[self.paper]])

    def close(self) -> None:
        self._stop.set()
        self._server.close()
        self._thread.join(2)
