"""The MQTT side of central: device messages in, replies and states out.

paho's network thread only queues what arrives. One worker takes whatever
has arrived as a batch: ticket requests and presses side by side share one
transaction (``Coordinator.run``) and one set of board and point states, other
messages are handled one by one, all in arrival order. A burst therefore costs
one commit, not one per message.

A message is acknowledged to the broker only after its effect is committed
and the broker has taken the reply and states it caused (paho's manual
acknowledgement, released by a second thread in arrival order), so a central
killed mid-way gets the message again from its persistent session; the stored
request and command ids make that second delivery answer alike and do nothing
twice.  While the database is unavailable the worker tries the same batch
again, with growing pauses, and nothing behind it is acknowledged; a message
whose MQTT expiry runs out meanwhile is dropped (its sender has given up on
it: a kiosk has printed an offline ticket instead).

Every ticket and call changes the waiting count of each point of its service.
The state of the point that was pressed, the board and the call go out at once;
a point whose only news is its count gets at most one state per ``HOLD_S``, the
newest, so a busy service does not send each of its points a state per call.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from central import leases
from central.coordinator import CommandResult, Coordinator, Job, Message
from central.domain.errors import NextupError, StoreUnavailable
from central.retained import RetainedVersions
from nextup.contract import (
    PAYLOAD_OF_ROUTE,
    QOS,
    Command,
    DeviceStatus,
    LeaseRequest,
    OfflineTicket,
    TicketPrinted,
    TicketReply,
    TicketRequest,
)
from nextup.logs import RateLimitedLog
from nextup.mqtt import no_delay
from nextup.settings import MqttUrl

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 24 * 3600
BATCH_MAX = 100
"""Messages handled in one transaction at most; the broker's max_inflight_messages caps it too."""
HOLD_S = 0.1
"""A point state that only changes how many wait goes out at most this often per point; the newest
one held meanwhile follows.  Far below what a person reading the unit's screen notices, and at a busy
site's pace (hundreds of tickets and calls a second) ten times fewer messages for every point."""
RETRY_FIRST_S = 0.05
RETRY_MAX_S = 2.0
"""Pauses between tries of a batch while the database is unavailable: doubling up to this."""

_KIND_OF_PAYLOAD = {model: kind for kind, model in PAYLOAD_OF_ROUTE.items()}
_SNAPSHOT: Any = object()
"""In the worker's inbox: publish every retained state from the database (after a (re)connect)."""
_Inbound = tuple[int, mqtt.MQTTMessage, float]
"""A device message, the number of the connection it came on and when it came (perf_counter)."""


