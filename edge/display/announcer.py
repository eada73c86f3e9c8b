"""Chime and spoken announcement of each call.

``Announcer`` says one sentence in one language and returns when it is done.
``EspeakAnnouncer`` speaks through espeak-ng, ``RecordingAnnouncer`` keeps
what it was asked to say (tests, machines without a voice).
``AnnouncementQueue`` plays chime + sentence for each call, one after the
other on one worker thread, so calls that arrive together are all announced,
in order, never over each other.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import re
import shutil
import struct
import subprocess
import tempfile
import threading
import time
import wave
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from nextup.contract import CallInfo

log = logging.getLogger(__name__)

# How "Ticket A 42, Window 3" starts in a few languages; the point's name comes from the site.
TICKET_WORD = {
    "en": "Ticket",
    "de": "Nummer",
    "fr": "Numéro",
    "es": "Turno",
    "it": "Numero",
    "nl": "Nummer",
    "pt": "Senha",
    "pl": "Numer",
    "sv": "Nummer",
    "da": "Nummer",
    "nb": "Nummer",
    "fi": "Numero",
    "cs": "Číslo",
    "ru": "Номер",
    "uk": "Номер",
    "tr": "Numara",
}
_NUMBER = re.compile(r"^([A-Za-z]*)[-\s]?0*(\d+)$")


def spoken_number(number: str) -> str:
    """``A-042`` -> ``A 42``: the prefix letter, then the counter without leading zeros."""
    m = _NUMBER.match(number.strip())
    if not m:
        return number
    prefix, digits = m.groups()
    digits = digits or "0"
    return f"{prefix} {digits}" if prefix else digits


def announcement_text(call: CallInfo, language: str) -> str:
    """The sentence for ``call``: "Ticket A 42, Window 3"."""
    word = TICKET_WORD.get(language.lower(), TICKET_WORD.get(language.split("-")[0].lower(), "Ticket"))
    return f"{word} {spoken_number(call.number)}, {call.point_name}"


# --- announcers ---------------------------------------------------------------


class Announcer(Protocol):
    """Says ``text`` in ``language`` and returns when it has been said."""

    def say(self, text: str, language: str) -> None: ...

    def has_voice(self, language: str) -> bool: ...


class RecordingAnnouncer:
    """Keeps what it was asked to say, in order; has a voice for ``languages`` (all when None)."""

    def __init__(self, languages: Iterable[str] | None = None) -> None:
        self.languages = None if languages is None else {lang.lower() for lang in languages}
        self.said: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def say(self, text: str, language: str) -> None:
        with self._changed:
            self.said.append((text, language))
            self._changed.notify_all()

    def has_voice(self, language: str) -> bool:
        return self.languages is None or language.lower() in self.languages

    def wait_for(self, count: int, timeout: float = 10.0) -> list[tuple[str, str]]:
        """The first ``count`` sentences, waiting for them up to ``timeout`` seconds."""
        with self._changed:
            self._changed.wait_for(lambda: len(self.said) >= count, timeout)
            return list(self.said)


class SilentAnnouncer:
    """Says nothing: a display without espeak-ng still shows every call."""

    def say(self, text: str, language: str) -> None:
        log.info("(silent) %s", text)

    def has_voice(self, language: str) -> bool:
        return False


def installed_voices(espeak: str = "espeak-ng") -> frozenset[str]:
    """The language codes espeak-ng has voices for, lower case (``en``, ``en-gb``, ``pt-br``...)."""
    try:
        done = subprocess.run([espeak, "--voices"], capture_output=True, text=True, timeout=10, check=True)
        out = done.stdout
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("cannot list espeak-ng voices: %s", exc)
        return frozenset()
    codes: set[str] = set()
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 2:
            codes.add(parts[1].lower())
        # "Other Languages" column: "(en 2)(en-gb 3)"
        codes.update(m.lower() for m in re.findall(r"\(([A-Za-z0-9-]+) \d+\)", line))
    return frozenset(codes)


def audio_player() -> list[str] | None:
    """A command that plays a WAV file (aplay, else paplay), or None."""
    for cmd in (["aplay", "-q"], ["paplay"]):
        if shutil.which(cmd[0]):
            return cmd
    return None


def play_wav(path: Path) -> None:
    """Plays a WAV file with aplay/paplay, else through pygame's mixer, else not at all.

    A player process rather than the mixer where there is one: the mixer
    brings SDL_mixer and its codec libraries into the display (6 MB resident)
    and holds the sound card open between calls.
    """
    cmd = audio_player()
    if cmd:
        _run([*cmd, str(path)])
    else:
        _play_with_mixer(path)


class EspeakAnnouncer:
    """Speaks with espeak-ng: writes a WAV, then plays it with ``play`` (aplay/paplay by default).

    ``play`` is given the WAV's path; without a player the sentence is synthesised and
    dropped quietly, as a display without speakers has no one to tell.
    """

    def __init__(self, *, espeak: str = "espeak-ng", play: Callable[[Path], None] | None = None,
                 speed: int = 150) -> None:
        self.espeak = espeak
        self.speed = speed
        self._voices: frozenset[str] | None = None
        self._play = play or play_wav

    @property
    def voices(self) -> frozenset[str]:
        if self._voices is None:
            self._voices = installed_voices(self.espeak)
        return self._voices

    def voice_for(self, language: str) -> str | None:
        """The espeak-ng voice for ``language``: itself, else its base language, else None."""
        lang = language.lower()
        if lang in self.voices:
            return lang
        base = lang.split("-")[0]
        return base if base in self.voices else None

    def has_voice(self, language: str) -> bool:
        return self.voice_for(language) is not None

    def synthesise(self, text: str, language: str, path: Path) -> Path:
        """Writes ``text`` spoken in ``language`` as a WAV file at ``path``."""
        voice = self.voice_for(language) or "en"
        _run([self.espeak, "-v", voice, "-s", str(self.speed), "-w", str(path), "--", text])
        return path

    def say(self, text: str, language: str) -> None:
        with tempfile.TemporaryDirectory(prefix="nextup-say-") as tmp:
            path = self.synthesise(text, language, Path(tmp) / "say.wav")
            self._play(path)


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


def _play_with_mixer(path: Path) -> None:
    """Plays a WAV through pygame's mixer when there is an audio device; else nothing."""
    if not mixer_ready():
        return
    from .lean_pygame import load

    sound = load("mixer").mixer.Sound(str(path))
    channel = sound.play()
    deadline = time.monotonic() + sound.get_length() + 1.0
    while channel is not None and channel.get_busy() and time.monotonic() < deadline:
        time.sleep(0.02)


