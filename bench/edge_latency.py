"""How long a person waits at the edge: kiosk press to ticket, point press to LCD, broker back to command.

Runs a real Mosquitto, the real central (SQLite) and a sim kiosk and point
unit in this process.  ``python -m bench.edge_latency [--presses N]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from escpos.printer import Dummy

from broker.mosquitto import RunningBroker
from central.runner import Central
from central.sitefile import apply_site
from central.sitespec import parse_site_file
from central.store import Store
from central.store.migrate import upgrade
from edge.kiosk import Kiosk
from edge.pointbutton import PointUnit
from nextup.settings import Settings, load

SITE_FILE = Path(__file__).resolve().parent.parent / "examples" / "demo-site.toml"


def _wait(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError("the edge did not answer in time")
        time.sleep(0.0005)


def _summary(name: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return (f"{name:<38} n={len(ms):<4} median {statistics.median(ms):7.1f} ms   p95 {p95:7.1f} ms"
            f"   max {ms[-1]:7.1f} ms")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--presses", type=int, default=50)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nextup-bench-") as tmp:
        folder = Path(tmp)
        db = f"sqlite:///{folder / 'nextup.sqlite3'}"
        upgrade(db)
        store = Store(db)
        apply_site(store, parse_site_file(SITE_FILE))
        store.close()
        broker = RunningBroker(folder / "broker").start()
        try:
            central = Central(Settings(site=broker.site, database_url=db, mqtt_url=broker.central_url),
                              http=None)
            urls = {d: broker.add_device(d, k) for d, k in (("kiosk-1", "kiosk"), ("point-1", "point"))}
            central.start()
            central.bridge.wait_connected(10)
            try:
                run(folder, broker, urls, args.presses)
            finally:
                central.stop()
        finally:
            broker.stop()


def run(folder: Path, broker: RunningBroker, urls: dict[str, str], presses: int) -> None:
    def settings(device_id: str, toml: str) -> Settings:
        path = folder / f"{device_id}.toml"
        path.write_text(toml)
        return load(path, env={"NEXTUP_DEVICE_ID": device_id, "NEXTUP_MQTT_URL": urls[device_id],
                               "NEXTUP_SITE": broker.site})

    kiosk = Kiosk(settings("kiosk-1", "[kiosk]\nholdoff_s = 0.000001\n"), sim=True, printer=Dummy())
    unit = PointUnit(settings("point-1", "[point]\nholdoff_s = 0.000001\n"), sim=True, reconnect_min_s=0.1,
                     reconnect_max_s=0.5)
    with kiosk, unit:
        kiosk.runtime.wait_ready(10)
        unit.runtime.wait_ready(10)
        _wait(lambda: "cash" in kiosk.button_names)

        to_ticket = []
        for _ in range(presses):
            last = kiosk.printed[-1] if kiosk.printed else None
            start = time.perf_counter()
            kiosk.runtime.press("cash")
            _wait(lambda last=last: kiosk.printed and kiosk.printed[-1] is not last)
            to_ticket.append(time.perf_counter() - start)
        print(_summary("kiosk press -> ticket printed", to_ticket))

        to_lcd = []
        for _ in range(presses):
            shown = unit.lcd.lines[1]
            start = time.perf_counter()
            unit.runtime.press("next")
            _wait(lambda shown=shown: unit.lcd.lines[1] != shown)
            to_lcd.append(time.perf_counter() - start)
        print(_summary("point press -> LCD shows the call", to_lcd))

        broker.stop()
        _wait(lambda: unit.leds["error"].is_lit)
        unit.runtime.press("served")
        shown = unit.lcd.lines[1]
        start = time.perf_counter()
        broker.start()
        _wait(lambda: unit.lcd.lines[1] != shown and "offline" not in unit.lcd.lines[1], timeout=60)
        print(_summary("broker restart -> offline press applied", [time.perf_counter() - start]))


if __name__ == "__main__":
    main()
