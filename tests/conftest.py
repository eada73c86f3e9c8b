"""Fixtures every test may use: a real Mosquitto with the project's configuration."""

from __future__ import annotations

import os
import queue
import threading
import uuid
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

    def __init__(
        self, url: str, *, client_id: str = "", ca_file: str | None = None, timeout: float = 5.0
    ) -> None:
        parts = urlsplit(url)
        self.timeout = timeout
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 1883
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,  # a test sees each refusal and each drop, not a retry
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


# --- databases and central ----------------------------------------------------

POSTGRES_URL = os.environ.get("NEXTUP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _postgres_reachable() -> str | None:
    """None when PostgreSQL answers, else why not."""
    import psycopg

    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        return str(exc).strip()
    return None


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL whose search path is a fresh schema, dropped at teardown.

    Skipped when no server answers, except in CI, where PostgreSQL tests must run.
    """
    import psycopg

    problem = _postgres_reachable()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL must run in CI: {problem}")
        pytest.skip(f"no PostgreSQL: {problem}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'nextup.sqlite3'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test that takes it runs on SQLite and on PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def make_store() -> Iterator[Callable[..., Any]]:
    """Stores at the newest schema with a site file applied (the demo site by default)."""
    from central.sitefile import apply_site
    from central.sitespec import parse_site_file
    from central.store import Store
    from central.store.migrate import upgrade

    stores: list[Any] = []

    def make(url: str, site_file: Path | str = EXAMPLES / "demo-site.toml") -> Any:
        upgrade(url)
        store = Store(url)
        stores.append(store)
        apply_site(store, parse_site_file(site_file))
        return store

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def make_central(
    broker: RunningBroker, sqlite_url: str, make_store: Callable[..., Any]
) -> Iterator[Callable[..., Any]]:
    """Start ``Central`` instances against ``broker``: a site file applied, HTTP on a free port.

    The devices of the site file get broker credentials: ``central.device_urls[id]``.
    """
    from central.runner import Central
    from central.sitespec import parse_site_file
    from nextup.settings import Settings

    started: list[Any] = []

    def make(
        *,
        site_file: Path | str = EXAMPLES / "demo-site.toml",
        database: str | None = None,
        http: bool = True,
        **kwargs: Any,
    ) -> Any:
        url = database or sqlite_url
        if not started or database is not None:
            make_store(url, site_file).close()
        settings = Settings(
            site=broker.site, database_url=url, mqtt_url=broker.central_url, public_url="http://nextup.test"
        )
        central = Central(settings, http=("127.0.0.1", 0) if http else None, **kwargs)
        central.device_urls = {
            d.id: broker.add_device(d.id, d.kind.value) for d in parse_site_file(site_file).devices
        }
        started.append(central)
        central.start()
        if not central.bridge.wait_connected(30):  # a busy CI machine may need a reconnect or two
            raise TimeoutError("central did not connect to the broker")
        return central

    yield make
    for central in started:
        central.stop()


@pytest.fixture
def central(make_central: Callable[..., Any]) -> Any:
    """A running central of the demo site (SQLite) on ``broker``; see ``make_central``."""
    return make_central()
