"""``nextup kiosk``: service buttons, a thermal printer, a ready and an error LED.

A press asks central for a ticket (MQTT 5 request/response); the reply is
printed.  A request central does not answer in time is given up: the error
LED lights, and because the request carried a message expiry shorter than
that wait, a broker holding it for an absent central drops it.  Should a
reply still come after the kiosk gave up, it is not printed and reported
as such (``printed: false``), so the ticket shows up as unprinted.

Config keys (TOML, beside the runtime's)::

    printer = "usb:04b8:0202"         # or NEXTUP_PRINTER
    [buttons]                         # GPIO pin = service key, or a table
    17 = "cash"
    27 = { service = "loans", priority = "paid" }
    [leds]
    ready = 5
    error = 6
    [kiosk]
    buzzer = 13
    reply_timeout_s = 5
    holdoff_s = 2
    columns = 48                      # 32 on a 58 mm roll
    journal = "/var/lib/nextup/kiosk-1.offline.json"   # default: <instance>/<id>.offline.json
    offline_resend_s = 30

Offline: central leases the kiosk blocks of numbers per service (see
``central.leases``).  When the kiosk is not connected to the broker, or
central left a request unanswered, a press prints a ticket from the lease
("position confirmed on screen" instead of the people ahead), journaled
first (``edge.kiosk.offline``); the kiosk sends it on
``device/<id>/ticket/offline`` once connected, and again until central
acknowledges it.  An answer from central ends offline mode.  Without a
lease of today for the service, or without a journal (a sim kiosk whose
config names none), a press that gets no ticket from central lights the
error LED as before.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
import uuid
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import paho.mqtt.client as mqtt

from central.domain.model import SLUG
from edge.kiosk import printer as printers
from edge.kiosk.layout import COLUMNS, TicketSlip, print_ticket
from edge.kiosk.offline import OfflineBook, journal_path
from edge.runtime import Device, close_all, positive_number
from nextup.contract import (
    DeviceConfig,
    IssuedTicket,
    LeaseRequest,
    NumberLease,
    OfflineTicket,
    OfflineTicketAck,
    SiteState,
    TicketPrinted,
    TicketReply,
    TicketRequest,
)
from nextup.settings import Settings, SettingsError

log = logging.getLogger(__name__)

REPLY_TIMEOUT_S = 5.0
HOLDOFF_S = 2.0
KEEP_PRINTED = 20
ANSWERED_MEMORY = 256
LATE = "late_reply"
# Mosquitto counts a message's expiry in whole seconds and may deliver it up to a
# second past it; a request expires this much before the kiosk stops waiting,
# so that central's answer to anything it still receives is not given up on.
EXPIRY_MARGIN_S = 2
OFFLINE_RESEND_S = 30.0
OFFLINE_RESEND_MAX_S = 600.0
UPKEEP_S = 1.0
SIM_LEDS = {"ready": 5, "error": 6}
SIM_BUZZER = 13
# GPIOs a sim kiosk without a pin map gives its per-service mock buttons.
SIM_BUTTON_PINS = (17, 27, 22, 23, 24, 25, 12, 16, 20, 21, 26, 19, 4, 18, 7, 8, 9, 10, 11)


@dataclass(frozen=True)
class ButtonSpec:
    """What one kiosk button issues.

    ``by_name``: the config gave a plain name, which central's registry of
    this kiosk's buttons (its device config) may define; else it is a
    service key.
    """

    pin: int | str
    service: str
    priority: str | None = None
    by_name: bool = False

    @property
    def name(self) -> str:
        """The button's plain name (for sim presses): its name or service key, with the priority if any."""
        return self.service if self.priority is None else f"{self.service}:{self.priority}"


@dataclass
class _Pending:
    request_id: str
    service: str
    timer: threading.Timer
    priority: str | None = None


