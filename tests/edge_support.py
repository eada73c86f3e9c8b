"""Helpers for the edge device tests: a test that plays central through the real broker."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from nextup.contract import Topics
from nextup.settings import Settings, load

TIMEOUT = 5.0


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


class Central:
    """The test playing central: a persistent MQTT 5 session with central's credentials.

    Its session (and so its subscriptions and what waits for it) survives a
    broker restart, as the real central's does.
    """

    def __init__(self, broker: Any, client_id: str = "central-test") -> None:
        self.topics = Topics(broker.site)
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
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
        """The next message on ``topic`` that ``where`` accepts; others on that topic are skipped."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no message on {topic}")
            try:
                message = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            if message.topic == topic and where(message):
                return message

    def drain(self) -> list[mqtt.MQTTMessage]:
        out = []
        while True:
            try:
                out.append(self.messages.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_until(predicate: Callable[[], Any], timeout: float = TIMEOUT, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something true; its value, or TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.01)
