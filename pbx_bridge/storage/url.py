"""The one database setting, ``[database] url``: parse it, name it safely, prepare SQLite.

``sqlite:///var/pbx_bridge.sqlite3`` (relative to the working directory),
``sqlite:////abs/path.sqlite3``, ``sqlite:///:memory:`` (a private in-memory database),
``postgresql://user@host/db`` (the driver is always psycopg 3). A bare file path or
``":memory:"`` is accepted where code (tests, tools) opens a database directly.

A password may only ever come inside the URL (from the environment or the config file);
:func:`display_url` is what logs and messages show: the URL with the password masked.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

__all__ = ["BACKENDS", "StorageError", "display_url", "parse_url", "prepare_sqlite_file"]

# Backend name -> the SQLAlchemy driver used for it.
BACKENDS = {"sqlite": "pysqlite", "postgresql": "psycopg"}
_POSTGRES_ALIASES = ("postgres",)


class StorageError(ValueError):
    """The database cannot be used. The message is one line, ready for the user (and
    never holds a password)."""


def parse_url(target: str | Path) -> URL:
    """The SQLAlchemy URL of a setting, a file path or ``":memory:"``.

    Raises :class:`StorageError` for anything but SQLite and PostgreSQL."""
    text = str(target)
    if isinstance(target, Path) or "://" not in text:
        if text in ("", "."):
            raise StorageError("database: an empty path is not a database")
        return URL.create("sqlite+pysqlite", database=text)
    try:
        url = make_url(text)
    except ArgumentError:
        raise StorageError("database url: not a valid URL") from None
    backend = url.get_backend_name()
    if backend in _POSTGRES_ALIASES:
        backend = "postgresql"
    driver = BACKENDS.get(backend)
    if driver is None:
        raise StorageError(
            f"database url: {backend!r} is not supported (sqlite:///FILE or postgresql://...)"
        )
    if url.drivername not in (backend, f"{backend}+{driver}", "postgres"):
        raise StorageError(
            f"database url: driver {url.drivername!r} is not supported ({backend}:// uses "
            f"{driver})"
        )
    url = url.set(drivername=f"{backend}+{driver}")
    if backend == "sqlite" and not url.database:
        url = url.set(database=":memory:")
    return url


def display_url(url: URL) -> str:
    """The URL for logs and messages: password masked (``***``); a SQLite file by path."""
    if url.get_backend_name() == "sqlite":
        return f"sqlite:///{url.database}"
    return url.set(drivername=url.get_backend_name()).render_as_string(hide_password=True)


def prepare_sqlite_file(url: URL) -> None:
    """Create a SQLite file's parent folders, and the file itself readable by its owner
    only (it holds hashes only, but keep it private)."""
    database = url.database or ":memory:"
    if database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    except OSError as exc:
        raise StorageError(f"database {path}: {exc.strerror or exc}") from None
