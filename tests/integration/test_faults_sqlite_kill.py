"""SQLite under SIGKILL: a hundred writers killed at random moments lose no committed ticket."""

from __future__ import annotations

import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

WRITER = Path(__file__).resolve().parent.parent / "faults_sqlite_writer.py"
KILLS = 100


@pytest.mark.timeout(120)
def test_a_hundred_sigkills_during_writes_leave_the_database_whole(sqlite_url: str, make_store: Any,
                                                                   tmp_path: Path) -> None:
    make_store(sqlite_url).close()
    rng = random.Random(2024)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with open(tmp_path / "writer.log", "wb") as errors:
        zygote = subprocess.Popen([sys.executable, str(WRITER), sqlite_url], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=errors, env=env, cwd=tmp_path)
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert zygote.stdout is not None
        for raw in zygote.stdout:
            lines.put(raw.decode().rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    committed: list[str] = []

    unread: list[str] = []

    def expect(prefix: str, timeout: float = 20.0) -> str:
        # The parent's "child" and the child's "writing" race: a line read early waits in ``unread``.
        deadline = time.monotonic() + timeout
        while True:
            for i, line in enumerate(unread):
                if line.startswith(prefix):
                    return unread.pop(i)
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            if line.startswith("ticket "):
                committed.append(line.removeprefix("ticket "))
            unread.append(line)

    try:
        expect("ready")
        assert zygote.stdin is not None
        for _ in range(KILLS):
            zygote.stdin.write(b"go\n")
            zygote.stdin.flush()
            pid = int(expect("child ").split()[1])
            expect("writing")  # from here on it does nothing but write
            unread.clear()
            before = len(committed)
            time.sleep(rng.uniform(0.05, 0.15))
            try:
                expect("ticket ", timeout=0)
            except queue.Empty:
                # A slow machine: let this writer commit once, so that every kill has something to lose.
                expect("ticket ")
                time.sleep(rng.uniform(0, 0.02))
            assert len(committed) > before
            os.kill(pid, signal.SIGKILL)
            # Numbers printed before the kill are still in the pipe: take them.
            while True:
                try:
                    line = lines.get(timeout=0.02)
                except queue.Empty:
                    break
                if line.startswith("ticket "):
                    committed.append(line.removeprefix("ticket "))
    finally:
        zygote.kill()
        zygote.wait(10)

    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        stored = Counter(number for (number,) in db.execute("SELECT number FROM tickets"))
        events = db.execute("SELECT count(*) FROM tickets WHERE id NOT IN "
                            "(SELECT ticket_id FROM ticket_events WHERE kind = 'issued')").fetchone()[0]
    assert len(committed) == len(set(committed)), "a number was printed twice"
    missing = [n for n in committed if n not in stored]
    assert missing == [], f"{len(missing)} acknowledged tickets lost"
    assert all(count == 1 for count in stored.values())
    assert events == 0, "a ticket without its 'issued' event"
    # At most the one transaction in flight at each kill committed without being printed.
    assert len(stored) - len(committed) <= KILLS
