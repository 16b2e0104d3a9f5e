"""The webhook bench's receivers, in a process of their own so that taking a thousand
deliveries per event never steals the bench client's event loop (its API timings):

- live: one aiohttp server answering 204 on ``/hook/<n>`` (one path per subscription),
  noting for each request its path, ``webhook-id``, the event's type and when it came;
- hanging: a TCP port that accepts connections and never answers (held until closed);
- refusing: nothing listens there (a port bound once, then closed).

    python -m bench.webhook_receivers        # prints {"live": P, "hanging": Q, "refusing": R}

``GET /receipts`` on the live port answers what it has noted, as JSON; ``GET /hung``
how many connections the hanging port holds and has ever accepted.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any

import orjson
from aiohttp import web

from bench.run import free_port


class Receivers:
    def __init__(self) -> None:
        self.receipts: list[tuple[str, str, str, int, float]] = []  # path, id, type, seq, t
        self.held: set[asyncio.StreamWriter] = set()
        self.accepted = 0

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = time.time()
        event: dict[str, Any] = orjson.loads(body) if body else {}
        self.receipts.append((request.path, request.headers.get("webhook-id", ""),
                              str(event.get("type", "")), int(event.get("seq", 0)), now))
        return web.Response(status=204)

    async def dump(self, request: web.Request) -> web.Response:
        return web.json_response({"receipts": self.receipts})

    async def hung(self, request: web.Request) -> web.Response:
        return web.json_response({"held": len(self.held), "accepted": self.accepted})

    async def hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Accept and never answer; read (and drop) what comes until the peer gives up."""
        self.accepted += 1
        self.held.add(writer)
        try:
            while await reader.read(65536):
                pass
        finally:
            self.held.discard(writer)
            writer.close()


async def main() -> None:
    rx = Receivers()
    app = web.Application(client_max_size=1 << 20)
    app.router.add_post("/hook/{n}", rx.hook)
    app.router.add_get("/receipts", rx.dump)
    app.router.add_get("/hung", rx.hung)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    live = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await live.start()
    hanging = await asyncio.start_server(rx.hold, "127.0.0.1", 0, backlog=1024)
    ports = {
        "live": live._server.sockets[0].getsockname()[1],  # type: ignore[union-attr]
        "hanging": hanging.sockets[0].getsockname()[1],
        "refusing": free_port(),  # bound and closed: connections are refused
    }
    print(json.dumps(ports), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    hanging.close()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
