"""``nextup demo``: a whole site on one machine, every device in ``--sim``.

Mosquitto with the project's configuration, a migrated SQLite database with
the demo site applied, central with its HTTP server, and each device of the
site file: kiosks, point units and displays.  The devices run in this process,
each its own ``Device`` with its own MQTT session and broker credentials, as
on a Pi; only the pins (gpiozero's MockFactory), the printer (python-escpos's
Dummy), the LCD (in memory) and the screen (SDL's dummy driver, a PNG per
frame) are pretend.  The virtual hall (``/demo/hall``) shows them and presses
their buttons.  SIGINT or SIGTERM stops everything it started.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import shutil
import signal
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from central.domain.errors import NextupError

log = logging.getLogger(__name__)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DEMO_SITE = EXAMPLES / "demo-site.toml"
SITE = "main"
ADMIN_USER = "demo-admin"
READY_TIMEOUT_S = 20.0
PNG_CACHE = 40


class DemoError(NextupError, RuntimeError):
    """The demo could not start, or a part of it stopped."""

    code = "demo_failed"


# --- what the virtual hall reads ----------------------------------------------------


def _led(led: Any) -> str:
    """``on``, ``off`` or ``blink`` for a gpiozero LED."""
    # gpiozero keeps a blinking LED's thread here; a blink sampled once a second would flicker at random.
    if getattr(led, "_blink_thread", None) is not None:
        return "blink"
    return "on" if led.value else "off"


def _ticket_number(data: bytes) -> str:
    """The number on a printed ticket: its line in the largest type."""
    from edge.kiosk.render import parse

    best, size = "", 0
    for block in parse(data):
        for style, text in getattr(block, "runs", ()):
            if text.strip() and style.width * style.height > size:
                best, size = text.strip(), style.width * style.height
    return best


@dataclass
class PointInfo:
    """A point unit and what the site file says of its point."""

    unit: Any  # edge.pointbutton.PointUnit
    serial: int | None
    name: str
    services: list[str]


@dataclass
class DemoHall:
    """The live devices of a demo, as the virtual hall page sees them (``app.extensions["nextup.demo"]``).

    ``publish(topic, payload)`` sends a message as central's broker user.
    """

    site_name: str
    topics: Any  # nextup.contract.Topics
    publish: Callable[[str, bytes], None]
    kiosks: list[Any] = field(default_factory=list)
    points: list[PointInfo] = field(default_factory=list)
    displays: list[Any] = field(default_factory=list)
    service_names: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (name, prefix)
    _png: OrderedDict[str, bytes] = field(default_factory=OrderedDict)
    _png_lock: threading.Lock = field(default_factory=threading.Lock)

    # -- for the page

    def state(self) -> dict[str, Any]:
        return {
            "site": self.site_name,
            "kiosks": [self._kiosk(k) for k in self.kiosks],
            "points": [self._point(p) for p in self.points],
            "displays": [{"id": d.device_id, "online": d.runtime.connected, "frames": d.frames}
                         for d in self.displays],
        }

    def _kiosk(self, kiosk: Any) -> dict[str, Any]:
        buttons = []
        for name in kiosk.button_names:
            service = name.split(":")[0]
            label, prefix = self.service_names.get(service, (service, ""))
            buttons.append({"name": name, "label": label, "prefix": prefix})
        buttons.sort(key=lambda b: (b["prefix"], b["name"]))  # A, B, C as on the tickets
        tickets = [{"id": _ticket_id(data), "number": _ticket_number(data)} for data in list(kiosk.printed)]
        return {
            "id": kiosk.device_id,
            "online": kiosk.runtime.connected,
            "leds": {name: _led(led) for name, led in (("ready", kiosk.ready_led), ("error", kiosk.error_led))
                     if led is not None},
            "buttons": buttons,
            "tickets": tickets[::-1],  # newest first
        }

    def _point(self, info: PointInfo) -> dict[str, Any]:
        unit = info.unit
        return {
            "id": unit.device_id,
            "serial": info.serial,
            "name": info.name,
            "services": info.services,
            "online": unit.runtime.connected,
            "lcd": list(unit.lcd.lines),
            "leds": {name: _led(led) for name, led in unit.leds.items()},
            "buttons": list(unit.buttons),
        }

    def buttons(self, device_id: str) -> list[str] | None:
        for kiosk in self.kiosks:
            if kiosk.device_id == device_id:
                return kiosk.button_names
        for info in self.points:
            if info.unit.device_id == device_id:
                return list(info.unit.buttons)
        return None

    def press(self, device_id: str, button: str) -> None:
        self.publish(self.topics.sim_press(device_id), button.encode("utf-8"))

    def ticket_png(self, ticket_id: str) -> bytes | None:
        with self._png_lock:
            if ticket_id in self._png:
                return self._png[ticket_id]
        data = next((d for k in self.kiosks for d in list(k.printed) if _ticket_id(d) == ticket_id), None)
        if data is None:
            return None
        from io import BytesIO

        from edge.kiosk.render import render

        out = BytesIO()
        render(data).save(out, format="PNG")
        png = out.getvalue()
        with self._png_lock:
            self._png[ticket_id] = png
            while len(self._png) > PNG_CACHE:
                self._png.popitem(last=False)
        return png

    def frame_path(self, device_id: str) -> Path | None:
        for display in self.displays:
            shot = display.screenshot
            if display.device_id == device_id and shot is not None and shot.exists():
                return shot
        return None


def _ticket_id(data: bytes) -> str:
    # Each ticket's bytes hold its number and time, so equal ids mean the same slip.
    return hashlib.sha256(data).hexdigest()[:20]


# --- the demo --------------------------------------------------------------------------


@dataclass
class DemoOptions:
    host: str = "127.0.0.1"
    http_port: int = 8000
    broker_port: int | None = None
    directory: Path | None = None
    site_file: Path = DEMO_SITE
    silent: bool = False


class Demo:
    """Everything ``nextup demo`` runs: ``start()`` brings it up, ``stop()`` (idempotent) takes it down."""

    def __init__(self, options: DemoOptions, *, echo: Callable[[str], None] = print) -> None:
        self.options = options
        self.echo = echo
        self._temporary = options.directory is None
        self.directory = Path(options.directory or tempfile.mkdtemp(prefix="nextup-demo-"))
        self.broker: Any = None
        self.central: Any = None
        self.devices: list[Any] = []
        self.hall: DemoHall | None = None
        self.admin_password: str | None = None
        self._stop_display = threading.Event()
        self._display_threads: list[threading.Thread] = []
        self._stopped = False

    @property
    def url(self) -> str:
        return f"http://{self.options.host}:{self.options.http_port}"

    # -- start

    def start(self) -> Demo:
        from broker.mosquitto import RunningBroker
        from central.runner import Central
        from central.sitefile import apply_site
        from central.sitespec import parse_site_file
        from central.store import Store
        from central.store.migrate import upgrade
        from central.users import set_user
        from nextup.settings import Settings

        options = self.options
        if not Path(options.site_file).is_file():
            raise DemoError(f"no site file at {options.site_file}")
        spec = parse_site_file(options.site_file)
        self.directory.mkdir(parents=True, exist_ok=True)
        os.environ["SDL_VIDEODRIVER"] = "dummy"  # every display of the demo draws off screen
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

        database = f"sqlite:///{(self.directory / 'nextup.sqlite3').resolve()}"
        upgrade(database)
        store = Store(database)
        try:
            apply_site(store, spec)
            self.admin_password = secrets.token_urlsafe(12)
            set_user(store, ADMIN_USER, "admin", self.admin_password)
        finally:
            store.close()

        self.broker = RunningBroker(self.directory / "broker", site=SITE, port=options.broker_port).start()
        urls = {d.id: self.broker.add_device(d.id, d.kind.value) for d in spec.devices}

        settings = Settings(site=SITE, database_url=database, mqtt_url=self.broker.central_url,
                            public_url=self.url, instance=str(self.directory))
        self.central = Central(settings, http=(options.host, options.http_port), web_config={"DEMO": True})
        topics = self.central.coordinator.topics
        from central.coordinator import Message

        self.hall = DemoHall(
            site_name=spec.name,
            topics=topics,
            publish=lambda topic, payload: self.central.bridge.publish([Message(topic, payload)]),
            service_names={s.key: (s.name, s.prefix) for s in spec.services},
        )
        self.central.app.extensions["nextup.demo"] = self.hall
        try:
            self.central.start()
        except OSError as exc:
            where = f"{options.host}:{options.http_port}"
            reason = exc.strerror or exc
            raise DemoError(f"cannot serve HTTP on {where}: {reason}; pick another with --http") from None
        if not self.central.bridge.wait_connected(READY_TIMEOUT_S):
            raise DemoError("central did not connect to the broker")

        points = {p.serial: p for p in spec.points}
        for d in spec.devices:
            device_settings = Settings(site=SITE, mqtt_url=urls[d.id], device_id=d.id, printer="dummy",
                                       public_url=self.url, instance=str(self.directory))
            kind = d.kind.value
            if kind == "kiosk":
                from edge.kiosk import Kiosk

                device = Kiosk(device_settings, sim=True)
                self.hall.kiosks.append(device)
            elif kind == "point":
                from edge.pointbutton import PointUnit

                device = PointUnit(device_settings, sim=True)
                point = points.get(d.point) if d.point is not None else None
                names = {s.key: s.name for s in spec.services}
                self.hall.points.append(PointInfo(device, d.point, point.name if point else d.id,
                                                  [names.get(k, k) for k in point.services] if point else []))
            else:
                device = self._display(device_settings)
                self.hall.displays.append(device)
            self.devices.append(device)
            device.start()
        for display in self.hall.displays:
            thread = threading.Thread(target=display.run, args=(self._stop_display,),
                                      name=f"demo-{display.device_id}", daemon=True)
            thread.start()
            self._display_threads.append(thread)
        self._wait_ready()
        return self

    def _display(self, settings: Any) -> Any:
        from edge.display.announcer import SilentAnnouncer, play_chime
        from edge.display.app import HallDisplay

        # A frame left by an earlier run in the same folder is not this display's.
        (self.directory / f"{settings.device_id}.png").unlink(missing_ok=True)
        if self.options.silent:
            return HallDisplay(settings, sim=True, announcer=SilentAnnouncer(), chime=None,
                               screenshot=self.directory / f"{settings.device_id}.png")
        return HallDisplay(settings, sim=True, chime=play_chime,
                           screenshot=self.directory / f"{settings.device_id}.png")

    def _wait_ready(self) -> None:
        """Until every device is connected and shows what central said: kiosk buttons, LCD text, a frame."""
        assert self.hall is not None
        deadline = time.monotonic() + READY_TIMEOUT_S

        def ready() -> list[str]:
            waiting = [d.device_id for d in self.devices if not d.runtime.wait_ready(0)]
            waiting += [k.device_id for k in self.hall.kiosks if not k.button_names]
            waiting += [p.unit.device_id for p in self.hall.points if p.unit.state is None]
            waiting += [d.device_id for d in self.hall.displays if self.hall.frame_path(d.device_id) is None]
            return waiting

        while waiting := ready():
            if time.monotonic() > deadline:
                late = ", ".join(sorted(set(waiting)))
                raise DemoError(f"devices not ready after {READY_TIMEOUT_S:.0f} s: {late}")
            time.sleep(0.05)

    def announce(self) -> None:
        """Tell the person at the terminal where to look."""
        assert self.hall is not None
        url = self.url
        lines = [
            f"Nextup demo: {self.hall.site_name} is running (files in {self.directory})",
            "",
            f"  virtual hall   {url}/demo/hall     the kiosk, point units and display: press their buttons",
            f"  customer page  {url}/              take a ticket on a phone",
            f"  board          {url}/board         the hall display for any TV with a browser",
            f"  admin panel    {url}/admin         user {ADMIN_USER}, password {self.admin_password}",
            f"  broker         mqtt://127.0.0.1:{self.broker.port} (a user and password per device)",
            "",
            "Press Ctrl-C to stop.",
        ]
        for line in lines:
            self.echo(line)

    # -- stop

    def trouble(self) -> str | None:
        """What of the demo stopped on its own (the broker, a display's loop), or None."""
        if self.broker is None or not self.broker.running:
            return "the broker stopped"
        ended = [t.name.removeprefix("demo-") for t in self._display_threads if not t.is_alive()]
        return f"{', '.join(ended)} stopped drawing" if ended else None

    def stop(self) -> None:
        """Stop the devices, central and the broker, remove a temporary folder; a second call does nothing."""
        if self._stopped:
            return
        self._stopped = True
        began = time.monotonic()
        self._stop_display.set()
        for thread in self._display_threads:
            thread.join(10)
        log.info("demo: displays stopped in %.1f s", time.monotonic() - began)
        # Side by side: each says goodbye (offline status) and waits for its network thread.
        closing = [threading.Thread(target=_close, args=(device,), name=f"close-{device.device_id}")
                   for device in self.devices]
        for thread in closing:
            thread.start()
        for thread in closing:
            thread.join()
        log.info("demo: devices closed in %.1f s", time.monotonic() - began)
        if self.central is not None:
            with _logged("stopping central"):
                self.central.stop()
        if self.broker is not None:
            with _logged("stopping the broker"):
                self.broker.stop()
        log.info("demo: stopped in %.1f s", time.monotonic() - began)
        if self._temporary:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Demo:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _close(device: Any) -> None:
    with _logged(f"closing {device.device_id}"):
        device.close()


@contextlib.contextmanager
def _logged(what: str) -> Iterator[None]:
    # One part failing to stop must not leave the others running.
    try:
        yield
    except Exception:  # noqa: BLE001
        log.exception("demo: %s failed", what)


def run_demo(options: DemoOptions, *, echo: Callable[[str], None] = print) -> None:
    """What ``nextup demo`` runs: start, tell where to look, wait for SIGINT or SIGTERM, stop it all."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with Demo(options, echo=echo) as demo:
            if stop.is_set():
                return
            demo.announce()
            while not stop.wait(0.2):  # a signal is handled only between waits
                if trouble := demo.trouble():
                    raise DemoError(f"{trouble}; stopping the demo (see the log above)")
            echo("stopping the demo")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
