"""The event history in the database (table ``events``), bounded (``[events]
history_seconds`` / ``history_events``), by the history's sequence: what the event
stream resumes from (Last-Event-ID), and what outbox rows point at.

The database numbers the events: `append` stores each event whose ``key`` it does not
hold yet (two replicas hearing the same AMI event store it once) with the sequence's
next numbers, in a writer's transaction (``Database.transaction(write=True)``: SQLite's
``BEGIN IMMEDIATE``, PostgreSQL's cluster-wide writers' lock), so the sequence grows in
commit order across replicas and has no holes but pruning's (a PostgreSQL SEQUENCE
would leave one for every rolled-back write, and stream/resume.py counts what a client
missed as numbered minus kept).

Blocking (one connection behind a lock): called through ``asyncio.to_thread``."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from sqlalchemy import Connection, and_, delete, exists, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from pbx_bridge.events.keys import anchor_of
from pbx_bridge.events.model import CALL_TYPES, Event, event_id
from pbx_bridge.storage.database import Database
from pbx_bridge.storage.schema import events, webhook_deliveries

__all__ = ["EventStore"]

OnWrite = Callable[[Connection, list[Event]], None]


class EventStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def last_seq(self) -> int:
        with self.db.transaction() as conn:
            return int(conn.execute(select(func.max(events.c.seq))).scalar() or 0)

    def append(self, batch: list[Event], also: OnWrite | None = None) -> list[Event]:
        """Store the events whose key the history does not hold yet (an event without a
        key is keyed by its id), numbered by the history; ``also`` writes for those
        (the outbox) in the same transaction: nothing is delivered that is not in the
        history, and nothing twice. Returns the events stored, numbered."""
        with self.db.transaction(write=True) as conn:
            fresh = self._number(conn, batch)
            if fresh:
                stmt = self._insert().values([_row(e) for e in fresh])
                conn.execute(stmt.on_conflict_do_nothing(index_elements=["key"]))
                if also is not None:
                    also(conn, fresh)
        return fresh

    def _insert(self) -> Any:
        return (postgresql if self.db.backend == "postgresql" else sqlite).insert(events)

    @staticmethod
    def _number(conn: Connection, batch: list[Event]) -> list[Event]:
        """The batch's events not stored yet (by key, the first of each key), with the
        sequence's next numbers (the writer's transaction holds the sequence)."""
        keys = [e.key or f"unkeyed|{secrets.token_hex(12)}" for e in batch]
        held = set(conn.execute(select(events.c.key).where(events.c.key.in_(set(keys))))
                   .scalars())
        seq = int(conn.execute(select(func.max(events.c.seq))).scalar() or 0)
        fresh = []
        for e, key in zip(batch, keys, strict=True):
            if key in held:
                continue
            held.add(key)
            seq += 1
            fresh.append(dataclasses.replace(e, seq=seq, id=event_id(seq), key=key))
        return fresh

    def after_events(self, seq: int, limit: int = 1000) -> list[Event]:
        """The kept events after ``seq``, oldest first, as Events (the stream's tail)."""
        c = events.c
        with self.db.transaction() as conn:
            found = conn.execute(
                select(c.seq, c.id, c.type, c.time, c.organization, c.extension, c.data,
                       c.key).where(c.seq > seq).order_by(c.seq).limit(limit)
            ).all()
        out = []
        for r in found:
            doc = orjson.loads(r[6])
            out.append(Event(seq=int(r[0]), id=str(r[1]), type=str(r[2]), time=float(r[3]),
                             organization=r[4], extension=str(r[5] or ""),
                             phone_call_id=doc.get("phoneCallId"), data=doc.get("data", {}),
                             key=str(r[7] or "")))
        return out

    def after(self, seq: int, limit: int = 1000) -> list[dict[str, object]]:
        """The kept events after ``seq`` (as JSON), oldest first: a stream's resume."""
        with self.db.transaction() as conn:
            found = conn.execute(
                select(events.c.data).where(events.c.seq > seq).order_by(events.c.seq)
                .limit(limit)
            ).all()
        return [orjson.loads(r[0]) for r in found]

    def span_after(self, seq: int) -> tuple[int, int]:
        """(how many kept events come after ``seq``, the last seq): a stream resuming
        from ``seq`` missed some iff fewer are kept than were numbered (the sequence has
        no holes but those pruning made)."""
        # One statement: PostgreSQL (READ COMMITTED) reads each statement at its own
        # snapshot, so a count and a max read apart could straddle another replica's
        # commit and tell a resuming client it missed events it did not.
        kept = select(func.count()).select_from(events).where(events.c.seq > seq)
        top = select(func.max(events.c.seq))
        with self.db.transaction() as conn:
            found = conn.execute(select(kept.scalar_subquery(), top.scalar_subquery())).one()
        return int(found[0] or 0), int(found[1] or 0)

    def get(self, seqs: Iterable[int]) -> dict[int, dict[str, object]]:
        with self.db.transaction() as conn:
            found = conn.execute(
                select(events.c.seq, events.c.data).where(events.c.seq.in_(list(seqs)))
            ).all()
        return {int(r[0]): orjson.loads(r[1]) for r in found}

    def announced_calls(
        self, since: float, node: str | None = None, *, first: bool = True
    ) -> tuple[dict[tuple[str, str], str], dict[tuple[str, str], str]]:
        """(phoneCallId, extension) -> "ringing"/"answered"/"hangup": the last call
        event of each view since ``since`` (what a restarted bridge announced already),
        and the same views' anchors as their keys name them (events/keys.py). ``node``:
        of that PBX node's calls only (``first``: with the events that name no node)."""
        c = events.c
        where = [c.time >= since, c.type.in_(CALL_TYPES)]
        if node is not None:
            where.append(or_(c.node == node, c.node.is_(None)) if first else c.node == node)
        with self.db.transaction() as conn:
            found = conn.execute(
                select(c.type, c.extension, c.data, c.key).where(*where).order_by(c.seq)
            ).all()
        last: dict[tuple[str, str], str] = {}
        anchors: dict[tuple[str, str], str] = {}
        for r in found:
            kind, ext, call = str(r[0]), str(r[1] or ""), orjson.loads(r[2]).get("phoneCallId")
            if call and ext:
                last[(str(call), ext)] = kind.removeprefix("call.")
                anchor = anchor_of(str(r[3] or ""))
                if anchor is not None:
                    anchors[(str(call), ext)] = anchor
        return last, anchors

    def prune(self, older_than: float, keep: int) -> int:
        """Events older than ``older_than`` beyond the newest ``keep``, that no pending
        delivery still needs."""
        with self.db.transaction(write=True) as conn:
            top = conn.execute(select(func.max(events.c.seq))).scalar() or 0
            d = webhook_deliveries.c
            pending = exists().where(and_(d.event_seq == events.c.seq, d.state == "pending"))
            return int(conn.execute(
                delete(events).where(
                    events.c.time < older_than, events.c.seq <= top - keep, ~pending
                )
            ).rowcount)


def _row(e: Event) -> dict[str, object]:
    return {"seq": e.seq, "id": e.id, "key": e.key, "type": e.type, "time": e.time,
            "organization": e.organization, "extension": e.extension, "node": e.node,
            "data": orjson.dumps(e.to_json()).decode()}
