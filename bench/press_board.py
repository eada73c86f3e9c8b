"""Press -> board: a point unit's ``next`` until the hall display has the new board.

Through the broker, central and the store (SQLite, in this process): a client
with point-1's credentials publishes the command as the unit does, a client
with the display's credentials waits for the retained board that shows it.
The baseline is the same path with an echo in central's place: device ->
broker -> echo -> broker -> display, what MQTT alone costs.

``python -m bench.press_board [--presses N]``
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid

import paho.mqtt.client as mqtt

from bench.site import (
    bench_site,
    bulk_tickets,
    close,
    latency_line,
    machine,
    mqtt_client,
    percentile,
    subscribe,
)
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
        display = Watcher(site.device_urls["display-1"], topics.board)
        unit = mqtt_client(site.device_urls["point-1"])
        display.wait(lambda last: "version" in last)
        through = []
        for i in range(args.presses + 50):
            site.central.coordinator.issue_ticket("cash", channel=Channel.API)
            version = site.central.coordinator.board().version
            display.wait(lambda last, v=version: int(last.get("version", -1)) >= v)
            start = time.perf_counter()
            command = {"command_id": uuid.uuid4().hex, "action": "next"}
            unit.publish(topics.command("point-1"), json.dumps(command), qos=QOS)
            arrived = display.wait(lambda last, v=version: int(last.get("version", -1)) > v)
            if i >= 50:
                through.append(arrived - start)
        close(unit)
        display.close()

    print(f"point press (next) -> board at the display, {args.queue} waiting ({machine()})")
    print("  " + latency_line("raw MQTT, echo for central (baseline)", raw))
    print("  " + latency_line("through central + SQLite", through))
    p50 = percentile(through, 50) / percentile(raw, 50)
    p99 = percentile(through, 99) / percentile(raw, 99)
    print(f"  ratio p50 {p50:.1f}x  p99 {p99:.1f}x   target: p99 <= 5 ms")


if __name__ == "__main__":
    main()
