"""Live updates for browsers: the coordinator's committed changes as server-sent events.

One ``LiveHub`` per app listens to the coordinator once and fans each batch of
messages out to per-client subscriptions.  A subscription is a small bounded
buffer: when a slow client lets it fill, the oldest messages go, so the
coordinator (which calls the listener right after its commit) never waits for
a browser.

A page's stream is made with ``event_stream``::

    from central.web import live

    @blueprint.get("/things/events")
    def thing_events():
        coordinator = ...
        def render(messages):                 # [] first, then each batch that matched
            return [live.Event("things", {"count": coordinator.count()})]
        return live.event_stream(render, topics=lambda topic: topic.endswith("/board"))

``render`` runs in the stream's thread and returns the events to send (an
event equal to the last one of the same name is not sent again).  The stream
sends a heartbeat every ``heartbeat_s`` and ends after about ``lifetime_s``
(EventSource reconnects by itself), so a phone that left the hall without
closing its page frees its stream.

Each open stream holds one of the HTTP server's threads (WSGI has no other
way to wait).  ``make_server`` builds central's waitress server so that the
threads follow the streams: it starts with ``SPARE_THREADS`` for ordinary
requests and adds threads as streams open, up to ``max_streams`` streams (a
hall of phones).  A client over the cap gets 204, which tells EventSource to
stop, and its page falls back to polling.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, current_app, stream_with_context

from central.coordinator import Coordinator, Message

EXTENSION = "nextup.live"
QUEUE_SIZE = 32
MAX_STREAMS = 1000  # a hall full of phones, each following its ticket
SPARE_THREADS = 32  # threads left for ordinary requests however many streams are open
THREAD_STEP = 64  # threads are added in steps, not one per stream
# Connections besides the streams: pages polling or loading, browsers keeping theirs open.
OTHER_CONNECTIONS = 1000
LIFETIME_S = 60.0
HEARTBEAT_S = 15.0
RETRY_MS = 2000

TopicFilter = Callable[[str], bool]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """One server-sent event: a name and a JSON-able payload."""

    name: str
    data: Any

    def encode(self) -> str:
        body = json.dumps(self.data, separators=(",", ":"), ensure_ascii=False)
        return f"event: {self.name}\ndata: {body}\n\n"


class Subscription:
    """One client's buffer of messages; the oldest go first when it is full."""

    def __init__(self, hub: LiveHub, topics: TopicFilter | None, size: int) -> None:
        self._hub = hub
        self._topics = topics
        self._buffer: deque[Message] = deque(maxlen=size)
        self._ready = threading.Condition()
        self.closed = False
        self.dropped = 0

    def offer(self, messages: Iterable[Message]) -> None:
        """Take the matching messages; never blocks beyond a short lock."""
        wanted = [m for m in messages if self._topics is None or self._topics(m.topic)]
        if not wanted:
            return
        with self._ready:
            for message in wanted:
                if len(self._buffer) == self._buffer.maxlen:
                    self.dropped += 1
                self._buffer.append(message)
            self._ready.notify_all()

    def wait(self, timeout: float) -> list[Message]:
        """Every buffered message, waiting up to ``timeout`` s for one; [] on timeout or close."""
        with self._ready:
            self._ready.wait_for(lambda: self._buffer or self.closed, timeout)
            batch = list(self._buffer)
            self._buffer.clear()
            return batch

    def close(self) -> None:
        """Stop receiving and wake any waiter (idempotent)."""
        with self._ready:
            self.closed = True
            self._ready.notify_all()
        self._hub._drop(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LiveHub:
    """One coordinator listener feeding any number of subscriptions."""

    def __init__(self, coordinator: Coordinator, *, max_streams: int = MAX_STREAMS,
                 queue_size: int = QUEUE_SIZE) -> None:
        self.coordinator = coordinator
        self.max_streams = max_streams
        self.queue_size = queue_size
        self._subscriptions: set[Subscription] = set()
        self._lock = threading.Lock()
        self.closed = False
        self.on_open: Callable[[int], None] | None = None
        """Called with the number of open streams whenever one opens (the server makes room)."""
        coordinator.add_listener(self.publish)

    def publish(self, messages: list[Message]) -> None:
        """Hand a batch to every subscription (the coordinator calls this after each commit)."""
        with self._lock:
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            subscription.offer(messages)

    def subscribe(self, topics: TopicFilter | None = None) -> Subscription | None:
        """A new subscription to the topics ``topics`` accepts (all when None); None when at the cap."""
        with self._lock:
            if self.closed or len(self._subscriptions) >= self.max_streams:
                return None
            subscription = Subscription(self, topics, self.queue_size)
            self._subscriptions.add(subscription)
            count = len(self._subscriptions)
        if self.on_open is not None:
            self.on_open(count)
        return subscription

    @property
    def open_streams(self) -> int:
        with self._lock:
            return len(self._subscriptions)

    def _drop(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.discard(subscription)

    def close(self) -> None:
        """End every stream and stop listening (idempotent)."""
        with self._lock:
            self.closed = True
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            subscription.close()
        self.coordinator.remove_listener(self.publish)


def init_app(app: Flask) -> LiveHub:
    """The app's hub, made on first use (safe to call from every blueprint)."""
    hub = app.extensions.get(EXTENSION)
    if hub is None:
        hub = app.extensions.setdefault(EXTENSION, LiveHub(
            app.extensions["nextup.coordinator"],
            max_streams=int(app.config.get("LIVE_MAX_STREAMS", MAX_STREAMS)),
        ))
    return hub


def close(app: Flask) -> None:
    """End every live stream of ``app`` (when the server stops)."""
    existing = app.extensions.get(EXTENSION)
    if existing is not None:
        existing.close()


def hub(app: Flask | None = None) -> LiveHub:
    """The hub of ``app`` (default: the current app)."""
    return init_app(app if app is not None else current_app._get_current_object())  # type: ignore[attr-defined]


def make_server(app: Flask, *, host: str, port: int, ident: str = "nextup") -> Any:
    """central's waitress server for ``app``: ordinary requests and up to ``max_streams`` live streams.

    A stream holds a thread as long as it is open, so the server starts with ``SPARE_THREADS`` and
    adds threads as streams open; they are not taken back (a hall's phones come back all day).
    """
    from waitress.server import create_server

    live = hub(app)
    connections = live.max_streams + OTHER_CONNECTIONS
    _allow_open_files(connections + 256)  # + the database, the broker, logs
    server = create_server(
        app, host=host, port=port, ident=ident, threads=SPARE_THREADS, connection_limit=connections,
        # select() fails past 1,024 open descriptors; poll() has no such limit.
        asyncore_use_poll=True,
    )
    lock = threading.Lock()
    threads = SPARE_THREADS

    def make_room(streams: int) -> None:
        nonlocal threads
        with lock:  # only ever up: a smaller count passed late would stop threads
            if streams + SPARE_THREADS > threads:
                threads = min(streams + SPARE_THREADS + THREAD_STEP, live.max_streams + SPARE_THREADS)
                server.task_dispatcher.set_thread_count(threads)

    live.on_open = make_room
    return server


def _allow_open_files(wanted: int) -> None:
    """Raise the limit of open files (often 1,024) to ``wanted``, as far as the hard limit lets it."""
    try:
        import resource
    except ImportError:  # not on POSIX: nothing to raise
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        log.warning("open files are limited to %d of the %d wanted: some live pages may not connect",
                    target, wanted)


def sse_lines(
    subscription: Subscription,
    render: Callable[[list[Message]], Iterable[Event]],
    *,
    lifetime_s: float = LIFETIME_S,
    heartbeat_s: float = HEARTBEAT_S,
    done: Callable[[], bool] = lambda: False,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[str]:
    """The text of one stream: the first render, then one per batch; closes the subscription at the end.

    The stream also ends as soon as ``done()`` is true after a render (e.g. a finished ticket).
    """
    last: dict[str, str] = {}

    def fresh(messages: list[Message]) -> Iterator[str]:
        for event in render(messages):
            text = event.encode()
            if last.get(event.name) != text:
                last[event.name] = text
                yield text

    try:
        yield f"retry: {RETRY_MS}\n\n"
        yield from fresh([])
        end = clock() + lifetime_s
        while not subscription.closed and not done():
            now = clock()
            if now >= end:
                break
            batch = subscription.wait(min(heartbeat_s, end - now))
            if batch:
                yield from fresh(batch)
            elif not subscription.closed:
                yield ": heartbeat\n\n"
    finally:
        subscription.close()


def event_stream(
    render: Callable[[list[Message]], Iterable[Event]],
    *,
    topics: TopicFilter | None = None,
    done: Callable[[], bool] = lambda: False,
) -> Response:
    """A ``text/event-stream`` response over a new subscription (204 when the hub is at its cap)."""
    subscription = hub().subscribe(topics)
    if subscription is None:
        return Response(status=204)
    config = current_app.config
    lifetime = float(config.get("LIVE_LIFETIME_S", LIFETIME_S))
    lines = sse_lines(
        subscription, render, done=done,
        # Spread the reconnects of many clients opened at once.
        lifetime_s=lifetime * random.uniform(0.8, 1.2),
        heartbeat_s=float(config.get("LIVE_HEARTBEAT_S", HEARTBEAT_S)),
    )
    return Response(
        stream_with_context(lines),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
