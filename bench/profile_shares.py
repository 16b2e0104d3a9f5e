"""Where a profiled process spends the interpreter: py-spy's collapsed stacks (``--format
raw``, taken with ``--gil``: only the thread holding the GIL is sampled) summed by layer.

Each sample goes to the layer of its innermost frame that names one (so SQLAlchemy called
by the catalog counts as the database, the catalog's own Python as the catalog):

    .venv/bin/python -m bench.profile_shares docs/bench/profile-bridge.txt

`make bench BENCH_ARGS=--profile` writes that file (the bridge under 50 clients).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

__all__ = ["LAYERS", "shares"]

# (layer, what a frame's "function (file:line)" contains), innermost match first.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("database (SQLAlchemy, drivers)", ("sqlalchemy/", "psycopg", "sqlite3/", "alembic/")),
    ("logging", ("logging/",)),
    ("JSON", ("orjson", "json/")),
    ("AMI framing and client", ("pbx_bridge/pbx/",)),
    ("tracker and rendering", ("pbx_bridge/calls/",)),
    ("recordings catalog", ("pbx_bridge/recordings/",)),
    ("events, webhooks, stream", ("pbx_bridge/events/", "pbx_bridge/webhooks/")),
    ("recording (start/stop)", ("pbx_bridge/recording/",)),
    ("API handlers, auth, directory", ("pbx_bridge/api/", "pbx_bridge/directory/")),
    ("other pbx_bridge", ("pbx_bridge/",)),
    ("aiohttp (HTTP server)", ("aiohttp/", "multidict/", "yarl/")),
    ("asyncio event loop", ("asyncio/", "selectors.py")),
)


def _layer(frames: list[str]) -> str:
    for frame in reversed(frames):  # innermost first
        for name, marks in LAYERS:
            if any(m in frame for m in marks):
                return name
    return "other"


def shares(text: str) -> Counter[str]:
    """Samples per layer, from collapsed stacks ("outer;...;inner COUNT")."""
    out: Counter[str] = Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            out[_layer(stack.split(";"))] += int(count)
    return out


def table(counts: Counter[str]) -> list[str]:
    total = sum(counts.values()) or 1
    return [f"  {name:<34}{n / total:>6.1%}" for name, n in counts.most_common()]


if __name__ == "__main__":
    print("\n".join(table(shares(Path(sys.argv[1]).read_text()))))
