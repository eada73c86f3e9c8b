"""The point unit's character LCD behind a small interface.

``MemoryLcd`` keeps the text (sim mode and tests); ``CharLcd`` drives an
HD44780 on an I2C backpack through RPLCD, imported only when one is opened.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from nextup.settings import SettingsError


class Lcd(Protocol):
    cols: int
    rows: int

    def show(self, lines: Sequence[str]) -> None:
        """Show ``lines`` (at most ``rows``; each cut or padded to ``cols``)."""

    def close(self) -> None:
        """Clear the display and release it; a second call does nothing."""


def fit(lines: Sequence[str], cols: int, rows: int) -> list[str]:
    """``lines`` as exactly ``rows`` lines of exactly ``cols`` characters."""
    out = [line[:cols].ljust(cols) for line in list(lines)[:rows]]
    return out + [" " * cols] * (rows - len(out))


class MemoryLcd:
    """An LCD that keeps its text: ``lines`` is what a person would read on it."""

    def __init__(self, cols: int = 16, rows: int = 2, *, echo: Callable[[str], None] | None = None) -> None:
        self.cols, self.rows = cols, rows
        self.lines = fit([], cols, rows)
        self.closed = False
        self._echo = echo

    def show(self, lines: Sequence[str]) -> None:
        if self.closed:
            return
        new = fit(lines, self.cols, self.rows)
        if new != self.lines and self._echo is not None:
            self._echo("|" + "|".join(new) + "|")
        self.lines = new

    @property
    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.lines)

    def close(self) -> None:
        self.closed = True


def ascii_only(text: str) -> str:
    """``text`` in the characters an HD44780 (ROM A00) has: accents dropped, others as '?'."""
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(c for c in decomposed if not unicodedata.combining(c))
    return "".join(c if " " <= c <= "}" else "?" for c in kept)


class CharLcd:
    """An HD44780 LCD on an I2C backpack (PCF8574 by default) via RPLCD."""

    def __init__(self, *, address: int = 0x27, port: int = 1, cols: int = 16, rows: int = 2,
                 expander: str = "PCF8574") -> None:
        from RPLCD.i2c import CharLCD

        self.cols, self.rows = cols, rows
        self._lcd: Any = CharLCD(expander, address, port=port, cols=cols, rows=rows, charmap="A00",
                                 auto_linebreaks=False)
        self._lcd.clear()
        self._shown = fit([], cols, rows)

    def show(self, lines: Sequence[str]) -> None:
        if self._lcd is None:
            return
        new = fit([ascii_only(line) for line in lines], self.cols, self.rows)
        for row, (old, line) in enumerate(zip(self._shown, new, strict=True)):
            if old != line:  # the I2C bus is slow: rewrite only what changed
                self._lcd.cursor_pos = (row, 0)
                self._lcd.write_string(line)
        self._shown = new

    def close(self) -> None:
        lcd, self._lcd = self._lcd, None
        if lcd is not None:
            lcd.close(clear=True)


def lcd_from_config(table: Any) -> CharLcd:
    """The ``[lcd]`` table of a point's config as an LCD: address, port, cols, rows, expander."""
    table = table or {}
    if not isinstance(table, dict):
        raise SettingsError("[lcd] must be a table")
    address = table.get("address", 0x27)
    if isinstance(address, str):
        try:
            address = int(address, 0)
        except ValueError:
            raise SettingsError(f"[lcd] address {address!r} is not a number like 0x27") from None
    size = (table.get("cols", 16), table.get("rows", 2))
    if size not in ((16, 2), (20, 4), (16, 4), (20, 2)):
        raise SettingsError(f"[lcd] cols x rows {size[0]}x{size[1]} is not 16x2, 20x2, 16x4 or 20x4")
    return CharLcd(address=address, port=int(table.get("port", 1)), cols=size[0], rows=size[1],
                   expander=str(table.get("expander", "PCF8574")))
