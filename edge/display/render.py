"""Drawing a frame of the hall display: a pure function of a ``View`` and a screen size.

Everything is measured in fractions of the screen, so 720p, 1080p and 4K show
the same picture.  The newest call is the biggest thing on screen, in a banner
across it: its digits stand about 12 % of the screen's height (8 cm on a 55"
screen: about 1 inch per 10 feet, read from 10 metres); earlier calls and
waiting counts are about half that.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from nextup.contract import Board, SiteState

from .lean_pygame import load
from .state import View

if TYPE_CHECKING:
    import pygame
else:
    pygame = load()

BACKGROUND = (14, 22, 33)
HEADER = (24, 36, 52)
PANEL = (22, 33, 48)
TEXT = (240, 244, 248)
MUTED = (140, 156, 176)
HIGHLIGHT = (255, 183, 3)
HIGHLIGHT_TEXT = (14, 22, 33)
OFFLINE = (220, 90, 80)
ROW_LINE = (44, 60, 82)

# pygame's default font (freesansbold) has a line height of about 0.68 of its point size.
_LINE_PER_SIZE = 0.68
MIN_TEXT_PX = 12


@dataclass(frozen=True)
class Layout:
    """Where each part of the screen goes, from the screen's size."""

    size: tuple[int, int]
    unit: float  # 1 % of the screen's height (of its width on an upright screen)
    header: pygame.Rect
    newest: pygame.Rect  # the call just made, across the whole screen
    calls: pygame.Rect  # the calls before it
    waiting: pygame.Rect

    @property
    def margin(self) -> int:
        return round(2.5 * self.unit)


def layout(size: tuple[int, int]) -> Layout:
    """The layout of a ``size`` screen: header, newest call, then earlier calls and waiting counts."""
    w, h = size
    unit = min(h, w * 9 / 16) / 100 if w >= h else w / 100
    m = round(2.5 * unit)
    header = pygame.Rect(0, 0, w, round(12 * unit))
    newest = pygame.Rect(m, header.bottom + m, w - 2 * m, round(28 * unit))
    top = newest.bottom + m
    if w >= h * 1.2:  # landscape: earlier calls on the left, waiting on the right
        calls_w = round((w - 3 * m) * 0.6)
        calls = pygame.Rect(m, top, calls_w, h - top - m)
        waiting = pygame.Rect(calls.right + m, top, w - calls.right - 2 * m, h - top - m)
    else:  # upright or square: waiting below the calls
        body = h - top - 2 * m
        calls = pygame.Rect(m, top, w - 2 * m, round(body * 0.55))
        waiting = pygame.Rect(m, calls.bottom + m, w - 2 * m, h - calls.bottom - 2 * m)
    return Layout(size=size, unit=unit, header=header, newest=newest, calls=calls, waiting=waiting)


@lru_cache(maxsize=64)
def _font(line_px: int) -> pygame.font.Font:
    return pygame.font.Font(None, max(1, round(line_px / _LINE_PER_SIZE)))


def text_surface(text: str, line_px: float, color: tuple[int, int, int], background: tuple[int, int, int],
                 max_width: int | None = None, *, min_px: float = MIN_TEXT_PX) -> pygame.Surface:
    """``text`` about ``line_px`` tall on ``background``; shrunk, then cut with an ellipsis, to fit
    ``max_width``."""
    font, text = _fitted(text, line_px, max_width, min_px)
    return _text(font, text, color, background)


def _text(font: pygame.font.Font, text: str, color: tuple[int, int, int],
          background: tuple[int, int, int]) -> pygame.Surface:
    # Antialiased on the colour it goes onto ("shaded"): 8 bits a pixel where text with its own
    # alpha takes 32, and the big text of a 1080p frame is megabytes.  Pixels differ from
    # alpha-blended text by one level at most; the box is opaque, so it must lie on ``background``.
    return font.render(text, True, color, background)


