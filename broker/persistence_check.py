"""Measure what a hard kill of the broker loses: ``python -m broker.persistence_check``.

Central publishes retained point states and replies queued for an offline
kiosk (QoS 1, each acknowledged), evenly over a few autosave intervals;
then Mosquitto gets SIGKILL, starts again on the same database, and we count
what came back and how old the youngest lost message was at the kill.
"""

from __future__ import annotations

import argparse
import queue
import random
import tempfile
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from broker.mosquitto import AUTOSAVE_INTERVAL_S, CENTRAL_USER, RunningBroker
from nextup.contract import Topics


def _client(
    broker: RunningBroker, user: str, client_id: str = "", clean: bool = True
) -> tuple[mqtt.Client, queue.Queue]:
    inbox: queue.Queue = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(user, broker.passwords[user])
    client.on_message = lambda c, u, m: inbox.put(m)
    connected = queue.Queue()
    client.on_connect = lambda c, u, f, rc, p: connected.put(rc)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    client.connect(broker.host, broker.port, clean_start=clean, properties=props)
    client.loop_start()
    rc = connected.get(timeout=5)
    assert not rc.is_failure, rc
    return client, inbox


def measure(count: int, spread_s: float, autosave_s: int) -> dict[str, object]:
    topics = Topics("main")
    with tempfile.TemporaryDirectory() as tmp:
        broker = RunningBroker(tmp, autosave_interval=autosave_s).start()
        try:
            broker.add_device("kiosk-1", "kiosk")
            # clean_start must be false from the first connection: Mosquitto 2.0.11
            # does not restore, after a restart, a session begun with a clean start.
            kiosk, _ = _client(broker, "kiosk-1", "kiosk-1", clean=False)
            kiosk.subscribe(topics.ticket_reply("kiosk-1"), qos=1)
            time.sleep(0.2)
            kiosk.disconnect()
            kiosk.loop_stop()
            central, _ = _client(broker, CENTRAL_USER)
            sent_at: dict[int, float] = {}
            for i in range(1, count + 1):
                payload = str(i).encode()
                central.publish(topics.point_state(i), payload, qos=1, retain=True).wait_for_publish(5)
                central.publish(topics.ticket_reply("kiosk-1"), payload, qos=1).wait_for_publish(5)
                sent_at[i] = time.monotonic()
                time.sleep(spread_s / count)
            killed_at = time.monotonic()
            broker.kill()
            central.loop_stop()
            broker.start()

            reader, inbox = _client(broker, CENTRAL_USER)
            reader.subscribe(topics.all_point_states, qos=1)
            kiosk, replies = _client(broker, "kiosk-1", "kiosk-1", clean=False)
            time.sleep(1.0)  # a report script, not a test: let the deliveries drain
            retained = {int(inbox.get().payload) for _ in range(inbox.qsize())}
            queued = {int(replies.get().payload) for _ in range(replies.qsize())}
            reader.loop_stop()
            kiosk.loop_stop()

            def oldest_lost(kept: set[int]) -> float | None:
                lost = [killed_at - sent_at[i] for i in sent_at if i not in kept]
                return round(max(lost), 2) if lost else None

            return {
                "sent": count,
                "over_s": spread_s,
                "autosave_interval_s": autosave_s,
                "retained_kept": len(retained),
                "queued_kept": len(queued),
                "oldest_lost_retained_age_s": oldest_lost(retained),
                "oldest_lost_queued_age_s": oldest_lost(queued),
            }
        finally:
            broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--spread", type=float, default=12.0, help="seconds over which to publish")
    parser.add_argument("--autosave", type=int, default=AUTOSAVE_INTERVAL_S)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for _ in range(args.runs):
        # A random length puts the kill at a random point of the autosave cycle.
        spread = args.spread + random.uniform(0, args.autosave + 1)
        print(measure(args.count, round(spread, 2), args.autosave))


if __name__ == "__main__":
    main()
