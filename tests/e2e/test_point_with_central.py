"""Point units against the real central through the real broker, with tickets from a real kiosk."""

from __future__ import annotations

from escpos.printer import Dummy
from helpers import wait_until

from edge.kiosk import Kiosk
from edge.kiosk.render import parse
from edge.pointbutton import PointUnit
from nextup.settings import load


def device_settings(broker, central, device_id: str, tmp_path=None, toml: str = ""):
    config = None
    if toml:
        config = tmp_path / f"{device_id}.toml"
        config.write_text(toml)
    return load(config, env={"NEXTUP_DEVICE_ID": device_id, "NEXTUP_MQTT_URL": central.device_urls[device_id],
                             "NEXTUP_SITE": broker.site})


def lcd_says(unit: PointUnit, *lines: str) -> None:
    expected = [line.ljust(unit.lcd.cols) for line in lines]
    try:
        wait_until(lambda: unit.lcd.lines == expected, timeout=10, what="the LCD")
    except TimeoutError:
        assert unit.lcd.lines == expected


def issue(kiosk: Kiosk, service: str) -> str:
    """Press a kiosk button; the number printed on the ticket."""
    before = len(kiosk.printed)
    kiosk.runtime.press(service)
    wait_until(lambda: len(kiosk.printed) > before, what="the ticket")
    lines = ["".join(t for _, t in b.runs) for b in parse(kiosk.printed[-1]) if hasattr(b, "runs")]
    return lines[3]  # site, service, blank, number


def test_next_calls_the_ticket_a_kiosk_printed_and_served_frees_the_point(broker, central, tmp_path):
    kiosk_settings = device_settings(broker, central, "kiosk-1", tmp_path, "[kiosk]\nholdoff_s = 0.01\n")
    with Kiosk(kiosk_settings, sim=True, printer=Dummy()) as kiosk, \
            PointUnit(device_settings(broker, central, "point-1"), sim=True) as unit:
        assert kiosk.runtime.wait_ready(10) and unit.runtime.wait_ready(10)
        lcd_says(unit, "Window 1      ON", "-         wait 0")
        wait_until(lambda: "cash" in kiosk.button_names, what="the kiosk's buttons")
        first, second = issue(kiosk, "cash"), issue(kiosk, "cash")
        lcd_says(unit, "Window 1      ON", "-         wait 2")

        unit.runtime.press("next")
        lcd_says(unit, "Window 1      ON", f"{first:<10}wait 1")
        assert unit.leds["active"].is_lit
        wait_until(lambda: len({s.state for s in unit.leds["calling"].pin.states[-4:]}) == 2,
                   what="the calling LED to blink")
        assert central.coordinator.board().calls[0].number == first

        unit.runtime.press("served")
        lcd_says(unit, "Window 1      ON", "-         wait 1")
        assert not unit.leds["calling"].is_lit
        assert central.coordinator.point_state(1).current is None
        assert second != first


def test_the_active_button_closes_and_reopens_the_point(broker, central, tmp_path):
    settings = device_settings(broker, central, "point-2", tmp_path, "[point]\nholdoff_s = 0.01\n")
    with PointUnit(settings, sim=True) as unit:
        lcd_says(unit, "Window 2      ON", "-         wait 0")
        unit.runtime.press("active")
        lcd_says(unit, "Window 2     OFF", "closed    wait 0")
        assert central.coordinator.point_state(2).active is False
        unit.runtime.press("active")
        lcd_says(unit, "Window 2      ON", "-         wait 0")


def test_press_during_broker_outage_calls_exactly_one_ticket_after_restart(broker, central, tmp_path):
    kiosk_settings = device_settings(broker, central, "kiosk-1", tmp_path, "[kiosk]\nholdoff_s = 0.01\n")
    with Kiosk(kiosk_settings, sim=True, printer=Dummy()) as kiosk, \
            PointUnit(device_settings(broker, central, "point-1"), sim=True, reconnect_max_s=0.5) as unit:
        assert kiosk.runtime.wait_ready(10) and unit.runtime.wait_ready(10)
        wait_until(lambda: "cash" in kiosk.button_names, what="the kiosk's buttons")
        first, _ = issue(kiosk, "cash"), issue(kiosk, "cash")
        lcd_says(unit, "Window 1      ON", "-         wait 2")

        broker.stop()
        wait_until(lambda: unit.leds["error"].is_lit, what="the unit to notice the outage")
        unit.buttons["next"].pin.drive_low()
        unit.buttons["next"].pin.drive_high()
        lcd_says(unit, "Window 1      ON", "-        offline")  # it shows no guess
        broker.start()

        lcd_says(unit, "Window 1      ON", f"{first:<10}wait 1")
        assert not unit.leds["error"].is_lit
        board = central.coordinator.board()
        assert [c.number for c in board.calls] == [first]  # one press, one call
