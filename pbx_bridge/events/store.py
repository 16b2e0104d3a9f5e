"""The event history in the database (table ``events``), bounded (``[events]
history_seconds`` / ``history_events``), by the bridge's sequence: what the event
stream resumes from (Last-Event-ID), and what outbox rows point at.

Blocking (one connection behind a lock): called through ``asyncio.to_thread``."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import orjson
from sqlalchemy import Connection, and_, delete, exists, func, insert, select

from pbx_bridge.events.model import CALL_TYPES, Event
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

    def append(self, batch: list[Event], also: OnWrite | None = None) -> None:
        """The events, and whatever ``also`` writes for them (the outbox), in one
        transaction: nothing is delivered that is not in the history."""
        rows = [
            {"seq": e.seq, "id": e.id, "type": e.type, "time": e.time,
             "organization": e.organization, "extension": e.extension,
             "data": orjson.dumps(e.to_json()).decode()}
            for e in batch
        ]
        with self.db.transaction(write=True) as conn:
            conn.execute(insert(events), rows)
            if also is not None:
                also(conn, batch)

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
        with self.db.transaction() as conn:
            kept = conn.execute(
                select(func.count()).select_from(events).where(events.c.seq > seq)
            ).scalar()
            top = conn.execute(select(func.max(events.c.seq))).scalar()
        return int(kept or 0), int(top or 0)

    def get(self, seqs: Iterable[int]) -> dict[int, dict[str, object]]:
        with self.db.transaction() as conn:
            found = conn.execute(
                select(events.c.seq, events.c.data).where(events.c.seq.in_(list(seqs)))
            ).all()
        return {int(r[0]): orjson.loads(r[1]) for r in found}

    def announced_calls(self, since: float) -> dict[tuple[str, str], str]:
        """(phoneCallId, extension) -> "ringing"/"answered"/"hangup": the last call
        event of each view since ``since`` (what a restarted bridge announced already)."""
        with self.db.transaction() as conn:
            found = conn.execute(
                select(events.c.type, events.c.extension, events.c.data)
                .where(events.c.time >= since, events.c.type.in_(CALL_TYPES))
                .order_by(events.c.seq)
            ).all()
        last: dict[tuple[str, str], str] = {}
        for r in found:
            kind, ext, call = str(r[0]), str(r[1] or ""), orjson.loads(r[2]).get("phoneCallId")
            if call and ext:
                last[(str(call), ext)] = kind.removeprefix("call.")
        return last

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
