"""The outbox (table ``webhook_deliveries``): one row per event and subscription,
written in the event's own transaction, before any attempt. ``pending`` until a 2xx
(``delivered``) or until the retry window is over (``dead``); a restarted bridge takes
up every pending row (at least once: a row whose answer was lost to a crash is sent
again, with the same ``webhook-id``).

Blocking: the sender calls these through ``asyncio.to_thread``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, func, insert, select, update

from pbx_bridge.storage.database import Database
from pbx_bridge.storage.schema import events, webhook_deliveries

__all__ = ["Delivery", "Outbox"]

D = webhook_deliveries
_SHOWN = (D.c.id, D.c.event_seq, D.c.subscription, D.c.state, D.c.attempts, D.c.next_at,
          D.c.created, D.c.finished, D.c.last_status, D.c.last_error)
# Built once, executed with parameters (the SET clause from their keys): one settle per
# delivery attempt, next to the API's requests; a statement built per call with
# ``.values()`` was most of its cost in SQLAlchemy (issue 15, as recordings/store.py).
_SETTLE = update(D).where(D.c.id == bindparam("_id"))


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    event_seq: int
    subscription: str
    state: str
    attempts: int
    next_at: float
    created: float
    finished: float | None = None
    last_status: int | None = None
    last_error: str | None = None
    event: str = ""  # the Event's JSON, as stored (the POST body)


def _delivery(row: object, with_event: bool = False) -> Delivery:
    r = dict(row._mapping)  # type: ignore[attr-defined]
    if with_event:
        r["event"] = r.pop("data")
    return Delivery(**r)


class Outbox:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def enqueue(conn: Connection, rows: Iterable[tuple[int, str]], now: float) -> int:
        """(event seq, subscription id) pairs, in the caller's transaction."""
        values = [{"event_seq": seq, "subscription": sub, "state": "pending", "attempts": 0,
                   "next_at": now, "created": now} for seq, sub in rows]
        if values:
            conn.execute(insert(D), values)
        return len(values)

    def due(self, subscription: str, now: float, limit: int = 20) -> list[Delivery]:
        """Pending rows of one receiver due by ``now``, oldest event first."""
        with self.db.transaction() as conn:
            found = conn.execute(
                select(*_SHOWN, events.c.data)
                .join(events, events.c.seq == D.c.event_seq)
                .where(D.c.subscription == subscription, D.c.state == "pending",
                       D.c.next_at <= now)
                .order_by(D.c.next_at, D.c.event_seq).limit(limit)
            ).all()
        return [_delivery(r, with_event=True) for r in found]

    def next_due(self, subscription: str) -> float | None:
        with self.db.transaction() as conn:
            return conn.execute(
                select(func.min(D.c.next_at))
                .where(D.c.subscription == subscription, D.c.state == "pending")
            ).scalar()

    def waiting(self) -> list[str]:
        """Receivers with pending rows (a restart's, or a redeliver's from the CLI)."""
        with self.db.transaction() as conn:
            return list(conn.execute(
                select(D.c.subscription).where(D.c.state == "pending").distinct()
            ).scalars())

    def settle(self, delivery_id: int, *, state: str, attempts: int, next_at: float,
               status: int | None, error: str | None, now: float) -> None:
        """An attempt's outcome: ``delivered``, ``dead``, or ``pending`` again at next_at."""
        finished = now if state != "pending" else None
        with self.db.transaction(write=True) as conn:
            conn.execute(_SETTLE, {
                "_id": delivery_id, "state": state, "attempts": attempts, "next_at": next_at,
                "last_status": status, "last_error": error, "finished": finished})

    def find(self, state: str | None = None, limit: int = 100) -> list[Delivery]:
        stmt = select(*_SHOWN).order_by(D.c.id.desc()).limit(limit)
        if state is not None:
            stmt = stmt.where(D.c.state == state)
        with self.db.transaction() as conn:
            return [_delivery(r) for r in conn.execute(stmt).all()]

    def redeliver(self, delivery_id: int, now: float) -> bool:
        """Pending again, due now, with a fresh retry window (an admin's decision);
        False when there is no such row or its event is no longer kept."""
        kept = select(events.c.seq).where(events.c.seq == D.c.event_seq).exists()
        with self.db.transaction(write=True) as conn:
            return bool(conn.execute(update(D).where(D.c.id == delivery_id, kept).values(
                state="pending", next_at=now, created=now, finished=None)).rowcount)

    def counts(self) -> dict[str, int]:
        with self.db.transaction() as conn:
            rows = conn.execute(select(D.c.state, func.count()).group_by(D.c.state)).all()
        return {str(r[0]): int(r[1]) for r in rows}
