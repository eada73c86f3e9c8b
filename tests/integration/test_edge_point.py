"""The point unit through the real broker, with the test playing central (scripted)."""

from __future__ import annotations

import pytest
from edge_support import ScriptedCentral, device_settings
from helpers import wait_until

from edge.pointbutton import PointUnit
from edge.pointbutton.lcd import MemoryLcd, ascii_only
from nextup.contract import Command, Current, DeviceConfig, PointState
from nextup.settings import SettingsError


@pytest.fixture
def scripted(broker):
    """The test playing central through the real broker, to script what central says and when."""
    c = ScriptedCentral(broker)
    c.publish(c.topics.device_config("point-1"), DeviceConfig("point", point=1), retain=True)
    c.subscribe(c.topics.command("point-1"))
    yield c
    c.close()


@pytest.fixture
def unit_settings(broker, tmp_path):
    def make(toml: str = ""):
        return device_settings(broker, "point-1", "point", tmp_path, toml)

    return make


def state(version: int, *, active: bool = True, number: str | None = None, waiting: int = 0,
          serial: int = 1, name: str = "Window 1", last: str | None = None) -> PointState:
    current = Current(number, "cash") if number else None
    return PointState(serial, name, active, current, waiting, last, version)


def show(scripted: ScriptedCentral, st: PointState) -> None:
    scripted.publish(scripted.topics.point_state(st.serial), st, retain=True)


def command_of(scripted: ScriptedCentral) -> Command:
    return Command.parse(scripted.expect(scripted.topics.command("point-1")).payload)


def lcd_says(unit: PointUnit, *lines: str) -> None:
    expected = [line.ljust(unit.lcd.cols) for line in lines]
    try:
        wait_until(lambda: unit.lcd.lines == expected, what="the LCD")
    except TimeoutError:
        assert unit.lcd.lines == expected


def test_point_lcd_shows_what_central_says(scripted, unit_settings):
    show(scripted, state(1, number="A012", waiting=3))
    with PointUnit(unit_settings(), sim=True) as unit:
        lcd_says(unit, "Window 1      ON", "A012      wait 3")
        assert unit.leds["active"].is_lit and not unit.leds["error"].is_lit
        pin = unit.leds["calling"].pin
        wait_until(lambda: len({s.state for s in pin.states[-4:]}) == 2, what="the calling LED to blink")

        show(scripted, state(2, active=False))
        lcd_says(unit, "Window 1     OFF", "closed    wait 0")
        assert not unit.leds["active"].is_lit and not unit.leds["calling"].is_lit


def test_every_press_sends_a_fresh_command(scripted, unit_settings):
    show(scripted, state(1))
    with PointUnit(unit_settings(), sim=True) as unit:
        assert unit.runtime.wait_ready(5)
        for name in ("next", "served", "no_show", "recall"):
            scripted.publish(scripted.topics.sim_press("point-1"), name.encode())
        commands = [command_of(scripted) for _ in range(4)]
        assert [c.action for c in commands] == ["next", "served", "no_show", "recall"]
        assert len({c.command_id for c in commands}) == 4


def test_the_unit_shows_central_state_not_its_guess(scripted, unit_settings):
    show(scripted, state(1, waiting=2))
    with PointUnit(unit_settings(), sim=True) as unit:
        lcd_says(unit, "Window 1      ON", "-         wait 2")
        unit.runtime.press("next")
        sent = command_of(scripted)
        assert unit.lcd.lines[1].startswith("-")  # no ticket shown until central says so
        show(scripted, state(2, number="A001", waiting=1, last=sent.command_id))
        lcd_says(unit, "Window 1      ON", "A001      wait 1")


def test_the_active_button_toggles_from_the_last_retained_state(scripted, unit_settings):
    show(scripted, state(1, active=True))
    with PointUnit(unit_settings("[point]\nholdoff_s = 0.01\n"), sim=True) as unit:
        lcd_says(unit, "Window 1      ON", "-         wait 0")
        unit.runtime.press("active")
        sent = command_of(scripted)
        assert sent.action == "deactivate"
        show(scripted, state(2, active=False, last=sent.command_id))
        lcd_says(unit, "Window 1     OFF", "closed    wait 0")
        unit.runtime.press("active")
        assert command_of(scripted).action == "activate"


