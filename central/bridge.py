"""The MQTT side of central: device messages in, replies and states out.

A message is acknowledged to the broker only after its effect is committed
and the broker has taken the reply and states it caused (paho's manual
acknowledgement), so a central killed mid-way gets the message again from its
persistent session; the stored request and command ids make that second
delivery answer alike and do nothing twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from central import leases
from central.coordinator import Coordinator, Message
from central.domain.errors import NextupError
from central.retained import RetainedVersions
from nextup.contract import (
    PAYLOAD_OF_ROUTE,
    QOS,
    Command,
    DeviceStatus,
    LeaseRequest,
    OfflineTicket,
    TicketPrinted,
    TicketRequest,
)
from nextup.mqtt import no_delay
from nextup.settings import MqttUrl

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 24 * 3600


class RejectionLog:
    """Logs each rejection with its reason, at most ``per_minute`` a minute per reason,
    so a flood of bad messages cannot fill the disk."""

    def __init__(self, per_minute: int = 20, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._windows: dict[str, tuple[float, int, int]] = {}
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def reject(self, reason_code: str, message: str, **context: Any) -> None:
        now = self.clock()
        with self._lock:
            self.counts[reason_code] = self.counts.get(reason_code, 0) + 1
            start, logged, dropped = self._windows.get(reason_code, (now, 0, 0))
            if now - start >= 60:
                if dropped:
                    log.warning("%d more rejections (%s) were not logged", dropped, reason_code)
                start, logged, dropped = now, 0, 0
            if logged < self.per_minute:
                log.warning("rejected: %s", message, extra={"reason": reason_code, **context})
                logged += 1
            else:
                dropped += 1
            self._windows[reason_code] = (start, logged, dropped)


class Bridge:
    """Connects a coordinator to the broker."""

    def __init__(
        self,
        coordinator: Coordinator,
        url: MqttUrl,
        *,
        client_id: str | None = None,
        shared: bool = False,
        tls_ca: str | None = None,
    ) -> None:
        self.coordinator = coordinator
        self.topics = coordinator.topics
        self.url = url
        self.shared = shared
        # Instances sharing a site must not leave an older retained state on the broker.
        self.retained = RetainedVersions(self.topics) if shared else None
        self.rejections = RejectionLog()
        self.connected = threading.Event()
        self.reconnects = 0
        # Incoming messages waiting for the broker to take what they caused (see _on_message).
        self._local = threading.local()
        self._ack_lock = threading.Lock()
        self._acks_waiting: dict[int, tuple[int, int, int, set[int]]] = {}
        self._connection = 0
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            # Stable across restarts: the broker keeps the persistent session (subscriptions and the
            # messages not yet acknowledged) under this id; a new id each start would orphan it.
            client_id=client_id or f"central-{self.topics.site}",
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if url.username:
            self.client.username_pw_set(url.username, url.password)
        if url.tls:
            self.client.tls_set(ca_certs=tls_ca)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.max_queued_messages_set(0)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self._subscribe_mid: int | None = None
        coordinator.add_listener(self.publish)

    # --- lifecycle -----------------------------------------------------------

    def start(self) -> Bridge:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self.client.connect_async(
            self.url.host, self.url.port, keepalive=30, clean_start=False, properties=props
        )
        self.client.loop_start()
        return self

    def wait_connected(self, timeout: float = 10.0) -> bool:
        return self.connected.wait(timeout)

    def stop(self) -> None:
        self.coordinator.remove_listener(self.publish)
        self.client.disconnect()
        self.client.loop_stop()
        self.connected.clear()

    def __enter__(self) -> Bridge:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.error("broker refused central: %s", reason)
            return
        no_delay(client)
        with self._ack_lock:
            self._connection += 1
        if self.connected.is_set() or self.reconnects:
            self.reconnects += 1
        _, self._subscribe_mid = client.subscribe(
            [(topic, QOS) for topic in self.topics.central_subscriptions(self.shared)]
        )
        if self.retained is not None:
            self.retained.attach(client)
        log.info("central connected to the broker", extra={"session_present": flags.session_present})

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        if mid != self._subscribe_mid:
            return
        refused = [r for r in reasons if r.is_failure]
        if refused:
            log.error("broker refused central's subscriptions: %s", refused)
            return
        # Retained states may have been lost with the broker: publish them again from the database.
        self.publish(self.coordinator.snapshot())
        self.connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connected.clear()
        self.reconnects += 1
        with self._ack_lock:
            # The broker delivers what was not acknowledged again on the next connection.
            self._acks_waiting.clear()
        log.warning("central lost the broker: %s", reason)

    def publish(self, messages: list[Message]) -> None:
        for message in messages:
            if (
                self.retained is not None
                and message.retain
                and self.retained.outdated(message.topic, message.payload)
            ):
                continue
            props = None
            if message.expiry_s is not None:
                props = Properties(PacketTypes.PUBLISH)
                props.MessageExpiryInterval = message.expiry_s
            self._track(
                self.client.publish(
                    message.topic, message.payload, qos=QOS, retain=message.retain, properties=props
                )
            )

    def _track(self, info: mqtt.MQTTMessageInfo) -> None:
        sent = getattr(self._local, "sent", None)
        if sent is not None:
            sent.append(info)

    # --- incoming ------------------------------------------------------------

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # Acknowledged only once the broker has taken the reply and states it caused: acknowledged
        # earlier, a central killed while they wait in paho's memory would leave the kiosk without
        # its ticket; unacknowledged, the message comes again and the stored answer is sent again.
        sent: list[mqtt.MQTTMessageInfo] = []
        self._local.sent = sent
        try:
            self.handle(msg.topic, msg.payload, msg.properties)
        except Exception:
            # A bug must not kill the bridge; the message is acknowledged so it cannot loop forever.
            log.exception("failed to handle a message on %s", msg.topic)
        finally:
            self._local.sent = None
            self._ack_when_published(client, msg, sent)

    def _ack_when_published(
        self, client: mqtt.Client, msg: mqtt.MQTTMessage, sent: list[mqtt.MQTTMessageInfo]
    ) -> None:
        with self._ack_lock:
            waiting = {info.mid for info in sent if not _published(info)}
            if waiting:
                entry = (msg.mid, msg.qos, self._connection, waiting)
                for mid in waiting:
                    self._acks_waiting[mid] = entry
                return
        client.ack(msg.mid, msg.qos)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._ack_lock:
            entry = self._acks_waiting.pop(mid, None)
            if entry is None:
                return
            in_mid, qos, connection, waiting = entry
            waiting.discard(mid)
            if waiting or connection != self._connection:
                return
        client.ack(in_mid, qos)

    def handle(self, topic: str, payload: bytes, properties: Properties | None = None) -> None:
        """Handle one device message: validate, act, reply; a rejection is logged and changes nothing."""
        route = self.topics.route(topic)
        if route is None:
            self.rejections.reject("unknown_topic", f"message on unexpected topic {topic[:200]!r}")
            return
        model = PAYLOAD_OF_ROUTE[route.kind]
        if route.kind == "status" and not payload:
            return  # a cleared retained status
        try:
            parsed = model.parse(payload)
        except NextupError as exc:
            self.rejections.reject(
                exc.code, f"{route.kind} from {route.device_id}: {exc.message}", device=route.device_id
            )
            return
        try:
            if isinstance(parsed, TicketRequest):
                reply = self.coordinator.handle_ticket_request(route.device_id, parsed)
                self._reply(route.device_id, reply.to_json(), properties)
                log.info(
                    "ticket request answered",
                    extra={
                        "request_id": parsed.request_id,
                        "device": route.device_id,
                        "ticket": reply.ticket.number if reply.ticket else None,
                        "reason": reply.error.code if reply.error else None,
                    },
                )
            elif isinstance(parsed, Command):
                result = self.coordinator.handle_command(route.device_id, parsed)
                # One line per press, with the id the unit logged when it sent it and the ticket now called.
                current = result.state.current
                log.info(
                    "command %s %s%s",
                    parsed.action,
                    "done" if result.ok else "refused",
                    f": {result.error['message']}" if result.error else "",
                    extra={
                        "command_id": parsed.command_id,
                        "device": route.device_id,
                        "point": result.state.serial,
                        "ticket": current.number if current else None,
                    },
                )
            elif isinstance(parsed, TicketPrinted):
                self.coordinator.handle_ticket_printed(route.device_id, parsed)
            elif isinstance(parsed, DeviceStatus):
                self.coordinator.handle_status(route.device_id, parsed)
            elif isinstance(parsed, OfflineTicket):
                leases.accept_offline_ticket(self.coordinator, route.device_id, parsed)
            elif isinstance(parsed, LeaseRequest):
                leases.grant_leases(self.coordinator, route.device_id, parsed)
        except NextupError as exc:
            self.rejections.reject(
                exc.code, f"{route.kind} from {route.device_id}: {exc.message}", device=route.device_id
            )

    def _reply(self, device_id: str, payload: bytes, request_props: Properties | None) -> None:
        default = self.topics.ticket_reply(device_id)
        topic = getattr(request_props, "ResponseTopic", None) or default
        # A device may only have its replies sent under its own topics.
        if not topic.startswith(default.rsplit("/ticket/", 1)[0] + "/"):
            topic = default
        props = Properties(PacketTypes.PUBLISH)
        correlation = getattr(request_props, "CorrelationData", None)
        if correlation is not None:
            props.CorrelationData = correlation
        self._track(self.client.publish(topic, payload, qos=QOS, properties=props))


def _published(info: mqtt.MQTTMessageInfo) -> bool:
    try:
        return info.is_published()
    except (RuntimeError, ValueError):  # not sent yet: queued while disconnected
        return False
