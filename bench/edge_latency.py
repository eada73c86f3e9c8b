"""How long a person waits at the edge: kiosk press to ticket, point press to LCD, broker back to command.

Runs a real Mosquitto, the real central (SQLite) and a sim kiosk and point
unit in this process.  ``python -m bench.edge_latency [--presses N]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

from escpos.printer import Dummy

from bench.site import BenchSite, bench_site, percentile
from edge.kiosk import Kiosk
from edge.pointbutton import PointUnit
from nextup.settings import Settings, load


def _wait(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError("the edge did not answer in time")
        time.sleep(0.0005)


def _summary(name: str, samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return (f"{name:<38} n={len(ms):<4} median {statistics.median(ms):7.1f} ms"
            f"   p95 {percentile(ms, 95):7.1f} ms   max {max(ms):7.1f} ms")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--presses", type=int, default=50)
    args = parser.parse_args(argv)
    with bench_site() as site:
        run(site, args.presses)


def run(site: BenchSite, presses: int) -> None:
    broker = site.broker

    def settings(device_id: str, toml: str) -> Settings:
        path = site.directory / f"{device_id}.toml"
        path.write_text(toml)
        return load(path, env={"NEXTUP_DEVICE_ID": device_id, "NEXTUP_MQTT_URL": site.device_urls[device_id],
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
