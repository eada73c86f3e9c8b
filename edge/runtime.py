"""The shared device runtime: one MQTT 5 connection per edge device.

What every edge program needs and none should write again: its settings,
a persistent QoS 1 session with the broker, a retained ``status`` with the
offline will, reconnect with backoff, the retained ``device/<id>/config``
from central, sim presses, and systemd readiness and watchdog.

A device program subclasses ``Device``: it sets ``kind``, creates its
hardware in ``setup()`` (with ``self.pin_factory``), subscribes with
``self.runtime.subscribe(topic, handler)`` and closes its hardware in
``teardown()``::

    class Board(Device):
        kind = "display"

        def setup(self):
            self.runtime.subscribe(self.runtime.topics.board, self._on_board)

    with Board(settings.load(path), sim=True) as board:
        board.run()                      # until SIGTERM / SIGINT

Hardware comes in as keyword-only arguments, as gpiozero does it; nothing
here touches GPIO at import time, and gpiozero is imported only when a pin
factory is asked for.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, ClassVar

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from central.domain.errors import BadPayload
from central.domain.model import DeviceKind
from nextup import __version__
from nextup.contract import DEVICE_ID, QOS, DeviceConfig, DeviceStatus, Payload, Topics
from nextup.mqtt import no_delay
from nextup.settings import Settings, SettingsError

log = logging.getLogger(__name__)

Handler = Callable[[mqtt.MQTTMessage], None]

DEFAULT_SESSION_EXPIRY_S = 3600
"""How long the broker keeps a device's session (its subscriptions and the
QoS 1 messages for it) while the device is away."""


class DeviceRuntime:
    """The MQTT connection, status and sim hooks of one edge device.

    ``settings`` names the device (``device_id``), the site and the broker;
    ``kind`` is kiosk, point or display.  ``sim`` makes mock pins and listens
    on ``sim/<device_id>/press``.  ``pin_factory`` overrides the pins (a
    gpiozero factory).  Callbacks run on the runtime's network thread.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        kind: str,
        sim: bool = False,
        pin_factory: Any = None,
        version: str = __version__,
        keepalive_s: int = 15,
        session_expiry_s: int = DEFAULT_SESSION_EXPIRY_S,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        max_queued: int = 1000,
    ) -> None:
        if not settings.device_id:
            raise SettingsError("a device needs its id: set NEXTUP_DEVICE_ID or device_id in its config")
        if not DEVICE_ID.match(settings.device_id):
            raise SettingsError(f"device id {settings.device_id!r} is not valid")
        try:
            self.kind = DeviceKind(kind).value
        except ValueError:
            raise SettingsError(f"device kind {kind!r} is not one of kiosk, point, display") from None
        try:
            self.topics = Topics(settings.site)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        self.settings = settings
        self.device_id: str = settings.device_id
        self.sim = sim
        self.version = version
        self.config: DeviceConfig | None = None
        self._pin_factory = pin_factory
        self._keepalive_s = keepalive_s
        self._session_expiry_s = session_expiry_s
        self._reconnect = (reconnect_min_s, reconnect_max_s)
        self._max_queued = max_queued
        self._tcp_timeout_ms: int | None = None  # the shortest expiry published so far
        # Never held while calling into paho: paho calls back into us holding its own locks.
        self._lock = threading.RLock()
        self._deadline_lock = threading.Lock()
        self._handlers: dict[str, Handler] = {}
        self._config_listeners: list[Callable[[DeviceConfig], None]] = []
        self._connection_listeners: list[Callable[[bool], None]] = []
        self._buttons: dict[str, Any] = {}
        self._status: dict[str, Any] = {}
        self._deadlines: dict[int, tuple[float, bytes]] = {}  # mid -> (not sent after, payload)
        self._connected = threading.Event()
        self._subscribed: set[str] = set()
        self._suback = threading.Condition(self._lock)
        self._pending_subscriptions: dict[int, list[str]] = {}
        self._client: mqtt.Client | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self.connections = 0
        """How many times the broker accepted the connection."""

        self.subscribe(self.topics.device_config(self.device_id), self._on_config)
        if sim:
            self.subscribe(self.topics.sim_press(self.device_id), self._on_sim_press)

    # --- what a device program uses ------------------------------------------

    @property
    def pin_factory(self) -> Any:
        """The gpiozero pin factory for this device: mock pins in sim, else gpiozero's default (None)."""
        if self._pin_factory is None and self.sim:
            from gpiozero.pins.mock import MockFactory

            self._pin_factory = MockFactory()
        return self._pin_factory

    @property
    def extra(self) -> dict[str, Any]:
        """Device keys of the config file (pins and the like)."""
        return dict(self.settings.extra)

    @property
    def language(self) -> str | None:
        """The language central configured for this device, else the one of the local config."""
        if self.config is not None and self.config.language:
            return self.config.language
        value = self.settings.extra.get("language")
        return value if isinstance(value, str) else None

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float | None = None) -> bool:
        """True once the broker accepted the connection (within ``timeout`` seconds)."""
        return self._connected.wait(timeout)

    def subscribed(self, topic: str) -> bool:
        """The broker acknowledged the subscription to ``topic`` on the current connection."""
        with self._lock:
            return topic in self._subscribed

    def wait_ready(self, timeout: float | None = None) -> bool:
        """True once connected and every subscription so far is acknowledged (within ``timeout``)."""
        with self._suback:
            return self._suback.wait_for(
                lambda: self.connected and set(self._handlers) <= self._subscribed, timeout
            )

    def subscribe(self, topic: str, handler: Handler) -> None:
        """Call ``handler(message)`` for each message on ``topic`` (a filter); kept across reconnects."""
        with self._lock:
            self._handlers[topic] = handler
            client = self._client
        if client is not None:
            client.message_callback_add(topic, self._guarded(handler))
            if self.connected:
                self._subscribe(client, [topic])

    def unsubscribe(self, topic: str) -> None:
        with self._lock:
            if self._handlers.pop(topic, None) is None:
                return
            self._subscribed.discard(topic)
            client = self._client
        if client is not None:
            client.message_callback_remove(topic)
            if self.connected:
                client.unsubscribe(topic)

    def on_config(self, listener: Callable[[DeviceConfig], None]) -> None:
        """Call ``listener(config)`` whenever central's retained device config arrives (and now, if known)."""
        with self._lock:
            self._config_listeners.append(listener)
            config = self.config
        if config is not None:
            listener(config)

    def on_connection(self, listener: Callable[[bool], None]) -> None:
        """Call ``listener(connected)`` when the broker connection comes or goes."""
        with self._lock:
            self._connection_listeners.append(listener)

    def add_button(self, name: str, button: Any) -> None:
        """Let ``sim/<id>/press`` with payload ``name`` press ``button`` (a gpiozero Button)."""
        with self._lock:
            self._buttons[name] = button

    def remove_button(self, name: str) -> None:
        with self._lock:
            self._buttons.pop(name, None)

    def press(self, name: str) -> None:
        """Press and release the mock button ``name``; ``KeyError`` if there is none."""
        with self._lock:
            button = self._buttons[name]
        pin = button.pin
        # A button with the pull-up (gpiozero's default) reads pressed when the pin is low.
        if getattr(button, "pull_up", True):
            pin.drive_low()
            pin.drive_high()
        else:
            pin.drive_high()
            pin.drive_low()

    def publish(
        self,
        topic: str,
        payload: Payload | bytes | str,
        *,
        retain: bool = False,
        expiry_s: float | None = None,
        response_topic: str | None = None,
        correlation: bytes | None = None,
    ) -> mqtt.MQTTMessageInfo:
        """Publish at QoS 1; while offline the message waits and goes out after reconnect.

        ``expiry_s`` bounds how late it may arrive: it is sent with that MQTT 5
        Message Expiry Interval, and a message still waiting here when it runs
        out is dropped instead of sent.
        """
        client = self._require_client()
        data = payload.to_json() if isinstance(payload, Payload) else payload
        if isinstance(data, str):
            data = data.encode("utf-8")
        props = None
        if expiry_s is not None or response_topic is not None or correlation is not None:
            props = Properties(PacketTypes.PUBLISH)
            if expiry_s is not None:
                props.MessageExpiryInterval = max(1, math.ceil(expiry_s))
            if response_topic is not None:
                props.ResponseTopic = response_topic
            if correlation is not None:
                props.CorrelationData = correlation
        if expiry_s is not None:
            self._bound_tcp_timeout(client, expiry_s)
        info = client.publish(topic, data, qos=QOS, retain=retain, properties=props)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            log.error("%s: outgoing queue is full, dropped a message to %s", self.device_id, topic)
        elif expiry_s is not None and not _acknowledged(info):
            with self._deadline_lock:
                self._deadlines[info.mid] = (time.monotonic() + expiry_s, bytes(data))
        return info

    def set_status(self, **fields: Any) -> None:
        """Merge ``fields`` (``printer=``, ``details=``) into the retained status and publish it."""
        with self._lock:
            if all(self._status.get(k) == v for k, v in fields.items()):
                return
            self._status.update(fields)
        if self.connected:
            self._publish_status(True)

    def status(self, online: bool = True) -> DeviceStatus:
        with self._lock:
            return DeviceStatus(
                online=online,
                kind=self.kind,
                version=self.version,
                printer=self._status.get("printer"),
                details=self._status.get("details"),
            )

    # --- life cycle ------------------------------------------------------------

    def start(self) -> DeviceRuntime:
        """Connect in the background (retrying until the broker answers); returns at once."""
        with self._lock:
            if self._closed:
                raise RuntimeError("device runtime is closed")
            if self._client is not None:
                return self
            self._client = client = self._make_client()
            for topic, handler in self._handlers.items():
                client.message_callback_add(topic, self._guarded(handler))
            url = self.settings.mqtt
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self._session_expiry_s
            client.connect_async(
                url.host, url.port, keepalive=self._keepalive_s, clean_start=False, properties=props
            )
            self._thread = threading.Thread(target=self._loop, name=f"mqtt-{self.device_id}", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 3.0) -> None:
        """Publish offline, disconnect and stop; a second call does nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            client, thread = self._client, self._thread
        if client is None:
            return
        if self.connected:
            info = self._publish_status(False)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                log.warning("%s: offline status not sent before closing", self.device_id)
        client.disconnect()
        if thread is not None:
            thread.join(timeout)
        self._connected.clear()

    def healthy(self) -> bool:
        """The network thread runs (connected or reconnecting)."""
        thread = self._thread
        return thread is not None and thread.is_alive() and not self._closed

    def run(self, stop: threading.Event | None = None) -> None:
        """Block until SIGTERM, SIGINT or ``stop``, telling systemd (when it watches) that all is well."""
        stop = stop or threading.Event()
        notifier = _systemd_notifier()
        interval = _watchdog_interval()
        with stop_on_signals(stop):
            if notifier is not None:
                notifier.notify(f"READY=1\nSTATUS=device {self.device_id} ({self.kind}) running")
            while not stop.wait(interval):
                if notifier is not None and self.healthy():
                    notifier.notify("WATCHDOG=1")
            if notifier is not None:
                notifier.notify("STOPPING=1")

    def __enter__(self) -> DeviceRuntime:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- inside ----------------------------------------------------------------

    def _require_client(self) -> mqtt.Client:
        client = self._client
        if client is None:
            raise RuntimeError("device runtime is not started")
        return client

    def _make_client(self) -> mqtt.Client:
        url = self.settings.mqtt
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=self.device_id, protocol=mqtt.MQTTv5
        )
        if url.username:
            client.username_pw_set(url.username, url.password)
        if url.tls:
            ca = self.settings.extra.get("mqtt_ca")
            client.tls_set(ca_certs=str(ca) if ca else None)
        client.reconnect_delay_set(*self._reconnect)  # type: ignore[arg-type]
        client.max_queued_messages_set(self._max_queued)
        client.will_set(
            self.topics.device_status(self.device_id), self.status(False).to_json(), qos=QOS, retain=True
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_socket_open = self._on_socket_open
        client.on_message = self._on_unexpected
        return client

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        no_delay(client)
        with self._deadline_lock:
            timeout_ms = self._tcp_timeout_ms
        _set_tcp_timeout(client, timeout_ms)

    def _bound_tcp_timeout(self, client: mqtt.Client, expiry_s: float) -> None:
        """Let the kernel give up on sent data no later than it expires.

        Bytes written while the link is down wait in the kernel and go out when
        it is back, however late: a press could reach central long after its
        expiry.  With TCP_USER_TIMEOUT the kernel drops the connection instead;
        paho reconnects, and ``_requeue_unexpired`` drops what ran out (saying so).
        """
        timeout_ms = max(1000, int(expiry_s * 1000))
        with self._deadline_lock:
            if self._tcp_timeout_ms is not None and self._tcp_timeout_ms <= timeout_ms:
                return
            self._tcp_timeout_ms = timeout_ms
        _set_tcp_timeout(client, timeout_ms)

    def _loop(self) -> None:
        client = self._require_client()
        try:
            client.loop_forever(retry_first_connection=True)
        except Exception:  # noqa: BLE001 - a dead network thread is reported by healthy()
            log.exception("%s: MQTT network loop stopped", self.device_id)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.warning("%s: broker refused the connection: %s", self.device_id, reason)
            return
        self._requeue_unexpired(client)
        with self._lock:
            self.connections += 1
            topics = list(self._handlers)
            listeners = list(self._connection_listeners)
        self._connected.set()
        if topics:
            self._subscribe(client, topics)
        self._publish_status(True)
        log.info("%s: connected to the broker (session present: %s)", self.device_id, flags.session_present)
        for listener in listeners:
            _call(listener, True)

    def _requeue_unexpired(self, client: mqtt.Client) -> None:
        """Drop waiting messages whose expiry ran out; the rest go out with the time they have left.

        paho resends its waiting messages right after this callback, as they
        were; a kiosk's ticket request must not reach central after the kiosk
        gave up on it.
        """
        with self._deadline_lock:
            if not self._deadlines:
                return
            deadlines, self._deadlines = self._deadlines, {}
        now = time.monotonic()
        for message in client.drop_out_messages():
            deadline, payload = deadlines.get(message.mid, (None, b""))
            if payload != message.payload:  # the mid was reused by a message without an expiry
                deadline = None
            props = message.properties
            if deadline is not None:
                if deadline <= now:
                    log.info("%s: not sending an expired message to %s", self.device_id, message.topic)
                    continue
                if props is not None:
                    props.MessageExpiryInterval = max(1, math.ceil(deadline - now))
            info = client.publish(message.topic, message.payload, qos=message.qos, retain=message.retain,
                                  properties=props)
            if deadline is not None:
                with self._deadline_lock:
                    self._deadlines[info.mid] = (deadline, bytes(message.payload))

    def _subscribe(self, client: mqtt.Client, topics: list[str]) -> None:
        # The lock spans the call so that the SUBACK cannot be handled before its mid is known.
        with self._lock:
            rc, mid = client.subscribe([(t, SubscribeOptions(qos=QOS)) for t in topics])
            if rc == mqtt.MQTT_ERR_SUCCESS and mid is not None:
                self._pending_subscriptions[mid] = topics

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        with self._suback:
            topics = self._pending_subscriptions.pop(mid, [])
            for topic, reason in zip(topics, reasons, strict=False):
                if reason.is_failure:
                    log.error("%s: subscription to %s refused: %s", self.device_id, topic, reason)
                elif topic in self._handlers:
                    self._subscribed.add(topic)
            self._suback.notify_all()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        with self._suback:
            self._subscribed.clear()
            self._pending_subscriptions.clear()
            self._suback.notify_all()
        if not was:
            return
        if self._closed:
            log.info("%s: disconnected from the broker", self.device_id)
            return
        log.warning("%s: lost the broker: %s", self.device_id, reason)
        with self._lock:
            listeners = list(self._connection_listeners)
        for listener in listeners:
            _call(listener, False)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._deadline_lock:
            self._deadlines.pop(mid, None)

    def _on_unexpected(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        log.debug("%s: ignoring a message on %s", self.device_id, message.topic)

    def _publish_status(self, online: bool) -> mqtt.MQTTMessageInfo:
        client = self._require_client()
        return client.publish(
            self.topics.device_status(self.device_id), self.status(online).to_json(), qos=QOS, retain=True
        )

    def _guarded(self, handler: Handler) -> Callable[[mqtt.Client, Any, mqtt.MQTTMessage], None]:
        def on_message(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
            try:
                handler(message)
            except BadPayload as exc:
                log.warning("%s: rejected a message on %s: %s", self.device_id, message.topic, exc.message)
            except Exception:  # noqa: BLE001 - one bad message must not stop the device
                log.exception("%s: failed to handle a message on %s", self.device_id, message.topic)

        return on_message

    def _on_config(self, message: mqtt.MQTTMessage) -> None:
        if not message.payload:  # central cleared the retained config
            return
        config = DeviceConfig.parse(message.payload)
        if config.kind != self.kind:
            log.error("%s: central says this device is a %s, but it runs as a %s",
                      self.device_id, config.kind, self.kind)
        with self._lock:
            self.config = config
            listeners = list(self._config_listeners)
        for listener in listeners:
            _call(listener, config)

    def _on_sim_press(self, message: mqtt.MQTTMessage) -> None:
        name = bytes(message.payload).decode("utf-8", "replace").strip()
        try:
            self.press(name)
        except KeyError:
            log.warning("%s: sim press of %r, a button this device does not have", self.device_id, name)


class Device:
    """Base of an edge program: a runtime plus the hardware of one device kind.

    Subclasses set ``kind`` and override ``setup()`` (make hardware, subscribe)
    and ``teardown()`` (close hardware), and may override ``finish()`` (work
    in flight, before disconnecting).  ``close()`` is idempotent; a device
    works as a context manager, which connects on enter.
    """

    kind: ClassVar[str]

    def __init__(
        self,
        settings: Settings,
        *,
        sim: bool = False,
        pin_factory: Any = None,
        runtime: DeviceRuntime | None = None,
        **runtime_options: Any,
    ) -> None:
        self.settings = settings
        self.runtime = runtime or DeviceRuntime(
            settings, kind=self.kind, sim=sim, pin_factory=pin_factory, **runtime_options
        )
        self._closed = False
        self._started = False
        try:
            self.setup()
        except BaseException:
            self._closed = True
            self.teardown()
            raise

    @property
    def device_id(self) -> str:
        return self.runtime.device_id

    @property
    def topics(self) -> Topics:
        return self.runtime.topics

    @property
    def pin_factory(self) -> Any:
        return self.runtime.pin_factory

    @property
    def sim(self) -> bool:
        return self.runtime.sim

    def setup(self) -> None:
        """Make the hardware and subscribe; called once by the constructor."""

    def finish(self) -> None:
        """Finish work in flight while still connected (``close()`` calls it before disconnecting)."""

    def teardown(self) -> None:
        """Close the hardware; must cope with a half-done ``setup()``."""

    def start(self) -> Device:
        if self._closed:
            raise RuntimeError(f"{self.kind} {self.device_id} is closed")
        if not self._started:
            self._started = True
            self.runtime.start()
        return self

    def run(self, stop: threading.Event | None = None) -> None:
        """Connect (if not yet) and serve until SIGTERM, SIGINT or ``stop``."""
        self.start()
        self.runtime.run(stop)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.finish()
        finally:
            try:
                self.runtime.close()
            finally:
                self.teardown()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Device:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def close_all(*devices: Any) -> None:
    """Close gpiozero devices (or anything with ``close()``), skipping None, even when one fails."""
    for device in devices:
        if device is None:
            continue
        try:
            device.close()
        except Exception:  # noqa: BLE001 - closing the rest matters more
            log.exception("failed to close %r", device)


def _set_tcp_timeout(client: mqtt.Client, timeout_ms: int | None) -> None:
    sock = client.socket()
    option = getattr(socket, "TCP_USER_TIMEOUT", None)  # Linux
    if timeout_ms is None or option is None or not isinstance(sock, socket.socket):
        return
    with suppress(OSError):  # closed meanwhile: the next socket gets it when it opens
        sock.setsockopt(socket.IPPROTO_TCP, option, timeout_ms)


def _acknowledged(info: mqtt.MQTTMessageInfo) -> bool:
    try:
        return info.is_published()
    except RuntimeError:  # "not connected": it waits in the queue
        return False


def _call(listener: Callable[..., None], *args: Any) -> None:
    try:
        listener(*args)
    except Exception:  # noqa: BLE001
        log.exception("listener %r failed", listener)


def _systemd_notifier() -> Any:
    if not os.environ.get("NOTIFY_SOCKET"):
        return None
    import sdnotify

    return sdnotify.SystemdNotifier()


def _watchdog_interval() -> float:
    """Half systemd's WatchdogSec when it watches this process, else once a second."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID")
    if usec.isdigit() and int(usec) > 0 and (pid is None or pid == str(os.getpid())):
        return int(usec) / 2_000_000
    return 1.0


def positive_number(section: str, table: dict[str, Any], key: str, default: float) -> float:
    """``table[key]`` (else ``default``) from the device file's ``[section]``; a SettingsError unless > 0."""
    value = table.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise SettingsError(f"[{section}] {key} must be a positive number")
    return float(value)


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """While the block runs, SIGTERM and SIGINT set ``stop`` (in the main thread; elsewhere nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
