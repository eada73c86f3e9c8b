"""Frames of the hall display, drawn from a view without MQTT, checked by their pixels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime

import pygame
import pytest

from edge.display import render as r
from edge.display.state import View
from nextup.contract import Board, CallInfo, ServiceInfo, SiteState

SIZES = [(1280, 720), (1920, 1080), (3840, 2160)]
NOW = datetime(2024, 5, 6, 9, 41)
SITE = SiteState(
    name="Main branch",
    open=True,
    services=[ServiceInfo("cash", "Cash desk", "A", True),
              ServiceInfo("loans", "Loans and mortgages", "B", True)],
)


@pytest.fixture(autouse=True)
def headless_pygame(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    monkeypatch.setenv("SDL_AUDIODRIVER", "dummy")
    pygame.font.init()
    yield
    pygame.font.quit()


def call(number: str, point: int, name: str | None = None) -> CallInfo:
    return CallInfo(number=number, point=point, point_name=name or f"Window {point}", service="cash",
                    at="2024-05-06T09:40:00")


def board(*calls: CallInfo, **waiting: int) -> Board:
    return Board(calls=list(calls), waiting=waiting, version=1)


def pixels(surface: pygame.Surface, rect: pygame.Rect, color: tuple[int, int, int],
           tolerance: int = 24) -> int:
    """How many pixels of ``rect`` are within ``tolerance`` of ``color``."""
    sub = surface.subsurface(rect.clip(surface.get_rect()))
    return pygame.mask.from_threshold(sub, color, (tolerance, tolerance, tolerance, 255)).count()


def inside(box: pygame.Rect, lay: r.Layout) -> pygame.Rect:
    """``box`` without its rounded corners, whose outside shows the background."""
    return box.inflate(-4, -2 * round(2 * lay.unit))


def bounds(surface: pygame.Surface, rect: pygame.Rect, color: tuple[int, int, int]) -> pygame.Rect:
    """The box around the pixels of ``rect`` near ``color``, in screen coordinates."""
    sub = surface.subsurface(rect)
    boxes = pygame.mask.from_threshold(sub, color, (40, 40, 40, 255)).get_bounding_rects()
    assert boxes, f"no pixel of {color} in {rect}"
    box = boxes[0].unionall(boxes[1:])
    return box.move(rect.topleft)


@pytest.mark.parametrize("size", SIZES + [(1080, 1920), (1024, 768)])
def test_the_parts_of_the_screen_fit_it_without_overlapping(size: tuple[int, int]) -> None:
    lay = r.layout(size)
    screen = pygame.Rect((0, 0), size)
    parts = [lay.header, lay.newest, lay.calls, lay.waiting]
    for part in parts:
        assert screen.contains(part) and part.width > 0 and part.height > 0
    for i, a in enumerate(parts):
        for b in parts[i + 1:]:
            assert not a.colliderect(b), f"{a} overlaps {b}"


@pytest.mark.parametrize("size", SIZES)
def test_the_newest_call_is_highlighted_and_big_enough_to_read_across_the_hall(size: tuple[int, int]) -> None:
    frame = r.render(View(board(call("A-042", 3), call("B-007", 1), cash=12), SITE, NOW, True), size)
    lay = r.layout(size)
    highlight = bounds(frame, lay.newest, r.HIGHLIGHT)
    assert highlight.height > 0.25 * size[1], "the newest call has the biggest box on screen"
    text = bounds(frame, inside(highlight, lay), r.HIGHLIGHT_TEXT)
    # Digits 12 % of the screen's height stand 8 cm on a 55" screen: 1 inch per 10 feet, read from 10 m.
    assert text.height >= 0.12 * size[1]
    # the earlier call is drawn smaller, in white, below
    rows = pygame.Rect(lay.calls.left, lay.calls.top + round(5 * lay.unit), lay.calls.width, lay.calls.height)
    older = bounds(frame, rows.clip(lay.calls), r.TEXT)
    assert 0.055 * size[1] <= older.height < text.height
    assert pixels(frame, lay.calls, r.HIGHLIGHT) == 0, "only the newest call is highlighted"


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("name", "readable"), [
    ("Consultation room 12", 0.075),
    ("Consultation room for residence permits and passports 12", 0.03),
])
def test_a_long_point_name_stays_inside_its_row(size: tuple[int, int], name: str, readable: float) -> None:
    frame = r.render(View(board(call("A-042", 12, name), call("A-041", 12, name)), SITE, NOW, True), size)
    lay = r.layout(size)
    highlight = bounds(frame, lay.newest, r.HIGHLIGHT)
    text = bounds(frame, inside(highlight, lay), r.HIGHLIGHT_TEXT)
    pad = round(2 * lay.unit)
    assert highlight.left + pad <= text.left, "not clipped"
    assert text.right <= highlight.right - pad, "shrunk or cut, not clipped"
    assert text.height >= readable * size[1]
    # nothing spills out of the earlier calls into the gap before the waiting panel
    gap = pygame.Rect(lay.calls.right, lay.calls.top, lay.waiting.left - lay.calls.right, lay.calls.height)
    assert pixels(frame, gap, r.BACKGROUND, tolerance=1) == gap.width * gap.height


@pytest.mark.parametrize("size", SIZES)
def test_the_newest_call_draws_nothing_outside_its_banner(size: tuple[int, int]) -> None:
    # text is drawn in opaque boxes of its background's colour; the big line's box is lowered
    # below its centre, past the banner when the text is short enough to be drawn at full size
    frame = r.render(View(board(call("A-7", 3, "Gym")), SITE, NOW, True), size)
    lay = r.layout(size)
    below = pygame.Rect(0, lay.newest.bottom, size[0], lay.calls.top - lay.newest.bottom)
    assert pixels(frame, below, r.BACKGROUND, tolerance=1) == below.width * below.height


@pytest.mark.parametrize("size", SIZES)
def test_offline_shows_a_discreet_mark_and_keeps_the_board(size: tuple[int, int]) -> None:
    shown = board(call("A-042", 3), cash=2)
    online = r.render(View(shown, SITE, NOW, True), size)
    offline = r.render(View(shown, SITE, NOW, False), size)
    lay = r.layout(size)
    assert pixels(online, lay.header, r.OFFLINE) == 0
    marked = pixels(offline, lay.header, r.OFFLINE)
    assert 0 < marked < 0.02 * lay.header.width * lay.header.height, "visible, but small"
    body = pygame.Rect(0, lay.header.bottom, size[0], size[1] - lay.header.bottom)
    assert pygame.image.tobytes(online.subsurface(body), "RGB") == pygame.image.tobytes(
        offline.subsurface(body), "RGB"
    )


def test_rendering_is_a_function_of_the_view() -> None:
    view = View(board(call("A-042", 3), cash=2), SITE, NOW, True)
    same = r.render(view, (1280, 720))
    assert pygame.image.tobytes(same, "RGB") == pygame.image.tobytes(r.render(view, (1280, 720)), "RGB")
    lay = r.layout((1280, 720))
    other = r.render(View(board(call("A-043", 4), cash=2), SITE, NOW, True), (1280, 720))
    assert pygame.image.tobytes(other.subsurface(lay.newest), "RGB") != pygame.image.tobytes(
        same.subsurface(lay.newest), "RGB")
    assert pygame.image.tobytes(other.subsurface(lay.waiting), "RGB") == pygame.image.tobytes(
        same.subsurface(lay.waiting), "RGB")
    later = r.render(View(view.board, SITE, datetime(2024, 5, 6, 9, 42), True), (1280, 720))
    assert pygame.image.tobytes(later.subsurface(lay.header), "RGB") != pygame.image.tobytes(
        same.subsurface(lay.header), "RGB"), "the clock moved"


def test_waiting_counts_change_the_waiting_panel() -> None:
    lay = r.layout((1920, 1080))
    few = r.render(View(board(cash=1), SITE, NOW, True), (1920, 1080))
    many = r.render(View(board(cash=27), SITE, NOW, True), (1920, 1080))
    assert pixels(many, lay.waiting, r.TEXT) > pixels(few, lay.waiting, r.TEXT)


@pytest.mark.parametrize("size", SIZES)
def test_many_services_stay_inside_the_waiting_panel(size: tuple[int, int]) -> None:
    services = [ServiceInfo(f"s{i}", f"Service number {i}", "A", True) for i in range(25)]
    site = SiteState(name="Big office", open=False, opens_at="08:00", services=services)
    frame = r.render(View(board(**{f"s{i}": i for i in range(25)}), site, NOW, True), size)
    lay = r.layout(size)
    below = pygame.Rect(0, lay.waiting.bottom, size[0], size[1] - lay.waiting.bottom)
    assert pixels(frame, below, r.BACKGROUND, tolerance=1) == below.width * below.height
    assert pixels(frame, lay.waiting, r.HIGHLIGHT) > 0, "the closed banner shows"


def test_an_empty_site_still_draws_a_frame() -> None:
    frame = r.render(View(None, None, NOW, False), (1280, 720))
    lay = r.layout((1280, 720))
    assert pixels(frame, lay.newest, r.MUTED) > 0
    assert pixels(frame, frame.get_rect(), r.HIGHLIGHT) == 0



LEAN_FRAME = """
import json, sys
from datetime import datetime
from edge.display import render as r
from edge.display.state import View
from nextup.contract import Board, CallInfo, SiteState, ServiceInfo
site = SiteState(name="Main branch", open=True, services=[ServiceInfo("cash", "Cash desk", "A", True)])
calls = [CallInfo("A-042", 3, "Window 3", "cash", "2024-05-06T09:40:00"),
         CallInfo("A-041", 1, "Window 1", "cash", "2024-05-06T09:40:00")]
