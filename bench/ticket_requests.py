"""Kiosk ticket request -> reply through broker + central + SQLite, against a bare MQTT round trip.

The baseline is the same request/reply pattern between two paho clients on
the same broker, with an echo instead of central: what MQTT alone costs.
Central runs in this process first (sharing the interpreter with the
benchmark's clients, as the echo does), then as ``nextup central`` in a
process of its own, as deployed (with its JSON log lines).
``python -m bench.ticket_requests [--latency N] [--throughput N] [--window W]``.
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
    central_process,
    close,
    latency_line,
    mqtt_client,
    percentile,
    prepare_database,
    stop_process,
    subscribe,
)
from broker.mosquitto import RunningBroker
from nextup.contract import QOS, Topics


def _client(url: str) -> mqtt.Client:
    # A window of requests in flight must not be held back by paho's default of 20.
    return mqtt_client(url, max_inflight=1000)


class RoundTrips:
    """Sends requests on ``request_topic``, at most ``window`` unanswered, and times each reply."""

    def __init__(self, url: str, request_topic: str, reply_topic: str, service: str = "cash") -> None:
        self.request_topic, self.reply_topic, self.service = request_topic, reply_topic, service
        self.sent: dict[str, float] = {}
        self.latencies: list[float] = []
        self.cond = threading.Condition()
        self.client = _client(url)
        self.client.on_message = self._on_reply
        subscribe(self.client, reply_topic)

    def _on_reply(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        request_id = json.loads(msg.payload)["request_id"]
        now = time.perf_counter()
        with self.cond:
            started = self.sent.pop(request_id, None)
            if started is not None:
                self.latencies.append(now - started)
                self.cond.notify_all()

    def run(self, count: int, window: int) -> tuple[float, list[float]]:
        """(requests per second, latencies) for ``count`` requests."""
        self.latencies = []
        begin = time.perf_counter()
        for _ in range(count):
            request_id = uuid.uuid4().hex
            with self.cond:
                if not self.cond.wait_for(lambda: len(self.sent) < window, timeout=30):
                    raise TimeoutError("replies stopped coming")
                self.sent[request_id] = time.perf_counter()
            payload = json.dumps({"request_id": request_id, "service": self.service})
            self.client.publish(self.request_topic, payload, qos=QOS)
        with self.cond:
            if not self.cond.wait_for(lambda: not self.sent, timeout=60):
                raise TimeoutError("replies stopped coming")
        return count / (time.perf_counter() - begin), list(self.latencies)

    def close(self) -> None:
        close(self.client)


def echo(url: str, request_topic: str, reply_topic: str) -> Callable[[], None]:
    """A responder that answers every request at once: the baseline's 'central'."""
    client = _client(url)

    def on_message(c: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        request_id = json.loads(msg.payload)["request_id"]
        c.publish(reply_topic, json.dumps({"request_id": request_id, "ok": True}), qos=QOS)

    client.on_message = on_message
    subscribe(client, request_topic)
    return lambda: close(client)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=int, default=1000, help="sequential requests timed one by one")
    parser.add_argument("--throughput", type=int, default=5000, help="requests sent with a window")
    parser.add_argument("--window", type=int, default=64, help="unanswered requests at most")
    args = parser.parse_args(argv)

    with bench_site() as site:
        topics = Topics(site.broker.site)
        central_url = site.broker.central_url
        raw_request, raw_reply = f"{topics.root}/bench/request", f"{topics.root}/bench/reply"
        stop_echo = echo(central_url, raw_request, raw_reply)
        raw = RoundTrips(central_url, raw_request, raw_reply)
        raw.run(200, 1)  # warm-up
        _, raw_latency = raw.run(args.latency, 1)
        raw_rate, _ = raw.run(args.throughput, args.window)
        raw.close()
        stop_echo()

        kiosk = RoundTrips(site.device_urls["kiosk-1"], topics.ticket_request("kiosk-1"),
                           topics.ticket_reply("kiosk-1"))
        kiosk.run(100, 1)  # warm-up
        _, ticket_latency = kiosk.run(args.latency, 1)
        ticket_rate, _ = kiosk.run(args.throughput, args.window)
        kiosk.close()

    process_latency, process_rate = _central_process(args)

    print("kiosk ticket request -> reply (one at a time)")
    print("  " + latency_line("raw MQTT round trip (baseline)", raw_latency))
    print("  " + latency_line("ticket through central + SQLite", ticket_latency))
    print(f"  ratio p50 {percentile(ticket_latency, 50) / percentile(raw_latency, 50):.1f}x")
    print(f"throughput with {args.window} requests in flight")
    print(f"  raw MQTT round trips (baseline)   {raw_rate:8.0f} /s")
    print(f"  tickets through central + SQLite  {ticket_rate:8.0f} /s  ({ticket_rate / raw_rate:.0%} of raw)")
    print("central as its own process (nextup central)")
    print("  " + latency_line("ticket, one at a time", process_latency))
    share = process_rate / raw_rate
    print(f"  tickets, {args.window} in flight          {process_rate:8.0f} /s  ({share:.0%} of raw)")


def _central_process(args: argparse.Namespace) -> tuple[list[float], float]:
    """Latencies and tickets per second with ``nextup central`` in a process of its own."""
    with tempfile.TemporaryDirectory(prefix="nextup-bench-") as tmp:
        folder = Path(tmp)
        url = f"sqlite:///{folder / 'bench.sqlite3'}"
        prepare_database(url)
        with RunningBroker(folder / "broker") as broker:
            kiosk_url = broker.add_device("kiosk-1", "kiosk")
            central = central_process(url, broker, folder)
            try:
                topics = Topics(broker.site)
                request, reply = topics.ticket_request("kiosk-1"), topics.ticket_reply("kiosk-1")
                kiosk = RoundTrips(kiosk_url, request, reply)
                kiosk.run(100, 1)  # warm-up
                _, latency = kiosk.run(args.latency, 1)
                rate, _ = kiosk.run(args.throughput, args.window)
                kiosk.close()
            finally:
                stop_process(central)
    return latency, rate


if __name__ == "__main__":
    main()
