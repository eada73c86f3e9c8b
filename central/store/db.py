"""Engine and transactions.

SQLite (the embedded default) runs in WAL mode and starts every writing
transaction with ``BEGIN IMMEDIATE``: writers queue for the lock at the start
instead of failing half-way, which makes "call next" one atomic step.
PostgreSQL writers additionally lock the rows they decide on.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Integer, create_engine, event, func, inspect, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from central.domain.errors import StoreUnavailable

log = logging.getLogger(__name__)
CHECKPOINT_EVERY_S = 0.5


def normalise_url(url: str) -> str:
    """Use psycopg 3 for a plain ``postgresql://`` URL."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    return url


def make_engine(url: str, *, background_checkpoint: bool = False, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        _set_up_sqlite(engine, autocheckpoint=not background_checkpoint)
        return engine
    # No ping before each use (a round trip per transaction): a connection the server dropped fails
    # its transaction with ``StoreUnavailable(stale_connection=True)``, and the pool replaces them all.
    return create_engine(url, pool_size=10, max_overflow=20, **kwargs)


def _set_up_sqlite(engine: Engine, *, autocheckpoint: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN, so we choose its kind.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process crash; only an OS crash may lose the last commits.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        if not autocheckpoint:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


@contextmanager
def _unavailable_as_error() -> Iterator[None]:
    # Operational errors are the database's state, not the work's fault: unreachable, restarting,
    # a deadlock or serialization failure, SQLite locked or its disk full. Programming and
    # integrity errors stay what they are.
    try:
        yield
    except DBAPIError as exc:
        if not (isinstance(exc, OperationalError) or exc.connection_invalidated):
            raise
        text = str(exc.orig).strip()
        reason = text.splitlines()[0] if text else type(exc.orig).__name__
        raise StoreUnavailable(
            f"The database is unavailable: {reason}", stale_connection=exc.connection_invalidated
        ) from exc


class Store:
    """The database of one site: sessions for reading and for writing."""

    def __init__(self, url: str, *, background_checkpoint: bool = False, **engine_kwargs: Any) -> None:
        """``background_checkpoint``: on SQLite, copy the write-ahead log into the database from a
        thread of its own instead of in the commit that fills it (for central's long-running process)."""
        self.url = normalise_url(url)
        self.engine = make_engine(self.url, background_checkpoint=background_checkpoint, **engine_kwargs)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._checkpointer: _Checkpointer | None = None
        path = self.engine.url.database
        if background_checkpoint and self.is_sqlite and path and path != ":memory:":
            self._checkpointer = _Checkpointer(path)
        writer = self.engine.execution_options(sqlite_begin="IMMEDIATE") if self.is_sqlite else self.engine
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(writer, expire_on_commit=False)
        if self.is_sqlite:
            event.listen(self._write, "before_flush", _number_new_rows)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session that only reads; rolled back at the end.  ``StoreUnavailable`` when the
        database cannot be reached."""
        with _unavailable_as_error(), self._read() as session:
            try:
                yield session
            finally:
                session.rollback()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A writing transaction: committed when the block ends, rolled back on any error;
        ``StoreUnavailable`` when the database cannot be reached or refuses for now."""
        with _unavailable_as_error(), self._write() as session, session.begin():
            yield session

    def for_update(self, statement: Any, *, skip_locked: bool = False, of: Any = None) -> Any:
        """``statement`` locking the rows of its main table (or of ``of``) where the database can
        (PostgreSQL); with ``skip_locked``, rows another transaction holds are passed over instead
        of waited for.

        SQLite needs no row locks: its writing transactions already run one at a time.
        """
        if self.is_sqlite:
            return statement
        of = statement.column_descriptions[0]["entity"] if of is None else of
        return statement.with_for_update(of=of, skip_locked=skip_locked)

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        self.engine.dispose()


class _Checkpointer:
    """Copies SQLite's write-ahead log into the database every ``CHECKPOINT_EVERY_S``.

    SQLite otherwise does it inside the commit that takes the log past 1,000 pages: on a
    busy central that was one press in fifty, and the slowest (7-10 ms against 3.4 at p50).
    A passive checkpoint waits for no one and blocks no one; SQLite lets go of Python's
    lock while it copies, so it runs beside the worker on another core.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        connection = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        try:
            while not self._stopping.wait(CHECKPOINT_EVERY_S):
                self._checkpoint(connection)
            self._checkpoint(connection)  # leave a short log behind at a clean stop
        finally:
            connection.close()

    @staticmethod
    def _checkpoint(connection: sqlite3.Connection) -> None:
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # a locked or vanished file: the next round tries again
            log.warning("SQLite checkpoint failed: %s", exc)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)


# SQLite cannot tie the ids a multi-row INSERT ... RETURNING hands back to its
# rows, so the ORM inserts rows whose id the database chooses one statement at a
# time (a batch of tickets was two statements per ticket). Rows numbered here go
# in as one statement per table. The writer holds the database's write lock from
# BEGIN IMMEDIATE, so no one else inserts meanwhile, and the numbers are the ones
# SQLite itself would choose (one above the largest id). A write session is one
# transaction (``Store.write``), so what it has numbered is never stale.
_NEXT_IDS = "nextup.next_ids"


def reserve_ids(session: Session, column: Any, count: int) -> int:
    """The first of ``count`` new ids of ``column`` for a SQLite write session to insert rows with."""
    next_ids: dict[Any, int] = session.info.setdefault(_NEXT_IDS, {})
    if column not in next_ids:
        next_ids[column] = (session.execute(select(func.max(column))).scalar() or 0) + 1
    first = next_ids[column]
    next_ids[column] += count
    return first


def _number_new_rows(session: Session, _flush_context: Any, _instances: Any) -> None:
    for row in session.new:
        mapper = inspect(row).mapper
        if len(mapper.primary_key) != 1:
            continue
        column = mapper.primary_key[0]
        if not isinstance(column.type, Integer) or column.autoincrement not in ("auto", True):
            continue
        key = mapper.get_property_by_column(column).key
        if getattr(row, key) is None:
            setattr(row, key, reserve_ids(session, column, 1))
