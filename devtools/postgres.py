"""A throw-away PostgreSQL server, started as an unprivileged user (for the storage
tests' fixtures, tests/support/postgres.py, and the benches: `bench.run --postgres`).

``initdb`` + ``pg_ctl`` from Debian's ``postgresql`` package (``/usr/lib/postgresql/<major>/bin``,
found by glob so any major version works; ``scripts/bootstrap`` installs the package),
in a temporary folder, listening only on a Unix socket in that folder (no TCP port, so
that sessions side by side never clash). PostgreSQL refuses to run as root: as root the
server runs as ``nobody``, in a folder ``nobody`` owns. Durability is switched off
(fsync, ...) for tests, which need a real server's behaviour, not its crash safety;
``durable=True`` (the benches) keeps it, so a commit costs what it costs a deployment.
`load()` reads a database's ``pg_stat_database`` counters and the server's CPU seconds.

    with PostgresServer.running() as server:   # or start() / stop()
        url = server.create_database()
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["PostgresServer", "find_bin_dir"]

_RUN_AS = "nobody"
CLK_TCK = os.sysconf("SC_CLK_TCK")
_COUNTERS = ("xact_commit", "xact_rollback", "tup_returned", "tup_fetched", "tup_inserted",
             "tup_updated", "tup_deleted", "blks_hit", "blks_read")
_NOT_DURABLE = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
_SETTINGS = {
    "listen_addresses": "''",
    "max_connections": "100",
    "shared_buffers": "16MB",
    "log_min_messages": "warning",
}


def find_bin_dir() -> Path | None:
    """The folder holding initdb/pg_ctl: the newest /usr/lib/postgresql/*/bin, else PATH."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


class PostgresServer:
    """One throw-away server: :meth:`start`, :meth:`create_database`, :meth:`stop`."""

    def __init__(self, bin_dir: Path, *, durable: bool = False) -> None:
        self.bin_dir = bin_dir
        self.durable = durable
        self.root = Path(tempfile.mkdtemp(prefix="pbx-bridge-pg-"))
        self.data = self.root / "data"
        self._names = itertools.count(1)
        self._user: dict[str, Any] = {}
        if os.geteuid() == 0:  # initdb and postgres refuse root
            entry = pwd.getpwnam(_RUN_AS)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self._user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _run(self, *argv: str) -> None:
        proc = subprocess.run(
            [str(self.bin_dir / argv[0]), *argv[1:]],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.root,
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C", "TZ": "UTC"},
            **self._user,
        )
        if proc.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{argv[0]} failed ({proc.returncode}): {proc.stderr.strip()}\n{tail}"
            )

    def start(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
            "--no-locale", "--encoding=UTF8", "--no-sync", "--no-instructions",
        )  # fmt: skip
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"unix_socket_directories = '{self.root}'\n")
            for key, value in {**_SETTINGS, **({} if self.durable else _NOT_DURABLE)}.items():
                conf.write(f"{key} = {value}\n")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w",
                  "-t", "30", "start")  # fmt: skip

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.root}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(host=str(self.root), user="postgres", dbname="postgres",
                             autocommit=True) as conn:  # fmt: skip
            conn.execute(sql)

    def create_database(self, name: str | None = None) -> str:
        """A new empty database (``name``, or a fresh one); its URL."""
        name = name or f"test_{os.getpid()}_{next(self._names)}"
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def load(self, database: str) -> dict[str, float]:
        """The database's counters (pg_stat_database) and the server's CPU seconds.
        The statistics reach pg_stat_database when a backend reports them (at the end of
        its transaction, at most every second): read them after a pause."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute(f"SELECT {', '.join(_COUNTERS)} FROM pg_stat_database "
                               "WHERE datname = %s", (database,)).fetchone()
        out = {k: float(v) for k, v in zip(_COUNTERS, row or (), strict=True)}
        out["cpu_seconds"] = self.cpu_seconds()
        return out

    def cpu_seconds(self) -> float:
        """utime + stime of the postmaster and its children (backends, walwriter...),
        live ones only: the bridges keep their connections for the whole run."""
        master = int((self.data / "postmaster.pid").read_text().split()[0])
        total = 0.0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid = int(stat.parent.name)
            if pid == master or int(fields[1]) == master:
                total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        return total

    @classmethod
    @contextlib.contextmanager
    def running(cls, *, durable: bool = False) -> Iterator[PostgresServer]:
        """A started server, stopped (and its folder removed) on the way out; a
        RuntimeError when initdb/pg_ctl are not installed."""
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL's initdb/pg_ctl not found (/usr/lib/postgresql/"
                               "*/bin): install Debian's `postgresql` package")
        server = cls(bin_dir, durable=durable)
        try:
            server.start()
            yield server
        finally:
            server.stop()
