"""The outbox (table ``webhook_deliveries``): one row per event and subscription,
written in the event's own transaction, before any attempt. ``pending`` until a 2xx
(``delivered``) or until the retry window is over (``dead``); a restarted bridge takes
up every pending row (at least once: a row whose answer was lost to a crash is sent
again, with the same ``webhook-id``).

Replicas (PostgreSQL): several senders share the outbox. A sender `take`s rows by
claiming them (``SELECT ... FOR UPDATE SKIP LOCKED``, then ``claimed_by`` = itself and
``claimed_until`` = now + ``[events] delivery_lease``), so no two senders attempt a row
at once; a sender that dies holding rows loses them when the lease ends, and a late
`settle` from a sender whose lease another sender took over changes nothing. The
receiver's failures in a row and its hold-off are the subscription's (``failing``,
``hold_until``): every sender backs off together. On SQLite (one bridge) rows are taken
without a claim, as they always were.

Blocking: the sender calls these through ``asyncio.to_thread``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, case, func, insert, or_, select, update

from pbx_bridge.storage.database import Database
from pbx_bridge.storage.schema import events, webhook_deliveries, webhook_subscriptions

__all__ = ["Delivery", "Outbox"]

D = webhook_deliveries
S = webhook_subscriptions
_SHOWN = (D.c.id, D.c.event_seq, D.c.subscription, D.c.state, D.c.attempts, D.c.next_at,
          D.c.created, D.c.finished, D.c.last_status, D.c.last_error)
# Built once, executed with parameters (the SET clause from their keys): one settle per
# delivery attempt, next to the API's requests; a statement built per call with
# ``.values()`` was most of its cost in SQLAlchemy (issue 15, as recordings/store.py).
# The claim ends; a sender whose lease ran out and was taken over changes nothing.
_SETTLE = update(D).where(
    D.c.id == bindparam("_id"),
    or_(D.c.claimed_by.is_(None), D.c.claimed_by == bindparam("_owner")),
)


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
        self.claims = db.backend == "postgresql"  # several senders may share the rows

    def _writing(self) -> Any:
        """A transaction for the outbox's own updates: on PostgreSQL row locks are
        enough (not the cluster-wide writers' lock); SQLite writes take its lock."""
        return self.db.transaction(write=not self.claims)

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
            found = conn.execute(_due(subscription, now, limit)).all()
        return [_delivery(r, with_event=True) for r in found]

    def take(self, subscription: str, now: float, limit: int, *, owner: str,
             lease: float) -> list[Delivery]:
        """The rows this sender attempts now: `due` on SQLite; on PostgreSQL the due
        rows no other sender holds, claimed by ``owner`` until ``now + lease``, none
        while the receiver is held off."""
        if not self.claims:
            return self.due(subscription, now, limit)
        with self._writing() as conn:
            held = conn.execute(select(S.c.hold_until).where(S.c.id == subscription)).scalar()
            if held is not None and held > now:
                return []
            ids = list(conn.execute(
                select(D.c.id).where(D.c.subscription == subscription, D.c.state == "pending",
                                     D.c.next_at <= now, _free(now))
                .order_by(D.c.next_at, D.c.event_seq).limit(limit)
                .with_for_update(skip_locked=True)
            ).scalars())
            if not ids:
                return []
            conn.execute(update(D).where(D.c.id.in_(ids)).values(
                claimed_by=owner, claimed_until=now + lease))
            found = conn.execute(_due(subscription, now, limit, ids)).all()
        return [_delivery(r, with_event=True) for r in found]

    def release(self, owner: str) -> int:
        """A sender that stops cleanly hands its claims back at once (not at lease end)."""
        if not self.claims:
            return 0
        with self._writing() as conn:
            return int(conn.execute(update(D).where(D.c.claimed_by == owner).values(
                claimed_by=None, claimed_until=None)).rowcount)

    def next_due(self, subscription: str) -> float | None:
        """When a row of the receiver is next due for this sender: its retry time, or
        when another sender's claim on it ends; not before the receiver's hold-off."""
        ready = case((D.c.claimed_until > D.c.next_at, D.c.claimed_until), else_=D.c.next_at)
        with self.db.transaction() as conn:
            due = conn.execute(
                select(func.min(ready))
                .where(D.c.subscription == subscription, D.c.state == "pending")
            ).scalar()
            held = conn.execute(select(S.c.hold_until).where(S.c.id == subscription)).scalar()
        return None if due is None else max(due, held or due)

    def failed(self, subscription: str, retry_at: Callable[[int], float]) -> float:
        """One more failed attempt in a row for the receiver; every sender leaves it
        alone until ``retry_at(failures in a row)``, which this returns."""
        with self._writing() as conn:
            streak = conn.execute(
                update(S).where(S.c.id == subscription).values(failing=S.c.failing + 1)
                .returning(S.c.failing)
            ).scalar()
            until = retry_at(int(streak or 1))
            conn.execute(update(S).where(S.c.id == subscription).values(hold_until=until))
        return until

    def recovered(self, subscription: str) -> None:
        """The receiver answered 2xx: its failures in a row start over."""
        with self._writing() as conn:
            conn.execute(update(S).where(
                S.c.id == subscription, or_(S.c.failing > 0, S.c.hold_until.is_not(None))
            ).values(failing=0, hold_until=None))

    def waiting(self) -> list[str]:
        """Receivers with pending rows (a restart's, or a redeliver's from the CLI)."""
        with self.db.transaction() as conn:
            return list(conn.execute(
                select(D.c.subscription).where(D.c.state == "pending").distinct()
            ).scalars())

    def settle(self, delivery_id: int, *, state: str, attempts: int, next_at: float,
               status: int | None, error: str | None, now: float,
               owner: str | None = None) -> bool:
        """An attempt's outcome: ``delivered``, ``dead``, or ``pending`` again at next_at;
        the claim ends. False (nothing changed) when another sender holds the row now
        (``owner``'s lease ran out and it was taken over)."""
        finished = now if state != "pending" else None
        with self._writing() as conn:
            return bool(conn.execute(_SETTLE, {
                "_id": delivery_id, "_owner": owner, "state": state, "attempts": attempts,
                "next_at": next_at, "last_status": status, "last_error": error,
                "finished": finished, "claimed_by": None, "claimed_until": None}).rowcount)

    def of_event(self, event_id: str) -> list[Delivery]:
        """The deliveries of one event (by its id, ``evt-...``), one per subscription."""
        seq = select(events.c.seq).where(events.c.id == event_id).scalar_subquery()
        with self.db.transaction() as conn:
            found = conn.execute(select(*_SHOWN).where(D.c.event_seq == seq)
                                 .order_by(D.c.id)).all()
        return [_delivery(r) for r in found]

    def find(self, state: str | None = None, limit: int = 100) -> list[Delivery]:
        """The newest rows first (``pbx-bridge events deliveries``)."""
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
                state="pending", next_at=now, created=now, finished=None, claimed_by=None,
                claimed_until=None)).rowcount)

    def counts(self) -> dict[str, int]:
        with self.db.transaction() as conn:
            rows = conn.execute(select(D.c.state, func.count()).group_by(D.c.state)).all()
        return {str(r[0]): int(r[1]) for r in rows}


def _free(now: float) -> Any:
    """A row no sender holds: never claimed, settled since, or its lease is over."""
    return or_(D.c.claimed_until.is_(None), D.c.claimed_until <= now)


def _due(subscription: str, now: float, limit: int, ids: list[int] | None = None) -> Any:
    stmt = (select(*_SHOWN, events.c.data)
            .join(events, events.c.seq == D.c.event_seq)
            .where(D.c.subscription == subscription, D.c.state == "pending",
                   D.c.next_at <= now)
            .order_by(D.c.next_at, D.c.event_seq).limit(limit))
    return stmt if ids is None else stmt.where(D.c.id.in_(ids))
