"""Call-next throughput: 50 points pressing ``next`` at once through broker + central + PostgreSQL.

Each point is an MQTT client with its own device credentials that does what a
point unit does: publish a ``next`` command and wait for its point's state to
carry that command id, then press again.  Central runs as ``nextup central``
processes: one instance, then two sharing the site (``--shared``).  The
baseline is the same 50 clients against an echo that answers every command
with a state at once: what the broker and the clients alone allow.

``python -m bench.call_throughput [--points 50] [--services 5] [--presses 60]``
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
    bulk_tickets,
    central_process,
    close,
    hall_site,
    latency_line,
    machine,
    mqtt_client,
    postgres_schema,
    prepare_database,
    rss_mb,
    stop_process,
    subscribe,
)
from broker.mosquitto import RunningBroker
from nextup.contract import QOS, Topics


class PointClient:
    """One point: presses ``next`` and waits until its state shows the command."""

    def __init__(self, url: str, device_id: str, serial: int, topics: Topics) -> None:
        self.device_id, self.topics = device_id, topics
        self.cond = threading.Condition()
        self.last_command: str | None = None
        self.errors: list[str] = []
        self.seen = False
        self.client = mqtt_client(url, f"bench-{device_id}")
        self.client.on_message = self._on_state
        subscribe(self.client, topics.point_state(serial))

    def _on_state(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        data = json.loads(msg.payload)
        with self.cond:
            self.seen = True
            self.last_command = data.get("last_command_id")
            if data.get("last_error") and self.last_command:
                self.errors.append(str(data["last_error"]))
            self.cond.notify_all()

    def press(self) -> float:
        command_id = uuid.uuid4().hex
        start = time.perf_counter()
        self.client.publish(self.topics.command(self.device_id),
                            json.dumps({"command_id": command_id, "action": "next"}), qos=QOS)
        with self.cond:
            if not self.cond.wait_for(lambda: self.last_command == command_id, timeout=60):
                raise TimeoutError(f"{self.device_id}: no state for {command_id}")
        return time.perf_counter() - start

    def close(self) -> None:
        close(self.client)


def echo(url: str, topics: Topics) -> Callable[[], None]:
    """Answer each command with a state carrying its id at once (the baseline's 'central')."""
    client = mqtt_client(url, "bench-echo")

    def on_message(c: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        device = msg.topic.split("/")[-2]
        serial = int(device.rsplit("-", 1)[1])
        command_id = json.loads(msg.payload)["command_id"]
        c.publish(topics.point_state(serial), json.dumps({"last_command_id": command_id}), qos=QOS)

    client.on_message = on_message
    subscribe(client, f"{topics.root}/device/+/command")
    return lambda: close(client)


def run(points: list[PointClient], presses: int) -> tuple[float, list[float]]:
    """(calls per second, latencies): every point presses ``presses`` times, all at once."""
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(points) + 1)
    failures: list[BaseException] = []

    def work(point: PointClient) -> None:
        barrier.wait()
        mine = []
        try:
            for _ in range(presses):
                mine.append(point.press())
        except BaseException as exc:  # noqa: BLE001 - reported after the run
            failures.append(exc)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=work, args=(p,)) for p in points]
    for t in threads:
        t.start()
    barrier.wait()
    begin = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - begin
    if failures:
        raise failures[0]
    return len(latencies) / elapsed, latencies


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=50)
    parser.add_argument("--services", type=int, default=5, help="points serve them in turn")
    parser.add_argument("--presses", type=int, default=60,
                        help="per point and run; 3,000 calls in all: fewer are at the mercy of a busy second")
    args = parser.parse_args(argv)

    results: list[tuple[str, float, list[float], float]] = []
    with postgres_schema() as url, tempfile.TemporaryDirectory(prefix="nextup-bench-") as tmp:
        folder = Path(tmp)
        prepare_database(url, hall_site(args.points, args.services))
        with RunningBroker(folder / "broker") as broker:
            topics = Topics(broker.site)
            points = [PointClient(broker.add_device(f"point-{n}", "point"), f"point-{n}", n, topics)
                      for n in range(1, args.points + 1)]
            try:
                stop_echo = echo(broker.central_url, topics)
                run(points, 2)  # warm-up
                rate, latencies = run(points, args.presses)
                stop_echo()
                results.append(("raw MQTT, echo instead of central (baseline)", rate, latencies, 0.0))

                for instances in (1, 2):
                    per_service = args.points // args.services * (args.presses + 2) + 10
                    for k in range(args.services):
                        bulk_tickets(url, f"s{k}", per_service)
                    for p in points:
                        p.seen = False
                    centrals = [central_process(url, broker, folder, name=f"{instances}{chr(97 + i)}",
                                                shared=instances > 1) for i in range(instances)]
                    try:
                        deadline = time.monotonic() + 30
                        while not all(p.seen for p in points) and time.monotonic() < deadline:
                            time.sleep(0.05)
                        run(points, 2)  # warm-up
                        peak = [0.0]
                        sampling = threading.Event()

                        def sample(centrals=centrals, peak=peak, sampling=sampling) -> None:
                            while not sampling.wait(0.2):
                                peak[0] = max(peak[0], *(rss_mb(c.pid) for c in centrals))

                        sampler = threading.Thread(target=sample, daemon=True)
                        sampler.start()
                        rate, latencies = run(points, args.presses)
                        sampling.set()
                        sampler.join()
                    finally:
                        for c in centrals:
                            stop_process(c)
                    errors = [e for p in points for e in p.errors]
                    if errors:
                        raise RuntimeError(f"refused commands: {errors[:3]}")
                    label = "one central" if instances == 1 else f"{instances} shared centrals"
                    results.append((f"{label}, PostgreSQL", rate, latencies, peak[0]))
            finally:
                for p in points:
                    p.close()

    base = results[0][1]
    print(f"call next, {args.points} points pressing at once, {args.services} services ({machine()})")
    for label, rate, latencies, peak in results:
        extra = f"  central RSS peak {peak:.0f} MB" if peak else ""
        print(f"  {label:<48} {rate:8.0f} calls/s  ({rate / base:.0%} of raw){extra}")
        print("    " + latency_line("press -> own state", latencies))
    print("  target: >= 500 calls/s")


if __name__ == "__main__":
    main()
