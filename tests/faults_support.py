"""Helpers for the fault tests: processes to kill, database snapshots, clients that count what they get."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import helpers
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import create_engine, inspect, text

from nextup.contract import Topics

TOPICS = Topics("main")


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition",
               every: float = 0.02) -> Any:
    """``helpers.wait_until``, with the patience of tests that kill and restart processes."""
    return helpers.wait_until(predicate, timeout, what, every)


def db_snapshot(url: str, *, skip: dict[str, set[str]] | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order (columns in ``skip[table]`` left out)."""
    skip = skip or {}
    engine = create_engine(url)
    try:
        out: dict[str, list[tuple[Any, ...]]] = {}
        with engine.connect() as conn:
            inspector = inspect(conn)
            for table in sorted(inspector.get_table_names()):
                left_out = skip.get(table, set())
                columns = [c["name"] for c in inspector.get_columns(table) if c["name"] not in left_out]
                keys = inspector.get_pk_constraint(table)["constrained_columns"] or columns
                quoted = ", ".join(f'"{c}"' for c in columns)
                order = ", ".join(f'"{c}"' for c in keys)
                rows = conn.execute(text(f'SELECT {quoted} FROM "{table}" ORDER BY {order}'))
                out[table] = [tuple(r) for r in rows]
        return out
    finally:
        engine.dispose()


def query(url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


class CentralProcess:
    """``nextup central`` as a child process (so that it can be killed with SIGKILL)."""

    def __init__(self, workdir: Path, *, database_url: str, mqtt_url: str, site: str = "main",
                 **env: str) -> None:
        self.workdir = workdir
        self.log_path = workdir / "central.log"
        self.env = {**os.environ, "NEXTUP_DATABASE_URL": database_url, "NEXTUP_MQTT_URL": mqtt_url,
                    "NEXTUP_SITE": site, "NEXTUP_PUBLIC_URL": "http://nextup.test", **env}
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> CentralProcess:
        assert self.process is None or self.process.poll() is not None
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {self.starts + 1}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "nextup.cli", "central", "--http", "127.0.0.1:0"],
                cwd=self.workdir, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.starts += 1
        return self

    def kill(self) -> None:
        """SIGKILL, as a power cut or the OOM killer would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Client:
    """A paho MQTT 5 client that records every message and every PUBACK; publishes without waiting."""

    def __init__(self, url: str, *, client_id: str = "", persistent: bool = False) -> None:
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(url)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or uuid.uuid4().hex,
                                  protocol=mqtt.MQTTv5)
        self.client.username_pw_set(unquote(parts.username or ""), unquote(parts.password or ""))
        self.client.reconnect_delay_set(0.1, 0.5)  # type: ignore[arg-type]
        self.client.max_inflight_messages_set(100)
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connected = threading.Event()
        self._lock = threading.Condition()
        self.acked: set[int] = set()
        self._subacks: set[int] = set()
        self.client.on_connect = lambda c, u, f, rc, p: self.connected.set()
        self.client.on_disconnect = lambda c, u, f, rc, p: self.connected.clear()
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 600 if persistent else 0
        self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883, keepalive=30,
                            clean_start=not persistent, properties=props)
        self.client.loop_start()
        if not self.connected.wait(10):
            raise TimeoutError("could not connect")

    def _on_publish(self, client: Any, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        with self._lock:
            self.acked.add(mid)
            self._lock.notify_all()

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, rcs: Any, props: Any) -> None:
        with self._lock:
            self._subacks.add(mid)
            self._lock.notify_all()

    def subscribe(self, *topics: str) -> None:
        with self._lock:
            _, mid = self.client.subscribe([(t, 1) for t in topics])
            if not self._lock.wait_for(lambda: mid in self._subacks, 10):
                raise TimeoutError(f"no SUBACK for {topics}")

    def publish(self, topic: str, payload: bytes | str, *, response_topic: str | None = None,
                correlation: bytes | None = None, retain: bool = False,
                expiry_s: int | None = None) -> mqtt.MQTTMessageInfo:
        props = None
        if response_topic is not None or correlation is not None or expiry_s is not None:
            props = Properties(PacketTypes.PUBLISH)
            if response_topic is not None:
                props.ResponseTopic = response_topic
            if correlation is not None:
                props.CorrelationData = correlation
            if expiry_s is not None:
                props.MessageExpiryInterval = expiry_s
        return self.client.publish(topic, payload, qos=1, retain=retain, properties=props)

    def wait_acked(self, infos: list[mqtt.MQTTMessageInfo], timeout: float = 30.0) -> None:
        """Wait until the broker acknowledged every one of ``infos``."""
        mids = {i.mid for i in infos}
        with self._lock:
            if not self._lock.wait_for(lambda: mids <= self.acked, timeout):
                raise TimeoutError(f"{len(mids - self.acked)} publishes not acknowledged")

    def drain(self, timeout: float = 0.0) -> list[mqtt.MQTTMessage]:
        """Messages received so far (waiting up to ``timeout`` for the first)."""
        out = []
        try:
            out.append(self.messages.get(timeout=timeout) if timeout else self.messages.get_nowait())
            while True:
                out.append(self.messages.get_nowait())
        except queue.Empty:
            pass
        return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def ticket_request(request_id: str, service: str) -> bytes:
    return json.dumps({"request_id": request_id, "service": service}).encode()


def command(command_id: str, action: str) -> bytes:
    return json.dumps({"command_id": command_id, "action": action}).encode()