def _fitted(text: str, line_px: float, max_width: int | None = None,
            min_px: float = MIN_TEXT_PX) -> tuple[pygame.font.Font, str]:
    """The font and text ``text_surface`` draws: shrunk, then cut with an ellipsis, to fit ``max_width``."""
    if not pygame.font.get_init():
        pygame.font.init()
        _font.cache_clear()  # fonts of an earlier pygame.font.init() are dead
    font = _font(max(MIN_TEXT_PX, round(line_px)))
    if max_width is not None:
        font = _font(_fit_px(text, line_px, max_width, min_px))
        if font.size(text)[0] > max_width:
            while len(text) > 1 and font.size(text + "…")[0] > max_width:
                text = text[:-1].rstrip()
            text = text + "…"
    return font, text


def _fit_px(text: str, line_px: float, max_width: int, min_px: float = MIN_TEXT_PX) -> int:
    """The biggest line height up to ``line_px`` (down to ``min_px``) at which ``text`` fits ``max_width``."""
    px = max(MIN_TEXT_PX, round(line_px))
    floor = max(MIN_TEXT_PX, round(min_px))
    width = _font(px).size(text)[0]
    if width > max_width:
        # glyph widths do not scale exactly with the size: estimate, then step down
        px = max(floor, int(px * max_width / width))
        while px > floor and _font(px).size(text)[0] > max_width:
            px = max(floor, px - max(1, px // 25))
    return px


def _blit(target: pygame.Surface, surf: pygame.Surface, *, left: int | None = None, right: int | None = None,
          centery: int, within: pygame.Rect | None = None) -> pygame.Rect:
    """Blits ``surf``; only what falls ``within`` that rect when one is given."""
    rect = surf.get_rect(centery=centery)
    if right is not None:
        rect.right = right
    else:
        rect.left = left or 0
    if within is None:
        target.blit(surf, rect)
    else:
        target.blit(surf, rect, rect.clip(within).move(-rect.x, -rect.y))
    return rect


def render(view: View, size: tuple[int, int]) -> pygame.Surface:
    """The frame for ``view`` on a ``size`` screen."""
    screen = pygame.Surface(size)
    draw(view, screen)
    return screen


def draw(view: View, screen: pygame.Surface) -> None:
    """Draws the frame for ``view`` over the whole of ``screen``, as ``render`` would.

    The display draws straight onto its screen: a frame of its own would be
    one more full-screen surface (8 MB at 1080p) allocated on every redraw.
    """
    if not pygame.font.get_init():
        pygame.font.init()
    # Fonts live for one part of a frame: a font kept across pygame.font.quit()/init() crashes
    # pygame, one kept while the screen waits for the next change is memory held for nothing, and
    # FreeType holds up to half a MB for each size drawn (at 1080p), so the fonts of every part
    # together would be the frame's peak.
    _font.cache_clear()
    try:
        lay = layout(screen.get_size())
        screen.fill(BACKGROUND)
        _header(screen, lay, view)
        _font.cache_clear()
        _newest(screen, lay, view.board)
        _font.cache_clear()
        _calls(screen, lay, view.board)
        _font.cache_clear()
        _waiting(screen, lay, view.board, view.site)
    finally:
        _font.cache_clear()


def _header(screen: pygame.Surface, lay: Layout, view: View) -> None:
    u, m, rect = lay.unit, lay.margin, lay.header
    pygame.draw.rect(screen, HEADER, rect)
    clock = text_surface(view.now.strftime("%H:%M"), 8.5 * u, TEXT, HEADER)
    clock_rect = _blit(screen, clock, right=rect.right - m, centery=rect.centery)
    right_edge = clock_rect.left - 2 * m
    if not view.online:
        mark = text_surface("offline", 3.2 * u, OFFLINE, HEADER)
        mark_rect = _blit(screen, mark, right=right_edge, centery=rect.centery)
        radius = max(3, round(0.8 * u))
        pygame.draw.circle(screen, OFFLINE, (mark_rect.left - radius - round(0.8 * u), rect.centery), radius)
        right_edge = mark_rect.left - 2 * radius - 2 * m
    name = view.site.name if view.site else "Nextup"
    title = text_surface(name, 6.5 * u, TEXT, HEADER, max_width=right_edge - rect.left - m)
    _blit(screen, title, left=rect.left + m, centery=rect.centery)


def _newest(screen: pygame.Surface, lay: Layout, board: Board | None) -> None:
    """The call just made: number and point side by side, as big as the banner allows."""
    u, rect = lay.unit, lay.newest
    pad = round(2 * u)
    if not board or not board.calls:
        pygame.draw.rect(screen, PANEL, rect, border_radius=pad)
        empty = text_surface("Please take a ticket", 8 * u, MUTED, PANEL, max_width=rect.width - 2 * pad)
        screen.blit(empty, empty.get_rect(center=rect.center))
        return
    call = board.calls[0]
    pygame.draw.rect(screen, HIGHLIGHT, rect, border_radius=pad)
    pad = round(4 * u)
    arrow_w = round(12 * u)
    gap = round(3 * u)
    px = _fit_px(call.number + call.point_name, 24 * u, rect.width - 2 * pad - arrow_w - 2 * gap, 6 * u)
    font = _font(px)
    # Measured first and drawn one at a time: these are the biggest surfaces of a frame.
    number_w = font.size(call.number)[0]
    name_font, name = font, call.point_name
    if number_w + font.size(name)[0] + arrow_w + 2 * gap > rect.width - 2 * pad:
        name_font, name = _fitted(name, px, rect.width - 2 * pad - arrow_w - 2 * gap - number_w)
    name_w = name_font.size(name)[0]
    # centred as a group: a sign, not a table
    x = rect.centerx - (number_w + name_w + arrow_w + 2 * gap) // 2
    # digits have no descenders: centre what shows, not the line with its room below the baseline
    y = rect.centery - font.get_descent() // 2
    # Lowered by half its descent, the line's opaque box can reach past the banner: only what is inside
    # the banner is drawn.
    _blit(screen, _text(font, call.number, HIGHLIGHT_TEXT, HIGHLIGHT), left=x, centery=y, within=rect)
    _arrow(screen, x + number_w + gap, rect.centery, arrow_w, round(px * 0.45), HIGHLIGHT_TEXT)
    _blit(screen, _text(name_font, name, HIGHLIGHT_TEXT, HIGHLIGHT), left=x + number_w + arrow_w + 2 * gap,
          centery=y, within=rect)


def icon(size: int = 32) -> pygame.Surface:
    """The window's icon: the newest call's arrow on its banner."""
    surface = pygame.Surface((size, size))
    surface.fill(HIGHLIGHT)
    _arrow(surface, size // 8, size // 2, size - size // 4, size // 2, HIGHLIGHT_TEXT)
    return surface


def _arrow(screen: pygame.Surface, x: int, centery: int, width: int, height: int,
           color: tuple[int, int, int]) -> None:
    """An arrow drawn, not typed: the default font has no arrow glyph."""
    head = min(width // 2, height)
    shaft = max(2, height // 4)
    pygame.draw.rect(screen, color, (x, centery - shaft // 2, width - head + 1, shaft))
    pygame.draw.polygon(screen, color, [(x + width - head, centery - height // 2), (x + width, centery),
                                        (x + width - head, centery + height // 2)])


def _calls(screen: pygame.Surface, lay: Layout, board: Board | None) -> None:
    """The calls before the newest, one row each, as many as fit."""
    u, rect = lay.unit, lay.calls
    calls = board.calls[1:] if board else []
    if not calls:
        return
    pad = round(2 * u)
    heading_h = round(5 * u)
    number_w = round(rect.width * 0.40)
    arrow_w = round(rect.width * 0.12)
    name_left = rect.left + number_w + arrow_w
    heading_y = rect.top + heading_h // 2
    _blit(screen, text_surface("Ticket", 3.6 * u, MUTED, BACKGROUND), left=rect.left + pad, centery=heading_y)
    _blit(screen, text_surface("Point", 3.6 * u, MUTED, BACKGROUND), left=name_left, centery=heading_y)
    row_h = round(11.5 * u)
    y = rect.top + heading_h
    line = max(1, round(0.2 * u))
    for call in calls:
        if y + row_h > rect.bottom:
            break
        row = pygame.Rect(rect.left, y, rect.width, row_h)
        number = text_surface(call.number, 8.5 * u, TEXT, BACKGROUND, max_width=number_w - 2 * pad,
                              min_px=4 * u)
        _blit(screen, number, left=row.left + pad, centery=row.centery)
        _arrow(screen, row.left + number_w + (arrow_w - round(6 * u)) // 2, row.centery, round(6 * u),
               round(4 * u), TEXT)
        name = text_surface(call.point_name, 8.5 * u, TEXT, BACKGROUND, max_width=row.right - pad - name_left,
                            min_px=3.5 * u)
        _blit(screen, name, left=name_left, centery=row.centery)
        # inclusive end points: stop one pixel short of the panel's edge
        line_y = row.bottom - line
        pygame.draw.line(screen, ROW_LINE, (row.left, line_y), (row.right - 1, line_y), line)
        y = row.bottom


def waiting_rows(board: Board | None, site: SiteState | None) -> list[tuple[str, int]]:
    """(service name, waiting count) in the site's order; a service central counts but the site
    does not name yet is shown by its key, so no waiting client is hidden."""
    waiting = dict(board.waiting) if board else {}
    rows: list[tuple[str, int]] = []
    if site is not None:
        for service in site.services:
            count = waiting.pop(service.key, 0)
            if service.active or count:
                rows.append((service.name, count))
    rows.extend(sorted(waiting.items()))
    return rows


def _waiting(screen: pygame.Surface, lay: Layout, board: Board | None, site: SiteState | None) -> None:
    u, rect = lay.unit, lay.waiting
    pad = round(2 * u)
    pygame.draw.rect(screen, PANEL, rect, border_radius=pad)
    heading_h = round(7 * u)
    title = text_surface("Waiting", 4.5 * u, MUTED, PANEL)
    _blit(screen, title, left=rect.left + pad, centery=rect.top + heading_h // 2)
    bottom = rect.bottom - pad
    if site is not None and not site.open:
        closed = "Closed" + (f" · opens {site.opens_at}" if site.opens_at else "")
        banner = text_surface(closed, 4.5 * u, HIGHLIGHT, PANEL, max_width=rect.width - 2 * pad)
        banner_rect = banner.get_rect(left=rect.left + pad, bottom=bottom)
        screen.blit(banner, banner_rect)
        bottom = banner_rect.top - pad
    rows = waiting_rows(board, site)
    if not rows:
        return
    top = rect.top + heading_h
    # rows share the space left; never taller than 12 % of the screen, never smaller than readable
    row_h = min(round(12 * u), max(round(5 * u), (bottom - top) // len(rows)))
    count_w = round(rect.width * 0.28)
    y = top
    for name, count in rows:
        if y + row_h > bottom:
            break
        centery = y + row_h // 2
        count_surf = text_surface(str(count), row_h * 0.62, TEXT, PANEL, max_width=count_w)
        _blit(screen, count_surf, right=rect.right - pad, centery=centery)
        name_surf = text_surface(name, min(row_h * 0.42, 5.5 * u), TEXT, PANEL,
                                 max_width=rect.width - count_w - 3 * pad, min_px=row_h * 0.25)
        _blit(screen, name_surf, left=rect.left + pad, centery=centery)
        y += row_h