class RejectionLog:
    """Counts each rejection by reason and logs it, rate-limited per reason (``RateLimitedLog``)."""

    def __init__(self, per_minute: int = 20, clock: Callable[[], float] = time.monotonic) -> None:
        self._log = RateLimitedLog(log, per_minute, clock)
        self.per_minute = per_minute
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def reject(self, reason_code: str, message: str, **context: Any) -> None:
        with self._lock:
            self.counts[reason_code] = self.counts.get(reason_code, 0) + 1
        self._log.log(reason_code, logging.WARNING, "rejected: %s", message, reason=reason_code, **context)


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
        # Retained states never go back in time: not from one instance's threads, nor (shared) between
        # instances, which follow the broker's retained states to see the others'.
        self.retained = RetainedVersions(self.topics)
        self.rejections = RejectionLog()
        self.connected = threading.Event()
        self.reconnects = 0
        # Incoming messages go to one worker, which handles what has arrived as a batch; the
        # acknowledger releases each batch once the broker holds what it caused.
        self._local = threading.local()
        self._inbox: queue.Queue[_Inbound | None] = queue.Queue()
        self._acks: queue.Queue[tuple[list[_Inbound], list[mqtt.MQTTMessageInfo]] | None]
        self._acks = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._timers: list[Callable[[str, float], None]] = []
        self._stopping = False
        self._halt = threading.Event()  # wakes a worker waiting for the database when central stops
        self._connection = 0
        self._publish_lock = threading.Lock()
        self.hold_s = HOLD_S
        self._sent_at: dict[str, float] = {}  # when each board or point state last went out (monotonic)
        self._held: dict[str, Message] = {}  # the newest state each point waits to send, if any
        self._holding = threading.Condition(self._publish_lock)
        self._send_all_held = False
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
        # A batch publishes a reply per request and the states it changed at once.
        self.client.max_inflight_messages_set(BATCH_MAX * 2)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self._subscribe_mid: int | None = None
        coordinator.add_listener(self.publish)

    # --- lifecycle -----------------------------------------------------------

    def start(self) -> Bridge:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self.client.connect_async(
            self.url.host, self.url.port, keepalive=30, clean_start=False, properties=props
        )
        self._stopping = self._send_all_held = False
        self._halt.clear()
        self._threads = [
            threading.Thread(target=self._work, name="central-bridge-worker", daemon=True),
            threading.Thread(target=self._acknowledge, name="central-bridge-acks", daemon=True),
            threading.Thread(target=self._send_held, name="central-bridge-held", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        self.client.loop_start()
        return self

    def wait_connected(self, timeout: float = 10.0) -> bool:
        return self.connected.wait(timeout)

    def stop(self) -> None:
        self.coordinator.remove_listener(self.publish)
        self._stopping = True
        self._halt.set()
        self._inbox.put(None)
        if self._threads:
            self._threads[0].join(timeout=10)
        self._acks.put(None)
        with self._holding:
            self._send_all_held = True  # the worker is done: the last states go out before the connection
            self._holding.notify()
        for thread in self._threads[1:]:
            thread.join(timeout=10)
        self._threads = []
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
        self._connection += 1
        if self.connected.is_set() or self.reconnects:
            self.reconnects += 1
        _, self._subscribe_mid = client.subscribe(
            [(topic, QOS) for topic in self.topics.central_subscriptions(self.shared)]
        )
        if self.shared:
            self.retained.attach(client)
        else:
            self.retained.reset()  # the broker may have lost its retained states: the snapshot goes out whole
        log.info("central connected to the broker", extra={"session_present": flags.session_present})

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        if mid != self._subscribe_mid:
            return
        refused = [r for r in reasons if r.is_failure]
        if refused:
            log.error("broker refused central's subscriptions: %s", refused)
            return
        # Retained states may have been lost with the broker: the worker publishes them again from
        # the database after the messages that arrived before this point, as one more job in line.
        self._inbox.put((self._connection, _SNAPSHOT, time.perf_counter()))

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connected.clear()
        if self._stopping:
            log.info("central disconnected from the broker")
            return
        self.reconnects += 1
        log.warning("central lost the broker: %s", reason)

    def publish(self, messages: list[Message]) -> None:
        with self._publish_lock:
            now = time.monotonic()
            for message in messages:
                if message.local:
                    continue
                if message.waiting_only and self._hold(message, now):
                    continue
                self._send(message, now)

    def _hold(self, message: Message, now: float) -> bool:
        """Keep ``message`` (its point's newest) to send later if the point's last state is too recent."""
        topic = message.topic
        held = self._held.get(topic)
        if held is None and now - self._sent_at.get(topic, -self.hold_s) >= self.hold_s:
            return False
        if held is None:
            self._holding.notify()
        if held is None or (message.version or 0) >= (held.version or 0):
            self._held[topic] = message
        return True

    def _send(self, message: Message, now: float) -> None:
        topic = message.topic
        if message.version is not None:
            held = self._held.get(topic)
            if held is not None and (held.version or 0) <= message.version:
                del self._held[topic]  # this one is at least as new
            self._sent_at[topic] = now
        if message.retain and self.retained.outdated(topic, message.payload, message.version):
            return
        self._publish(message)

    def _send_held(self) -> None:
        """Send each held state when its point's pause is over; everything held when central stops."""
        with self._holding:
            while True:
                now, last = time.monotonic(), self._send_all_held
                due = [t for t in self._held if last or now - self._sent_at[t] >= self.hold_s]
                for topic in due:
                    try:
                        self._send(self._held.pop(topic), now)
                    except Exception:  # a bug must not stop every later held state
                        log.exception("failed to send the held state of %s", topic)
                if last:
                    return
                pauses = [self._sent_at[t] + self.hold_s - now for t in self._held]
                self._holding.wait(min(pauses) if pauses else None)

    def _publish(self, message: Message) -> None:
        props = None
        if message.expiry_s is not None:
            props = Properties(PacketTypes.PUBLISH)
            props.MessageExpiryInterval = message.expiry_s
        topic, payload, retain = message.topic, message.payload, message.retain
        self._track(self.client.publish(topic, payload, qos=QOS, retain=retain, properties=props))

    def _track(self, info: mqtt.MQTTMessageInfo) -> None:
        sent = getattr(self._local, "sent", None)
        if sent is not None:
            sent.append(info)

    # --- incoming ------------------------------------------------------------

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # paho's network thread only queues: the worker takes whatever has arrived as one batch.
        self._inbox.put((self._connection, msg, time.perf_counter()))

    def _work(self) -> None:
        carried: list[_Inbound | None] = []  # what ended the last batch, to come next
        while True:
            first = carried.pop() if carried else self._inbox.get()
            if first is None:
                return
            if first[1] is _SNAPSHOT:
                if not self._until_stored(lambda: self.publish(self.coordinator.snapshot()), "the snapshot"):
                    return
                self.connected.set()
                continue
            batch = [first]
            while len(batch) < BATCH_MAX:
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if item is None or item[1] is _SNAPSHOT:
                    carried.append(item)
                    break
                batch.append(item)
            sent: list[mqtt.MQTTMessageInfo] = []
            self._local.sent = sent

            live = list(batch)  # less what expires while the database is away; all are acknowledged

            def handle(live: list[_Inbound] = live) -> None:
                now = time.perf_counter()
                live[:] = [item for item in live if not self._expired(item[1], item[2], now)]
                self.handle_batch([(m.topic, m.payload, m.properties) for _, m, _ in live])

            try:
                if not self._until_stored(handle, f"{len(batch)} messages"):
                    return  # stopped first: unacknowledged, they come again to the next start
            except Exception:
                # A bug must not kill the bridge; the messages are acknowledged so they cannot loop forever.
                log.exception("failed to handle %d messages", len(batch))
            finally:
                self._local.sent = None
            self._timed([(m.topic, received) for _, m, received in batch])
            self._acks.put((batch, sent))

    def _until_stored(self, work: Callable[[], None], what: str) -> bool:
        """Do ``work``, again and again while the database is unavailable; False: central stopped first."""
        pause = RETRY_FIRST_S
        waiting_since: float | None = None
        while True:
            try:
                work()
            except StoreUnavailable as exc:
                if waiting_since is None:
                    waiting_since = time.monotonic()
                    log.error("%s; %s wait for it", exc.message, what)
                if self._halt.wait(pause):
                    return False
                pause = min(pause * 2, RETRY_MAX_S)
                continue
            if waiting_since is not None:
                log.warning("the database is back after %.1f s", time.monotonic() - waiting_since)
            return True

    def _expired(self, msg: mqtt.MQTTMessage, received: float, now: float) -> bool:
        """Whether ``msg``'s MQTT expiry ran out here (waiting for the database): logged once."""
        expiry = getattr(msg.properties, "MessageExpiryInterval", None) if msg.properties else None
        if expiry is None or now - received <= expiry:
            return False
        self.rejections.reject(
            "expired", f"{msg.topic}: its expiry ({expiry} s) ran out before the database was back",
            topic=msg.topic,
        )
        return True

    def _acknowledge(self) -> None:
        """Acknowledge each batch, in arrival order, once the broker holds everything it caused.

        Acknowledged earlier, a central killed while its replies wait in paho's memory would leave
        a kiosk without its ticket; unacknowledged, the message comes again and the stored answer
        is sent again.
        """
        while True:
            item = self._acks.get()
            if item is None:
                return
            batch, sent = item
            latest = batch[-1][0]
            if all(self._wait_published(info, latest) for info in sent):
                for connection, msg, _ in batch:
                    # A message of an earlier connection comes again on the new one: its id is void.
                    if connection == self._connection:
                        self.client.ack(msg.mid, msg.qos)

    def _wait_published(self, info: mqtt.MQTTMessageInfo, connection: int) -> bool:
        while True:
            try:
                if info.is_published() or info.wait_for_publish(timeout=0.5):
                    return True
            except (RuntimeError, ValueError):  # not sent: the connection went meanwhile
                return False
            if connection != self._connection or self._stopping:
                return False

    def handle(self, topic: str, payload: bytes, properties: Properties | None = None) -> None:
        """Handle one device message: validate, act, reply; a rejection is logged and changes nothing."""
        received = time.perf_counter()
        self.handle_batch([(topic, payload, properties)])
        self._timed([(topic, received)])

    def add_timer(self, timer: Callable[[str, float], None]) -> None:
        """Call ``timer(kind, seconds)`` for every device message handled, from its receipt to its
        answer handed to the broker (``kind`` as in ``Route.kind``; "unknown" for a foreign topic)."""
        self._timers.append(timer)

    def _timed(self, handled: list[tuple[str, float]]) -> None:
        if not self._timers:
            return
        done = time.perf_counter()
        for topic, received in handled:
            route = self.topics.route(topic)
            for timer in self._timers:
                timer(route.kind if route else "unknown", done - received)

    def handle_batch(self, messages: list[tuple[str, bytes, Properties | None]]) -> None:
        """Handle device messages in order; ticket requests and presses side by side share one transaction."""
        jobs: list[tuple[Job, Callable[[Any], None]]] = []

        def run_jobs() -> None:
            if not jobs:
                return
            try:
                answers = self.coordinator.run([job for job, _ in jobs])
            except StoreUnavailable:
                raise  # the whole batch waits for the database
            except Exception:
                if len(jobs) == 1:
                    raise
                # One bad message must not sink the others: do them one by one.
                log.exception("a batch of %d failed; handling its messages one by one", len(jobs))
                answers = []
                for job, _ in jobs:
                    try:
                        answers.extend(self.coordinator.run([job]))
                    except StoreUnavailable:
                        raise
                    except Exception as exc:
                        log.exception("failed to handle %s %s", job.kind, job.message_id)
                        answers.append(exc)
            for (_, done), answer in zip(jobs, answers, strict=True):
                if not isinstance(answer, Exception) or isinstance(answer, NextupError):
                    done(answer)
            jobs.clear()

        for topic, payload, properties in messages:
            parsed = self._parse(topic, payload)
            if parsed is None:
                continue
            device_id, message = parsed
            if isinstance(message, TicketRequest):
                jobs.append(self._ticket_request(device_id, message, properties))
            elif isinstance(message, Command):
                jobs.append(self._command(device_id, message))
            else:
                run_jobs()  # in arrival order
                try:
                    self._handle_other(device_id, message)
                except StoreUnavailable:
                    raise
                except NextupError as exc:
                    self._reject(exc, device_id, message)
        run_jobs()

    def _parse(self, topic: str, payload: bytes) -> tuple[str, Any] | None:
        route = self.topics.route(topic)
        if route is None:
            self.rejections.reject("unknown_topic", f"message on unexpected topic {topic[:200]!r}")
            return None
        if route.kind == "status" and not payload:
            return None  # a cleared retained status
        try:
            return route.device_id, PAYLOAD_OF_ROUTE[route.kind].parse(payload)
        except NextupError as exc:
            self.rejections.reject(
                exc.code, f"{route.kind} from {route.device_id}: {exc.message}", device=route.device_id
            )
            return None

    def _reject(self, exc: NextupError, device_id: str, message: Any) -> None:
        kind = _KIND_OF_PAYLOAD.get(type(message), type(message).__name__)
        self.rejections.reject(exc.code, f"{kind} from {device_id}: {exc.message}", device=device_id)

    def _ticket_request(
        self, device_id: str, request: TicketRequest, properties: Properties | None
    ) -> tuple[Job, Callable[[Any], None]]:
        def done(reply: TicketReply | NextupError) -> None:
            if isinstance(reply, NextupError):
                self._reject(reply, device_id, request)
                return
            self._reply(device_id, reply.to_json(), properties)
            log.info(
                "ticket request answered",
                extra={
                    "request_id": request.request_id,
                    "device": device_id,
                    "ticket": reply.ticket.number if reply.ticket else None,
                    "reason": reply.error.code if reply.error else None,
                },
            )

        return self.coordinator.ticket_request_job(device_id, request), done

    def _command(self, device_id: str, command: Command) -> tuple[Job, Callable[[Any], None]]:
        def done(result: CommandResult | NextupError) -> None:
            if isinstance(result, NextupError):
                self._reject(result, device_id, command)
                return
            # One line per press, with the id the unit logged when it sent it and the ticket now called.
            current = result.state.current
            log.info(
                "command %s %s%s",
                command.action,
                "done" if result.ok else "refused",
                f": {result.error['message']}" if result.error else "",
                extra={
                    "command_id": command.command_id,
                    "device": device_id,
                    "point": result.state.serial,
                    "ticket": current.number if current else None,
                },
            )

        return self.coordinator.command_job(device_id, command), done

    def _handle_other(self, device_id: str, message: Any) -> None:
        if isinstance(message, TicketPrinted):
            self.coordinator.handle_ticket_printed(device_id, message)
        elif isinstance(message, DeviceStatus):
            self.coordinator.handle_status(device_id, message)
        elif isinstance(message, OfflineTicket):
            leases.accept_offline_ticket(self.coordinator, device_id, message)
        elif isinstance(message, LeaseRequest):
            leases.grant_leases(self.coordinator, device_id, message)

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

