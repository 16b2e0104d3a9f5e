"""On SQLite, one `pbx-bridge serve` per database file.

Replicas share a PostgreSQL, whose advisory locks order them (storage/coordination.py).
A SQLite file has nothing of the kind: two services on one file would each start the
"always" recordings, finish every catalog row, deliver every webhook and sweep. So
`serve` holds an exclusive lock on ``<file>.serve-lock`` while it runs, and a second one
is refused in one line. The lock is the kernel's (flock): it goes with its process, even
killed, so a restart never finds a stale one. The admin commands (``directory load``,
``token``, ...) take none: they are meant to run beside the service.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import URL

from pbx_bridge.storage.url import StorageError

__all__ = ["one_serve_per_file"]


@contextlib.contextmanager
def one_serve_per_file(url: URL) -> Iterator[None]:
    """Held for ``serve``'s lifetime on a SQLite file; nothing on PostgreSQL or in memory.
    StorageError (one line) when another process holds it."""
    database = url.database or ":memory:"
    if url.get_backend_name() != "sqlite" or database == ":memory:" or database.startswith(
            "file:"):
        yield
        return
    path = Path(f"{database}.serve-lock")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StorageError(f"database {database}: {path}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise StorageError(
                f"database {database}: another pbx-bridge serve (pid {holder}) uses it; a "
                "SQLite file serves one process (replicas need PostgreSQL: "
                "docs/deployment-nodes.md)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
