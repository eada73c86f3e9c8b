"""Press -> board: a point unit's ``next`` until the hall display has the new board.

Through the broker, central and the store (SQLite): a client with point-1's
credentials publishes the command as the unit does, a client with the
display's credentials waits for the retained board that shows it. Central runs
in this process first (sharing the interpreter with the benchmark's clients,
as the echo does), then as ``nextup central`` in a process of its own, as
deployed. The baseline is the same path with an echo in central's place:
device -> broker -> echo -> broker -> display, what MQTT alone costs.

``python -m bench.press_board [--presses N]``
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt

from bench.site import (
    bench_site,
    bulk_tickets,
    central_process,
    close,
    latency_line,
    machine,
    mqtt_client,
    percentile,
    prepare_database,
    stop_process,
    subscribe,
)
from bench.ticket_requests import RoundTrips
from broker.mosquitto import RunningBroker
from central.domain import Channel
from nextup.contract import QOS, Topics


class Watcher:
    """Waits for a message on one topic whose JSON ``field`` passes a test."""

    def __init__(self, url: str, topic: str) -> None:
        self.cond = threading.Condition()
        self.last: dict[str, object] = {}
        self.client = mqtt_client(url)
        self.client.on_message = self._on_message
        subscribe(self.client, topic)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        arrived = time.perf_counter()
        with self.cond:
            self.last = json.loads(msg.payload) if msg.payload else {}
            self.last["_arrived"] = arrived
            self.cond.notify_all()

    def wait(self, test, timeout: float = 10.0) -> float:  # type: ignore[no-untyped-def]
        with self.cond:
            if not self.cond.wait_for(lambda: test(self.last), timeout):
                raise TimeoutError("the board did not change")
            return float(self.last["_arrived"])  # type: ignore[arg-type]

    def close(self) -> None:
        close(self.client)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--presses", type=int, default=1000)
    parser.add_argument("--queue", type=int, default=30, help="tickets waiting at the point's services")
    args = parser.parse_args(argv)

    with bench_site() as site:
        topics = Topics(site.broker.site)
        central_url = site.broker.central_url

        # Baseline: the same two hops with an echo instead of central.
        raw_in, raw_out = f"{topics.root}/bench/press", f"{topics.root}/bench/board"
        echo = mqtt_client(central_url)
        echo.on_message = lambda c, u, m: c.publish(raw_out, m.payload, qos=QOS)
        subscribe(echo, raw_in)
        board = Watcher(central_url, raw_out)
        press = mqtt_client(central_url)
        raw = []
        for i in range(args.presses + 50):
            start = time.perf_counter()
            press.publish(raw_in, json.dumps({"version": i}), qos=QOS)
            arrived = board.wait(lambda last, i=i: last.get("version") == i)
            if i >= 50:
                raw.append(arrived - start)
        close(echo)
        close(press)
        board.close()

        # A steady queue of a busy hall: one ticket comes (untimed) for each one called.
        bulk_tickets(site.central.settings.database, "cash", args.queue)
        coordinator = site.central.coordinator

        def issue() -> None:
            coordinator.issue_ticket("cash", channel=Channel.API)

        through = _presses(args.presses, topics, site.device_urls, issue)

    deployed = _central_process(args)

    print(f"point press (next) -> board at the display, {args.queue} waiting ({machine()})")
    print("  " + latency_line("raw MQTT, echo for central (baseline)", raw))
    runs = (("through central + SQLite", through), ("same, `nextup central` process", deployed))
    for label, samples in runs:
        print("  " + latency_line(label, samples))
        p50 = percentile(samples, 50) / percentile(raw, 50)
        p99 = percentile(samples, 99) / percentile(raw, 99)
        print(f"    ratio p50 {p50:.1f}x  p99 {p99:.1f}x   target: p99 <= 5 ms")


def _presses(count: int, topics: Topics, urls: dict[str, str], issue: Callable[[], None]) -> list[float]:
    """Press -> board of ``count`` presses at point 1, ``issue`` adding one ticket (untimed) before each."""
    display = Watcher(urls["display-1"], topics.board)
    unit = mqtt_client(urls["point-1"])
    display.wait(lambda last: "version" in last)
    through = []
    for i in range(count + 50):
        before = int(display.last.get("version", -1))  # type: ignore[call-overload]
        issue()
        # The board with that ticket, so the press's board is the next one.
        display.wait(lambda last, v=before: int(last.get("version", -1)) > v)
        version = int(display.last["version"])  # type: ignore[call-overload]
        start = time.perf_counter()
        command = {"command_id": uuid.uuid4().hex, "action": "next"}
        unit.publish(topics.command("point-1"), json.dumps(command), qos=QOS)
        arrived = display.wait(lambda last, v=version: int(last.get("version", -1)) > v)
        if i >= 50:
            through.append(arrived - start)
    close(unit)
    display.close()
    return through


def _central_process(args: argparse.Namespace) -> list[float]:
    """Press -> board with ``nextup central`` in a process of its own; a kiosk adds the tickets."""
    with tempfile.TemporaryDirectory(prefix="nextup-bench-") as tmp:
        folder = Path(tmp)
        url = f"sqlite:///{folder / 'bench.sqlite3'}"
        prepare_database(url)
        bulk_tickets(url, "cash", args.queue)
        with RunningBroker(folder / "broker") as broker:
            urls = {d: broker.add_device(d, kind) for d, kind in
                    (("point-1", "point"), ("display-1", "display"), ("kiosk-1", "kiosk"))}
            central = central_process(url, broker, folder)
            try:
                topics = Topics(broker.site)
                kiosk = RoundTrips(urls["kiosk-1"], topics.ticket_request("kiosk-1"),
                                   topics.ticket_reply("kiosk-1"))

                def issue() -> None:
                    kiosk.run(1, 1)

                try:
                    return _presses(args.presses, topics, urls, issue)
                finally:
                    kiosk.close()
            finally:
                stop_process(central)


if __name__ == "__main__":
    main()
