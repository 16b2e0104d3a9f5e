"""One open database: SQLite (the default) or PostgreSQL, behind one SQLAlchemy connection.

Why one connection behind a lock, as the SQLite store always had: every request reads the
directory from memory, so the database sees only the writes and the change checks, and
SQLite's ``PRAGMA data_version`` is per connection anyway. The connection runs in
autocommit mode and :meth:`Database.transaction` opens its transactions explicitly, so that
no read ever holds a snapshot open between calls, and so that SQLite writers take the
write lock up front (``BEGIN IMMEDIATE``: no deadlock when two processes upgrade a read
to a write). PostgreSQL writers take one advisory lock, so that writers are serialized
there as on SQLite (``directory load`` checks the whole directory before writing).

The change check (:meth:`Database.cache_generation`) tells a process cheaply whether the
data it keeps in memory may be stale: a write that can make a cache wrong bumps that
cache's row in ``cache_versions`` in the same transaction. SQLite: ``PRAGMA data_version``
(no I/O) says whether another connection committed anything; only then is the row read.
PostgreSQL: the row is read (one primary-key read) on a ``strict`` check, and otherwise
at most every ``check_interval`` seconds.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import create_engine, event, update
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from pbx_bridge.storage.schema import cache_versions
from pbx_bridge.storage.url import StorageError, display_url, parse_url, prepare_sqlite_file

__all__ = ["Backend", "Database"]

Backend = Literal["sqlite", "postgresql"]

# Arbitrary, fixed: the key of the advisory lock PostgreSQL writers share.
_WRITE_LOCK_KEY = 0x7062785F62726467  # "pbx_brdg"
_BUSY_TIMEOUT_MS = 10_000


def _sqlite_pragmas(memory: bool) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        if not memory:
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()

    return on_connect


def _engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        memory = url.database in (None, "", ":memory:")
        engine = create_engine(
            url,
            isolation_level="AUTOCOMMIT",
            hide_parameters=True,  # a failed statement's error (logged) holds no secret
            # One DBAPI connection whatever the thread: the service also writes from a
            # worker thread (token purge), always under Database's lock.
            poolclass=StaticPool,
            connect_args={"check_same_thread": False, "timeout": _BUSY_TIMEOUT_MS / 1000},
        )
        event.listen(engine, "connect", _sqlite_pragmas(memory))
        return engine
    return create_engine(
        url,
        isolation_level="AUTOCOMMIT",
        hide_parameters=True,  # a failed statement's error (logged) holds no secret
        pool_size=1,
        max_overflow=0,
        connect_args={"connect_timeout": 10, "application_name": "pbx-bridge"},
    )


class Database:
    """An open database. Thread-safe: one connection, used under a lock."""

    def __init__(self, url: URL, *, check_interval: float = 0.1) -> None:
        self.url = url
        self.backend: Backend = "sqlite" if url.get_backend_name() == "sqlite" else "postgresql"
        self.display = display_url(url)
        self.check_interval = check_interval
        self.lock = threading.RLock()
        if self.backend == "sqlite":
            prepare_sqlite_file(url)
        self._engine = _engine(url)
        try:
            self._conn = self._engine.connect()
        except SQLAlchemyError as exc:
            self._engine.dispose()
            raise self.error(exc) from None
        # The change check's state (see cache_generation).
        placeholder = "?" if self.backend == "sqlite" else "%s"
        self._version_sql = f"SELECT version FROM cache_versions WHERE name = {placeholder}"
        self._generation = 0
        self._versions: dict[str, int] = {}
        self._data_version: int | None = None
        self._checked_at = -1e18

    @classmethod
    def open(cls, target: str | Path, *, check_interval: float = 0.1) -> Database:
        """Open a database by URL (``sqlite:///FILE``, ``postgresql://...``) or file path."""
        return cls(parse_url(target), check_interval=check_interval)

    @property
    def path(self) -> Path | str:
        """A SQLite file's path (``":memory:"`` in memory); else the masked URL."""
        if self.backend == "sqlite":
            database = self.url.database or ":memory:"
            return database if database == ":memory:" else Path(database)
        return self.display

    def close(self) -> None:
        with self.lock:
            with contextlib.suppress(SQLAlchemyError):
                self._conn.close()
            self._engine.dispose()

    def error(self, exc: BaseException) -> StorageError:
        """A one-line error naming the database (never its password)."""
        detail = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        text = str(detail).strip().splitlines()[0] if str(detail).strip() else type(exc).__name__
        if self.url.password:
            text = text.replace(str(self.url.password), "***")
        return StorageError(f"database {self.display}: {text}")

    # ----------------------------------------------------------------- transactions

    def _live(self) -> Connection:
        """The connection, reconnected if the server dropped it (PostgreSQL restarts)."""
        if self._conn.invalidated:
            self._conn.rollback()  # SQLAlchemy reconnects on the next use
        elif self._conn.closed:
            self._conn = self._engine.connect()
        return self._conn

    @contextlib.contextmanager
    def transaction(self, *, write: bool = False, invalidates: str | None = None) -> Iterator[
        Connection
    ]:
        """A transaction, committed when the block ends, rolled back on any exception.

        ``write``: serialized with every other writer (all processes) from its start.
        ``invalidates``: the name of a cache (row of ``cache_versions``) this write can
        make wrong; its version is bumped in the same transaction.
        """
        with self.lock:
            conn = self._live()
            begin = "BEGIN IMMEDIATE" if (write and self.backend == "sqlite") else "BEGIN"
            try:
                conn.exec_driver_sql(begin)
                if write and self.backend == "postgresql":
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_WRITE_LOCK_KEY})")
                yield conn
                bumped = None
                if invalidates is not None:
                    bumped = conn.execute(
                        update(cache_versions)
                        .where(cache_versions.c.name == invalidates)
                        .values(version=cache_versions.c.version + 1)
                        .returning(cache_versions.c.version)
                    ).scalar_one_or_none()
                conn.exec_driver_sql("COMMIT")
                conn.commit()  # SQLAlchemy's own bookkeeping (a no-op in autocommit)
            except BaseException:
                with contextlib.suppress(SQLAlchemyError):
                    conn.exec_driver_sql("ROLLBACK")
                with contextlib.suppress(SQLAlchemyError):
                    conn.rollback()
                raise
            if invalidates is not None:
                # Our own commit does not change our own PRAGMA data_version: note it here.
                self._generation += 1
                if bumped is not None:
                    self._versions[invalidates] = int(bumped)

    # ----------------------------------------------------------------- change check

    def cache_generation(self, name: str, *, strict: bool = False) -> int:
        """A number that changes after any write that bumped cache ``name``, in this process
        or another. ``strict``: on PostgreSQL, ask the server now rather than trusting a
        check younger than ``check_interval`` (SQLite's check is always exact)."""
        with self.lock:
            if self.backend == "sqlite":
                raw = self._conn.connection.dbapi_connection
                if raw is None or self._conn.invalidated:
                    raise StorageError(f"database {self.display}: connection lost")
                data_version = int(raw.execute("PRAGMA data_version").fetchone()[0])
                if data_version == self._data_version:
                    return self._generation
                self._data_version = data_version
            else:
                now = time.monotonic()
                if not strict and now - self._checked_at < self.check_interval:
                    return self._generation
                self._checked_at = now
            conn = self._live()
            try:
                # Driver-level SQL: half the cost of a compiled select on this hot path.
                version = conn.exec_driver_sql(self._version_sql, (name,)).scalar_one_or_none()
                conn.commit()
            except BaseException:
                with contextlib.suppress(SQLAlchemyError):
                    conn.rollback()
                self._data_version = None
                self._checked_at = -1e18
                raise
            value = -1 if version is None else int(version)
            if self._versions.get(name) != value:
                self._versions[name] = value
                self._generation += 1
            return self._generation
