"""A real site for benchmarks: Mosquitto, a migrated database with the demo site, central."""

from __future__ import annotations

import contextlib
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt

from broker.mosquitto import RunningBroker
from central.runner import Central
from central.sitefile import apply_site
from central.sitespec import parse_site_file
from central.store import Store
from central.store.migrate import upgrade
from nextup.contract import QOS
from nextup.mqtt import no_delay
from nextup.settings import Settings

SITE_FILE = Path(__file__).resolve().parent.parent / "examples" / "demo-site.toml"


@dataclass
class BenchSite:
    broker: RunningBroker
    central: Central
    device_urls: dict[str, str]
    directory: Path


@contextmanager
def bench_site(database_url: str | None = None) -> Iterator[BenchSite]:
    """Broker + central (SQLite in a temp dir unless ``database_url``) with the demo site's devices."""
    with tempfile.TemporaryDirectory(prefix="nextup-bench-") as tmp:
        directory = Path(tmp)
        url = database_url or f"sqlite:///{directory / 'bench.sqlite3'}"
        upgrade(url)
        store = Store(url)
        spec = parse_site_file(SITE_FILE)
        apply_site(store, spec)
        store.close()
        with RunningBroker(directory / "broker") as broker:
            urls = {d.id: broker.add_device(d.id, d.kind.value) for d in spec.devices}
            settings = Settings(site=broker.site, database_url=url, mqtt_url=broker.central_url)
            with Central(settings) as central:
                if not central.bridge.wait_connected(10):
                    raise TimeoutError("central did not connect")
                yield BenchSite(broker, central, urls, directory)


def mqtt_client(url: str, client_id: str | None = None, *, max_inflight: int | None = None) -> mqtt.Client:
    """An MQTT 5 client connected to ``url`` (``mqtt://user:password@host:port``), its loop running.

    Nagle is off, as on every Nextup client, so a benchmark times the broker and not the kernel's delay.
    """
    parts = urlsplit(url)
    client_id = client_id or f"bench-{uuid.uuid4().hex[:8]}"
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(unquote(parts.username or ""), unquote(parts.password or ""))
    if max_inflight is not None:
        client.max_inflight_messages_set(max_inflight)
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    no_delay(client)
    client.loop_start()
    return client


def subscribe(client: mqtt.Client, topic: str) -> None:
    """Subscribe and wait for the broker's SUBACK, so nothing published next is missed."""
    done = threading.Event()
    client.on_subscribe = lambda *a: done.set()
    client.subscribe(topic, qos=QOS)
    if not done.wait(5):
        raise TimeoutError(f"no SUBACK for {topic}")


