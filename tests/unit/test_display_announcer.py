"""Chime and voice of the hall display: what is said, in which language, in which order."""

from __future__ import annotations

import math
import os
import shutil
import threading
import time
import wave
from array import array
from pathlib import Path

import pytest

from edge.display.announcer import (
    AnnouncementQueue,
    EspeakAnnouncer,
    RecordingAnnouncer,
    announcement_text,
    chime_path,
    installed_voices,
    play_chime,
    spoken_number,
    write_chime,
)
from nextup.contract import CallInfo


def call(number: str, point: int = 3, language: str | None = None, name: str | None = None) -> CallInfo:
    return CallInfo(number=number, point=point, point_name=name or f"Window {point}", service="cash",
                    at="2024-05-06T09:40:00", language=language)


def rms(frames: bytes) -> float:
    samples = array("h", frames)
    return math.sqrt(sum(x * x for x in samples) / max(1, len(samples)))


def crossings(frames: bytes) -> int:
    samples = array("h", frames)
    return sum(1 for a, b in zip(samples, samples[1:], strict=False) if (a < 0) != (b < 0))


@pytest.mark.parametrize(("number", "spoken"), [
    ("A-042", "A 42"), ("A042", "A 42"), ("B-7", "B 7"), ("A-000", "A 0"), ("17", "17"), ("VIP-3", "VIP 3"),
    ("odd one", "odd one"),
])
def test_a_ticket_number_is_spoken_without_leading_zeros(number: str, spoken: str) -> None:
    assert spoken_number(number) == spoken


def test_the_sentence_names_ticket_and_point_in_the_language() -> None:
    assert announcement_text(call("A-042"), "en") == "Ticket A 42, Window 3"
    assert announcement_text(call("A-042", name="Schalter 3"), "de") == "Nummer A 42, Schalter 3"
    assert announcement_text(call("A-042"), "pt-BR").startswith("Senha A 42")
    assert announcement_text(call("A-042"), "xx").startswith("Ticket"), "unknown languages: English"


class Overlaps(RecordingAnnouncer):
    """Takes its time to speak and notes when two sentences overlap."""

    def __init__(self, log: list[str], languages: set[str] | None = None) -> None:
        super().__init__(languages)
        self.log = log
        self.speaking = 0
        self.overlapped = False

    def say(self, text: str, language: str) -> None:
        self.speaking += 1
        self.overlapped |= self.speaking > 1
        self.log.append(f"say {text}")
        time.sleep(0.01)
        self.speaking -= 1
        super().say(text, language)


def test_calls_arriving_together_are_all_announced_in_order_never_overlapping() -> None:
    log: list[str] = []
    voice = Overlaps(log)
    numbers = [f"A-{i:03d}" for i in range(1, 21)]
    with AnnouncementQueue(voice, chime=lambda: log.append("chime")) as queue:
        for number in numbers:
            queue.announce(call(number), "en")
        queue.join()
        said = [text for text, _ in voice.said]
    assert said == [f"Ticket {spoken_number(n)}, Window 3" for n in numbers]
    assert not voice.overlapped
    assert log == [entry for text in said for entry in ("chime", f"say {text}")], "a chime before each"