def parse_buttons(table: Any) -> list[ButtonSpec]:
    """The ``[buttons]`` table of a kiosk config; ``SettingsError`` names the bad entry."""
    if table is None:
        return []
    if not isinstance(table, dict):
        raise SettingsError("[buttons] must be a table of pin = service")
    specs = []
    for key, value in table.items():
        pin = _pin(key, f"[buttons] {key}")
        if isinstance(value, str):
            service, priority, by_name = value, None, True
        elif isinstance(value, dict):
            service, priority, by_name = value.get("service"), value.get("priority"), False
        else:
            raise SettingsError(f"[buttons] {key}: expected a service key or a table with service, priority")
        if not isinstance(service, str) or not SLUG.match(service):
            raise SettingsError(f"[buttons] {key}: service {service!r} is not a service key")
        if priority is not None and (not isinstance(priority, str) or not SLUG.match(priority)):
            raise SettingsError(f"[buttons] {key}: priority {priority!r} is not a priority key")
        specs.append(ButtonSpec(pin, service, priority, by_name))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise SettingsError("[buttons]: two buttons issue the same service and priority")
    return specs


def _pin(value: Any, where: str) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, str) and value:
        return value  # "GPIO17", "BOARD11": gpiozero's own names
    raise SettingsError(f"{where}: {value!r} is not a pin")


