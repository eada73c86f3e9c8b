"""A kiosk cut off from central keeps printing tickets from its leased numbers; they join the queue once.

The real kiosk (mock pins, python-escpos's Dummy printer), the real central
(SQLite) and the real Mosquitto: the kiosk is cut off by stopping the broker
or central, and the queue in central's database is checked after it is back.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from escpos.printer import Dummy
from helpers import wait_until
from sqlalchemy import select

from central import leases
from central.domain import Channel
from central.store.models import TicketEventRow, TicketRow
from edge.kiosk import Kiosk
from edge.kiosk.render import parse, save_png
from nextup.settings import load

SIZE = 6
FIRST = leases.TOP - SIZE + 1  # the kiosk's first block of a service: the top of the day's numbers
OFFLINE_TEXT = b"position confirmed on screen"
RECONNECT = {"reconnect_min_s": 0.1, "reconnect_max_s": 0.5}


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(leases, "LEASE_SIZE", SIZE)


class Clock:
    """The kiosk's clock: real time, unless the test moves it."""

    def __init__(self) -> None:
        self.shift = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.shift


@pytest.fixture
def kiosk_config(tmp_path: Path):
    def make(central: Any, journal: Path | None = None) -> Any:
        config = tmp_path / "kiosk-1.toml"
        config.write_text(
            '[buttons]\n17 = "cash"\n27 = "loans"\n'
            f'[kiosk]\njournal = "{journal or tmp_path / "kiosk-1.offline.json"}"\n'
            "reply_timeout_s = 1\nholdoff_s = 0.01\noffline_resend_s = 1\n",
            encoding="utf-8")
        return load(config, env={"NEXTUP_DEVICE_ID": "kiosk-1", "NEXTUP_SITE": "main",
                                 "NEXTUP_MQTT_URL": central.device_urls["kiosk-1"]})

    return make


def leased(kiosk: Kiosk, *services: str) -> None:
    wait_until(lambda: all(kiosk.offline.left(s, kiosk._clock()) for s in services), timeout=10,
               what=f"a lease of {services}")


def press(kiosk: Kiosk, button: str) -> bytes:
    """Press ``button`` and return the bytes of the ticket it prints."""
    before = len(kiosk.printed)
    kiosk.runtime.press(button)
    wait_until(lambda: len(kiosk.printed) > before, timeout=10, what=f"a {button} ticket printed")
    return kiosk.printed[-1]


def number_of(ticket: bytes) -> str:
    lines = ["".join(text for _, text in b.runs) for b in parse(ticket) if hasattr(b, "runs")]
    return next(line for line in lines if len(line) == 5 and line[1] == "-")


def queue(central: Any) -> list[tuple[str, str, str | None, datetime]]:
    """Every ticket: number, state, kiosk, issue time."""
    with central.store.read() as s:
        rows = s.scalars(select(TicketRow).order_by(TicketRow.id))
        return [(r.number, r.state, r.device_id, r.issued_at) for r in rows]


def call_order(central: Any, service: str) -> list[str]:
    coordinator = central.coordinator
    with central.store.read() as s:
        waiting = [t for t in s.scalars(select(TicketRow).where(TicketRow.state == "waiting"))
                   if t.service.key == service]
        return [t.number for t in coordinator.rules(s).policy.call_order(waiting, coordinator.clock())]


def offline_numbers(central: Any) -> list[str]:
    with central.store.read() as s:
        return list(s.scalars(select(TicketRow.number).join(TicketEventRow)
                              .where(TicketEventRow.kind == "offline").order_by(TicketRow.issued_at)))


