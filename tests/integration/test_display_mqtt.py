"""The hall display through the real broker: the test plays central, the display draws and speaks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pygame
import pytest

from broker.mosquitto import RunningBroker
from edge.display import render as r
from edge.display.announcer import RecordingAnnouncer
from edge.display.app import HallDisplay
from edge.display.state import View
from nextup.contract import Board, CallInfo, DeviceConfig, ServiceInfo, SiteState, Topics
from nextup.settings import Settings

NOW = datetime(2024, 5, 6, 9, 41)
SIZE = (1280, 720)
SITE = SiteState(
    name="Main branch",
    open=True,
    services=[ServiceInfo("cash", "Cash desk", "A", True), ServiceInfo("loans", "Loans", "B", True)],
)


def call(number: str, point: int = 3, language: str | None = None) -> CallInfo:
    return CallInfo(number=number, point=point, point_name=f"Window {point}", service="cash",
                    at=f"2024-05-06T09:40:{len(number):02d}", language=language)


def board(*calls: CallInfo, version: int, **waiting: int) -> Board:
    return Board(calls=list(calls), waiting=waiting, version=version)


@pytest.fixture
def sdl_dummy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    monkeypatch.setenv("SDL_AUDIODRIVER", "dummy")
    yield
    pygame.quit()


class Chimes(list[str]):
    def __call__(self) -> None:
        self.append("chime")


@pytest.fixture
def make_display(
    broker: RunningBroker, tmp_path: Path, sdl_dummy: None
) -> Iterator[Callable[..., HallDisplay]]:
    made: list[HallDisplay] = []

    def make(device_id: str = "display-1", *, languages: set[str] | None = None,
             **kwargs: Any) -> HallDisplay:
        url = broker.add_device(device_id, "display")
        settings = Settings(site=broker.site, mqtt_url=url, device_id=device_id,
                            extra=kwargs.pop("extra", {}))
        display = HallDisplay(settings, sim=True, announcer=RecordingAnnouncer(languages), chime=Chimes(),
                              size=SIZE, screenshot=tmp_path / f"{device_id}.png", clock=lambda: NOW,
                              reconnect_min_s=0.1, reconnect_max_s=0.5, **kwargs)
        made.append(display)
        display.start()
        assert display.runtime.wait_ready(10), "the display did not connect and subscribe"
        return display

    yield make
    for display in made:
        display.close()


@pytest.fixture
def central(broker: RunningBroker, mqtt_peer: Callable[..., Any]) -> Any:
    return mqtt_peer(broker.central_url)


def shot(display: HallDisplay) -> pygame.Surface:
    assert display.screenshot is not None
    return pygame.image.load(str(display.screenshot))


def region(surface: pygame.Surface, rect: pygame.Rect) -> bytes:
    return pygame.image.tobytes(surface.subsurface(rect), "RGB")


def expected(board_: Board | None, site: SiteState | None, online: bool = True) -> pygame.Surface:
    return r.render(View(board_, site, NOW, online), SIZE)


def until_shown(display: HallDisplay, frame: pygame.Surface, rect: pygame.Rect | None = None,
                timeout: float = 10.0) -> pygame.Surface:
    """Redraws (as the display's loop does) until the screenshot shows ``frame`` in ``rect``."""
    rect = rect or frame.get_rect()
    want = region(frame, rect)
    deadline = time.monotonic() + timeout
    while True:
        display.redraw()
        got = shot(display)
        if region(got, rect) == want:
            return got
        if time.monotonic() > deadline:
            pygame.image.save(got, str(display.screenshot) + ".failed.png")
            raise AssertionError(f"the screenshot does not show the expected {rect} (saved .failed.png)")
        time.sleep(0.02)


def test_the_display_shows_the_site_and_board_central_retained(central: Any, make_display: Callable[..., Any],
                                                                broker: RunningBroker) -> None:
    topics = Topics(broker.site)
    shown = board(call("A-042", 3), call("B-007", 1), version=4, cash=12, loans=3)
    central.publish(topics.site_state, SITE.to_json(), retain=True)
    central.publish(topics.board, shown.to_json(), retain=True)
    display = make_display()
    frame = until_shown(display, expected(shown, SITE))
    lay = r.layout(SIZE)
    assert pygame.mask.from_threshold(frame.subsurface(lay.newest), r.HIGHLIGHT, (8, 8, 8, 255)).count() > 0
    assert region(frame, lay.waiting) != region(expected(None, SITE), lay.waiting), "the counts are drawn"


def test_each_call_is_chimed_announced_in_order_and_put_on_top(central: Any, make_display: Callable[..., Any],
                                                               broker: RunningBroker) -> None:
    topics = Topics(broker.site)
    first = board(call("A-001", 1), version=1, cash=6)
    central.publish(topics.site_state, SITE.to_json(), retain=True)
    central.publish(topics.board, first.to_json(), retain=True)
    display = make_display()
    lay = r.layout(SIZE)
    before = until_shown(display, expected(first, SITE))

    calls = [call(f"A-00{i}", point=i) for i in range(2, 7)]
    for c in calls:
        central.publish(topics.call, c.to_json())
    said = display.announcements.announcer.wait_for(len(calls))
    assert said == [(f"Ticket A {i}, Window {i}", "en") for i in range(2, 7)]
    assert display.announcements.chime == ["chime"] * len(calls)

    now_showing = board(*reversed(calls), *first.calls, version=1, cash=6)
    after = until_shown(display, expected(now_showing, SITE))
    assert region(after, lay.newest) != region(before, lay.newest)
    assert region(after, lay.calls) != region(before, lay.calls)
    assert region(after, lay.waiting) == region(before, lay.waiting)


def test_a_call_delivered_again_is_not_announced_twice(central: Any, make_display: Callable[..., Any],
                                                       broker: RunningBroker) -> None:
    topics = Topics(broker.site)
    display = make_display()
    again = call("A-009")
    central.publish(topics.call, again.to_json())
    central.publish(topics.call, again.to_json())
    central.publish(topics.call, call("A-010").to_json())
    said = display.announcements.announcer.wait_for(2)
    display.announcements.join()
    assert [text for text, _ in said] == ["Ticket A 9, Window 3", "Ticket A 10, Window 3"]


def test_an_older_board_than_the_one_shown_is_ignored(central: Any, make_display: Callable[..., Any],
                                                      broker: RunningBroker) -> None:
    topics = Topics(broker.site)
    display = make_display()
    newer = board(call("A-020"), version=7, cash=1)
    central.publish(topics.board, newer.to_json(), retain=True)
    until_shown(display, expected(newer, None))
    central.publish(topics.board, board(call("A-019"), version=6, cash=2).to_json(), retain=True)
    # the site goes after the stale board on the same connection: once it shows, the board was seen
    central.publish(topics.site_state, SITE.to_json(), retain=True)
    until_shown(display, expected(newer, SITE))


def test_a_bad_payload_changes_nothing_on_screen(central: Any, make_display: Callable[..., Any],
                                                 broker: RunningBroker) -> None:
    topics = Topics(broker.site)
    display = make_display()
    shown = board(call("A-020"), version=2, cash=1)
    central.publish(topics.site_state, SITE.to_json(), retain=True)
    central.publish(topics.board, shown.to_json(), retain=True)
    until_shown(display, expected(shown, SITE))
    central.publish(topics.board, b'{"calls": "nope", "waiting": {}}', retain=True)
    central.publish(topics.call, b"not json")
    central.publish(topics.site_state, b"[]", retain=True)
    central.publish(topics.call, call("A-021").to_json())
    display.announcements.announcer.wait_for(1)
    until_shown(display, expected(board(call("A-021"), *shown.calls, version=2, cash=1), SITE))
    assert [text for text, _ in display.announcements.announcer.said] == ["Ticket A 21, Window 3"]


def test_without_the_broker_the_last_board_stays_with_an_offline_mark(
    central: Any, make_display: Callable[..., Any], broker: RunningBroker
) -> None:
    topics = Topics(broker.site)
    display = make_display()
    shown = board(call("A-030"), call("A-029"), version=3, cash=4)
    central.publish(topics.site_state, SITE.to_json(), retain=True)
    central.publish(topics.board, shown.to_json(), retain=True)
    online = until_shown(display, expected(shown, SITE))
    lay = r.layout(SIZE)

    broker.stop()
    offline = until_shown(display, expected(shown, SITE, online=False))
    assert region(offline, lay.header) != region(online, lay.header)
    assert pygame.mask.from_threshold(offline.subsurface(lay.header), r.OFFLINE, (8, 8, 8, 255)).count() > 0
    body = pygame.Rect(0, lay.header.bottom, SIZE[0], SIZE[1] - lay.header.bottom)
    assert region(offline, body) == region(online, body), "the board stays"

    broker.start()
    until_shown(display, expected(shown, SITE, online=True), timeout=15)


def test_calls_are_spoken_in_their_language_else_in_the_configured_one(
    central: Any, make_display: Callable[..., Any], broker: RunningBroker
) -> None:
    topics = Topics(broker.site)
    central.publish(topics.device_config("display-1"), DeviceConfig(kind="display", language="de").to_json(),
                    retain=True)
    display = make_display(languages={"en", "de", "fr"})
    deadline = time.monotonic() + 5
    while display.language != "de" and time.monotonic() < deadline:
        time.sleep(0.02)
    for c in (call("A-001"), call("A-002", language="fr"), call("A-003", language="ja")):
        central.publish(topics.call, c.to_json())
    said = display.announcements.announcer.wait_for(3)
    assert said == [
        ("Nummer A 1, Window 3", "de"), ("Numéro A 2, Window 3", "fr"), ("Nummer A 3, Window 3", "de"),
    ]


def test_nextup_display_runs_until_told_to_stop(broker: RunningBroker, central: Any, tmp_path: Path,
                                                sdl_dummy: None) -> None:
    topics = Topics(broker.site)
    url = broker.add_device("display-9", "display")
    config = tmp_path / "display.toml"
    config.write_text('resolution = "1280x720"\nlanguage = "en"\n')
    screenshot = tmp_path / "screen.png"
    central.subscribe(topics.device_status("display-9"))
    env = {**os.environ, "NEXTUP_MQTT_URL": url, "NEXTUP_SITE": broker.site, "NEXTUP_DEVICE_ID": "display-9",
           "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
    proc = subprocess.Popen([sys.executable, "-m", "nextup.cli", "display", "--sim", "--config", str(config),
                             "--screenshot", str(screenshot)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        status = json.loads(central.next_message(timeout=15).payload)
        assert status["online"] is True and status["kind"] == "display"
        deadline = time.monotonic() + 15
        while not screenshot.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        first = pygame.image.load(str(screenshot))
        assert first.get_size() == (1280, 720)
        lay = r.layout((1280, 720))
        central.publish(topics.board, board(call("A-077", 7), version=1, cash=3).to_json(), retain=True)
        while time.monotonic() < deadline:
            latest = pygame.image.load(str(screenshot))
            if region(latest, lay.newest) != region(first, lay.newest):
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the screenshot never showed the board")
        mask = pygame.mask.from_threshold(latest.subsurface(lay.newest), r.HIGHLIGHT, (8, 8, 8, 255))
        assert mask.count() > 0.5 * lay.newest.width * lay.newest.height, "the newest call's banner"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, proc.stdout.read().decode() if proc.stdout else ""
        status = json.loads(central.next_message(timeout=5).payload)
        assert status["online"] is False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
