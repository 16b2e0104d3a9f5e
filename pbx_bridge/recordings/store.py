"""The catalog's rows in the database (table ``recordings``, storage/schema.py).

Blocking (the database is one connection behind a lock): the feature calls these
through ``asyncio.to_thread``, never on the event loop."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update

from pbx_bridge.recordings.catalog import RecordingRow
from pbx_bridge.recordings.reconcile import KnownFile
from pbx_bridge.storage.database import Database
from pbx_bridge.storage.schema import recordings

__all__ = ["RecordingQuery", "RecordingStore"]

_BATCH = 500  # ids per IN (...): under every database's limit on bound values
_FIELDS = tuple(f.name for f in dataclasses.fields(RecordingRow))


@dataclass(frozen=True, slots=True)
class RecordingQuery:
    """One extension's recordings, newest first, optionally filtered."""

    extensions: tuple[str, ...]
    call_id: str | None = None
    state: str | None = None
    since: float | None = None
    until: float | None = None


def _values(row: RecordingRow) -> dict[str, Any]:
    values = {name: getattr(row, name) for name in _FIELDS}
    values["paused"] = json.dumps(row.paused)
    return values


def _row(values: Any) -> RecordingRow:
    data = dict(values._mapping)
    data["paused"] = json.loads(data["paused"])
    return RecordingRow(**data)


class RecordingStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def save(self, row: RecordingRow) -> None:
        """Insert or update (by id)."""
        self.save_all([row])

    def save_all(self, rows: list[RecordingRow]) -> None:
        """Insert or update each (by id), in one transaction."""
        with self.db.transaction(write=True) as conn:
            for row in rows:
                values = _values(row)
                done = conn.execute(
                    update(recordings).where(recordings.c.id == row.id).values(values)
                ).rowcount
                if not done:
                    conn.execute(insert(recordings).values(values))

    def get(self, recording_id: str) -> RecordingRow | None:
        with self.db.transaction() as conn:
            found = conn.execute(
                select(recordings).where(recordings.c.id == recording_id)
            ).first()
        return _row(found) if found is not None else None

    def find(self, query: RecordingQuery) -> list[RecordingRow]:
        c = recordings.c
        stmt = select(recordings).where(c.extension.in_(query.extensions))
        if query.call_id is not None:
            stmt = stmt.where(c.call_id == query.call_id)
        if query.state is not None:
            stmt = stmt.where(c.state == query.state)
        if query.since is not None:
            stmt = stmt.where(c.started >= query.since)
        if query.until is not None:
            stmt = stmt.where(c.started < query.until)
        with self.db.transaction() as conn:
            found = conn.execute(stmt.order_by(c.started.desc(), c.id)).all()
        return [_row(r) for r in found]

    def get_many(self, ids: list[str]) -> list[RecordingRow]:
        found: list[Any] = []
        with self.db.transaction() as conn:
            for at in range(0, len(ids), _BATCH):
                chunk = ids[at:at + _BATCH]
                found += conn.execute(
                    select(recordings).where(recordings.c.id.in_(chunk))
                ).all()
        return [_row(r) for r in found]

    def known(self) -> list[KnownFile]:
        """Every row, as little of it as the reconciler needs (no paused, no SHA-256)."""
        c = recordings.c
        with self.db.transaction() as conn:
            found = conn.execute(select(
                c.id, c.state, c.host_path, c.extension, c.call_id, c.started,
                c.file.is_not(None),
            )).all()
        return [KnownFile(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6])) for r in found]

    def unfinished(self) -> list[RecordingRow]:
        """Rows still `recording` or `paused` (to finish after a restart)."""
        c = recordings.c
        with self.db.transaction() as conn:
            found = conn.execute(
                select(recordings).where(c.state.in_(("recording", "paused")))
            ).all()
        return [_row(r) for r in found]

    def delete(self, recording_id: str) -> bool:
        with self.db.transaction(write=True) as conn:
            return bool(
                conn.execute(delete(recordings).where(recordings.c.id == recording_id)).rowcount
            )
