"""``nextup kiosk --sim`` as a process, against the real central: a sim press prints a ticket."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from edge_support import ScriptedCentral
from helpers import wait_until
from sqlalchemy import select

from central.store.models import TicketRow
from nextup.contract import DeviceStatus, TicketPrinted


def test_a_sim_press_on_the_kiosk_process_prints_a_ticket_central_records(broker, central, tmp_path):
    observer = ScriptedCentral(broker, client_id="observer")
    observer.subscribe(observer.topics.device_status("kiosk-1"), observer.topics.ticket_printed("kiosk-1"))
    tickets = tmp_path / "tickets.bin"
    env = {**os.environ, "NEXTUP_DEVICE_ID": "kiosk-1", "NEXTUP_MQTT_URL": central.device_urls["kiosk-1"],
           "NEXTUP_SITE": broker.site, "NEXTUP_PRINTER": f"file:{tickets}"}
    env.pop("NOTIFY_SOCKET", None)
    process = subprocess.Popen([sys.executable, "-m", "nextup", "kiosk", "--sim"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        observer.expect(observer.topics.device_status("kiosk-1"),
                        lambda m: DeviceStatus.parse(m.payload).online, timeout=10)
        # The mock buttons come from the retained site; press until one exists.
        def pressed() -> TicketPrinted | None:
            observer.publish(observer.topics.sim_press("kiosk-1"), b"loans")
            try:
                return TicketPrinted.parse(observer.expect(observer.topics.ticket_printed("kiosk-1"),
                                                           timeout=0.5).payload)
            except TimeoutError:
                return None

        report = wait_until(pressed, timeout=10, what="a printed ticket")
        assert report.printed and report.number.startswith("B")
        assert report.number.encode() in tickets.read_bytes()
        wait_until(lambda: printed_numbers(central) == [report.number], what="central to record the print")

        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        observer.expect(observer.topics.device_status("kiosk-1"),
                        lambda m: not DeviceStatus.parse(m.payload).online, timeout=10)
    finally:
        process.kill()
        process.wait()
        observer.close()


def printed_numbers(central) -> list[str]:
    with central.store.read() as s:
        return [t.number for t in s.scalars(select(TicketRow).where(TicketRow.printed.is_(True)))]
