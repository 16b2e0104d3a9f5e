"""How many wrong client secrets per second ``POST /oauth/token`` checks for one client id
(docs/reliability.md, "Failed client authentication").

    .venv/bin/python -m bench.oauth_guessing                 # 10 s, 8 concurrent clients
    .venv/bin/python -m bench.oauth_guessing --seconds 5 --spray

The service runs in this process on a loopback port (the real aiohttp server and app,
the demo directory in a temporary SQLite file, its log lines written to /dev/null: their
cost counts); the guesser sends wrong secrets for a real client id over keep-alive
connections, as fast as the service answers, for a bounded time. ``--spray`` sends a new
client id with every request instead (what the per-address limit is for).

Prints one JSON line: requests answered per second, and of them how many had their
secret checked (401 ``invalid_client``) and how many were refused unchecked (429).
Does not import anything the throttle added, so it runs against older versions too
(``PYTHONPATH=<an export of main> python -m bench.oauth_guessing``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp
from aiohttp import web
from pydantic import SecretStr

from pbx_bridge.api.app import create_app
from pbx_bridge.config import AmiSettings, DatabaseSettings, Settings
from pbx_bridge.directory.store import Directory
from pbx_bridge.server import Services

DEMO = Path(__file__).resolve().parents[1] / "config" / "directory.example.toml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _guess(url: str, client_id: str, deadline: float, spray: bool, seen: Counter) -> None:
    async with aiohttp.ClientSession() as http:
        n = 0
        while time.monotonic() < deadline:
            n += 1
            cid = f"{client_id}-{os.getpid()}-{id(seen)}-{n}" if spray else client_id
            form = {"grant_type": "client_credentials", "client_id": cid, "client_secret": "x"}
            async with http.post(url, data=form) as resp:
                await resp.read()
                seen[resp.status] += 1


async def run(seconds: float, clients: int, spray: bool) -> dict[str, object]:
    logging.basicConfig(filename=os.devnull, level=logging.INFO)
    with tempfile.TemporaryDirectory(prefix="pbx-bridge-bench-") as tmp:
        settings = Settings(
            ami=AmiSettings(port=_free_port(), secret="bench"),  # never connected
            database=DatabaseSettings(url=SecretStr(f"sqlite:///{Path(tmp) / 'd.sqlite3'}")),
        )
        directory = Directory.open(settings.database.url.get_secret_value())
        directory.load_toml(DEMO)
        client_id, _secret = directory.create_app(12, "bench")
        app = create_app(settings, directory, Services(settings, directory), manage_bridge=False)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = _free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        seen: Counter[int] = Counter()
        start = time.monotonic()
        try:
            await asyncio.gather(
                *(
                    _guess(
                        f"http://127.0.0.1:{port}/oauth/token",
                        client_id,
                        start + seconds,
                        spray,
                        seen,
                    )
                    for _ in range(clients)
                )
            )
        finally:
            elapsed = time.monotonic() - start
            await runner.cleanup()
            directory.close()
    return {
        "mode": "spray client ids" if spray else "one client id",
        "seconds": round(elapsed, 2),
        "clients": clients,
        "requests_per_s": round(sum(seen.values()) / elapsed, 1),
        "secrets_checked_per_s": round(seen[401] / elapsed, 2),
        "secrets_checked": seen[401],
        "refused_unchecked_429": seen[429],
        "statuses": {str(k): v for k, v in sorted(seen.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--spray", action="store_true", help="a new client id per request")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.seconds, args.clients, args.spray))))


if __name__ == "__main__":
    main()
