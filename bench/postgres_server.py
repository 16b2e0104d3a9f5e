"""A throw-away PostgreSQL server for benches (bench/replicas.py), and what it did.

``initdb`` + ``pg_ctl`` from Debian's ``postgresql`` package, in a temporary folder,
listening only on a Unix socket there (no TCP port: benches side by side never clash);
as root it runs as ``nobody`` (PostgreSQL refuses root). Durability stays ON here, unlike
the test suite's server (tests/support/postgres.py, which benches must not import): a
bench's commit should cost what it costs a deployment. `load()` reads the database's
``pg_stat_database`` counters and the CPU seconds of every server process (/proc).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["BenchPostgres"]

CLK_TCK = os.sysconf("SC_CLK_TCK")
_COUNTERS = ("xact_commit", "xact_rollback", "tup_returned", "tup_fetched", "tup_inserted",
             "tup_updated", "tup_deleted", "blks_hit", "blks_read")


class BenchPostgres:
    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            raise RuntimeError("initdb not found (/usr/lib/postgresql/*/bin)")
        self.bin_dir = Path(found[-1]).parent
        self.root = Path(tempfile.mkdtemp(prefix="pbx-bridge-bench-pg-"))
        self.data = self.root / "data"
        self._user: dict[str, Any] = {}
        if os.geteuid() == 0:
            entry = pwd.getpwnam("nobody")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self._user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _run(self, *argv: str) -> None:
        proc = subprocess.run([str(self.bin_dir / argv[0]), *argv[1:]], capture_output=True,
                              text=True, timeout=60, cwd=self.root,
                              env={"PATH": "/usr/bin:/bin", "LC_ALL": "C", "TZ": "UTC"},
                              **self._user)
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {proc.stderr.strip()}")

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--no-locale", "--encoding=UTF8", "--no-instructions")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"unix_socket_directories = '{self.root}'\nlisten_addresses = ''\n")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w",
                  "-t", "30", "start")

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.root}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
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
