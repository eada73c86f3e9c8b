"""Cost as history grows: kiosk ticket request latency with 100,000 past tickets against an empty database.

The same requests (broker + central + store, one at a time) on a fresh
database and on one holding ``--history`` served tickets of past days,
bulk-inserted with SQL; on SQLite and on PostgreSQL.  The queue grows alike
in both runs, so the ratio is what the history alone costs.

``python -m bench.history [--history 100000] [--requests 500]``
"""

from __future__ import annotations

import argparse
import time
from contextlib import AbstractContextManager, nullcontext

from bench.site import bench_site, bulk_tickets, latency_line, machine, percentile, postgres_schema
from bench.ticket_requests import RoundTrips
from nextup.contract import Topics


def measure(database: AbstractContextManager[str | None], history: int,
            requests: int) -> tuple[list[float], float]:
    """(latencies, seconds the history took to insert) of ``requests`` ticket requests."""
    with database as url, bench_site(url) as site:
        took = 0.0
        if history:
            start = time.perf_counter()
            bulk_tickets(site.central.settings.database, "cash", history, state="served", spread_s=20)
            took = time.perf_counter() - start
        topics = Topics(site.broker.site)
        kiosk = RoundTrips(site.device_urls["kiosk-1"], topics.ticket_request("kiosk-1"),
                           topics.ticket_reply("kiosk-1"))
        kiosk.run(50, 1)  # warm-up
        _, latencies = kiosk.run(requests, 1)
        kiosk.close()
    return latencies, took


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--history", type=int, default=100_000, help="past tickets")
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args(argv)

    print(f"ticket request -> reply with {args.history:,} past tickets against none ({machine()})")
    for name, database in (("SQLite", nullcontext), ("PostgreSQL", postgres_schema)):
        empty, _ = measure(database(), 0, args.requests)
        full, took = measure(database(), args.history, args.requests)
        print(f"  {name}  (history inserted in {took:.1f} s)")
        print("    " + latency_line("empty database (baseline)", empty))
        print("    " + latency_line(f"{args.history:,} past tickets", full))
        print(f"    ratio p50 {percentile(full, 50) / percentile(empty, 50):.2f}x"
              f"  p99 {percentile(full, 99) / percentile(empty, 99):.2f}x   target: <= 1.2x")


if __name__ == "__main__":
    main()
