"""The kiosk against the real central through the real broker: press, issue, print, record."""

from __future__ import annotations

from escpos.printer import Dummy
from helpers import wait_until
from sqlalchemy import select

from central.store.models import TicketRow
from edge.kiosk import Kiosk
from edge.kiosk.render import parse, save_png
from nextup.settings import load


def device_settings(broker, central, device_id: str, **env: str):
    return load(env={"NEXTUP_DEVICE_ID": device_id, "NEXTUP_MQTT_URL": central.device_urls[device_id],
                     "NEXTUP_SITE": broker.site, **env})


def ticket_rows(central):
    with central.store.read() as s:
        rows = s.scalars(select(TicketRow).order_by(TicketRow.id))
        return [(t.number, t.printed, t.print_error) for t in rows]


def test_a_kiosk_press_prints_the_ticket_central_issued(broker, central, tmp_path):
    with Kiosk(device_settings(broker, central, "kiosk-1"), sim=True, printer=Dummy()) as kiosk:
        assert kiosk.runtime.wait_ready(10)
        wait_until(lambda: kiosk.button_names == ["accounts", "cash", "loans"], what="a button per service")
        kiosk.runtime.press("cash")
        wait_until(lambda: kiosk.printed, what="the printed ticket")
        wait_until(lambda: ticket_rows(central) and ticket_rows(central)[0][1] is not None,
                   what="central to record the print")
    [(number, printed, error)] = ticket_rows(central)
    assert (printed, error) == (True, None)
    blocks = parse(kiosk.printed[0])
    lines = ["".join(text for _, text in b.runs) for b in blocks if hasattr(b, "runs")]
    assert lines[:2] == ["Demo branch", "Cash desk"] and number in lines
    qr = next(b for b in blocks if hasattr(b, "data")).data.decode()
    token = qr.rsplit("/", 1)[-1]
    assert central.coordinator.ticket(token).number == number  # the QR code tracks this very ticket
    save_png(kiosk.printed[0], tmp_path / "ticket.png")


def test_a_ticket_the_printer_could_not_print_is_recorded_as_unprinted(broker, central):
    settings = device_settings(broker, central, "kiosk-1", NEXTUP_PRINTER="tcp:127.0.0.1:1")
    with Kiosk(settings, sim=True) as kiosk:
        assert kiosk.runtime.wait_ready(10)
        wait_until(lambda: "loans" in kiosk.button_names, what="the buttons")
        kiosk.runtime.press("loans")
        wait_until(lambda: ticket_rows(central) and ticket_rows(central)[0][1] is not None,
                   what="central to record the failed print")
        assert kiosk.error_led.is_lit
    [(number, printed, error)] = ticket_rows(central)
    assert number.startswith("B") and (printed, error) == (False, "offline")

