"""Webhook subscriptions (table ``webhook_subscriptions``): one receiver each, for one
extension or (``extension`` None) every extension of an organization. The store keeps
an index by organization in memory for matching events (rebuilt after each change this
process makes; the API is the only writer). Replicas on one PostgreSQL each keep one:
an event's transaction reads its organizations' rows again before matching (`refresh`),
so a subscription made through another replica misses no event; the rest follows
within the sender's poll (`reload`) or at the API's next subscription request."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import orjson
from sqlalchemy import Connection, delete, insert, select, update

from pbx_bridge.events.model import Event
from pbx_bridge.storage.database import Database
from pbx_bridge.storage.schema import webhook_deliveries, webhook_subscriptions

__all__ = ["Subscription", "SubscriptionStore", "new_id"]

T = webhook_subscriptions


def new_id() -> str:
    return "sub-" + secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    organization: int
    extension: str | None
    url: str
    method: str  # "GET" | "POST"
    types: tuple[str, ...]
    active: bool
    secret: str
    created: float

    def wants(self, ev: Event) -> bool:
        return (
            self.active and ev.organization == self.organization
            and (self.extension is None or self.extension == ev.extension)
            and ev.type in self.types
        )


def _values(s: Subscription) -> dict[str, object]:
    return {"id": s.id, "organization": s.organization, "extension": s.extension,
            "url": s.url, "method": s.method, "types": orjson.dumps(list(s.types)).decode(),
            "active": int(s.active), "secret": s.secret, "created": s.created}


def _sub(row: object) -> Subscription:
    r = row._mapping  # type: ignore[attr-defined]
    return Subscription(id=r["id"], organization=r["organization"], extension=r["extension"],
                        url=r["url"], method=r["method"], types=tuple(orjson.loads(r["types"])),
                        active=bool(r["active"]), secret=r["secret"], created=r["created"])


class SubscriptionStore:
    """Blocking (the API calls it through ``asyncio.to_thread``) except `matching` and
    `cached`, which read the in-memory index."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # Replicas (PostgreSQL): other processes add, change and remove subscriptions;
        # the index follows the table (`refresh`, and `reload` on the sender's poll).
        self.shared = db.backend == "postgresql"
        self._lock = threading.Lock()
        self._by_id: dict[str, Subscription] = {}
        self._by_org: dict[int, list[Subscription]] = {}
        self.reload()

    def reload(self) -> None:
        with self.db.transaction() as conn:
            subs = [_sub(r) for r in conn.execute(select(T)).all()]
        by_org: dict[int, list[Subscription]] = {}
        for s in subs:
            by_org.setdefault(s.organization, []).append(s)
        with self._lock:
            self._by_id = {s.id: s for s in subs}
            self._by_org = by_org

    def refresh(self, conn: Connection, organizations: Iterable[int]) -> None:
        """The index of these organizations as the caller's transaction reads the table
        (an event's own, on replicas: a subscription another replica committed before
        the event is matched, exactly as one made through this replica)."""
        orgs = sorted(set(organizations))
        if not orgs:
            return
        subs = [_sub(r) for r in conn.execute(select(T).where(T.c.organization.in_(orgs)))]
        fresh: dict[int, list[Subscription]] = {org: [] for org in orgs}
        for sub in subs:
            fresh[sub.organization].append(sub)
        with self._lock:  # per key: a reader in the loop sees the old list or the new
            for org, now in fresh.items():
                gone = {old.id for old in self._by_org.get(org, ())} - {s.id for s in now}
                self._by_id.update((sub.id, sub) for sub in now)
                for sub_id in gone:
                    del self._by_id[sub_id]
                if now:
                    self._by_org[org] = now
                else:
                    self._by_org.pop(org, None)

    def matching(self, ev: Event) -> list[Subscription]:
        if ev.organization is None:
            return []
        return [s for s in self._by_org.get(ev.organization, ()) if s.wants(ev)]

    def cached(self, sub_id: str) -> Subscription | None:
        return self._by_id.get(sub_id)

    def of(self, organization: int, extension: str | None) -> list[Subscription]:
        """An extension's subscriptions, or (None) the organization-level ones."""
        return sorted(
            (s for s in self._by_org.get(organization, ()) if s.extension == extension),
            key=lambda s: (s.created, s.id),
        )

    def add(self, sub: Subscription) -> None:
        with self.db.transaction(write=True) as conn:
            conn.execute(insert(T).values(_values(sub)))
        self.reload()

    def replace(self, sub: Subscription) -> None:
        with self.db.transaction(write=True) as conn:
            conn.execute(update(T).where(T.c.id == sub.id).values(_values(sub)))
        self.reload()

    def remove(self, sub_id: str) -> None:
        """The subscription and what it still had to deliver."""
        d = webhook_deliveries.c
        with self.db.transaction(write=True) as conn:
            conn.execute(delete(T).where(T.c.id == sub_id))
            conn.execute(delete(webhook_deliveries).where(
                d.subscription == sub_id, d.state == "pending"))
        self.reload()
