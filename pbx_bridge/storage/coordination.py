"""What bridge replicas sharing one PostgreSQL agree on through it: advisory locks.

Replicas (several ``pbx-bridge serve`` on one database, docs/design.md "Replicas") each
follow the same Asterisk with their own AMI link and tracker, so two of them may act on
one view at the same instant, or both react to one AMI event. PostgreSQL's advisory
locks order them; nothing else is invented here:

- :meth:`Coordination.hold` (a view, a catalog row): waits until this process holds the
  lock, releases it when the block ends. Session-level locks, taken with
  ``pg_try_advisory_lock`` on one connection of its own (never the storage's shared
  connection: an AMI round trip is awaited while it is held), so a wait never blocks that
  connection for the other views; contended, it tries again after 2, 4 ... 50 ms. One
  round trip to take it, one (not awaited by the caller) to release it. A replica that
  dies releases its locks with its session.
- :meth:`Coordination.lead`: whether this process does a periodic job everyone shares
  (the retention sweep, the catalog's reconcile with the folders). The first replica to
  ask keeps that lock for as long as its session lives; the others skip their rounds, and
  one of them takes over at its next round after the leader died.

On SQLite there is one process (a file database is not shared between hosts): every
lock is granted at once, without I/O, and this process leads every job.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator

import psycopg
from sqlalchemy.engine import URL

from pbx_bridge.storage.url import StorageError

__all__ = ["Coordination", "lock_key"]

log = logging.getLogger("pbx_bridge.storage")

# The first int4 of each two-key advisory lock: which kind of thing is locked. (The
# directory writers' lock, storage/database.py, is a one-key bigint lock: another space.)
VIEW, ROW, ROLE = 0x70627601, 0x70627602, 0x70627603
_FIRST_RETRY, _LAST_RETRY = 0.002, 0.05


def lock_key(*parts: str) -> int:
    """A signed int4 from text (the second key of a two-key advisory lock). Two things
    that share a key only wait for each other; they never both run as one."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


class Coordination:
    """Advisory locks on a PostgreSQL shared by replicas; a no-op for one process."""

    def __init__(self, url: URL | None) -> None:
        """``url``: the PostgreSQL database the replicas share; None: one process."""
        self.shared = url is not None
        self._conninfo = (
            url.set(drivername="postgresql").render_as_string(hide_password=False)
            if url is not None else ""
        )
        self._display = url.set(drivername="postgresql").render_as_string() if url else ""
        self._password = str(url.password) if url is not None and url.password else None
        self._conn: psycopg.AsyncConnection[tuple[object, ...]] | None = None  # on first use
        self._connecting = asyncio.Lock()
        self._leading: set[str] = set()
        self._releasing: set[asyncio.Task[None]] = set()
        self.waits = 0  # contended takes (each waited at least one retry)

    @classmethod
    def for_database(cls, url: URL) -> Coordination:
        return cls(url if url.get_backend_name() == "postgresql" else None)

    async def released(self) -> None:
        """Until every lock given back has been released in PostgreSQL."""
        if self._releasing:
            await asyncio.gather(*self._releasing, return_exceptions=True)

    async def close(self) -> None:
        await self.released()
        conn, self._conn = self._conn, None
        self._leading.clear()
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    # ------------------------------------------------------------------ locks
    @contextlib.asynccontextmanager
    async def hold(self, kind: int, *parts: str) -> AsyncIterator[None]:
        """Hold the lock (``kind``, ``parts``) for the block, across replicas.
        StorageError if PostgreSQL cannot be reached (the caller cannot know it alone)."""
        if not self.shared:
            yield
            return
        key = lock_key(*parts)
        delay = _FIRST_RETRY
        while not await self._ask("SELECT pg_try_advisory_lock(%s, %s)", kind, key):
            self.waits += delay == _FIRST_RETRY
            await asyncio.sleep(delay)
            delay = min(2 * delay, _LAST_RETRY)
        try:
            yield
        finally:
            # Not awaited: the answer need not wait for it. Queued on the connection
            # behind nothing of this view (session locks count: a take of this process
            # that comes first only adds one), and a cancelled request cannot skip it.
            task = asyncio.create_task(self._release(kind, key))
            self._releasing.add(task)
            task.add_done_callback(self._releasing.discard)

    async def _release(self, kind: int, key: int) -> None:
        try:
            await self._ask("SELECT pg_advisory_unlock(%s, %s)", kind, key)
        except StorageError as exc:  # the session is gone, and its locks with it
            log.info("advisory lock (%d, %d): %s", kind, key, exc)

    async def lead(self, role: str) -> bool:
        """Does this process do ``role`` (a periodic job) now? Kept once won, until this
        process's session ends. False (not raised) when PostgreSQL cannot be reached."""
        if not self.shared:
            return True
        try:
            if role in self._leading:
                await self._ask("SELECT true")  # the session, and so the lock, lives
                return True
            if await self._ask("SELECT pg_try_advisory_lock(%s, %s)", ROLE, lock_key(role)):
                self._leading.add(role)
                log.info("this replica now does the %s", role)
                return True
        except StorageError as exc:
            log.warning("cannot tell who does the %s: %s", role, exc)
        return False

    # ------------------------------------------------------------------ the connection
    async def _ask(self, sql: str, *params: int) -> bool:
        """One query answering one boolean, on the lock connection (connected, or made
        again after PostgreSQL dropped it: the locks of the old session are gone)."""
        for attempt in (1, 2):
            conn = await self._connection()
            try:
                cur = await conn.execute(sql, params or None)
                row = await cur.fetchone()
                return bool(row[0]) if row else False
            except psycopg.OperationalError as exc:
                self._drop(conn)
                if attempt == 2:
                    raise self._error(exc) from None
        raise AssertionError("unreachable")

    def _error(self, exc: Exception) -> StorageError:
        """One line naming the database, never its password."""
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if self._password:
            text = text.replace(self._password, "***")
        return StorageError(f"database {self._display}: {text}")

    def _drop(self, conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
        if self._conn is conn:
            self._conn = None
            self._leading.clear()  # a new session holds nothing

    async def _connection(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        async with self._connecting:
            if self._conn is None or self._conn.closed:
                self._leading.clear()
                try:
                    self._conn = await psycopg.AsyncConnection.connect(
                        self._conninfo, autocommit=True, connect_timeout=10,
                        application_name="pbx-bridge locks",
                    )
                except psycopg.OperationalError as exc:
                    raise self._error(exc) from None
            return self._conn
