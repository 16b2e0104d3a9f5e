"""Webhooks across replicas, for tests/replicas: a real receiver (an aiohttp server on
loopback) that verifies every request's signature with `standardwebhooks` and counts
each `webhook-id` it got, and what the shared PostgreSQL holds (events and outbox rows,
read with psycopg, as an operator's `psql` would).

A request is one attempt: the receiver always answers 204, so any id received twice is a
second attempt of a row that was already answered."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import psycopg
from aiohttp import web
from aiohttp.test_utils import TestServer
from standardwebhooks import Webhook

from pbx_bridge.events.model import RECORDING_TYPES
from tests.reliability.support import start_server
from tests.support.replicas import Replica, Replicas

__all__ = ["Received", "Receiver", "cut_claims", "delivery_states", "recording_events",
           "wait_settled", "without_rows"]


@dataclass(frozen=True)
class Received:
    id: str  # webhook-id (= the event's id)
    path: str  # which subscription's URL
    at: float  # time.monotonic() when it arrived
    event: dict


@dataclass
class Receiver:
    secrets: dict[str, str] = field(default_factory=dict)  # path -> whsec_...
    got: list[Received] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)  # unsigned, wrongly signed, unknown path
    server: TestServer | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook/{name}", self._hook)
        self.server = await start_server(app)

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    async def subscribe(self, replica: Replica, ext: str) -> None:
        """One subscription per extension (recording.* events), through ``replica``."""
        assert self.server is not None
        path = f"/hook/{ext.replace('*', '-')}"
        status, body = await replica.request(
            "POST", f"/uapi/extensions/@me/{ext}/phoneCallEvents",
            {"url": str(self.server.make_url(path)), "types": list(RECORDING_TYPES)})
        assert status == 201, body
        self.secrets[path] = body["secret"]

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        secret = self.secrets.get(request.path)
        try:
            assert secret is not None
            event = Webhook(secret).verify(body, dict(request.headers))
            assert event["id"] == request.headers["webhook-id"]
        except Exception as exc:  # any refusal is counted, then asserted
            self.bad.append(f"{request.path}: {exc!r}")
            return web.Response(status=400)
        self.got.append(Received(event["id"], request.path, time.monotonic(), event))
        return web.Response(status=204)

    def per_id(self) -> Counter[str]:
        return Counter(r.id for r in self.got)

    def first_at(self) -> dict[str, float]:
        first: dict[str, float] = {}
        for r in self.got:
            first.setdefault(r.id, r.at)
        return first


def _query(url: str, sql: str, *args: object) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, args).fetchall()  # type: ignore[arg-type]


async def recording_events(replicas: Replicas) -> dict[str, dict]:
    """Every recording.* event the shared history holds: id -> the event as sent."""
    rows = await asyncio.to_thread(
        _query, replicas.database_url,
        "SELECT id, data FROM events WHERE type LIKE 'recording.%%' ORDER BY seq")
    return {str(i): json.loads(d) for i, d in rows}


async def delivery_states(replicas: Replicas) -> Counter[str]:
    """The outbox rows of recording events, counted by state."""
    rows = await asyncio.to_thread(
        _query, replicas.database_url,
        "SELECT d.state, count(*) FROM webhook_deliveries d JOIN events e "
        "ON e.seq = d.event_seq WHERE e.type LIKE 'recording.%%' GROUP BY d.state")
    return Counter({str(s): int(n) for s, n in rows})


async def without_rows(replicas: Replicas) -> list[tuple]:
    """Recording events no outbox row was written for (lost before any attempt)."""
    return await asyncio.to_thread(
        _query, replicas.database_url,
        "SELECT e.id, e.type, e.extension, e.key FROM events e WHERE e.type LIKE "
        "'recording.%%' AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d "
        "WHERE d.event_seq = e.seq) ORDER BY e.seq")


async def cut_claims(replicas: Replicas, replica: Replica) -> set[str]:
    """Event ids of the pending rows ``replica``'s sender holds (its claims carry
    ``host:pid:...``): read right after a SIGKILL, the attempts the kill may have cut
    (sent, perhaps answered, never settled); the lease hands them to the other."""
    assert replica.proc is not None
    rows = await asyncio.to_thread(
        _query, replicas.database_url,
        "SELECT e.id FROM webhook_deliveries d JOIN events e ON e.seq = d.event_seq "
        "WHERE d.state = 'pending' AND d.claimed_by LIKE %s",
        f"%:{replica.proc.pid}:%")
    return {str(i) for (i,) in rows}


async def wait_settled(replicas: Replicas, timeout: float) -> Counter[str]:
    """Until no recording event's row is pending (bounded); the states then."""
    deadline = time.monotonic() + timeout
    while True:
        states = await delivery_states(replicas)
        if not states.get("pending") or time.monotonic() > deadline:
            return states
        await asyncio.sleep(0.2)