view = View(Board(calls=calls, waiting={"cash": 4}, version=1), site, datetime(2024, 5, 6, 9, 41), True)
frame = r.render(view, (1280, 720))
left_out = [m for m in ("pygame.mixer", "pygame.sprite", "pygame.image", "pkg_resources") if m in sys.modules]
import pygame.image  # only to hand the frame over
sys.stdout.buffer.write(pygame.image.tobytes(frame, "RGB"))
import pygame
whole = pygame.mask.from_surface(frame).count() > 0 and callable(pygame.init)
whole = whole and "pygame.mixer" in sys.modules
sys.stderr.write(json.dumps([left_out, whole]))
"""


def test_the_display_draws_the_same_frame_without_the_whole_of_pygame() -> None:
    # A process of its own: this one imported pygame whole.
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "PYGAME_HIDE_SUPPORT_PROMPT": "1"}
    done = subprocess.run([sys.executable, "-c", LEAN_FRAME], capture_output=True, env=env, check=True,
                          timeout=60)
    site = SiteState(name="Main branch", open=True, services=[ServiceInfo("cash", "Cash desk", "A", True)])
    view = View(board(call("A-042", 3), call("A-041", 1), cash=4), site, NOW, True)
    assert done.stdout == pygame.image.tobytes(r.render(view, (1280, 720)), "RGB")
    left_out, whole = json.loads(done.stderr.decode().strip().splitlines()[-1])
    assert left_out == [], "the mixer, sprites, image codecs and pkg_resources are not loaded to draw"
    assert whole, "code asking more of pygame still gets all of it"


def test_drawing_onto_the_screen_gives_the_rendered_frame() -> None:
    view = View(board(call("A-042", 3), call("A-041", 1), cash=2), SITE, NOW, False)
    screen = pygame.Surface((1280, 720))
    screen.fill((255, 0, 255))
    r.draw(view, screen)
    assert pygame.image.tobytes(screen, "RGB") == pygame.image.tobytes(r.render(view, (1280, 720)), "RGB")
