"""``nextup central``: the coordinator, its MQTT bridge and its HTTP server in one process."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from typing import Any

from central.bridge import Bridge
from central.coordinator import Coordinator, Message
from central.domain.errors import StoreUnavailable
from central.store import Store
from central.store.migrate import check_schema
from central.web import create_app, live
from nextup.settings import Settings

log = logging.getLogger(__name__)

TICK_S = 5.0


class Central:
    """A running coordinator: store, bridge and (optionally) HTTP server.  Use it in a ``with`` block."""

    def __init__(
        self,
        settings: Settings,
        *,
        http: tuple[str, int] | None = None,
        shared: bool = False,
        tick_s: float = TICK_S,
        web_config: dict[str, Any] | None = None,
    ) -> None:
        check_schema(settings.database)
        self.settings = settings
        self.store = Store(settings.database, background_checkpoint=True)
        self.coordinator = Coordinator(self.store, site=settings.site, public_url=settings.public_url)
        self.bridge = Bridge(
            self.coordinator, settings.mqtt, shared=shared, client_id=settings.central_id or None
        )
        self.app = create_app(self.coordinator, bridge=self.bridge, config=web_config)
        self.http = http
        self.tick_s = tick_s
        self._server: Any = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._published_site: list[Message] = []
        self._closed = False

    @property
    def http_port(self) -> int | None:
        return self._server.effective_port if self._server is not None else None

    def start(self) -> Central:
        self.bridge.start()
        if self.http is not None:
            # Each open live stream (server-sent events) holds a thread: the server adds them as streams open.
            self._server = live.make_server(self.app, host=self.http[0], port=self.http[1])
            self._spawn(self._serve_http, "http")
        self._spawn(self._tick, "tick")
        return self

    def _serve_http(self) -> None:
        try:
            self._server.run()
        except (OSError, ValueError):
            # Closing the listening socket from stop() ends waitress's loop this way.
            if not self._stopping.is_set():
                raise

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=f"central-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _tick(self) -> None:
        """Republish the site and device configs when they change without a queue event:
        the site opens or closes, or `nextup site apply` ran in another process."""
        while not self._stopping.wait(self.tick_s):
            try:
                current = [
                    m
                    for m in self.coordinator.snapshot()
                    if m.topic == self.coordinator.topics.site_state or "/config" in m.topic
                ]
                if current != self._published_site and self.bridge.connected.is_set():
                    self.bridge.publish([m for m in current if m not in self._published_site])
                    self._published_site = current
            except StoreUnavailable:
                continue  # the bridge logs the database's absence, once; the next tick tries again
            except Exception:
                log.exception("periodic republish failed")

    def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        if self._server is not None:
            live.close(self.app)  # live streams wait for news: end them so their threads are free to stop
            # Threads first: a stream's last write wakes the server's loop, which must still be open.
            self._server.task_dispatcher.shutdown()
            self._server.close()
        self.bridge.stop()
        for thread in self._threads:
            thread.join(timeout=5)
        self.store.close()

    def __enter__(self) -> Central:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def shared_central_id(settings: Settings) -> str:
    """An MQTT client id for one of several instances sharing a site: stable across restarts of this
    instance (the broker keeps its session under it), distinct for each machine and instance folder."""
    import hashlib
    import socket
    from pathlib import Path

    place = f"{socket.gethostname()}\0{Path(settings.instance).resolve()}"
    return f"central-{settings.site}-{hashlib.sha256(place.encode()).hexdigest()[:12]}"


def run_central(settings: Settings, *, host: str, port: int, shared: bool = False) -> None:
    """Run until SIGTERM or Ctrl-C; ``shared``: one of several instances sharing the site's device traffic."""
    from dataclasses import replace

    from nextup import logs

    logs.setup("central")
    if shared and not settings.central_id:
        settings = replace(settings, central_id=shared_central_id(settings))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with Central(settings, http=(host, port), shared=shared) as central:
        log.info(
            "nextup central: http://%s:%s, broker %r%s",
            host,
            central.http_port,
            settings.mqtt,
            " (shared)" if shared else "",
            extra={"central_id": settings.central_id or None},
        )
        with contextlib.suppress(KeyboardInterrupt):
            done.wait()
