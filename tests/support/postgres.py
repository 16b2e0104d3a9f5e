"""A real PostgreSQL server for the storage tests, started by the test session itself
(the server: devtools/postgres.py, which the benches use too).

``initdb`` + ``pg_ctl`` from Debian's ``postgresql`` package (``/usr/lib/postgresql/<major>/bin``,
found by glob so any major version works; ``scripts/bootstrap`` installs the package),
in a temporary folder, listening only on a Unix socket in that folder (no TCP port, so
that test sessions side by side never clash). PostgreSQL refuses to run as root: as root
the server runs as ``nobody``, in a folder ``nobody`` owns. One server per test session;
each test gets a database of its own. Durability is switched off (fsync, ...): the tests
need a real server's behaviour, not its crash safety.

The fixtures (registered in tests/conftest.py):
- ``postgres_server``: the session's server; FAILS (never skips) when the binaries are
  missing: the storage suite must run on both backends.
- ``database_url``: parametrized ``sqlite`` / ``postgresql``: a fresh, empty database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.postgres import PostgresServer, find_bin_dir

__all__ = ["PostgresServer", "database_url", "find_bin_dir", "postgres_server"]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.fail(
            "PostgreSQL's initdb/pg_ctl not found (/usr/lib/postgresql/*/bin): the storage "
            "suite runs on PostgreSQL too. Install Debian's `postgresql` package "
            "(scripts/bootstrap does, as root).",
            pytrace=False,
        )
    server = PostgresServer(bin_dir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each backend (the storage suite runs on both)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'storage.sqlite3'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()
