"""Retained states that never go back in time when several central instances publish.

Each board and point state carries the database's version (``SiteRow.version``,
bumped in the transaction of every change, so a higher version is a later
commit).  Two instances publish without talking to each other, so the broker
may receive version 11 from one and then version 10 from the other and keep 10
as the retained message: a display that connects later would start from the
older state.

``RetainedVersions`` closes that gap with the broker's own ordering.  Every
instance in shared mode also subscribes to these retained topics, so it sees
every state in the order the broker applied them:

- before publishing, a state older than one already seen on its topic is
  dropped (the broker holds or is about to hold a newer one);
- when the broker delivers a state older than the newest seen on its topic,
  the retained message just became stale: the instance that published that
  newest state publishes it again, unless it has a newer one of its own on the
  way (which will replace the stale one anyway).  Only one instance answers
  each stale state, and at most once until the broker delivers a state at
  least as new, so republishing cannot feed on itself when the instances'
  outgoing queues run late under load.

What remains: between a stale publish reaching the broker and the republish
(one broker round trip, about a millisecond on a LAN) a newly connecting
device can receive the older state; it gets the newest right after.  Devices
that are already connected ignore states older than the one they show.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from nextup.contract import QOS, Topics

log = logging.getLogger(__name__)


def version_of(payload: bytes) -> int | None:
    """The ``version`` of a state payload; None when it has none (a cleared or foreign message)."""
    if not payload:
        return None
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    version = data.get("version") if isinstance(data, dict) else None
    return version if isinstance(version, int) and not isinstance(version, bool) else None


class RetainedVersions:
    """The newest version of each versioned retained topic, as the broker delivered them."""

    def __init__(self, topics: Topics) -> None:
        self.topics = topics
        self._newest: dict[str, tuple[int, bytes]] = {}
        self._mine: dict[str, int] = {}  # the newest version this instance published, per topic
        self._pending: set[str] = set()  # topics with a republish on its way
        self._lock = threading.Lock()
        self.republished = 0
        self.dropped = 0

    @property
    def filters(self) -> list[str]:
        """The topics whose retained messages carry a version."""
        return [self.topics.board, self.topics.all_point_states]

    def covers(self, topic: str) -> bool:
        return topic == self.topics.board or (
            topic.startswith(f"{self.topics.root}/point/") and topic.endswith("/state"))

    def reset(self) -> None:
        """Forget what was seen (on every new connection: the broker may have lost its retained messages)."""
        with self._lock:
            self._newest.clear()
            self._mine.clear()
            self._pending.clear()

    def newest(self, topic: str) -> int | None:
        """The newest version seen on ``topic`` since the connection began."""
        with self._lock:
            newest = self._newest.get(topic)
        return newest[0] if newest else None

    def outdated(self, topic: str, payload: bytes, version: int | None = None) -> bool:
        """True when a newer state than ``payload`` (at ``version``, else the one it carries) has already
        gone through the broker on ``topic``, or out of this instance; when False, the caller publishes
        it and this instance answers for it."""
        if not self.covers(topic):
            return False
        if version is None:
            version = version_of(payload)
        if version is None:
            return False
        with self._lock:
            newest = self._newest.get(topic)
            # This instance's threads publish too (the worker, the web): their states may come in
            # any order, and one older than this instance already sent must not follow it.
            sent = max(newest[0] if newest else -1, self._mine.get(topic, -1))
            if version >= sent:
                self._mine[topic] = max(version, self._mine.get(topic, -1))
                return False
            self.dropped += 1
        log.debug("not publishing %s version %d: %d already published", topic, version, sent)
        return True

    def delivered(self, topic: str, payload: bytes) -> bytes | None:
        """``payload`` came on ``topic``: the newest payload, to publish again, if it is older."""
        version = version_of(payload)
        if version is None:
            return None
        with self._lock:
            newest = self._newest.get(topic)
            if newest is None or version >= newest[0]:
                self._newest[topic] = (version, bytes(payload))
                self._pending.discard(topic)
                return None
            if self._mine.get(topic) != newest[0] or topic in self._pending:
                return None  # the other instance answers, a newer state of ours is coming, or already done
            self._pending.add(topic)
            self.republished += 1
        log.info("retained %s went back to version %d; publishing %d again", topic, version, newest[0])
        return newest[1]

    def attach(self, client: Any) -> None:
        """Follow the versioned topics on paho ``client`` (call from on_connect; works with manual acks).

        Without it (a single instance) only this instance's own states are compared.
        """
        self.reset()

        def on_state(c: Any, userdata: Any, msg: Any) -> None:
            try:
                newest = self.delivered(msg.topic, msg.payload)
                if newest is not None:
                    c.publish(msg.topic, newest, qos=QOS, retain=True)
            finally:
                c.ack(msg.mid, msg.qos)  # a no-op unless the client acknowledges by hand, as central's does

        for topic in self.filters:
            client.message_callback_add(topic, on_state)
        # QoS 0: nothing piles up in the broker for an instance that is down, and on its return
        # the retained messages tell it where the broker stands.
        client.subscribe([(topic, 0) for topic in self.filters])
