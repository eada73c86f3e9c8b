"""A real site for benchmarks: Mosquitto, a migrated database with the demo site, central."""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from broker.mosquitto import RunningBroker
from central.runner import Central
from central.sitefile import apply_site
from central.sitespec import parse_site_file
from central.store import Store
from central.store.migrate import upgrade
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


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def latency_line(name: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (f"{name:<34} p50 {percentile(ms, 50):7.2f} ms  p99 {percentile(ms, 99):7.2f} ms  "
            f"mean {statistics.fmean(ms):7.2f} ms  (n={len(ms)})")