def test_calls_from_several_threads_are_each_announced_once() -> None:
    voice = RecordingAnnouncer()
    with AnnouncementQueue(voice, chime=None) as queue:
        def point(p: int) -> None:
            for i in range(10):
                queue.announce(call(f"A-{i}", p), "en")

        threads = [threading.Thread(target=point, args=(p,)) for p in range(1, 5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        queue.join()
    assert len(voice.said) == 40 and len(set(voice.said)) == 40
    for p in range(1, 5):
        mine = [text for text, _ in voice.said if text.endswith(f"Window {p}")]
        assert mine == [f"Ticket A {i}, Window {p}" for i in range(10)], "each point's calls keep their order"


def test_the_call_language_is_used_when_there_is_a_voice_for_it() -> None:
    voice = RecordingAnnouncer(languages={"en", "de", "fr"})
    with AnnouncementQueue(voice, chime=None) as queue:
        queue.announce(call("A-001", language="de"), "en")
        queue.announce(call("A-002", language="ja"), "fr")
        queue.announce(call("A-003"), "fr")
        queue.join()
    assert [lang for _, lang in voice.said] == ["de", "fr", "fr"]
    assert voice.said[0][0] == "Nummer A 1, Window 3"


def test_a_failing_announcement_does_not_silence_the_next() -> None:
    class Flaky(RecordingAnnouncer):
        def say(self, text: str, language: str) -> None:
            if "A 1," in text:
                raise OSError("audio device went away")
            super().say(text, language)

    voice = Flaky()
    with AnnouncementQueue(voice, chime=None) as queue:
        queue.announce(call("A-001"), "en")
        queue.announce(call("A-002"), "en")
        queue.join()
    assert [text for text, _ in voice.said] == ["Ticket A 2, Window 3"]


def test_closing_announces_what_was_queued_and_closing_twice_is_harmless() -> None:
    voice = RecordingAnnouncer()
    queue = AnnouncementQueue(voice, chime=None)
    for i in range(5):
        queue.announce(call(f"A-{i}"), "en")
    queue.close()
    queue.close()
    assert len(voice.said) == 5
    queue.announce(call("A-9"), "en")
    assert len(voice.said) == 5, "nothing is announced after closing"


def test_the_chime_is_a_short_two_note_sound(tmp_path: Path) -> None:
    path = write_chime(tmp_path / "chime.wav")
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2)
        rate, frames = wav.getframerate(), wav.readframes(wav.getnframes())
    seconds = len(frames) / 2 / rate
    assert 0.5 < seconds < 2.0

    def pitch(start_s: float, length_s: float = 0.1) -> float:
        chunk = frames[int(start_s * rate) * 2:int((start_s + length_s) * rate) * 2]
        return crossings(chunk) / 2 / length_s

    assert rms(frames) > 1000, "it is audible"
    assert pitch(0.05) > pitch(0.6) + 60, "a ding, then a lower dong"


def test_the_chime_plays_through_the_same_player_as_the_voice(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # aplay as the display has it, but into a file: the test machine has no sound card
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "aplay").write_text(f'#!/bin/sh\nfor f; do :; done\ncp "$f" {tmp_path / "played.wav"}\n')
    (bin_dir / "aplay").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    play_chime()
    assert (tmp_path / "played.wav").read_bytes() == chime_path().read_bytes()


# --- espeak-ng: the real voice -----------------------------------------------------

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (make system-deps installs it)")


@needs_espeak
def test_espeak_lists_its_voices() -> None:
    voices = installed_voices()
    assert {"en", "de", "fr", "pt-br"} <= voices
    announcer = EspeakAnnouncer(play=lambda path: None)
    assert announcer.voice_for("pt-BR") == "pt-br"
    assert announcer.voice_for("de-AT") == "de"
    assert announcer.voice_for("xx") is None and not announcer.has_voice("xx")


def speech(path: Path) -> tuple[float, int]:
    with wave.open(str(path)) as wav:
        assert wav.getsampwidth() == 2
        frames = wav.readframes(wav.getnframes())
        return wav.getnframes() / wav.getframerate(), round(rms(frames))


@needs_espeak
def test_espeak_speaks_the_sentence_into_a_wav(tmp_path: Path) -> None:
    announcer = EspeakAnnouncer(play=lambda path: None)
    short = announcer.synthesise("Ticket A 42", "en", tmp_path / "short.wav")
    long = announcer.synthesise("Ticket A 42, Window 3, please go to window 3", "en", tmp_path / "long.wav")
    (short_s, short_rms), (long_s, long_rms) = speech(short), speech(long)
    assert 0.5 < short_s < long_s < 10
    assert short_rms > 300 and long_rms > 300, "speech, not silence"


@needs_espeak
def test_espeak_announcer_hands_the_spoken_wav_to_the_player(tmp_path: Path) -> None:
    played: list[tuple[float, int]] = []
    announcer = EspeakAnnouncer(play=lambda path: played.append(speech(path)))
    with AnnouncementQueue(announcer, chime=None) as queue:
        queue.announce(call("A-042", language="de"), "en")
        queue.announce(call("A-043"), "en")
        queue.join()
    assert len(played) == 2 and all(seconds > 0.5 and rms > 300 for seconds, rms in played)
