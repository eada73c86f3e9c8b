"""Central's figures for Prometheus, served at ``/metrics``.

What is counted and where it comes from:

- tickets issued, calls, outcomes (served, no-show, recalled, cancelled,
  transferred), waits (issue to first call) and service times (call to served):
  from the ``TicketEvent`` each queue transition records, taken when its
  transaction commits, so a refused or rolled back action counts nothing.  Each
  instance counts what it committed; Prometheus sums the instances of a site.
- MQTT request latency: the bridge's handling of each device message, receipt to
  answer handed to the broker; HTTP request latency: each web request.
- read at scrape time: device messages rejected by reason and MQTT reconnects
  (from the bridge), devices online and tickets waiting (from the database),
  open live streams.

When the app config has ``METRICS_TOKEN`` (env ``NEXTUP_METRICS_TOKEN``),
``/metrics`` answers only requests with ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, abort, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from central.coordinator import EVENTS, Coordinator, TicketEvent
from central.store import Store
from central.store.models import DeviceRow

EXTENSION = "nextup.metrics"
WAIT_BUCKETS = (60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200)
SERVICE_BUCKETS = (30, 60, 120, 180, 300, 450, 600, 900, 1200, 1800, 3600)
LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
OUTCOMES = ("served", "no_show", "recalled", "cancelled", "transferred")


# --- ticket transitions, as they commit ---------------------------------------------------


@dataclass(frozen=True)
class Transition:
    """One committed ``TicketEvent``, with the times that make a wait or a service time."""

    kind: str
    service: str
    channel: str | None = None
    wait_s: float | None = None
    service_s: float | None = None


Watcher = Callable[[list[Transition]], None]
_watchers: weakref.WeakKeyDictionary[Any, list[Watcher]] = weakref.WeakKeyDictionary()  # by engine pool
_watchers_lock = threading.Lock()


def _pool(session: Session) -> Any:
    bind = session.get_bind()
    return getattr(bind, "pool", None)


def _transition(event: TicketEvent) -> Transition:
    kind, ticket, service = event.kind, event.ticket, event.ticket.service
    if kind == "issued":
        return Transition(kind, service, channel=ticket.channel.value)
    if kind == "called" and ticket.calls == 1 and ticket.called_at and ticket.issued_at:
        return Transition(kind, service, wait_s=(ticket.called_at - ticket.issued_at).total_seconds())
    if kind == "served" and ticket.finished_at and ticket.called_at:
        return Transition(kind, service, service_s=(ticket.finished_at - ticket.called_at).total_seconds())
    return Transition(kind, service)


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released: the transaction may still roll back
    # The coordinator inserted these events in this commit (savepoints rolled back took theirs along).
    events = session.info.pop(EVENTS, None)
    if not events or not _watchers:
        return
    with _watchers_lock:
        watchers = list(_watchers.get(_pool(session), ()))
    if watchers:
        done = [_transition(e) for e in events]
        for watcher in watchers:
            watcher(done)


def watch_transitions(store: Store, watcher: Watcher) -> None:
    """Call ``watcher`` with the ticket transitions of each committed transaction of ``store``."""
    with _watchers_lock:
        _watchers.setdefault(store.engine.pool, []).append(watcher)


def unwatch_transitions(store: Store, watcher: Watcher) -> None:
    with _watchers_lock:
        watchers = _watchers.get(store.engine.pool, [])
        if watcher in watchers:
            watchers.remove(watcher)


# --- the registry ----------------------------------------------------------------------------


class Metrics:
    """The Prometheus registry of one central: counters fed as things happen, the rest read at scrape."""

    def __init__(self, coordinator: Coordinator, bridge: Any = None, app: Flask | None = None) -> None:
        self.coordinator = coordinator
        self.bridge = bridge
        self.app = app
        self.registry = CollectorRegistry()
        r = self.registry
        self.issued = Counter("nextup_tickets_issued", "Tickets issued", ["service", "channel"], registry=r)
        self.calls = Counter("nextup_calls", "Tickets called to a point (a recalled ticket's new call too)",
                             ["service"], registry=r)
        self.outcomes = Counter("nextup_ticket_outcomes", "What became of called tickets and of waiting ones",
                                ["service", "outcome"], registry=r)
        self.waits = Histogram("nextup_wait_seconds", "From a ticket's issue to its first call", ["service"],
                               buckets=WAIT_BUCKETS, registry=r)
        self.service_times = Histogram("nextup_service_seconds", "From a ticket's call to served",
                                       ["service"], buckets=SERVICE_BUCKETS, registry=r)
        self.mqtt_latency = Histogram("nextup_mqtt_request_seconds",
                                      "Handling one device message: receipt to answer handed to the broker",
                                      ["kind"], buckets=LATENCY_BUCKETS, registry=r)
        self.http_latency = Histogram("nextup_http_request_seconds", "Answering one web request",
                                      ["method", "route"], buckets=LATENCY_BUCKETS, registry=r)
        self.http_requests = Counter("nextup_http_requests", "Web requests answered",
                                     ["method", "route", "status"], registry=r)
        r.register(_ScrapeTime(self))
        watch_transitions(coordinator.store, self.observe)
        if callable(getattr(bridge, "add_timer", None)):
            bridge.add_timer(lambda kind, seconds: self.mqtt_latency.labels(kind).observe(seconds))

    def observe(self, transitions: list[Transition]) -> None:
        """Count committed ticket transitions."""
        for t in transitions:
            if t.kind == "issued":
                self.issued.labels(t.service, t.channel or "unknown").inc()
            elif t.kind == "called":
                self.calls.labels(t.service).inc()
                if t.wait_s is not None:
                    self.waits.labels(t.service).observe(max(t.wait_s, 0.0))
            elif t.kind in OUTCOMES:
                self.outcomes.labels(t.service, t.kind).inc()
                if t.service_s is not None:
                    self.service_times.labels(t.service).observe(max(t.service_s, 0.0))

    def close(self) -> None:
        unwatch_transitions(self.coordinator.store, self.observe)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _ScrapeTime:
    """Figures read when Prometheus scrapes: they live in the bridge and the database already."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        bridge = self.metrics.bridge
        coordinator = self.metrics.coordinator
        rejections = getattr(getattr(bridge, "rejections", None), "counts", None)
        if rejections is not None:
            rejected = CounterMetricFamily("nextup_rejections", "Device messages rejected, by reason",
                                           labels=["reason"])
            for reason, count in sorted(dict(rejections).items()):
                rejected.add_metric([reason], count)
            yield rejected
        if isinstance(getattr(bridge, "reconnects", None), int):
            yield CounterMetricFamily("nextup_mqtt_reconnects", "Times central lost the broker and came back",
                                      value=bridge.reconnects)
        if getattr(bridge, "connected", None) is not None:
            yield GaugeMetricFamily("nextup_mqtt_connected", "1 while central is connected to the broker",
                                    value=1 if bridge.connected.is_set() else 0)
        online = GaugeMetricFamily("nextup_devices_online", "Registered devices whose status is online",
                                   labels=["kind"])
        registered = GaugeMetricFamily("nextup_devices", "Registered devices", labels=["kind"])
        waiting = GaugeMetricFamily("nextup_waiting", "Tickets waiting now", labels=["service"])
        with coordinator.store.read() as s:
            counts = s.execute(select(DeviceRow.kind, DeviceRow.online, func.count())
                               .group_by(DeviceRow.kind, DeviceRow.online)).all()
        by_kind: dict[str, list[int]] = {}
        for kind, is_online, count in counts:
            by_kind.setdefault(kind, [0, 0])[1 if is_online else 0] += count
        for kind, (off, on) in sorted(by_kind.items()):
            online.add_metric([kind], on)
            registered.add_metric([kind], off + on)
        for service, count in coordinator.services():
            waiting.add_metric([service.key], count)
        yield online
        yield registered
        yield waiting
        app = self.metrics.app
        hub = app.extensions.get("nextup.live") if app is not None else None
        if hub is not None:
            yield GaugeMetricFamily("nextup_live_streams", "Browsers following live updates now",
                                    value=hub.open_streams)


# --- the route ---------------------------------------------------------------------------------


def init_app(app: Flask) -> Metrics:
    """Add ``/metrics`` and time every request of ``app`` (the factory calls this once)."""
    metrics = Metrics(app.extensions["nextup.coordinator"], app.extensions.get("nextup.bridge"), app)
    app.extensions[EXTENSION] = metrics

    @app.before_request
    def _start_timer() -> None:
        g.nextup_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.pop("nextup_started", None)
        if started is not None:
            rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
            metrics.http_latency.labels(request.method, rule).observe(time.perf_counter() - started)
            metrics.http_requests.labels(request.method, rule, str(response.status_code)).inc()
        return response

    def metrics_view() -> Response:
        token = app.config.get("METRICS_TOKEN")
        if token:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                abort(401)
        return Response(metrics.exposition(), content_type=CONTENT_TYPE_LATEST,
                        headers={"Cache-Control": "no-store"})

    app.add_url_rule("/metrics", "metrics", metrics_view, methods=["GET"])
    return metrics


def metrics_of(app: Flask) -> Metrics:
    return app.extensions[EXTENSION]
