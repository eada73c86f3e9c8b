"""Draw ESC/POS bytes as a picture of the paper, so a person can look at a ticket without a printer.

A small interpreter of the commands the kiosk's layout sends: initialise,
print modes, bold, alignment, character size, code page, feed, native QR
(``GS ( k``) and cut.  Anything else it skips, as a printer would ignore a
command it does not know.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

ESC, GS, LF = 0x1B, 0x1D, 0x0A
PAPER_DOTS = 576  # an 80 mm roll at 203 dpi
MARGIN = 16
FONT_A = (12, 24)  # dots per character of font A
FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf",
)
CODE_PAGES = {0: "cp437", 2: "cp850", 3: "cp860", 4: "cp863", 5: "cp865", 16: "cp1252", 17: "cp866",
              18: "cp852", 19: "cp858", 39: "iso8859_2", 40: "iso8859_15", 45: "cp1250", 46: "cp1251"}


@dataclass(frozen=True)
class Style:
    bold: bool = False
    width: int = 1
    height: int = 1


@dataclass
class _State:
    style: Style = field(default_factory=Style)
    align: int = 0  # 0 left, 1 center, 2 right
    codec: str = "cp437"
    qr_size: int = 3
    qr_data: bytes = b""


@dataclass
class _Line:
    runs: list[tuple[Style, str]]
    align: int


@dataclass
class _Qr:
    data: bytes
    size: int
    align: int


@dataclass
class _Cut:
    pass


def parse(data: bytes) -> list[Any]:
    """The printed blocks of ``data``: lines of styled text, QR codes and cuts, in order."""
    state = _State()
    blocks: list[Any] = []
    runs: list[tuple[Style, str]] = []
    text = bytearray()

    def flush_text() -> None:
        if text:
            runs.append((state.style, bytes(text).decode(state.codec, "replace")))
            text.clear()

    def end_line() -> None:
        flush_text()
        blocks.append(_Line(list(runs), state.align))
        runs.clear()

    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b == LF:
            end_line()
            i += 1
        elif b == ESC and i + 1 < n:
            cmd = data[i + 1]
            arg = data[i + 2] if i + 2 < n else 0
            flush_text()
            if cmd == ord("@"):
                state = _State()
                i += 2
                continue
            if cmd == ord("!"):  # print mode: bit 3 bold, bit 4 double height, bit 5 double width
                state.style = Style(bool(arg & 0x08), 2 if arg & 0x20 else 1, 2 if arg & 0x10 else 1)
            elif cmd == ord("E"):
                state.style = replace(state.style, bold=bool(arg & 1))
            elif cmd == ord("a"):
                state.align = arg % 3 if arg < 3 else arg - 48
            elif cmd == ord("t"):
                state.codec = CODE_PAGES.get(arg, "cp437")
            elif cmd == ord("d"):
                end_line()
                for _ in range(arg - 1):
                    blocks.append(_Line([], state.align))
            i += 3
        elif b == GS and i + 1 < n:
            cmd = data[i + 1]
            flush_text()
            if cmd == ord("!") and i + 2 < n:
                arg = data[i + 2]
                state.style = replace(state.style, width=(arg >> 4) + 1, height=(arg & 0x0F) + 1)
                i += 3
            elif cmd == ord("(") and i + 4 < n and data[i + 2] == ord("k"):
                length = data[i + 3] | (data[i + 4] << 8)
                body = data[i + 5 : i + 5 + length]
                i += 5 + length
                if len(body) >= 2 and body[0] == ord("1"):
                    fn = body[1]
                    if fn == ord("C"):
                        state.qr_size = body[2]
                    elif fn == ord("P"):
                        state.qr_data = body[3:]
                    elif fn == ord("Q"):
                        if runs:
                            end_line()
                        blocks.append(_Qr(state.qr_data, state.qr_size, state.align))
            elif cmd == ord("V") and i + 2 < n:
                if runs:
                    end_line()
                blocks.append(_Cut())
                i += 4 if data[i + 2] in (65, 66) else 3
            else:
                i += 2
        else:
            text.append(b)
            i += 1
    if runs or text:
        end_line()
    return blocks


@cache
def _font(size: int, bold: bool) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    path = FONTS[1 if bold else 0]
    if Path(path).exists():
        return ImageFont.truetype(path, size)
    return ImageFont.load_default(size)


def _run_image(style: Style, text: str) -> Image.Image:
    char_w, char_h = FONT_A
    font = _font(char_h * style.height - 2 * style.height, style.bold)
    width = char_w * style.width * len(text)
    height = char_h * style.height
    natural = Image.new("L", (max(1, round(font.getlength(text))) + 2, height), 255)
    ImageDraw.Draw(natural).text((0, height // 2), text, font=font, fill=0, anchor="lm")
    # A printer magnifies width and height separately; so does the picture.
    return natural.resize((max(1, width), height))


def _place(paper_w: int, item_w: int, align: int) -> int:
    if align == 1:
        return (paper_w - item_w) // 2
    if align == 2:
        return paper_w - MARGIN - item_w
    return MARGIN


def render(data: bytes, *, paper_dots: int = PAPER_DOTS) -> Image.Image:
    """A greyscale picture of the paper that ``data`` (ESC/POS bytes) would print."""
    import qrcode

    pieces: list[tuple[Image.Image, int]] = []
    for block in parse(data):
        if isinstance(block, _Line):
            if not block.runs:
                pieces.append((Image.new("L", (1, FONT_A[1]), 255), 0))
                continue
            images = [_run_image(style, text) for style, text in block.runs if text]
            line = Image.new("L", (sum(im.width for im in images) or 1, max((im.height for im in images),
                                                                            default=FONT_A[1])), 255)
            x = 0
            for im in images:
                line.paste(im, (x, line.height - im.height))
                x += im.width
            pieces.append((line, block.align))
        elif isinstance(block, _Qr):
            code = qrcode.QRCode(box_size=block.size, border=0,
                                 error_correction=qrcode.constants.ERROR_CORRECT_L)
            code.add_data(block.data.decode("utf-8", "replace"))
            code.make(fit=True)
            pieces.append((code.make_image(fill_color="black", back_color="white").get_image().convert("L"),
                           block.align))
        else:
            cut = Image.new("L", (paper_dots, 24), 255)
            draw = ImageDraw.Draw(cut)
            for x in range(0, paper_dots, 16):
                draw.line([(x, 12), (x + 8, 12)], fill=0, width=2)
            pieces.append((cut, -1))
    height = sum(im.height for im, _ in pieces) + 2 * MARGIN
    paper = Image.new("L", (paper_dots, height), 255)
    y = MARGIN
    for im, align in pieces:
        paper.paste(im, (0 if align < 0 else _place(paper_dots, im.width, align), y))
        y += im.height
    return paper


def save_png(data: bytes, path: str | Path) -> Path:
    """Render ``data`` and write it as a PNG; the path."""
    path = Path(path)
    render(data).save(path)
    return path