_mixer_state: bool | None = None


def mixer_ready() -> bool:
    """Whether pygame's mixer has an audio device (tried once)."""
    global _mixer_state
    if _mixer_state is None:
        try:
            from .lean_pygame import load

            mixer = load("mixer").mixer
            if not mixer.get_init():
                mixer.init()
            _mixer_state = True
        except Exception as exc:  # pygame.error, ImportError: a display without sound still shows calls
            log.info("no audio device, announcements are silent: %s", exc)
            _mixer_state = False
    return _mixer_state


# --- chime --------------------------------------------------------------------

CHIME_RATE = 22050


def write_chime(path: Path, *, rate: int = CHIME_RATE) -> Path:
    """A two-note "ding-dong" (E5 then C5, each fading out) as a 16-bit mono WAV."""
    notes = [(659.25, 0.45), (523.25, 0.75)]
    frames = bytearray()
    for freq, length in notes:
        n = int(rate * length)
        for i in range(n):
            t = i / rate
            envelope = math.exp(-4.0 * t / length) * min(1.0, i / (0.005 * rate))
            # a touch of the octave makes it a bell rather than a beep
            sample = math.sin(2 * math.pi * freq * t) + 0.3 * math.sin(4 * math.pi * freq * t)
            frames += struct.pack("<h", int(0.45 * 32767 * envelope * sample / 1.3))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with wave.open(str(tmp), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))
    os.replace(tmp, path)
    return path


def chime_path(cache_dir: Path | None = None) -> Path:
    """The chime's WAV, made at first use."""
    folder = cache_dir or Path(tempfile.gettempdir())
    path = folder / "nextup-chime.wav"
    if not path.exists():
        write_chime(path)
    return path


def play_chime() -> None:
    """Plays the chime (``play_wav``); quietly nothing without an audio device."""
    play_wav(chime_path())


# --- the queue ------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    call: CallInfo
    fallback_language: str


class AnnouncementQueue:
    """Announces calls one after the other on one worker thread: chime, then the sentence.

    The call's own ``language`` is used when the announcer has a voice for it,
    else ``fallback_language`` given with the call.
    """

    def __init__(self, announcer: Announcer, *, chime: Callable[[], None] | None = play_chime) -> None:
        self.announcer = announcer
        self.chime = chime
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="nextup-announcer", daemon=True)
        self._closed = False
        self._thread.start()

    def announce(self, call: CallInfo, fallback_language: str) -> None:
        if self._closed:
            return
        self._jobs.put(_Job(call, fallback_language))

    def language_for(self, call: CallInfo, fallback_language: str) -> str:
        if call.language and self.announcer.has_voice(call.language):
            return call.language
        return fallback_language

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                language = self.language_for(job.call, job.fallback_language)
                if self.chime is not None:
                    self.chime()
                self.announcer.say(announcement_text(job.call, language), language)
            except Exception:  # a failed announcement must not silence the next ones
                log.exception("announcement of %s failed", job.call.number if job else "?")
            finally:
                self._jobs.task_done()

    def join(self) -> None:
        """Waits until every call queued so far has been announced."""
        self._jobs.join()

    def close(self, timeout: float = 5.0) -> None:
        """Announces what is queued, then stops the worker; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        self._thread.join(timeout)

    def __enter__(self) -> AnnouncementQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
