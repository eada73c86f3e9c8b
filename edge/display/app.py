"""``nextup display``: the hall display on the device runtime.

MQTT messages arrive on the runtime's network thread and only touch the
thread-safe ``DisplayState`` and the announcement queue; the main thread owns
pygame: it redraws when the view changes (or the clock's minute does) and
writes the screenshot.

Keys of the device's TOML file: ``resolution = "1920x1080"`` (else the
screen's own, full screen) and ``language = "en"`` (the voice when central's
device config names none).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from edge.runtime import Device, stop_on_signals
from nextup.contract import DeviceConfig
from nextup.settings import Settings, SettingsError

from .announcer import (
    AnnouncementQueue,
    Announcer,
    EspeakAnnouncer,
    SilentAnnouncer,
    audio_player,
    mixer_ready,
    play_chime,
)
from .lean_pygame import load as load_pygame
from .render import draw, icon
from .state import DisplayState, View

log = logging.getLogger(__name__)

DEFAULT_LANGUAGE = "en"
SIM_SIZE = (1920, 1080)
FRAME_WAIT_S = 0.2


def parse_resolution(value: Any) -> tuple[int, int] | None:
    """``"1920x1080"`` -> (1920, 1080); None for None; ``SettingsError`` for anything else."""
    if value is None:
        return None
    w, sep, h = str(value).lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit() or not (200 <= int(w) <= 8192 and 200 <= int(h) <= 8192):
        raise SettingsError(f"resolution {value!r} must look like 1920x1080")
    return int(w), int(h)


def choose_video_driver(sim: bool, env: dict[str, str] | os._Environ[str] = os.environ) -> None:
    """SDL's dummy driver in sim, KMS/DRM on a console without a desktop; an explicit choice wins."""
    if env.get("SDL_VIDEODRIVER"):
        return
    if sim:
        env["SDL_VIDEODRIVER"] = "dummy"
    elif not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        env["SDL_VIDEODRIVER"] = "kmsdrm"


def default_announcer() -> Announcer:
    if shutil.which("espeak-ng"):
        return EspeakAnnouncer()
    log.warning("espeak-ng is not installed: calls are shown and chimed, not spoken")
    return SilentAnnouncer()


