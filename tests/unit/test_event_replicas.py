"""Events and webhooks with two bridge replicas on one real PostgreSQL server (issue 16,
item 2; tests/support/postgres.py starts it): two bridges (`Services`, each on its own
Database connection) fed the same AMI transcript captured from the real Asterisk
(tests/fixtures) store each event once, numbered by the shared history; each webhook is
delivered once to a real local HTTP receiver; a stream on either replica shows every
event, whichever replica stored it; a sender that dies holding rows (its tasks cancelled
before it settled them) loses them to the other sender when its lease ends. The SQLite
bridge alone numbers and delivers as it always did."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from pbx_bridge.api.app import create_app
from pbx_bridge.calls.transcript import read_events
from pbx_bridge.config import DatabaseSettings, EventsSettings
from pbx_bridge.events.model import EVENT_TYPES, Event
from pbx_bridge.events.store import EventStore
from pbx_bridge.server import Services
from pbx_bridge.storage.database import Database
from pbx_bridge.webhooks.cli import deliveries_lines
from pbx_bridge.webhooks.service import Webhooks
from pbx_bridge.webhooks.signing import new_secret
from pbx_bridge.webhooks.subscriptions import Subscription, SubscriptionStore, new_id
from tests.support.postgres import PostgresServer
from tests.support.sse import SseReader
from tests.unit.api_support import Apps, make_directory, make_settings

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
A = "0003*210"
# timeout: an attempt's answer may come late on a loaded machine (a 0.5 s timeout ran
# out there: the row was retried, arriving twice), and the killed sender's held attempt
# must still be open when the test kills it. The lease is the least it may be (2x).
FAST = EventsSettings(allow_networks=["127.0.0.0/8"], timeout=2.0, delivery_lease=4.0,
                      backoff_first=0.05, backoff_cap=0.2, poll_interval=0.1,
                      stream_poll_interval=0.1)


@dataclass
class Receiver:
    """A webhook receiver on loopback: keeps every arrival's webhook-id and answers 200,
    except that it holds the first ``hold`` arrivals unanswered until ``release``."""

    hold: int = 0
    arrivals: list[str] = field(default_factory=list)
    answered: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.arrivals.append(request.headers["webhook-id"])
        if len(self.arrivals) <= self.hold:
            await self.release.wait()
        self.answered.append(request.headers["webhook-id"])
        return web.Response(status=200)


@pytest.fixture
async def receiver(aiohttp_server: Any) -> Receiver:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    rec.url = str(server.make_url("/hook"))
    return rec


async def until(predicate: Any, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def subscription(url: str) -> Subscription:
    return Subscription(id=new_id(), organization=3, extension=None, url=url, method="POST",
                        types=EVENT_TYPES, active=True, secret=new_secret(),
                        created=time.time())


@dataclass
class Replica:
    bridge: Services
    client: Any  # aiohttp TestClient of this replica's API


@pytest.fixture
async def replicas(postgres_server: PostgresServer, tmp_path: Path, aiohttp_client: Any,
                   receiver: Receiver) -> AsyncIterator[tuple[Replica, Replica, Apps]]:
    """Two bridges on one PostgreSQL database, each with its own connection, its API and
    its webhook sender started (no AMI: the test feeds the transcript)."""
    base = make_settings(tmp_path, events=FAST)
    url = postgres_server.create_database()
    settings = base.model_copy(update={"database": DatabaseSettings(url=SecretStr(url))})
    first = make_directory(settings)
    apps = Apps.create(first)
    SubscriptionStore(first.database).add(subscription(receiver.url))
    out = []
    for directory in (first, make_directory(settings)):
        bridge = Services(settings, directory)
        await bridge.webhooks.start()
        server = TestServer(create_app(settings, directory, bridge, manage_bridge=False))
        out.append(Replica(bridge, await aiohttp_client(server)))
    try:
        yield out[0], out[1], apps
    finally:
        for replica in out:
            await replica.bridge.webhooks.close()
            replica.bridge.directory.close()


async def feed_both(one: Replica, two: Replica, name: str) -> None:
    """The same AMI events to both bridges, in Asterisk's order, first to one replica
    then the other, alternating (as two AMI sessions hear them)."""
    for i, ev in enumerate(read_events(FIXTURES / f"{name}.jsonl")):
        pair = (one, two) if i % 2 == 0 else (two, one)
        for replica in pair:
            await replica.bridge.link._on_event(ev)
    await finished(one.bridge, two.bridge)


async def finished(*bridges: Services) -> None:
    """Until the transcript's every event is stored: the recording stopped in it is
    finished too (its file is not there: ``recording.failed``, once, by whichever
    replica finishes the row), after ``[recordings] settle_interval``."""
    db = bridges[0].directory.database
    await until(lambda: any(d["type"] == "recording.failed" for d in stored(db)))
    for bridge in bridges:
        await bridge.events.drained()


def stored(db: Database) -> list[dict[str, Any]]:
    return EventStore(db).after(0, 10_000)


async def test_two_replicas_store_each_event_once_and_deliver_it_once(
        replicas: tuple[Replica, Replica, Apps], receiver: Receiver) -> None:
    one, two, _apps = replicas
    await asyncio.wait_for(feed_both(one, two, "a_calls_b"), 30)
    history = stored(one.bridge.directory.database)
    kinds = [(d["type"], d["extension"]) for d in history]
    assert Counter(kinds) == Counter({
        ("call.ringing", A): 1, ("call.ringing", "0003*211"): 1,
        ("call.answered", A): 1, ("call.answered", "0003*211"): 1,
        ("call.hangup", A): 1, ("call.hangup", "0003*211"): 1,
        ("recording.started", A): 1, ("recording.stopped", A): 1,
        ("recording.failed", A): 1,
    }), kinds
    assert [d["seq"] for d in history] == list(range(1, len(history) + 1))
    assert stored(two.bridge.directory.database) == history  # one history, one numbering
    ids = [d["id"] for d in history]
    await until(lambda: set(receiver.answered) == set(ids))
    await asyncio.sleep(3 * FAST.poll_interval)  # a second sender would have sent by now
    assert Counter(receiver.arrivals) == Counter(ids)  # each id once, none twice
    outbox = one.bridge.webhooks.outbox
    for event_id in ids:  # what the replica harness reads per event id
        (row,) = outbox.of_event(event_id)
        assert row.state == "delivered" and row.attempts == 1
        (_head, line) = deliveries_lines(outbox, event=event_id)  # the admin's view of it
        assert line.split("\t")[1:5] == [event_id, row.subscription, "delivered", "1"]


async def test_a_stream_on_either_replica_shows_every_event(
        replicas: tuple[Replica, Replica, Apps]) -> None:
    one, two, apps = replicas
    streams = []
    for replica in (one, two):
        resp = await replica.client.get("/uapi/events", headers=apps.auth("admin"))
        assert resp.status == 200
        streams.append(SseReader(resp))
        await until(lambda r=replica: len(r.bridge.stream.clients) == 1)  # type: ignore[misc]
    await asyncio.wait_for(feed_both(one, two, "a_calls_b"), 30)
    history = stored(one.bridge.directory.database)
    for reader in streams:
        got = [m.json for m in await asyncio.wait_for(reader.events(len(history)), 10)]
        assert got == history  # in the history's order, whichever replica stored each
    resumed = await two.client.get("/uapi/events", headers={
        **apps.auth("admin"), "Last-Event-ID": history[2]["id"]})  # an id seen on one
    replay = await asyncio.wait_for(SseReader(resumed).events(len(history) - 3), 10)
    assert [m.json["id"] for m in replay] == [d["id"] for d in history[3:]]


async def test_a_sender_killed_holding_rows_loses_them_to_the_other_after_its_lease(
        postgres_server: PostgresServer, receiver: Receiver) -> None:
    url = postgres_server.create_database()
    dbs = [Database.open(url) for _ in range(2)]
    from pbx_bridge.storage.migrate import Migrate, ensure_schema
    ensure_schema(dbs[0], Migrate.UPGRADE)
    SubscriptionStore(dbs[0]).add(subscription(receiver.url))
    # The held attempt must still hang when its sender is closed: with FAST's 2 s timeout
    # a loaded machine could time it out first (a failed attempt, settled), and the
    # second replica's delivery would then be attempt 2 (seen failing once under load).
    patient = FAST.model_copy(update={"timeout": 60.0})
    hooks = [Webhooks(db, patient, EventStore(db)) for db in dbs]
    receiver.hold = 1  # the first attempt hangs: its sender dies waiting for the answer
    events = [Event(seq=0, id="", type="call.ringing", time=time.time(), organization=3,
                    extension=A, phone_call_id="ab" * 10, data={"n": n}, key=f"k{n}")
              for n in range(5)]
    stored_events = hooks[0].history.append(events, hooks[0].also)
    try:
        await hooks[0].start()
        await until(lambda: len(receiver.arrivals) == 1)
        victim = receiver.arrivals[0]
        await hooks[0].sender.close()  # tasks cancelled mid-attempt: nothing settled
        with dbs[0].transaction() as conn:  # the claim the dead sender left
            claim = conn.exec_driver_sql(
                "SELECT claimed_by, claimed_until, attempts FROM webhook_deliveries"
                " WHERE claimed_by IS NOT NULL").one()
        assert (claim[0], claim[2]) == (hooks[0].sender.owner, 0)
        lease_end = float(claim[1])
        await hooks[1].start()
        ids = [e.id for e in stored_events]
        await until(lambda: set(receiver.answered) == set(ids))
        (row,) = hooks[1].outbox.of_event(victim)
        assert row.state == "delivered" and row.attempts == 1  # settled by the second only
        assert row.finished is not None and row.finished >= lease_end  # not before
        # Each id answered 2xx once; the victim arrived twice (the killed attempt first).
        assert Counter(receiver.answered) == Counter(ids)
        assert Counter(receiver.arrivals) == Counter(ids) + Counter([victim])
    finally:
        receiver.release.set()
        for h in hooks:
            await h.close()
        for db in dbs:
            db.close()


def test_a_resume_planned_while_another_replica_commits_misses_nothing(
        postgres_server: PostgresServer) -> None:
    """A stream resuming on one replica while the other commits an event: the events kept
    after the client's id and the last one numbered are read at one moment, so no
    ``history.gap`` tells the client it missed what it did not (read apart, PostgreSQL's
    READ COMMITTED could see the other replica's commit in the second read only)."""
    from sqlalchemy import event as sa_event
    from sqlalchemy.engine import Engine

    from pbx_bridge.storage.migrate import Migrate, ensure_schema
    from pbx_bridge.stream.resume import plan

    url = postgres_server.create_database()
    reader, writer = Database.open(url), Database.open(url)
    ensure_schema(reader, Migrate.UPGRADE)

    def draft(n: int) -> Event:
        return Event(seq=0, id="", type="call.ringing", time=time.time(), organization=3,
                     extension=A, phone_call_id="cd" * 10, data={"n": n}, key=f"r{n}")

    EventStore(writer).append([draft(n) for n in range(5)])
    committed: list[int] = []

    def other_replica_commits(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        # When the reader reads the last seq, the other replica's event is committed.
        if not committed and "max(" in statement.lower() and conn is not writer_conn:
            committed.append(1)
            EventStore(writer).append([draft(5)])

    try:
        with writer.transaction() as writer_conn:
            pass
        sa_event.listen(Engine, "before_cursor_execute", other_replica_commits)
        start = plan(EventStore(reader), 3)
    finally:
        sa_event.remove(Engine, "before_cursor_execute", other_replica_commits)
        reader.close()
        writer.close()
    assert committed  # the other replica did commit during the plan
    assert start.gap is None, start.gap
    assert start.top in (5, 6) and start.after == 3


async def test_one_sqlite_bridge_numbers_and_delivers_as_before(
        tmp_path: Path, aiohttp_client: Any, receiver: Receiver) -> None:
    """SQLite, one bridge: events 1..n in order, one delivery each, no claim written."""
    settings = make_settings(tmp_path, events=FAST)
    directory = make_directory(settings)
    SubscriptionStore(directory.database).add(subscription(receiver.url))
    bridge = Services(settings, directory)
    await bridge.webhooks.start()
    try:
        for ev in read_events(FIXTURES / "a_calls_b.jsonl"):
            await bridge.link._on_event(ev)
        await finished(bridge)
        history = stored(directory.database)
        assert [d["seq"] for d in history] == list(range(1, 10))
        assert [d["id"] for d in history] == [f"evt-{n:016x}" for n in range(1, 10)]
        await until(lambda: len(receiver.answered) == 9)
        assert Counter(receiver.arrivals) == Counter(d["id"] for d in history)
        with directory.database.transaction() as conn:
            claims = conn.exec_driver_sql(
                "SELECT count(*) FROM webhook_deliveries WHERE claimed_by IS NOT NULL").scalar()
        assert claims == 0
    finally:
        await bridge.webhooks.close()
        directory.close()
