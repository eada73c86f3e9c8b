"""Forks ticket writers for the SQLite kill test: ``python faults_sqlite_writer.py DATABASE_URL``.

Importing SQLAlchemy and the coordinator and compiling the statements takes
most of a second; a fork of a process that has done it once (with its
connections closed) starts a writer in milliseconds, so a test can kill a
hundred writers in seconds.  Each line on stdin ("go") forks one
writer; the writer prints ``writing`` once its store is open, then the
number of each ticket right after its transaction committed, and never stops
by itself.  The parent prints ``child <pid>`` for each fork.
"""

from __future__ import annotations

import os
import sys

from central.coordinator import Coordinator
from central.domain import Channel, PointAction
from central.store import Store

SERVICES = ("cash", "loans", "accounts")


def say(line: str) -> None:
    # One write() per line: a pipe takes it whole, even when the writer is killed right after.
    os.write(1, (line + "\n").encode())


def write_forever(coordinator: Coordinator, first: int) -> None:
    say("writing")
    i = first
    while True:
        write(coordinator, i)
        i += 1


def write(coordinator: Coordinator, i: int) -> None:
    view = coordinator.issue_ticket(SERVICES[i % 3], channel=Channel.API)
    say(f"ticket {view.number}")
    if i % 5 == 4:
        # Updates too, not only inserts: call the next one at a point.
        coordinator.point_command(1 + i % 4, PointAction.NEXT, command_id=f"{os.getpid()}-{i}",
                                  source="test:writer")


def main() -> None:
    store = Store(sys.argv[1])
    coordinator = Coordinator(store)
    for i in range(5):  # warm: SQLAlchemy compiles its statements once, and the forks inherit them
        write(coordinator, i)
    # No connection may live on into the forks: each opens its own.
    store.engine.dispose()
    say("ready")
    for n, line in enumerate(sys.stdin):
        if line.strip() != "go":
            continue
        pid = os.fork()
        if pid == 0:
            try:
                write_forever(coordinator, 1000 * (n + 1))
            finally:
                os._exit(1)
        say(f"child {pid}")
        while True:  # reap the writers killed so far
            try:
                done, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if done == 0:
                break


if __name__ == "__main__":
    main()
