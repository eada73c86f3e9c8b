"""The kiosk through the real broker, with the test playing central (scripted)."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from edge_support import NetworkPrinterSim, ScriptedCentral, device_settings
from escpos.printer import Dummy
from helpers import wait_until

from edge.kiosk import Kiosk
from edge.kiosk.layout import TicketSlip, print_ticket
from edge.kiosk.render import save_png
from nextup.contract import (
    DeviceConfig,
    DeviceStatus,
    IssuedTicket,
    ServiceInfo,
    SiteState,
    TicketPrinted,
    TicketReply,
    TicketRequest,
)
from nextup.settings import SettingsError

NOW = datetime(2026, 3, 2, 9, 41)
SITE = SiteState(
    name="Main branch",
    open=True,
    services=[
        ServiceInfo("cash", "Cash desk", "A", True),
        ServiceInfo("loans", "Loans", "B", True),
        ServiceInfo("vault", "Safe deposit", "C", False),
    ],
)


@pytest.fixture
def scripted(broker):
    """The test playing central through the real broker, to script what central says and when."""
    c = ScriptedCentral(broker)
    c.publish(c.topics.site_state, SITE, retain=True)
    c.subscribe(c.topics.ticket_request("kiosk-1"), c.topics.ticket_printed("kiosk-1"),
                c.topics.device_status("kiosk-1"))
    yield c
    c.close()


@pytest.fixture
def kiosk_settings(broker, tmp_path):
    def make(toml: str = "", **env: str):
        return device_settings(broker, "kiosk-1", "kiosk", tmp_path, toml, **env)

    return make


def ticket(number: str = "A012", service: str = "cash") -> IssuedTicket:
    return IssuedTicket(number, service, 3, 420, f"https://q.example/t/{number.lower()}")


def ready(kiosk: Kiosk, buttons=("cash", "loans")) -> Kiosk:
    assert kiosk.runtime.wait_ready(5)
    wait_until(lambda: kiosk.button_names == sorted(buttons), what="the kiosk's buttons")
    return kiosk


def request_of(scripted: ScriptedCentral, kiosk_id: str = "kiosk-1"):
    message = scripted.expect(scripted.topics.ticket_request(kiosk_id))
    return message, TicketRequest.parse(message.payload)


def printed_report(scripted: ScriptedCentral) -> TicketPrinted:
    return TicketPrinted.parse(scripted.expect(scripted.topics.ticket_printed("kiosk-1")).payload)


def test_kiosk_press_prints_the_ticket_from_the_reply(scripted, kiosk_settings, tmp_path):
    with Kiosk(kiosk_settings(), sim=True, printer=Dummy(), clock=lambda: NOW) as kiosk:
        ready(kiosk)  # one mock button per active service of the retained site
        scripted.publish(scripted.topics.sim_press("kiosk-1"), b"cash")
        message, request = request_of(scripted)
        assert request.service == "cash" and request.priority is None and len(request.request_id) == 32
        assert message.properties.ResponseTopic == scripted.topics.ticket_reply("kiosk-1")
        assert message.properties.CorrelationData == request.request_id.encode()
        # it expires before the kiosk stops waiting for the reply (5 s), broker rounding included
        assert message.properties.MessageExpiryInterval == 3

        scripted.reply(message, TicketReply.success(request.request_id, ticket()))

        assert printed_report(scripted) == TicketPrinted(request.request_id, "A012", True)
        expected = Dummy()
        print_ticket(expected, TicketSlip("Main branch", "A012", "Cash desk", NOW, 3, 420,
                                          "https://q.example/t/a012"))
        assert list(kiosk.printed) == [expected.output]
        save_png(kiosk.printed[-1], tmp_path / "ticket.png")
        assert kiosk.ready_led.is_lit and not kiosk.error_led.is_lit
        status = DeviceStatus.parse(scripted.expect(scripted.topics.device_status("kiosk-1"),
                                                   lambda m: b'"printer"' in m.payload).payload)
        assert (status.online, status.printer) == (True, "ok")


def test_a_button_with_a_priority_asks_for_that_class(scripted, kiosk_settings):
    settings = kiosk_settings('[buttons]\n17 = "cash"\n27 = { service = "cash", priority = "paid" }\n')
    with Kiosk(settings, sim=True, printer=Dummy()) as kiosk:
        ready(kiosk, ["cash", "cash:paid"])
        kiosk.button("cash:paid").pin.drive_low()
        kiosk.button("cash:paid").pin.drive_high()
        _, request = request_of(scripted)
        assert (request.service, request.priority) == ("cash", "paid")


def test_a_second_press_within_the_hold_off_sends_no_second_request(scripted, kiosk_settings):
    with Kiosk(kiosk_settings(), sim=True, printer=Dummy()) as kiosk:
        ready(kiosk)
        for _ in range(3):
            kiosk.runtime.press("cash")
        kiosk.runtime.press("loans")
        assert request_of(scripted)[1].service == "cash"
        assert request_of(scripted)[1].service == "loans"  # not a second cash


def test_no_reply_in_time_lights_the_error_led_and_a_late_reply_is_not_printed(scripted, kiosk_settings):
    settings = kiosk_settings("[kiosk]\nreply_timeout_s = 0.5\n")
    with Kiosk(settings, sim=True, printer=Dummy()) as kiosk:
        ready(kiosk)
        kiosk.runtime.press("cash")
        late_message, late = request_of(scripted)
        assert late_message.properties.MessageExpiryInterval == 1  # whole seconds, rounded up
        wait_until(lambda: kiosk.error_led.is_lit, what="the error LED")
        wait_until(lambda: any(s.state for s in kiosk.buzzer.pin.states), what="the buzzer")

        scripted.reply(late_message, TicketReply.success(late.request_id, ticket("A001")))
        assert printed_report(scripted) == TicketPrinted(late.request_id, "A001", False, "late_reply")
        kiosk.runtime.press("loans")
        message, request = request_of(scripted)
        scripted.reply(message, TicketReply.success(request.request_id, ticket("B001", "loans")))
        assert printed_report(scripted) == TicketPrinted(request.request_id, "B001", True)
        assert len(kiosk.printed) == 1 and b"B001" in kiosk.printed[0]
        assert not kiosk.error_led.is_lit


def test_a_request_nobody_took_in_time_expires_in_the_broker(broker, scripted, kiosk_settings):
    settings = kiosk_settings("[kiosk]\nreply_timeout_s = 0.3\n")
    with Kiosk(settings, sim=True, printer=Dummy()) as kiosk:
        ready(kiosk)
        scripted.close()  # central is away; its session keeps its subscriptions
        kiosk.runtime.press("cash")
        wait_until(lambda: kiosk.error_led.is_lit, what="the kiosk to give up")
        # Its expiry interval is 1 s, which Mosquitto counts in whole seconds: gone after 2 s at most.
        time.sleep(2.05)
        back = ScriptedCentral(broker)
        try:
            kiosk.runtime.press("loans")
            assert request_of(back)[1].service == "loans"  # the expired cash request never arrives
        finally:
            back.close()


def test_a_refused_request_prints_nothing_and_lights_the_error_led(scripted, kiosk_settings):
    with Kiosk(kiosk_settings(), sim=True, printer=Dummy()) as kiosk:
        ready(kiosk)
        kiosk.runtime.press("cash")
        message, request = request_of(scripted)
        scripted.reply(message, TicketReply.failure(request.request_id, "site_closed", "The site is closed"))
        wait_until(lambda: kiosk.error_led.is_lit, what="the error LED")
        assert not kiosk.printed


def test_paper_out_reports_the_ticket_unprinted_until_paper_is_back(scripted, kiosk_settings):
    printer = NetworkPrinterSim()
    printer.paper = "out"
    try:
        with Kiosk(kiosk_settings(NEXTUP_PRINTER=printer.url), sim=True) as kiosk:
            ready(kiosk)
            kiosk.runtime.press("cash")
            message, request = request_of(scripted)
            scripted.reply(message, TicketReply.success(request.request_id, ticket("A007")))
            assert printed_report(scripted) == TicketPrinted(request.request_id, "A007", False, "paper_out")
            status = scripted.expect(scripted.topics.device_status("kiosk-1"),
                                     lambda m: DeviceStatus.parse(m.payload).printer == "paper_out")
            assert DeviceStatus.parse(status.payload).online
            assert kiosk.error_led.is_lit
            assert b"A007" not in printer.received

            printer.paper = "ok"
            kiosk.runtime.press("loans")
            message, request = request_of(scripted)
            scripted.reply(message, TicketReply.success(request.request_id, ticket("B008", "loans")))
            assert printed_report(scripted) == TicketPrinted(request.request_id, "B008", True)
            wait_until(lambda: b"\x1dV\x00" in printer.received, what="the cut")
            assert b"B008\n" in printer.received and b"https://q.example/t/b008" in printer.received
            assert not kiosk.error_led.is_lit
            scripted.expect(scripted.topics.device_status("kiosk-1"),
                           lambda m: DeviceStatus.parse(m.payload).printer == "ok")
    finally:
        printer.close()


def test_a_printer_that_is_off_leaves_the_ticket_unprinted(scripted, kiosk_settings):
    with Kiosk(kiosk_settings(NEXTUP_PRINTER="tcp:127.0.0.1:1"), sim=True) as kiosk:
        ready(kiosk)
        kiosk.runtime.press("cash")
        message, request = request_of(scripted)
        scripted.reply(message, TicketReply.success(request.request_id, ticket()))
        assert printed_report(scripted) == TicketPrinted(request.request_id, "A012", False, "offline")
        assert kiosk.error_led.is_lit


def test_a_file_printer_appends_each_ticket(scripted, kiosk_settings, tmp_path):
    log = tmp_path / "tickets.bin"
    log.write_bytes(b"earlier\n")
    with Kiosk(kiosk_settings(NEXTUP_PRINTER=f"file:{log}"), sim=True, clock=lambda: NOW) as kiosk:
        ready(kiosk)
        for service, number in (("cash", "A001"), ("loans", "B001")):
            kiosk.runtime.press(service)
            message, request = request_of(scripted)
            scripted.reply(message, TicketReply.success(request.request_id, ticket(number, service)))
            assert printed_report(scripted).printed
    expected = b"earlier\n"
    for name, number in (("Cash desk", "A001"), ("Loans", "B001")):
        dummy = Dummy()
        print_ticket(dummy, TicketSlip("Main branch", number, name, NOW, 3, 420,
                                       f"https://q.example/t/{number.lower()}"))
        expected += dummy.output
    assert log.read_bytes() == expected


def test_the_sim_kiosk_follows_the_services_central_announces(scripted, kiosk_settings):
    with Kiosk(kiosk_settings(), sim=True, printer=Dummy()) as kiosk:
        ready(kiosk)
        services = [ServiceInfo("cash", "Cash desk", "A", False),
                    ServiceInfo("vault", "Safe deposit", "C", True)]
        scripted.publish(scripted.topics.site_state, SiteState("Main branch", True, services), retain=True)
        wait_until(lambda: kiosk.button_names == ["vault"], what="the buttons to follow the site")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[buttons]\n17 = "Cash Desk"\n', "not a service key"),
        ("[buttons]\n17 = 3\n", "expected a service key"),
        ('[buttons]\n17 = "cash"\n18 = "cash"\n', "same service"),
        ("[kiosk]\nreply_timeout_s = -1\n", "positive"),
    ],
)
def test_a_bad_kiosk_config_is_a_clear_error(kiosk_settings, toml, message):
    with pytest.raises(SettingsError, match=message):
        Kiosk(kiosk_settings(toml), sim=True, printer=Dummy())


def test_a_kiosk_without_a_printer_is_a_clear_error(kiosk_settings):
    with pytest.raises(SettingsError, match="NEXTUP_PRINTER"):
        Kiosk(kiosk_settings(), pin_factory=None)


BUTTONS = {"cash": {"service": "cash", "priority": None},
           "cash-paid": {"service": "cash", "priority": "paid"}}


def test_a_sim_kiosk_has_the_buttons_central_registers_for_it(scripted, kiosk_settings):
    config = DeviceConfig("kiosk", buttons=BUTTONS)
    scripted.publish(scripted.topics.device_config("kiosk-1"), config, retain=True)
    with Kiosk(kiosk_settings(), sim=True, printer=Dummy()) as kiosk:
        ready(kiosk, ["cash", "cash-paid"])
        scripted.publish(scripted.topics.sim_press("kiosk-1"), b"cash-paid")
        _, request = request_of(scripted)
        assert (request.service, request.priority) == ("cash", "paid")


def test_a_pin_named_after_a_registered_button_issues_what_central_says(scripted, kiosk_settings):
    scripted.publish(scripted.topics.device_config("kiosk-1"), DeviceConfig("kiosk", buttons=BUTTONS),
                     retain=True)
    with Kiosk(kiosk_settings('[buttons]\n17 = "cash-paid"\n'), sim=True, printer=Dummy()) as kiosk:
        ready(kiosk, ["cash-paid"])
        wait_until(lambda: kiosk.runtime.config is not None, what="the device config")
        kiosk.button("cash-paid").pin.drive_low()
        kiosk.button("cash-paid").pin.drive_high()
        _, request = request_of(scripted)
        assert (request.service, request.priority) == ("cash", "paid")
