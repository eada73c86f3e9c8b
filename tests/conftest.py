"""Fixtures every test may use: a real Mosquitto with the project's configuration."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.reasoncodes import ReasonCode

from broker.mosquitto import RunningBroker


@pytest.fixture
def make_broker(tmp_path: Path) -> Iterator[Callable[..., RunningBroker]]:
    """Start brokers on free loopback ports (``RunningBroker`` keyword arguments); all stop at teardown."""
    started: list[RunningBroker] = []

    def make(**kwargs: Any) -> RunningBroker:
        broker = RunningBroker(tmp_path / f"broker-{len(started)}", **kwargs)
        started.append(broker)
        return broker.start()

    yield make
    for broker in started:
        broker.stop()


@pytest.fixture
def broker(make_broker: Callable[..., RunningBroker]) -> RunningBroker:
    """A running Mosquitto of site ``main`` with the project's configuration; see ``RunningBroker``."""
    return make_broker()


class MqttPeer:
    """A paho-mqtt 2.x MQTT 5 client for tests, with blocking helpers that wait on the broker's answers."""

    def __init__(self, url: str, *, client_id: str = "", ca_file: str | None = None, timeout: float = 5.0) -> None:
        parts = urlsplit(url)
        self.timeout = timeout
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 1883
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        if parts.username is not None:
            self.client.username_pw_set(unquote(parts.username), unquote(parts.password or ""))
        if ca_file is not None:
            self.client.tls_set(ca_certs=ca_file)
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connack: queue.Queue[ReasonCode] = queue.Queue()
        self.disconnected = threading.Event()
        self.acks: dict[int, ReasonCode] = {}
        self.subacks: dict[int, list[ReasonCode]] = {}
        self._acked = threading.Condition()
        self.client.on_connect = lambda c, u, f, rc, p: self.connack.put(rc)
        self.client.on_disconnect = lambda c, u, f, rc, p: self.disconnected.set()
        self.client.on_message = lambda c, u, msg: self.messages.put(msg)
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe

    def _on_publish(self, client: Any, userdata: Any, mid: int, rc: ReasonCode, props: Any) -> None:
        with self._acked:
            self.acks[mid] = rc
            self._acked.notify_all()

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, rcs: list[ReasonCode], props: Any) -> None:
        with self._acked:
            self.subacks[mid] = rcs
            self._acked.notify_all()

    def _wait(self, table: dict[int, Any], mid: int) -> Any:
        with self._acked:
            if not self._acked.wait_for(lambda: mid in table, self.timeout):
                raise TimeoutError(f"no acknowledgement of message {mid}")
            return table.pop(mid)

    def connect(self) -> ReasonCode:
        """Connect and return the CONNACK reason code (success or not)."""
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        return self.connack.get(timeout=self.timeout)

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> ReasonCode:
        """Publish at QoS 1 and return the PUBACK reason code."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        return self._wait(self.acks, info.mid)

    def subscribe(self, topic: str) -> ReasonCode:
        """Subscribe at QoS 1 and return the SUBACK reason code."""
        _, mid = self.client.subscribe(topic, qos=1)
        return self._wait(self.subacks, mid)[0]

    def next_message(self, timeout: float | None = None) -> mqtt.MQTTMessage:
        return self.messages.get(timeout=self.timeout if timeout is None else timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def mqtt_peer() -> Iterator[Callable[..., MqttPeer]]:
    """Make connected ``MqttPeer`` clients from ``mqtt://user:pass@host:port`` URLs; closed at teardown."""
    peers: list[MqttPeer] = []

    def make(url: str, *, connect: bool = True, **kwargs: Any) -> MqttPeer:
        peer = MqttPeer(url, **kwargs)
        peers.append(peer)
        if connect:
            rc = peer.connect()
            if rc.is_failure:
                raise ConnectionRefusedError(f"the broker refused {url.split('@')[-1]}: {rc}")
        return peer

    yield make
    for peer in peers:
        peer.close()