def close(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def latency_line(name: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (f"{name:<34} p50 {percentile(ms, 50):7.2f} ms  p99 {percentile(ms, 99):7.2f} ms  "
            f"mean {statistics.fmean(ms):7.2f} ms  (n={len(ms)})")


# --- bigger halls, PostgreSQL, processes -------------------------------------------------

POSTGRES_URL = os.environ.get("NEXTUP_BENCH_POSTGRES_URL",
                              os.environ.get("NEXTUP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
REPO = Path(__file__).resolve().parent.parent


def hall_site(points: int, services: int = 1) -> str:
    """A site file: ``services`` services (strict first come, first served), ``points`` points each
    serving one of them in turn, a unit at each point, a kiosk and a display."""
    parts = ['[site]\nname = "Big hall"\ntimezone = "UTC"\nlanguage = "en"\npriority_policy = "strict"\n',
             '[[priority]]\nkey = "all"\nname = "Everyone"\n',
             '[[device]]\nid = "kiosk-1"\nkind = "kiosk"\n',
             '[[device]]\nid = "display-1"\nkind = "display"\n']
    for k in range(services):
        parts.append(f'[[service]]\nkey = "s{k}"\nname = "Service {k}"\nprefix = "{chr(65 + k)}"\n')
    for n in range(1, points + 1):
        parts.append(f'[[point]]\nserial = {n}\nname = "Window {n}"\nservices = ["s{(n - 1) % services}"]\n')
        parts.append(f'[[device]]\nid = "point-{n}"\nkind = "point"\npoint = {n}\n')
    return "\n".join(parts)


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema (the URL's search path), dropped at the end."""
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        sep = "&" if "?" in POSTGRES_URL else "?"
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def prepare_database(url: str, site_text: str | None = None) -> None:
    """Migrate ``url`` and apply a site (the demo site by default)."""
    from central.sitespec import parse_site_text

    upgrade(url)
    store = Store(url)
    try:
        apply_site(store, parse_site_text(site_text) if site_text else parse_site_file(SITE_FILE))
    finally:
        store.close()


def bulk_tickets(url: str, service: str, count: int, *, state: str = "waiting",
                 issued: datetime | None = None, spread_s: float = 0.0) -> None:
    """Insert ``count`` tickets of ``service`` with plain SQL, numbered after the day's last, and move the
    day's counter on: a long queue (``waiting``) or a long history (``served``, with ``spread_s`` seconds
    between issues going back from ``issued``) without paying for each through central."""
    from sqlalchemy import insert, select

    from central.store.models import DayCounterRow, PriorityRow, ServiceRow, TicketEventRow, TicketRow

    now = issued or datetime.now(UTC)
    store = Store(url)
    try:
        with store.write() as s:
            row = s.scalars(select(ServiceRow).where(ServiceRow.key == service)).one()
            priority = s.scalars(select(PriorityRow).order_by(PriorityRow.rank.desc())).first()
            common = dict(service_id=row.id, priority=priority.key, priority_rank=priority.rank,
                          channel="kiosk", language=None, state=state)
            # History goes on days before today, so today's numbers are untouched.
            rows, events = [], []
            counters: dict[Any, int] = {}
            if state != "waiting":
                for i in range(count):
                    at = now - timedelta(seconds=spread_s * (count - i))
                    day = at.date() if at.date() < now.date() else now.date() - timedelta(days=1)
                    counters[day] = counters.get(day, 0) + 1
                    rows.append(dict(common, number=f"{row.prefix}-{counters[day]:03d}", day=day,
                                     seq=counters[day], token=secrets.token_urlsafe(24), issued_at=at,
                                     called_at=at + timedelta(seconds=30),
                                     finished_at=at + timedelta(seconds=90), point_serial=1, calls=1))
            else:
                counter = s.get(DayCounterRow, (row.id, now.date()))
                first = counter.last if counter else 0
                for i in range(1, count + 1):
                    rows.append(dict(common, number=f"{row.prefix}-{first + i:03d}", day=now.date(),
                                     seq=first + i, token=secrets.token_urlsafe(24),
                                     issued_at=now + timedelta(microseconds=i), calls=0))
                if counter is None:
                    s.add(DayCounterRow(service_id=row.id, day=now.date(), last=first + count))
                else:
                    counter.last = first + count
            for start in range(0, len(rows), 5000):
                chunk = rows[start:start + 5000]
                ids = s.scalars(insert(TicketRow).returning(TicketRow.id), chunk).all()
                events += [dict(ticket_id=i, at=r["issued_at"], kind="issued", service_key=service)
                           for i, r in zip(ids, chunk, strict=True)]
            for start in range(0, len(events), 5000):
                s.execute(insert(TicketEventRow), events[start:start + 5000])
            for day, last in counters.items():
                s.merge(DayCounterRow(service_id=row.id, day=day, last=last))
    finally:
        store.close()


def central_process(url: str, broker: RunningBroker, folder: Path, *, name: str = "a",
                    shared: bool = False, http_port: int = 0) -> subprocess.Popen[bytes]:
    """``nextup central`` in a process of its own; its log (JSON lines) in ``folder/central-<name>.log``."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "NEXTUP_DATABASE_URL": url, "NEXTUP_MQTT_URL": broker.central_url,
           "NEXTUP_SITE": broker.site, "NEXTUP_CENTRAL_ID": f"central-{broker.site}-{name}",
           "NEXTUP_INSTANCE": str(folder / name)}
    args = [sys.executable, "-m", "nextup.cli", "central", "--http", f"127.0.0.1:{http_port}"]
    if shared:
        args.append("--shared")
    log = open(folder / f"central-{name}.log", "wb")  # noqa: SIM115 - the process keeps it
    process = subprocess.Popen(args, env=env, stdout=log, stderr=log, cwd=REPO)
    deadline = time.monotonic() + 30
    while b"nextup central:" not in (folder / f"central-{name}.log").read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            text = (folder / f"central-{name}.log").read_text()
            raise RuntimeError(f"central {name} did not start:\n{text}")
        time.sleep(0.05)
    return process


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB (VmRSS of /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise LookupError(f"no VmRSS for {pid}")


def machine() -> str:
    """The CPU, core count and memory this run had."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, IndexError, ValueError):
        kb = int(Path("/proc/meminfo").read_text().splitlines()[0].split()[1])
        memory = f", {kb / 1024 / 1024:.0f} GB RAM"
    return f"{cpu}, {os.cpu_count()} cores{memory}, Python {sys.version.split()[0]}"