def test_a_kiosk_cut_off_from_the_broker_serves_the_hall_and_its_tickets_join_the_queue_once(
        broker, central, kiosk_config, tmp_path):
    with Kiosk(kiosk_config(central), sim=True, printer=Dummy(), **RECONNECT) as kiosk:
        assert kiosk.runtime.wait_ready(10)
        leased(kiosk, "cash", "loans")
        online = number_of(press(kiosk, "cash"))
        assert online == "A-001"  # the lease held takes nothing from the day's online numbering

        broker.stop()
        wait_until(lambda: not kiosk.runtime.connected, what="the kiosk to notice")
        printed = [press(kiosk, "cash")]
        web = [central.coordinator.issue_ticket("cash", channel=Channel.WEB).number]  # the web goes on
        printed += [press(kiosk, "cash"), press(kiosk, "loans")]
        web.append(central.coordinator.issue_ticket("cash", channel=Channel.WEB).number)
        printed.append(press(kiosk, "cash"))
        numbers = [number_of(t) for t in printed]

        assert numbers == [f"A-{FIRST}", f"A-{FIRST + 1}", f"B-{FIRST}", f"A-{FIRST + 2}"]
        assert all(OFFLINE_TEXT in t for t in printed)
        assert b"ahead of you" not in printed[0]
        assert [t.number for t in kiosk.offline.unsent] == numbers  # journaled, waiting for central
        save_png(printed[0], tmp_path / "offline-ticket.png")

        broker.start()
        wait_until(lambda: not kiosk.offline.unsent, timeout=20, what="central to acknowledge them")

        # Half the cash block was used: central leased a fresh one, just below it, clear of the web's numbers.
        wait_until(lambda: len(kiosk.offline.blocks_for("cash", kiosk._clock())) == 2, what="a renewal")
        old, fresh = kiosk.offline.blocks_for("cash", kiosk._clock())
        assert (fresh.first, fresh.last) == (FIRST - SIZE, FIRST - 1) and old.first == FIRST
        assert web == ["A-002", "A-003"]
        assert number_of(press(kiosk, "cash")) not in numbers  # online again

    rows = queue(central)
    all_numbers = [number for number, *_ in rows]
    assert len(all_numbers) == len(set(all_numbers))  # no number issued twice
    assert sorted(offline_numbers(central)) == sorted(numbers)  # each offline ticket exactly once
    # In the queue at the time each was printed: interleaved with the web tickets of the outage.
    assert call_order(central, "cash")[:6] == [online, numbers[0], web[0], numbers[1], web[1], numbers[3]]
    by_number = {number: (state, device, at) for number, state, device, at in rows}
    assert all(by_number[n][:2] == ("waiting", "kiosk-1") for n in numbers)


def test_a_kiosk_that_central_does_not_answer_issues_offline_until_central_is_back(
        broker, central, make_central, kiosk_config):
    with Kiosk(kiosk_config(central), sim=True, printer=Dummy(), **RECONNECT) as kiosk:
        assert kiosk.runtime.wait_ready(10)
        leased(kiosk, "cash")

        central.stop()
        first = press(kiosk, "cash")  # after the reply timeout
        assert not kiosk.central_reachable
        second = press(kiosk, "cash")  # at once: the kiosk knows central is away
        assert [number_of(first), number_of(second)] == [f"A-{FIRST}", f"A-{FIRST + 1}"]
        assert OFFLINE_TEXT in first and OFFLINE_TEXT in second

        back = make_central()
        wait_until(lambda: not kiosk.offline.unsent, timeout=20, what="the restarted central's answer")
        assert kiosk.central_reachable
        assert OFFLINE_TEXT not in press(kiosk, "cash")

    assert sorted(offline_numbers(back)) == [f"A-{FIRST}", f"A-{FIRST + 1}"]
    assert [n for n, *_ in queue(back)].count(f"A-{FIRST}") == 1


def test_a_kiosk_restarted_while_offline_keeps_its_journal_and_never_reprints_a_number(
        broker, central, kiosk_config, tmp_path):
    journal = tmp_path / "journal" / "kiosk-1.offline.json"
    settings = kiosk_config(central, journal)
    with Kiosk(settings, sim=True, printer=Dummy(), **RECONNECT) as kiosk:
        assert kiosk.runtime.wait_ready(10)
        leased(kiosk, "cash")
        broker.stop()
        wait_until(lambda: not kiosk.runtime.connected, what="the kiosk to notice")
        before = [number_of(press(kiosk, "cash")) for _ in range(2)]

    # Powered off and on again, still without a broker: the lease and the unsent tickets are on disk.
    with Kiosk(settings, sim=True, printer=Dummy(), **RECONNECT) as kiosk:
        assert [t.number for t in kiosk.offline.unsent] == before
        after = number_of(press(kiosk, "cash"))
        assert after == f"A-{FIRST + 2}"

        broker.start()
        wait_until(lambda: not kiosk.offline.unsent, timeout=20, what="central to acknowledge them")

    assert sorted(offline_numbers(central)) == [f"A-{FIRST}", f"A-{FIRST + 1}", f"A-{FIRST + 2}"]


def test_after_midnight_a_kiosk_still_cut_off_prints_nothing_from_yesterdays_lease(
        broker, central, kiosk_config):
    clock = Clock()
    with Kiosk(kiosk_config(central), sim=True, printer=Dummy(), clock=clock, **RECONNECT) as kiosk:
        assert kiosk.runtime.wait_ready(10)
        leased(kiosk, "cash")
        broker.stop()
        wait_until(lambda: not kiosk.runtime.connected, what="the kiosk to notice")
        # The demo site runs in UTC: move the kiosk to the first minute of the next day there.
        now = clock()
        clock.shift = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC) - now \
            + timedelta(minutes=1)

        kiosk.runtime.press("cash")

        wait_until(lambda: kiosk.error_led.is_lit, what="the error LED")
        assert not kiosk.printed and kiosk.offline.unsent == []
        broker.start()
        assert kiosk.runtime.wait_ready(10)

    assert queue(central) == []
