"""What a printed ticket says and how it looks: a pure function onto an ESC/POS printer.

``print_ticket(printer, slip)`` only calls methods of a python-escpos printer
object, so it prints the same bytes on a real printer, a file or
``escpos.printer.Dummy`` (which the tests read back byte for byte).
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from datetime import datetime
from typing import Any

QR_SIZE = 6  # dots per module: about 2.5 cm wide for a tracking URL on a 58/80 mm roll
NUMBER_SCALE = 4  # the ticket number in 4x width and height
COLUMNS = 48  # characters of font A on an 80 mm roll; 32 on 58 mm


@dataclass(frozen=True)
class TicketSlip:
    """Everything printed on one ticket."""

    site_name: str
    number: str
    service_name: str
    issued_at: datetime
    ahead: int
    eta_s: int
    track_url: str
    language: str = "en"
    columns: int = COLUMNS
    offline: bool = False
    """Issued from the kiosk's leased numbers while central was out of reach: nobody knows the
    people ahead yet, so the ticket says the screen will confirm its place."""

    @property
    def eta_min(self) -> int:
        """The estimated wait in whole minutes, rounded up (a wait under a minute is 1)."""
        return math.ceil(self.eta_s / 60) if self.eta_s > 0 else 0


TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "ahead_none": "You are next",
        "ahead_one": "1 person ahead of you",
        "ahead_many": "{n} people ahead of you",
        "eta": "Estimated wait: {m} min",
        "eta_now": "Estimated wait: less than a minute",
        "scan": "Scan to follow your turn",
        "footer": "Please wait until your number is called",
        "offline": "Queue position confirmed on screen",
    },
    "de": {
        "ahead_none": "Sie sind als Nächste dran",
        "ahead_one": "1 Person vor Ihnen",
        "ahead_many": "{n} Personen vor Ihnen",
        "eta": "Geschätzte Wartezeit: {m} Min.",
        "eta_now": "Geschätzte Wartezeit: unter einer Minute",
        "scan": "Scannen, um Ihren Platz zu verfolgen",
        "footer": "Bitte warten Sie, bis Ihre Nummer aufgerufen wird",
        "offline": "Ihr Platz wird am Bildschirm bestätigt",
    },
    "fr": {
        "ahead_none": "Vous êtes le prochain",
        "ahead_one": "1 personne avant vous",
        "ahead_many": "{n} personnes avant vous",
        "eta": "Attente estimée : {m} min",
        "eta_now": "Attente estimée : moins d'une minute",
        "scan": "Scannez pour suivre votre tour",
        "footer": "Merci d'attendre l'appel de votre numéro",
        "offline": "Votre place est confirmée à l'écran",
    },
}


def texts(language: str | None) -> dict[str, str]:
    """The ticket's fixed texts in ``language``; ``de-CH`` falls back to ``de``, an unknown one to English."""
    if language:
        for key in (language, language.split("-")[0]):
            if key in TEXTS:
                return TEXTS[key]
    return TEXTS["en"]


def print_ticket(printer: Any, slip: TicketSlip) -> None:
    """Send one ticket to ``printer`` (an ``escpos.escpos.Escpos``), ending with a cut."""
    t = texts(slip.language)

    def lines(text: str, scale: int = 1) -> None:
        # Wrap at words ourselves: a printer breaks a long line in the middle of a word.
        for line in textwrap.wrap(text, max(1, slip.columns // scale)) or [""]:
            printer.textln(line)

    printer.hw("INIT")
    magic = getattr(printer, "magic", None)
    if magic is not None and not getattr(magic, "disabled", False):
        # ESC @ resets the printer's code page; make python-escpos select it again, so that
        # every ticket carries its own and prints the same whatever came before.
        magic.encoding = None
    printer.set(align="center", bold=True, normal_textsize=True)
    lines(slip.site_name)
    printer.set(bold=False)
    lines(slip.service_name)
    printer.ln()
    printer.set(align="center", bold=True, custom_size=True, width=NUMBER_SCALE, height=NUMBER_SCALE)
    lines(slip.number, NUMBER_SCALE)
    printer.set(align="center", bold=False, normal_textsize=True)
    printer.ln()
    printer.textln(slip.issued_at.strftime("%Y-%m-%d %H:%M"))
    if slip.offline:
        lines(t["offline"])
    elif slip.ahead == 0:
        lines(t["ahead_none"])
    elif slip.ahead == 1:
        lines(t["ahead_one"])
    else:
        lines(t["ahead_many"].format(n=slip.ahead))
    if not slip.offline:
        lines(t["eta"].format(m=slip.eta_min) if slip.eta_min else t["eta_now"])
    printer.ln()
    if slip.track_url:
        # Native QR (GS ( k): the printer draws it, sharper and far fewer bytes than an image.
        printer.qr(slip.track_url, size=QR_SIZE, native=True)
        printer.ln()
        lines(t["scan"])
        printer.ln()
    lines(t["footer"])
    printer.cut()
