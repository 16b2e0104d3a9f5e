"""Cost of the directory on the request path: `directory load` of the demo directory, and
per request `Directory.authenticate` + two `extension()` look-ups, on SQLite and on a
throw-away PostgreSQL server (tests/support/postgres.py).

    .venv/bin/python -m bench.storage_lookups                 # this tree, both backends
    PYTHONPATH=/path/to/other/tree .venv/bin/python -m bench.storage_lookups --sqlite-only

Prints microseconds per operation (best of 5 rounds); figures go in notes, not in tests.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pbx_bridge.directory.store import Directory

DEMO = Path(__file__).resolve().parents[1] / "config" / "directory.example.toml"


def best_us(func: Callable[[], object], n: int) -> float:
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            func()
        rounds.append((time.perf_counter() - start) / n * 1e6)
    return min(rounds)


def measure(label: str, target: str) -> None:
    with Directory.open(target) as d:
        load = best_us(lambda: d.load_toml(DEMO), 20)
        client_id, _ = d.create_app(12, "bench")
        token, _ = d.issue_token(client_id)

        def request() -> None:
            assert d.authenticate(token) is not None
            assert d.extension("0003*210") is not None
            assert d.extension("0003*211") is not None

        per_request = best_us(request, 2000)
        lookup = best_us(lambda: d.extension("0003*210"), 20000)
    print(
        f"{label:12} directory load {load:8.0f} us   authenticate + 2 extension() "
        f"{per_request:6.1f} us   extension() alone {lookup:5.2f} us"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        measure("sqlite", str(Path(tmp) / "bench.sqlite3"))
    if args.sqlite_only:
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.support.postgres import PostgresServer, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        print("postgresql: initdb not found", file=sys.stderr)
        return 1
    server = PostgresServer(bin_dir)
    try:
        server.start()
        measure("postgresql", server.create_database())
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