def test_a_state_older_than_the_last_one_is_ignored(scripted, unit_settings):
    show(scripted, state(5, number="A005"))
    with PointUnit(unit_settings(), sim=True) as unit:
        lcd_says(unit, "Window 1      ON", "A005      wait 0")
        show(scripted, state(3, number="A003"))
        show(scripted, state(6, number="A006"))  # the next newer one still shows
        lcd_says(unit, "Window 1      ON", "A006      wait 0")
        assert unit.state.version == 6


def test_press_during_broker_outage_is_delivered_once_after_restart(broker, scripted, unit_settings):
    show(scripted, state(1))
    with PointUnit(unit_settings(), sim=True, reconnect_max_s=0.5) as unit:
        assert unit.runtime.wait_ready(5)
        broker.stop()
        wait_until(lambda: unit.leds["error"].is_lit, what="the error LED while the broker is away")
        lcd_says(unit, "Window 1      ON", "-        offline")
        unit.buttons["next"].pin.drive_low()
        unit.buttons["next"].pin.drive_high()
        broker.start()
        sent = command_of(scripted)
        assert sent.action == "next"
        wait_until(lambda: not unit.leds["error"].is_lit, what="the error LED to go out")
        unit.runtime.press("served")
        assert command_of(scripted).action == "served"  # and no second "next" before it


def test_a_command_central_does_not_answer_flashes_the_error_led(scripted, unit_settings):
    show(scripted, state(1))
    with PointUnit(unit_settings("[point]\nconfirm_timeout_s = 0.2\n"), sim=True) as unit:
        lcd_says(unit, "Window 1      ON", "-         wait 0")
        pin = unit.leds["error"].pin
        assert not unit.leds["error"].is_lit
        pin.clear_states()
        unit.runtime.press("next")
        command_of(scripted)
        wait_until(lambda: any(s.state for s in pin.states), what="the error LED to flash")
        wait_until(lambda: not unit.leds["error"].is_lit, what="the flash to end")


def test_the_unit_follows_the_point_its_config_names(scripted, unit_settings):
    show(scripted, state(1))
    show(scripted, state(1, serial=2, name="Window 2", number="B002"))
    with PointUnit(unit_settings(), sim=True) as unit:
        lcd_says(unit, "Window 1      ON", "-         wait 0")
        config = DeviceConfig("point", point=2)
        scripted.publish(scripted.topics.device_config("point-1"), config, retain=True)
        lcd_says(unit, "Window 2      ON", "B002      wait 0")
        show(scripted, state(9, serial=1, number="A999"))  # no longer its point
        unit.runtime.press("recall")
        command_of(scripted)
        assert unit.lcd.lines[0].startswith("Window 2")


def test_a_unit_without_a_point_says_so(scripted, unit_settings):
    scripted.publish(scripted.topics.device_config("point-1"), DeviceConfig("point"), retain=True)
    with PointUnit(unit_settings(), sim=True) as unit:
        lcd_says(unit, "point-1", "no point set")


def test_a_20x4_lcd_also_shows_the_service(scripted, unit_settings):
    show(scripted, state(1, number="A012", name="Counter for passports"))
    lcd = MemoryLcd(20, 4)
    with PointUnit(unit_settings(), sim=True, lcd=lcd) as unit:
        lcd_says(unit, "Counter for passp ON", "A012          wait 0", "cash", "")
    assert lcd.closed


def test_lcd_text_is_reduced_to_what_the_hd44780_can_show():
    assert ascii_only("Schalter Zürich – Nº 1") == "Schalter Zurich ? No 1"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[buttons]\nnext = 5\nserved = 5\n", "share a pin"),
        ("[buttons]\ncall = 5\n", "has no call"),
        ("[point]\ncommand_expiry_s = 0\n", "positive"),
    ],
)
def test_a_bad_point_config_is_a_clear_error(unit_settings, toml, message):
    with pytest.raises(SettingsError, match=message):
        PointUnit(unit_settings(toml), sim=True)