class HallDisplay(Device):
    """The hall display: subscribes to ``site``, ``board`` and ``call``; draws and announces.

    ``announcer`` speaks (espeak-ng by default), ``chime`` rings before each
    announcement (None for silence), ``size`` fixes the screen size (else full
    screen; 1920x1080 in sim), ``screenshot`` is a PNG path written after each
    redraw, ``clock`` gives the time shown.
    """

    kind = "display"

    def __init__(
        self,
        settings: Settings,
        *,
        sim: bool = False,
        announcer: Announcer | None = None,
        chime: Callable[[], None] | None = play_chime,
        size: tuple[int, int] | None = None,
        screenshot: str | os.PathLike[str] | None = None,
        clock: Callable[[], datetime] = datetime.now,
        **device_options: Any,
    ) -> None:
        self.state = DisplayState()
        self.size = size or parse_resolution(settings.extra.get("resolution"))
        self.screenshot = Path(screenshot) if screenshot else None
        self.clock = clock
        self.frames = 0
        """How many frames were drawn."""
        self._announcer = announcer
        self._chime = chime
        self._changed = threading.Event()
        self._surface: Any = None
        self._owns_window = False
        self._frame: Any = None
        self._last_key: tuple[object, ...] | None = None
        self.announcements: AnnouncementQueue | None = None
        super().__init__(settings, sim=sim, **device_options)

    # --- Device ------------------------------------------------------------------

    def setup(self) -> None:
        self.announcements = AnnouncementQueue(self._announcer or default_announcer(), chime=self._chime)
        topics = self.runtime.topics
        self.runtime.subscribe(topics.site_state, self._on_site)
        self.runtime.subscribe(topics.board, self._on_board)
        self.runtime.subscribe(topics.call, self._on_call)
        self.runtime.on_connection(self._on_connection)
        self.runtime.on_config(self._on_config)

    def teardown(self) -> None:
        if self.announcements is not None:
            self.announcements.close()
        if self._surface is not None:
            load_pygame().display.quit()
            self._surface = None

    @property
    def language(self) -> str:
        """The language of announcements when a call names none (or one without a voice)."""
        return self.runtime.language or DEFAULT_LANGUAGE

    # --- messages (network thread) -------------------------------------------------

    def _on_site(self, message: mqtt.MQTTMessage) -> None:
        if message.payload and self.state.on_site(message.payload):
            self._changed.set()

    def _on_board(self, message: mqtt.MQTTMessage) -> None:
        if message.payload and self.state.on_board(message.payload):
            self._changed.set()

    def _on_call(self, message: mqtt.MQTTMessage) -> None:
        call = self.state.on_call(message.payload)
        if call is None:
            return
        self._changed.set()
        assert self.announcements is not None
        self.announcements.announce(call, self.language)

    def _on_connection(self, online: bool) -> None:
        self.state.set_online(online)
        self._changed.set()

    def _on_config(self, config: DeviceConfig) -> None:
        log.info("%s: configured by central (language %s)", self.device_id, config.language or "unset")

    # --- screen (main thread) ---------------------------------------------------------

    def open_screen(self) -> None:
        """Opens the screen: full screen on the HDMI output, or ``size`` (SDL's dummy driver in sim)."""
        if self._surface is not None:
            return
        choose_video_driver(self.sim)
        pygame = load_pygame()
        pygame.display.init()
        pygame.font.init()
        # pygame has one window per process; the demo runs several displays in one.
        self._owns_window = pygame.display.get_surface() is None
        if self.size is None and self.sim:
            self.size = SIM_SIZE
        # Before the window opens: without an icon of its own, pygame reads its default one through
        # pygame.image, which loads SDL_image and its codec libraries for the display's whole life.
        pygame.display.set_icon(icon())
        if self.size is None:
            self._surface = pygame.display.set_mode((0, 0), pygame.FULLSCREEN)
            self.size = self._surface.get_size()
        else:
            self._surface = pygame.display.set_mode(self.size)
        pygame.display.set_caption("Nextup")
        pygame.mouse.set_visible(False)
        if self._chime is play_chime and audio_player() is None:
            mixer_ready()  # open the audio device here, on the main thread, not in the worker
        log.info("%s: screen %dx%d (%s)", self.device_id, *self.size, pygame.display.get_driver())

    def view(self) -> View:
        return self.state.view(self.clock())

    def redraw(self, force: bool = False) -> bool:
        """Draws the current view if it changed since the last frame; True when it drew."""
        self.open_screen()
        view = self.view()
        key = view.clock_key()
        if not force and key == self._last_key:
            return False
        with _WINDOW:
            canvas = self._canvas()
            draw(view, canvas)
            if canvas is not self._surface:
                self._surface.blit(canvas, (0, 0))
            load_pygame().display.flip()
            if self.screenshot is not None:
                _save_png(canvas, self.screenshot)
        self._last_key = key
        self.frames += 1
        _give_back_freed_memory()
        return True

    def _canvas(self) -> Any:
        """Where the frame is drawn: straight onto the screen when the window is this display's.

        A frame of its own would be one more full-screen surface (8 MB at
        1080p).  A display sharing the window with another of the same
        process (the demo), or finding it another size, draws into a frame of
        its own, made once.
        """
        if self._owns_window and self._surface.get_size() == self.size:
            return self._surface
        if self._frame is None or self._frame.get_size() != self.size:
            self._frame = load_pygame().Surface(self.size)
        return self._frame

    def run(self, stop: threading.Event | None = None) -> None:
        """Shows the board until SIGTERM, SIGINT, a window close or ``stop``."""
        pygame = load_pygame()
        stop = stop or threading.Event()
        self.start()
        self.open_screen()
        # The runtime tells systemd it is alive; this thread draws.
        watchdog = threading.Thread(target=self.runtime.run, args=(stop,), name="display-health", daemon=True)
        watchdog.start()
        with stop_on_signals(stop):
            self.redraw(force=True)
            while not stop.is_set():
                self._changed.wait(FRAME_WAIT_S)
                self._changed.clear()
                for event in pygame.event.get():
                    escape = event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE
                    if event.type == pygame.QUIT or escape:
                        stop.set()
                self.redraw()
        stop.set()
        watchdog.join(2.0)


_WINDOW = threading.Lock()
"""Held while a frame is drawn and shown: the displays of one process share pygame's window."""

_malloc_trim: Callable[[int], int] | None = None


def _give_back_freed_memory() -> None:
    """Hands the memory a frame used for a moment back to the system (glibc's ``malloc_trim``).

    Drawing a frame allocates and frees a few MB (the newest call's text alone
    is about 1 MB at 1080p, plus a font for each size tried).  glibc keeps
    freed pages inside its heap for later: without this, the display stays
    about 2 MB above what it holds between frames, a 1080p screen's margin
    under its 40 MB.  Trimming takes well under a millisecond, once a frame.
    Elsewhere than glibc there is no ``malloc_trim`` and nothing to do.
    """
    global _malloc_trim
    if _malloc_trim is None:
        import ctypes

        _malloc_trim = getattr(ctypes.CDLL(None), "malloc_trim", None) or (lambda pad: 0)
    _malloc_trim(0)


def _save_png(frame: Any, path: Path) -> None:
    """Writes the frame whole or not at all, so a reader never sees half a PNG."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    load_pygame("image").image.save(frame, str(tmp))
    os.replace(tmp, path)




def run_display(settings: Settings, *, sim: bool = False, screenshot: str | None = None) -> None:
    """What ``nextup display`` runs."""
    with HallDisplay(settings, sim=sim, screenshot=screenshot) as display:
        display.run()
