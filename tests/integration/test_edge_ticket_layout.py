"""The printed ticket, byte for byte on python-escpos's Dummy printer, and its picture."""

from __future__ import annotations

from datetime import datetime

import pytest
from escpos.printer import Dummy

from edge.kiosk.layout import TicketSlip, print_ticket
from edge.kiosk.printer import open_printer
from edge.kiosk.render import parse, render
from nextup.settings import SettingsError

GS_QR = b"\x1d(k"
GS_CUT = b"\x1dV"

SLIP = TicketSlip(
    site_name="Main branch",
    number="A012",
    service_name="Cash desk",
    issued_at=datetime(2026, 3, 2, 9, 41),
    ahead=3,
    eta_s=420,
    track_url="https://q.example/t/3f9a",
)

# One known ticket: initialise, centred bold site name, service, the number at 4x4, date and time,
# people ahead, wait, native QR (model 2, 6-dot modules, level L, data, print), texts, feed and cut.
KNOWN_TICKET = (
    b"\x1b@\x1b!\x00\x1b!\x00\x1b!\x00\x1bE\x01\x1ba\x01\x1bt\x00Main branch\n"
    b"\x1bE\x00Cash desk\n\n"
    b"\x1d!3\x1bE\x01\x1ba\x01A012\n"
    b"\x1b!\x00\x1b!\x00\x1b!\x00\x1bE\x00\x1ba\x01\n"
    b"2026-03-02 09:41\n3 people ahead of you\nEstimated wait: 7 min\n\n"
    b"\x1d(k\x04\x001A2\x00\x1d(k\x03\x001C\x06\x1d(k\x03\x001E0"
    b"\x1d(k\x1b\x001P0https://q.example/t/3f9a\x1d(k\x03\x001Q0\n"
    b"Scan to follow your turn\n\nPlease wait until your number is called\n"
    b"\x1bd\x06\x1dV\x00"
)


def printed(slip: TicketSlip) -> bytes:
    printer = Dummy()
    print_ticket(printer, slip)
    return printer.output


def test_a_known_ticket_prints_exactly_these_bytes():
    assert printed(SLIP) == KNOWN_TICKET


def test_ticket_has_the_number_in_large_type_the_qr_code_and_a_cut():
    out = printed(SLIP)
    assert b"\x1d!\x33\x1bE\x01\x1ba\x01A012\n" in out  # GS ! 0x33: 4x width, 4x height
    url = SLIP.track_url.encode()
    store = GS_QR + (len(url) + 3).to_bytes(2, "little") + b"1P0" + url
    assert store in out
    assert out.index(store) < out.index(GS_QR + b"\x03\x001Q0")  # stored, then printed
    assert out.endswith(GS_CUT + b"\x00")


@pytest.mark.parametrize(
    ("ahead", "eta_s", "lines"),
    [
        (0, 0, [b"You are next", b"Estimated wait: less than a minute"]),
        (1, 59, [b"1 person ahead of you", b"Estimated wait: 1 min"]),
        (12, 61, [b"12 people ahead of you", b"Estimated wait: 2 min"]),
    ],
)
def test_people_ahead_and_the_wait_read_naturally(ahead, eta_s, lines):
    out = printed(SLIP.__class__(**{**SLIP.__dict__, "ahead": ahead, "eta_s": eta_s}))
    for line in lines:
        assert b"\n" + line + b"\n" in out


def test_a_long_site_name_wraps_at_words_within_the_roll():
    slip = TicketSlip(**{**SLIP.__dict__, "site_name": "Regional passport office of the northern district",
                         "columns": 32})
    out = printed(slip)
    assert b"Regional passport office of the\nnorthern district\n" in out


def test_the_ticket_speaks_the_kiosk_language_and_its_code_page():
    out = printed(TicketSlip(**{**SLIP.__dict__, "language": "de-CH", "ahead": 2}))
    assert b"2 Personen vor Ihnen" in out
    assert "Geschätzte Wartezeit: 7 Min.".encode("cp437") in out


def test_the_picture_of_a_ticket_shows_its_lines_and_the_qr_code(tmp_path):
    blocks = parse(KNOWN_TICKET)
    texts = ["".join(t for _, t in b.runs) for b in blocks if hasattr(b, "runs")]
    assert "A012" in texts and "Cash desk" in texts
    big = next(b for b in blocks if hasattr(b, "runs") and b.runs and b.runs[0][1] == "A012")
    assert (big.runs[0][0].width, big.runs[0][0].height, big.runs[0][0].bold) == (4, 4, True)
    qr = next(b for b in blocks if hasattr(b, "data"))
    assert (qr.data, qr.size) == (SLIP.track_url.encode(), 6)
    image = render(KNOWN_TICKET)
    image.save(tmp_path / "ticket.png")
    assert image.width == 576 and image.height > 600
    # the QR code is drawn: a solid dark finder square somewhere in the middle third
    assert image.crop((200, 0, 376, image.height)).getextrema()[0] == 0


@pytest.mark.parametrize("url", ["lpt1", "usb:zz:01", "tcp:host:port", "file:", "dummy:x"])
def test_a_bad_printer_url_is_a_clear_error(url):
    with pytest.raises(SettingsError, match="printer URL"):
        open_printer(url)