class Kiosk(Device):
    """The ticket kiosk.  ``printer`` is a python-escpos printer (else opened from the settings' URL)."""

    kind = "kiosk"

    def __init__(
        self,
        settings: Settings,
        *,
        sim: bool = False,
        pin_factory: Any = None,
        printer: Any = None,
        clock: Any = datetime.now,
        **runtime_options: Any,
    ) -> None:
        self._printer = printer
        self._clock = clock
        super().__init__(settings, sim=sim, pin_factory=pin_factory, **runtime_options)

    # --- set-up ------------------------------------------------------------------

    def setup(self) -> None:
        extra = self.settings.extra
        options = extra.get("kiosk", {})
        if not isinstance(options, dict):
            raise SettingsError("[kiosk] must be a table")
        number = partial(positive_number, "kiosk", options)
        self.reply_timeout_s = number("reply_timeout_s", REPLY_TIMEOUT_S)
        self.holdoff_s = number("holdoff_s", HOLDOFF_S)
        self.columns = int(number("columns", COLUMNS))
        self.request_expiry_s = max(1, math.ceil(self.reply_timeout_s) - EXPIRY_MARGIN_S)
        self.printed: deque[bytes] = deque(maxlen=KEEP_PRINTED)
        """The bytes of the last tickets, when the printer is the in-memory dummy."""
        self.site: SiteState | None = None
        self._central_buttons: dict[str, tuple[str, str | None]] | None = None
        self._lock = threading.RLock()
        self._pending: dict[str, _Pending] = {}
        self._answered: OrderedDict[str, None] = OrderedDict()
        self._last_press: dict[str, float] = {}
        self._buttons: dict[str, Any] = {}
        self._specs: dict[str, ButtonSpec] = {}
        self._printer_fault: str | None = None
        self._leds: dict[str, Any] = {}
        self.buzzer: Any = None
        self._jobs = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"print-{self.device_id}")
        path = journal_path(self.settings, options.get("journal"), sim=self.sim)
        self.offline: OfflineBook | None = OfflineBook(path) if path is not None else None
        """The leased numbers and the tickets issued offline; None: this kiosk never issues offline."""
        self.offline_resend_s = number("offline_resend_s", OFFLINE_RESEND_S)
        self._central_reachable = True
        self._lease_asked: tuple[frozenset[str], Any] | None = None
        self._resend_at = 0.0
        self._resend_wait = self.offline_resend_s
        self._upkeep_wake = threading.Event()
        self._upkeep_stop = threading.Event()
        self._upkeep: threading.Thread | None = None
        self._at_printer: set[str] = set()

        if self._printer is None:
            url = self.settings.printer or ("dummy" if self.sim else None)
            if url is None:
                raise SettingsError("a kiosk needs a printer: set NEXTUP_PRINTER or printer in its config")
            self._printer = printers.open_printer(url)
        self._static_buttons = parse_buttons(extra.get("buttons"))

        from gpiozero import LED, Button, Buzzer

        self._Button = Button
        leds = extra.get("leds", SIM_LEDS if self.sim else {})
        if not isinstance(leds, dict):
            raise SettingsError("[leds] must be a table of name = pin")
        for name in ("ready", "error"):
            if name in leds:
                self._leds[name] = LED(_pin(leds[name], f"[leds] {name}"), pin_factory=self.pin_factory)
        buzzer = options.get("buzzer", SIM_BUZZER if self.sim else None)
        if buzzer is not None:
            self.buzzer = Buzzer(_pin(buzzer, "[kiosk] buzzer"), pin_factory=self.pin_factory)
        for spec in self._static_buttons:
            self._add_button(spec)

        topics = self.topics
        self.runtime.subscribe(topics.site_state, self._on_site)
        self.runtime.on_config(self._on_config)
        self.runtime.subscribe(topics.ticket_reply(self.device_id), self._on_reply)
        self.runtime.on_connection(self._on_connection)
        if self.offline is not None:
            self.runtime.subscribe(topics.lease(self.device_id), self._on_lease)
            self.runtime.subscribe(topics.ticket_offline_ack(self.device_id), self._on_offline_ack)
            self._upkeep = threading.Thread(target=self._keep_up, name=f"offline-{self.device_id}",
                                            daemon=True)
            self._upkeep.start()
        self._jobs.submit(self._check_printer)

    def finish(self) -> None:
        # Tickets being printed still report whether they came out.
        self._jobs.shutdown(wait=True)
        self._stop_upkeep()

    def _stop_upkeep(self) -> None:
        stop, thread = getattr(self, "_upkeep_stop", None), getattr(self, "_upkeep", None)
        if stop is not None:
            stop.set()
            self._upkeep_wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def teardown(self) -> None:
        self._stop_upkeep()
        with getattr(self, "_lock", contextlib.nullcontext()):
            pending = list(getattr(self, "_pending", {}).values())
            self._pending = {}
        for p in pending:
            p.timer.cancel()
        jobs = getattr(self, "_jobs", None)
        if jobs is not None:
            jobs.shutdown(wait=True)
        close_all(*getattr(self, "_buttons", {}).values(), *getattr(self, "_leds", {}).values(),
                  getattr(self, "buzzer", None))
        if self._printer is not None:
            printers.forget_connection(self._printer)

    # --- hardware -------------------------------------------------------------------

    @property
    def printer(self) -> Any:
        return self._printer

    @property
    def ready_led(self) -> Any:
        return self._leds.get("ready")

    @property
    def error_led(self) -> Any:
        return self._leds.get("error")

    def button(self, name: str) -> Any:
        """The gpiozero Button of ``name`` (a service key, or ``service:priority``)."""
        return self._buttons[name]

    @property
    def button_names(self) -> list[str]:
        with self._lock:
            return sorted(self._buttons)

    def _add_button(self, spec: ButtonSpec, name: str | None = None) -> None:
        name = name or spec.name
        button = self._Button(spec.pin, pin_factory=self.pin_factory)
        button.when_pressed = lambda: self.press(name)
        with self._lock:
            self._buttons[name] = button
            self._specs[name] = spec
        self.runtime.add_button(name, button)

    def _remove_button(self, name: str) -> None:
        self.runtime.remove_button(name)
        with self._lock:
            button = self._buttons.pop(name, None)
            self._specs.pop(name, None)
        close_all(button)

    def _sync_sim_buttons(self) -> None:
        """A sim kiosk without a pin map: central's registry of its buttons, or one per active service."""
        if not self.sim or self._static_buttons:
            return
        with self._lock:
            central, site = self._central_buttons, self.site
            if central:
                wanted = dict(central)
            elif site is not None:
                wanted = {s.key: (s.key, None) for s in site.services if s.active}
            else:
                return
            have = {name: (spec.service, spec.priority) for name, spec in self._specs.items()}
        for name, issues in have.items():
            if wanted.get(name) != issues:
                self._remove_button(name)
        with self._lock:
            have_now = set(self._specs)
            used = {spec.pin for spec in self._specs.values()}
        free = [p for p in SIM_BUTTON_PINS if p not in used]
        for name, (service, priority) in wanted.items():
            if name in have_now:
                continue
            if not free:
                log.warning("%s: no mock pin left for button %s", self.device_id, name)
                break
            self._add_button(ButtonSpec(free.pop(0), service, priority), name)

    def _issues(self, spec: ButtonSpec) -> tuple[str, str | None]:
        """The service and priority a press of ``spec`` asks for now."""
        central = self._central_buttons
        if spec.by_name and central and spec.service in central:
            return central[spec.service]
        return spec.service, spec.priority

    def _light(self, name: str, on: bool) -> None:
        led = self._leds.get(name)
        if led is not None:
            led.value = on

    def _alarm(self) -> None:
        self._light("error", True)
        if self.buzzer is not None:
            self.buzzer.beep(on_time=0.15, off_time=0.1, n=3, background=True)

    # --- a press and its reply ------------------------------------------------------------

    def press(self, name: str) -> str | None:
        """What a press of button ``name`` does: ask for a ticket; the request id, or None in the hold-off."""
        now = time.monotonic()
        with self._lock:
            spec = self._specs.get(name)
            if spec is None:
                raise KeyError(name)
            if now - self._last_press.get(name, -1e9) < self.holdoff_s:
                log.info("%s: %s pressed again within %.1f s, ignored", self.device_id, name, self.holdoff_s)
                return None
            self._last_press[name] = now
            service, priority = self._issues(spec)
            offline = self.offline is not None and not (self.runtime.connected and self._central_reachable)
            if not offline:
                request_id = uuid.uuid4().hex
                timer = threading.Timer(self.reply_timeout_s, self._give_up, (request_id,))
                timer.daemon = True
                self._pending[request_id] = _Pending(request_id, service, timer, priority)
        if offline:
            return self._issue_offline(service, priority)
        timer.start()
        topics = self.topics
        self.runtime.publish(
            topics.ticket_request(self.device_id),
            TicketRequest(request_id, service, priority, self.runtime.language),
            expiry_s=self.request_expiry_s,
            response_topic=topics.ticket_reply(self.device_id),
            correlation=request_id.encode("ascii"),
        )
        log.info("%s: asked for a %s ticket (%s)", self.device_id, service, request_id,
                 extra={"request_id": request_id, "device": self.device_id})
        return request_id

    def _give_up(self, request_id: str) -> None:
        with self._lock:
            pending = self._pending.pop(request_id, None)
        if pending is None:
            return
        if self.offline is not None and self.offline.left(pending.service, self._clock()):
            log.warning("%s: no reply to request %s within %.1f s; issuing offline", self.device_id,
                        request_id, self.reply_timeout_s)
            self._central_reachable = False
            self._issue_offline(pending.service, pending.priority)
            return
        log.warning("%s: no reply to request %s within %.1f s; no ticket", self.device_id, request_id,
                    self.reply_timeout_s)
        self._alarm()

    def _on_reply(self, message: mqtt.MQTTMessage) -> None:
        reply = TicketReply.parse(message.payload)
        correlation = getattr(message.properties, "CorrelationData", None)
        if correlation is not None and correlation != reply.request_id.encode("ascii", "replace"):
            log.warning("%s: reply for %s came with the correlation of another request; ignored",
                        self.device_id, reply.request_id)
            return
        self._central_reachable = True
        with self._lock:
            pending = self._pending.pop(reply.request_id, None)
            seen = reply.request_id in self._answered
            self._answered[reply.request_id] = None
            while len(self._answered) > ANSWERED_MEMORY:
                self._answered.popitem(last=False)
        if pending is None:
            if seen:  # QoS 1 may deliver a reply twice
                return
            log.warning("%s: reply to request %s, which this kiosk is not waiting for; not printed",
                        self.device_id, reply.request_id)
            if reply.ok and reply.ticket is not None:
                # The ticket exists; central marks it unprinted so staff can see it.
                self.runtime.publish(self.topics.ticket_printed(self.device_id),
                                     TicketPrinted(reply.request_id, reply.ticket.number, False, LATE))
            return
        pending.timer.cancel()
        if not reply.ok:
            assert reply.error is not None
            log.warning("%s: no ticket for %s: %s (%s)", self.device_id, pending.service,
                        reply.error.message, reply.error.code)
            self._alarm()
            return
        assert reply.ticket is not None
        self._jobs.submit(self._print, reply.request_id, reply.ticket)

    def _print(self, request_id: str, ticket: IssuedTicket) -> None:
        printed, state = self._print_slip(self.slip(ticket))
        self._printed(request_id, ticket, printed, state)

    def _print_slip(self, slip: TicketSlip) -> tuple[bool, str]:
        """Print ``slip``: whether it came out, and the printer's state."""
        reason = printers.printer_state(self._printer)
        if reason in (printers.PAPER_OUT, printers.OFFLINE):
            return False, reason
        try:
            print_ticket(self._printer, slip)
            flush = getattr(self._printer, "flush", None)
            if callable(flush):
                flush()
        except Exception as exc:  # noqa: BLE001 - any printer failure: the ticket stays valid, unprinted
            log.error("%s: printing %s failed: %s", self.device_id, slip.number, exc)
            printers.forget_connection(self._printer)
            return False, printers.OFFLINE
        output = getattr(self._printer, "output", None)
        if isinstance(output, bytes) and hasattr(self._printer, "clear"):
            self.printed.append(output)
            self._printer.clear()
        return True, reason or printers.OK

    def _show_printed(self, number: str, printed: bool, state: str) -> None:
        if printed:
            self._light("error", False)
            log.info("%s: printed %s", self.device_id, number)
        else:
            log.error("%s: ticket %s not printed: %s", self.device_id, number, state)
            self._alarm()
        self.runtime.set_status(printer=state)

    def _printed(self, request_id: str, ticket: IssuedTicket, printed: bool, state: str) -> None:
        # The person at the kiosk first, then central.
        self._show_printed(ticket.number, printed, state)
        self.runtime.publish(
            self.topics.ticket_printed(self.device_id),
            TicketPrinted(request_id, ticket.number, printed, None if printed else state),
        )

    def slip(self, ticket: IssuedTicket | OfflineTicket) -> TicketSlip:
        """What to print for ``ticket``: names from the retained site, time from the kiosk's clock.

        An offline ticket says its place is confirmed on screen instead of the people ahead.
        """
        site = self.site
        service_name = ticket.service
        site_name = ""
        if site is not None:
            site_name = site.name
            service_name = next((s.name for s in site.services if s.key == ticket.service), ticket.service)
        if isinstance(ticket, OfflineTicket):
            ahead, eta_s, track_url, offline = 0, 0, self._offline_track_url(ticket), True
        else:
            ahead, eta_s, track_url, offline = ticket.ahead, ticket.eta_s, ticket.track_url, False
        return TicketSlip(
            site_name=site_name,
            number=ticket.number,
            service_name=service_name,
            issued_at=self._clock(),
            ahead=ahead,
            eta_s=eta_s,
            track_url=track_url,
            language=self.runtime.language or "en",
            columns=self.columns,
            offline=offline,
        )

    def _offline_track_url(self, ticket: OfflineTicket) -> str:
        return (self.offline.track_url(ticket) if self.offline is not None else None) or ""

    # --- offline ------------------------------------------------------------------------------

    @property
    def central_reachable(self) -> bool:
        """False after central left a request unanswered, until it answers again."""
        return self._central_reachable

    def _issue_offline(self, service: str, priority: str | None) -> str | None:
        """Print a ticket of ``service`` from the lease; its request id, or None when there is no number."""
        assert self.offline is not None
        site = self.site
        active = site is None or any(s.key == service and s.active for s in site.services)
        if site is not None and (not site.open or not active):
            log.warning("%s: %s takes no tickets now (as central last said); no offline ticket",
                        self.device_id, service)
            self._alarm()
            return None
        ticket = self.offline.take(service, self._clock(), priority=priority, language=self.runtime.language)
        if ticket is None:
            log.warning("%s: no leased number of %s for today; no ticket", self.device_id, service)
            self._alarm()
            return None
        log.info("%s: issued %s offline (%s)", self.device_id, ticket.number, ticket.request_id)
        with self._lock:
            self._at_printer.add(ticket.request_id)
        self._jobs.submit(self._print_offline, ticket)
        return ticket.request_id

    def _print_offline(self, ticket: OfflineTicket) -> None:
        assert self.offline is not None
        printed, state = self._print_slip(self.slip(ticket))
        self._show_printed(ticket.number, printed, state)
        recorded = self.offline.printed(ticket.request_id, printed, None if printed else state)
        with self._lock:
            self._at_printer.discard(ticket.request_id)
        if recorded is not None:
            self._send_offline([recorded])

    def _send_offline(self, tickets: list[OfflineTicket]) -> None:
        # Only while connected: the journal, not the MQTT client's memory, carries them over an outage.
        if not tickets or not self.runtime.connected:
            return
        for ticket in tickets:
            self.runtime.publish(self.topics.ticket_offline(self.device_id), ticket)
        log.info("%s: sent %d offline ticket(s) to central", self.device_id, len(tickets))

    def _on_offline_ack(self, message: mqtt.MQTTMessage) -> None:
        assert self.offline is not None
        ack = OfflineTicketAck.parse(message.payload)
        self._central_reachable = True
        ticket = self.offline.acknowledge(ack.request_id)
        with self._lock:
            self._resend_wait = self.offline_resend_s
        if ticket is None:
            return  # QoS 1 may deliver an answer twice
        if not ack.ok:
            assert ack.error is not None
            log.error("%s: central refused offline ticket %s: %s (%s)", self.device_id, ticket.number,
                      ack.error.message, ack.error.code)
        elif ack.state != "waiting":
            log.warning("%s: offline ticket %s reached central as %s", self.device_id, ticket.number,
                        ack.state)

    def _on_lease(self, message: mqtt.MQTTMessage) -> None:
        assert self.offline is not None
        if not message.payload:
            return
        lease = NumberLease.parse(message.payload)
        if self.offline.set_lease(lease):
            log.info("%s: lease %d: %s", self.device_id, lease.version,
                     ", ".join(f"{b.service} {b.first}-{b.last}" for b in lease.blocks) or "no numbers")

    def _wanted_services(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._issues(spec)[0] for spec in self._specs.values())

    def _keep_up(self) -> None:
        """While connected: ask for today's lease, and send the journal's tickets until central has them."""
        while not self._upkeep_stop.is_set():
            self._upkeep_wake.wait(UPKEEP_S)
            self._upkeep_wake.clear()
            if self._upkeep_stop.is_set() or not self.runtime.wait_ready(0):
                continue
            try:
                self._ask_for_lease()
                self._resend()
            except Exception:  # noqa: BLE001 - the next round tries again
                log.exception("%s: offline upkeep failed", self.device_id)

    def _ask_for_lease(self) -> None:
        assert self.offline is not None
        services = self._wanted_services()
        now = self._clock()
        day = self.offline.today(now) or now.date()
        with self._lock:
            if not services or self._lease_asked == (services, day):
                return
            self._lease_asked = (services, day)
        self.runtime.publish(self.topics.lease_request(self.device_id), LeaseRequest(sorted(services)))

    def _resend(self) -> None:
        assert self.offline is not None
        with self._lock:
            at_printer = set(self._at_printer)
        # A ticket still at the printer is sent by its print job, with whether it came out.
        unsent = [t for t in self.offline.unsent if t.request_id not in at_printer]
        now = time.monotonic()
        with self._lock:
            if not unsent or now < self._resend_at:
                return
            self._resend_at = now + self._resend_wait
            # Back off while central stays silent: each resend queues again for it at the broker.
            self._resend_wait = min(self._resend_wait * 2, OFFLINE_RESEND_MAX_S)
        self._send_offline(unsent)

    # --- state from central -----------------------------------------------------------------

    def _on_site(self, message: mqtt.MQTTMessage) -> None:
        if not message.payload:
            return
        site = SiteState.parse(message.payload)
        with self._lock:
            self.site = site
        self._sync_sim_buttons()

    def _on_config(self, config: DeviceConfig) -> None:
        buttons = None
        if config.buttons:
            buttons = {name: (b["service"], b.get("priority")) for name, b in config.buttons.items()
                       if b.get("service")}
        with self._lock:
            self._central_buttons = buttons
        if buttons and not self._static_buttons and not self.sim:
            log.warning("%s: central names buttons %s, but the config maps no pins to them",
                        self.device_id, ", ".join(sorted(buttons)))
        self._sync_sim_buttons()

    def _on_connection(self, connected: bool) -> None:
        self._light("ready", connected)
        if connected and self.offline is not None:
            with self._lock:
                self._central_reachable = True
                self._lease_asked = None
                self._resend_at = 0.0
                self._resend_wait = self.offline_resend_s
            self._upkeep_wake.set()

    def _check_printer(self) -> None:
        state = printers.printer_state(self._printer)
        if state is not None:
            self.runtime.set_status(printer=state)
            if state in (printers.PAPER_OUT, printers.OFFLINE):
                self._light("error", True)
