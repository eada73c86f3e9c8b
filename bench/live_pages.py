"""1,000 customer ticket pages following their tickets live: from a call to the last page updated.

Each page is what the browser's ticket page does: an EventSource on
``/t/<token>/events`` and, when central answers 204 (its cap of streams), a
poll of ``/api/v1/tickets/<token>`` every 10 s (``LIVE_POLL_S``), starting at
a random moment as pages do.  1,000 tickets wait; a point calls the first one;
every page's "people ahead" changes.  Measured from the call to the moment the
last page has its new figure.

Central (SQLite, in this process) serves HTTP with the waitress server
``nextup central`` makes (``live.make_server``: a thread for each open stream,
up to ``--max-streams``, 1,000 as shipped; the pages over that cap poll).  The
baseline is the same 1,000 connections to a bare asyncio server that pushes one
event to all of them.

``python -m bench.live_pages [--pages 1000] [--max-streams 24]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import threading
import time
import uuid
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import select

from bench.site import bench_site, bulk_tickets, machine
from central.store.models import TicketRow

POLL_S = 10.0


async def _follow(session: aiohttp.ClientSession, base: str, token: str, ready: asyncio.Event,
                  called: asyncio.Event, state: dict[str, Any]) -> None:
    """One page: stream, or poll when the server is at its cap; ``state['updated']`` once ahead changed."""
    async with session.get(f"{base}/t/{token}/events") as response:
        if response.status == 200:
            state["mode"] = "stream"
            event = None
            async for raw in response.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event == "ticket":
                    ahead = json.loads(line[5:])["ahead"]
                    if "ahead" not in state:
                        state["ahead"] = ahead
                        ready.set()
                    elif ahead != state["ahead"]:
                        state["updated"] = time.perf_counter()
                        return
            return
    state["mode"] = "poll"
    async with session.get(f"{base}/api/v1/tickets/{token}") as response:
        state["ahead"] = (await response.json())["ahead"]
    ready.set()
    await called.wait()
    await asyncio.sleep(random.uniform(0, POLL_S))  # where in its 10 s cycle this page happens to be
    while True:
        async with session.get(f"{base}/api/v1/tickets/{token}") as response:
            if (await response.json())["ahead"] != state["ahead"]:
                state["updated"] = time.perf_counter()
                return
        await asyncio.sleep(POLL_S)


async def _pages(base: str, tokens: list[str], call: Any) -> tuple[float, dict[str, int], float]:
    """(seconds from the call to the last page updated, pages by mode, seconds to the first)."""
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        called = asyncio.Event()
        states: list[dict[str, Any]] = [{} for _ in tokens]
        readies = [asyncio.Event() for _ in tokens]
        tasks = []
        # Pages open over a few seconds, as people open them, not all in the same millisecond.
        for i in range(0, len(tokens), 50):
            batch = range(i, min(i + 50, len(tokens)))
            tasks += [asyncio.create_task(_follow(session, base, tokens[k], readies[k], called, states[k]))
                      for k in batch]
            await asyncio.wait_for(asyncio.gather(*(readies[k].wait() for k in batch)), 300)
        start = time.perf_counter()
        await asyncio.get_running_loop().run_in_executor(None, call)
        called.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 900)
    modes = {m: sum(s["mode"] == m for s in states) for m in ("stream", "poll")}
    times = [s["updated"] - start for s in states]
    return max(times), modes, min(times)


def central_pages(pages: int, streams: int) -> tuple[float, dict[str, int], float, dict[str, int]]:
    """As ``_pages``, and what central did: queue reads for the call, threads serving HTTP."""
    from central.web import live, positions

    with bench_site() as site:
        url = site.central.settings.database
        bulk_tickets(url, "cash", pages + 1)
        with site.central.store.read() as s:
            tokens = list(s.scalars(select(TicketRow.token).where(TicketRow.state == "waiting")
                                    .order_by(TicketRow.id)))[1:pages + 1]
        app = site.central.app
        live.hub(app).max_streams = streams  # LIVE_MAX_STREAMS, for a hub made before this run
        order = positions.positions(app)
        server = live.make_server(app, host="127.0.0.1", port=0)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        reads: dict[str, int] = {}
        try:
            coordinator = site.central.coordinator

            def call() -> None:
                reads["before"] = order.reads
                coordinator.point_command(1, "next", command_id=uuid.uuid4().hex, source="bench")

            base = f"http://127.0.0.1:{server.effective_port}"
            last, modes, first = asyncio.run(_pages(base, tokens, call))
            return last, modes, first, {"queue reads": order.reads - reads["before"],
                                        "threads": len(server.task_dispatcher.threads)}
        finally:
            live.close(app)
            server.task_dispatcher.shutdown()
            server.close()


def baseline_pages(pages: int) -> tuple[float, dict[str, int], float]:
    """The same pages against an asyncio server that sends one event to every open stream."""
    async def run() -> tuple[float, dict[str, int], float]:
        queues: list[asyncio.Queue[str]] = []

        async def events(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            queue: asyncio.Queue[str] = asyncio.Queue()
            queues.append(queue)
            await response.write(b'event: ticket\ndata: {"ahead": 1}\n\n')
            await response.write((await queue.get()).encode())
            return response

        app = web.Application()
        app.router.add_get("/t/{token}/events", events)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=2048)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        loop = asyncio.get_running_loop()

        def call() -> None:
            for q in list(queues):
                loop.call_soon_threadsafe(q.put_nowait, 'event: ticket\ndata: {"ahead": 0}\n\n')

        try:
            return await _pages(f"http://127.0.0.1:{port}", [f"t{i}" for i in range(pages)], call)
        finally:
            await runner.cleanup()

    return asyncio.run(run())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--max-streams", type=int, default=None,
                        help="central's cap of live streams (default: as shipped); pages over it poll")
    args = parser.parse_args(argv)
    from central.web import live

    streams = live.MAX_STREAMS if args.max_streams is None else args.max_streams
    # With a small cap the pages over it wait in waitress's queue: not news here.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)

    base, _, base_first = baseline_pages(args.pages)
    last, modes, first, work = central_pages(args.pages, streams)

    label = "central as shipped" if args.max_streams is None else "central"
    label += f" ({streams} streams at most)"
    print(f"a call -> {args.pages} live ticket pages updated ({machine()})")
    print(f"  bare asyncio server, one event to each (baseline)  last page {base * 1000:8.0f} ms"
          f"  (first {base_first * 1000:.0f} ms)")
    print(f"  {label:<50} last page {last * 1000:8.0f} ms  (first {first * 1000:.0f} ms;"
          f" {modes['stream']} streaming, {modes['poll']} polling every {POLL_S:.0f} s)"
          f"  {last / base:.1f}x baseline")
    print(f"  central read the queue {work['queue reads']} time(s) for the call;"
          f" {work['threads']} HTTP threads")
    print("  target: last page <= 1 s")


if __name__ == "__main__":
    main()
