"""``nextup point``: the buttons, LEDs and LCD at a service point.

Each press sends a command to central; what the unit shows comes only from
central's retained ``point/<serial>/state`` (the serial it learns from its
retained device config), never from what it guessed a press would do.

Config keys (TOML, beside the runtime's)::

    [buttons]              # GPIO pins; these are the defaults
    next = 17
    served = 27
    no_show = 22
    recall = 23
    active = 24
    [leds]
    active = 5
    calling = 6
    error = 13
    [lcd]                  # omitted in --sim: an in-memory LCD
    address = 0x27
    cols = 16
    rows = 2
    [point]
    command_expiry_s = 120 # a press older than this is not acted on
    confirm_timeout_s = 5  # no state answering a command by then: error LED
    holdoff_s = 1          # a second press of a button within it is ignored
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from functools import partial
from typing import Any

import paho.mqtt.client as mqtt

from edge.pointbutton.lcd import Lcd, MemoryLcd, lcd_from_config
from edge.runtime import Device, close_all, positive_number
from nextup.contract import Command, DeviceConfig, PointState
from nextup.settings import Settings, SettingsError

log = logging.getLogger(__name__)

BUTTONS = ("next", "served", "no_show", "recall", "active")
DEFAULT_BUTTON_PINS = {"next": 17, "served": 27, "no_show": 22, "recall": 23, "active": 24}
LEDS = ("active", "calling", "error")
DEFAULT_LED_PINS = {"active": 5, "calling": 6, "error": 13}
COMMAND_EXPIRY_S = 120.0
CONFIRM_TIMEOUT_S = 5.0
HOLDOFF_S = 1.0


def _pins(table: Any, names: tuple[str, ...], defaults: dict[str, int], section: str) -> dict[str, Any]:
    if table is None:
        return dict(defaults)
    if not isinstance(table, dict):
        raise SettingsError(f"[{section}] must be a table of name = pin")
    unknown = set(table) - set(names)
    if unknown:
        raise SettingsError(f"[{section}] has no {', '.join(sorted(unknown))}; it has {', '.join(names)}")
    pins = {**defaults, **table}
    for name, pin in pins.items():
        if isinstance(pin, bool) or not isinstance(pin, int | str) or pin == "":
            raise SettingsError(f"[{section}] {name}: {pin!r} is not a pin")
    if len(set(map(str, pins.values()))) != len(pins):
        raise SettingsError(f"[{section}]: two of them share a pin")
    return pins


class PointUnit(Device):
    """The point unit.  ``lcd`` is an ``edge.pointbutton.lcd.Lcd`` (else from ``[lcd]``, in-memory in sim)."""

    kind = "point"

    def __init__(self, settings: Settings, *, sim: bool = False, pin_factory: Any = None,
                 lcd: Lcd | None = None, **runtime_options: Any) -> None:
        self._lcd = lcd
        super().__init__(settings, sim=sim, pin_factory=pin_factory, **runtime_options)

    # --- set-up ---------------------------------------------------------------------

    def setup(self) -> None:
        extra = self.settings.extra
        options = extra.get("point", {})
        if not isinstance(options, dict):
            raise SettingsError("[point] must be a table")
        number = partial(positive_number, "point", options)
        self.command_expiry_s = number("command_expiry_s", COMMAND_EXPIRY_S)
        self.confirm_timeout_s = number("confirm_timeout_s", CONFIRM_TIMEOUT_S)
        self.holdoff_s = number("holdoff_s", HOLDOFF_S)
        button_pins = _pins(extra.get("buttons"), BUTTONS, DEFAULT_BUTTON_PINS, "buttons")
        led_pins = _pins(extra.get("leds"), LEDS, DEFAULT_LED_PINS, "leds")

        self._lock = threading.RLock()
        self.state: PointState | None = None
        self.serial: int | None = None
        self._state_topic: str | None = None
        self._unconfigured = "waiting for central"
        self._last_press: dict[str, float] = {}
        self._unconfirmed: dict[str, threading.Timer] = {}
        self._blinking = False
        self.buttons: dict[str, Any] = {}
        self.leds: dict[str, Any] = {}

        if self._lcd is None:
            if self.sim:
                # So that a person running a sim unit can read its LCD in the log.
                self._lcd = MemoryLcd(echo=lambda text: log.info("%s LCD %s", self.device_id, text))
            else:
                self._lcd = lcd_from_config(extra.get("lcd"))
        from gpiozero import LED, Button

        for name in BUTTONS:
            button = Button(button_pins[name], pin_factory=self.pin_factory)
            button.when_pressed = lambda name=name: self.press(name)
            self.buttons[name] = button
            self.runtime.add_button(name, button)
        for name in LEDS:
            self.leds[name] = LED(led_pins[name], pin_factory=self.pin_factory)

        self.runtime.on_config(self._on_config)
        self.runtime.on_connection(self._on_connection)
        self._redraw()

    def teardown(self) -> None:
        for timer in list(getattr(self, "_unconfirmed", {}).values()):
            timer.cancel()
        close_all(*getattr(self, "buttons", {}).values(), *getattr(self, "leds", {}).values(), self._lcd)

    @property
    def lcd(self) -> Lcd:
        assert self._lcd is not None
        return self._lcd

    # --- presses ----------------------------------------------------------------------

    def press(self, name: str) -> Command | None:
        """What a press of button ``name`` does: send a command; the command, or None when ignored."""
        if name not in BUTTONS:
            raise KeyError(name)
        now = time.monotonic()
        with self._lock:
            if now - self._last_press.get(name, -1e9) < self.holdoff_s:
                log.info("%s: %s pressed again within %.1f s, ignored", self.device_id, name, self.holdoff_s)
                return None
            self._last_press[name] = now
            action = name
            if name == "active":
                # Toggle from what central last said, not from what this unit thinks.
                action = "deactivate" if self.state is not None and self.state.active else "activate"
            command = Command(uuid.uuid4().hex, action)
            timer = threading.Timer(self.confirm_timeout_s, self._unanswered, (command.command_id,))
            timer.daemon = True
            self._unconfirmed[command.command_id] = timer
        timer.start()
        self.runtime.publish(self.topics.command(self.device_id), command, expiry_s=self.command_expiry_s)
        log.info("%s: sent %s (%s)", self.device_id, action, command.command_id,
                 extra={"command_id": command.command_id, "device": self.device_id})
        return command

    def _unanswered(self, command_id: str) -> None:
        with self._lock:
            if self._unconfirmed.pop(command_id, None) is None:
                return
        log.warning("%s: central did not answer command %s within %.1f s", self.device_id, command_id,
                    self.confirm_timeout_s)
        self._flash_error()

    def _flash_error(self) -> None:
        if self.runtime.connected:
            self.leds["error"].blink(on_time=0.2, off_time=0.2, n=3, background=True)

    # --- what central says ----------------------------------------------------------------

    def _on_config(self, config: DeviceConfig) -> None:
        if config.kind != "point":
            self._set_serial(None, f"not a point: {config.kind}")
        elif config.point is None:
            self._set_serial(None, "no point set")
        else:
            self._set_serial(config.point, "waiting for central")

    def _set_serial(self, serial: int | None, note: str) -> None:
        with self._lock:
            self._unconfigured = note
            if serial == self.serial:
                self._redraw()
                return
            old_topic = self._state_topic
            self.serial = serial
            self.state = None
            self._unconfigured = note
            self._state_topic = self.topics.point_state(serial) if serial is not None else None
        if old_topic is not None:
            self.runtime.unsubscribe(old_topic)
        if self._state_topic is not None:
            self.runtime.subscribe(self._state_topic, self._on_state)
        self._show_state()

    def _on_state(self, message: mqtt.MQTTMessage) -> None:
        if not message.payload:
            return
        state = PointState.parse(message.payload)
        with self._lock:
            if state.serial != self.serial:
                log.warning("%s: state of point %s on the topic of point %s; ignored", self.device_id,
                            state.serial, self.serial)
                return
            if self.state is not None and state.version < self.state.version:
                log.info("%s: state version %d is older than %d; ignored", self.device_id, state.version,
                         self.state.version)
                return
            self.state = state
            timer = self._unconfirmed.pop(state.last_command_id or "", None)
        if timer is not None:
            timer.cancel()
        self._show_state()

    def _on_connection(self, connected: bool) -> None:
        self._show_state()

    # --- LEDs and LCD -------------------------------------------------------------------------

    def _show_state(self) -> None:
        with self._lock:
            state = self.state
            connected = self.runtime.connected
            self.leds["error"].value = not connected
            self.leds["active"].value = bool(state and state.active)
            calling = bool(state and state.current)
            if calling and not self._blinking:
                self.leds["calling"].blink(on_time=0.5, off_time=0.5, background=True)
            elif not calling:
                self.leds["calling"].off()
            self._blinking = calling
            self._redraw()

    def lines(self) -> list[str]:
        """What the LCD shows now."""
        lcd = self.lcd
        with self._lock:
            state, serial, note = self.state, self.serial, self._unconfigured
        connected = self.runtime.connected
        cols = lcd.cols
        if state is None:
            title = f"Point {serial}" if serial is not None else self.device_id
            lines = [title, "offline" if not connected else note]
        else:
            flag = "ON" if state.active else "OFF"
            first = f"{state.name[: cols - len(flag) - 1]:<{cols - len(flag)}}{flag}"
            number = state.current.number if state.current else ("-" if state.active else "closed")
            right = "offline" if not connected else f"wait {state.waiting}"
            second = f"{number[: cols - len(right) - 1]:<{cols - len(right)}}{right}"
            lines = [first, second]
            if lcd.rows >= 4:
                service = state.current.service if state.current else ""
                lines += [service, "" if connected else "no connection"]
        return lines

    def _redraw(self) -> None:
        self.lcd.show(self.lines())
