"""The directory's handle on its storage :class:`~pbx_bridge.storage.Database`.

Shared by the directory rows (:mod:`.rows`), the apps (:mod:`.apps`) and the tokens
(:mod:`.tokens`): one lock over their in-memory caches, transactions whose database errors
become one-line :class:`DirectoryError` s, and the change check each cache follows.

The change check: every write that can make a cache wrong bumps the ``directory`` row of
``cache_versions`` in its own transaction (``transaction(invalidates=True)``), and
:meth:`~pbx_bridge.storage.Database.cache_generation` tells cheaply whether that happened,
in this process or another (SQLite: ``PRAGMA data_version``, no I/O; PostgreSQL: one
primary-key read, at most every ``change_check_interval`` seconds unless ``strict``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from pbx_bridge.storage import Database, StorageError

__all__ = ["ChangeCheck", "DirectoryDb", "DirectoryError"]

# The cache_versions row the directory's caches follow.
_CACHE = "directory"


class DirectoryError(StorageError):
    """A directory operation was refused. The message is one line, ready for the user."""


class DirectoryDb:
    """One storage database, as the directory's parts use it. May be shared by threads."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # Guards the in-memory caches; held by every write that invalidates them.
        self.lock = threading.RLock()

    @contextlib.contextmanager
    def transaction(
        self, *, write: bool = False, invalidates: bool = False, refused: str = ""
    ) -> Iterator[Connection]:
        """A storage transaction; database errors become one-line DirectoryErrors
        (an integrity error's prefixed with ``refused``). ``invalidates``: this write can
        make the caches wrong: it holds :attr:`lock` and bumps the change check."""
        with self.lock if invalidates else contextlib.nullcontext():
            try:
                with self.db.transaction(
                    write=write, invalidates=_CACHE if invalidates else None
                ) as conn:
                    yield conn
            except SQLAlchemyError as exc:
                prefix = refused if isinstance(exc, IntegrityError) else ""
                raise DirectoryError(prefix + str(self.db.error(exc))) from None

    def upsert(self, table: Any) -> Any:
        """An ``INSERT`` of this backend's dialect (for ``on_conflict_do_update``)."""
        dialect = postgresql if self.db.backend == "postgresql" else sqlite
        return dialect.insert(table)

    def change_check(self) -> ChangeCheck:
        """A new change check, for one in-memory cache."""
        return ChangeCheck(self.db)


class ChangeCheck:
    """Tells one in-memory cache whether the stored directory changed since it last asked."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._generation: int | None = None

    def changed(self, *, strict: bool) -> bool:
        """True the first time, and whenever a write bumped the directory since the last
        call. ``strict``: on PostgreSQL, ask the server now (see the module docstring)."""
        try:
            generation = self._db.cache_generation(_CACHE, strict=strict)
        except SQLAlchemyError as exc:
            raise DirectoryError(str(self._db.error(exc))) from None
        if generation == self._generation:
            return False
        self._generation = generation
        return True
