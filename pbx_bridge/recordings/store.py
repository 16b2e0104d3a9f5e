"""The catalog's rows in the database (table ``recordings``, storage/schema.py).

Blocking (the database is one connection behind a lock): the feature calls these
through ``asyncio.to_thread``, never on the event loop."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from pbx_bridge.recordings.catalog import RecordingRow
from pbx_bridge.recordings.reconcile import KnownFile
from pbx_bridge.recordings.retention import FINISHED
from pbx_bridge.storage.database import Database
from pbx_bridge.storage.schema import recordings

__all__ = ["CatalogFilter", "RecordingQuery", "RecordingStore"]

_BATCH = 500  # ids per IN (...): under every database's limit on bound values
_FIELDS = tuple(f.name for f in dataclasses.fields(RecordingRow))
# Built once and executed with parameters: a statement built per row with ``.values()``
# cost ~0.6-1 ms of SQLAlchemy per save (coercing and cache-keying every column), held
# the GIL against the event loop while a request was answered, and was the largest part
# of StartRecording's latency over what it asks of Asterisk (issue 15). The SET clause
# comes from the parameters' keys; ``_id`` picks the row.


@dataclass(frozen=True, slots=True)
class RecordingQuery:
    """One extension's recordings, newest first, optionally filtered."""

    extensions: tuple[str, ...]
    call_id: str | None = None
    state: str | None = None
    since: float | None = None
    until: float | None = None


@dataclass(frozen=True, slots=True)
class CatalogFilter:
    """The whole catalog as an administrator filters it (``pbx-bridge recordings``)."""

    organization: int | None = None
    extension: str | None = None
    state: str | None = None
    limit: int | None = None


def _values(row: RecordingRow) -> dict[str, Any]:
    values = {name: getattr(row, name) for name in _FIELDS}
    values["paused"] = json.dumps(row.paused)
    return values


def _row(values: Any) -> RecordingRow:
    data = dict(values._mapping)
    data["paused"] = json.loads(data["paused"])
    return RecordingRow(**data)


def _where(query: RecordingQuery) -> list[ColumnElement[bool]]:
    c = recordings.c
    where: list[ColumnElement[bool]] = [c.extension.in_(query.extensions)]
    if query.call_id is not None:
        where.append(c.call_id == query.call_id)
    if query.state is not None:
        where.append(c.state == query.state)
    if query.since is not None:
        where.append(c.started >= query.since)
    if query.until is not None:
        where.append(c.started < query.until)
    return where


def _progress(row: RecordingRow) -> int:
    """How far on ``row`` is: 2 finished, 1 stopped, 0 running."""
    if row.state in FINISHED:
        return 2
    return 1 if row.stopped is not None else 0


def _not_ahead_of(progress: int) -> list[ColumnElement[bool]]:
    """The stored row is not further on than a row of ``progress``: finished > stopped >
    running."""
    c = recordings.c
    # `!=` per state, not NOT IN: an expanding IN parameter is rendered on every execution.
    unfinished: list[ColumnElement[bool]] = [c.state != state for state in sorted(FINISHED)]
    return [[*unfinished, c.stopped.is_(None)], unfinished, []][progress]


# Built once (a save is on every MixMonitorStart/Stop: issue 15), one per progress.
_UPDATES = [
    update(recordings).where(recordings.c.id == bindparam("_id"), *_not_ahead_of(p))
    for p in range(3)
]


class RecordingStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        dialect = postgresql if db.backend == "postgresql" else sqlite
        self._insert = dialect.insert(recordings).on_conflict_do_nothing(index_elements=["id"])

    def save(self, row: RecordingRow) -> None:
        """Insert or update (by id)."""
        self.save_all([row])

    def save_all(self, rows: list[RecordingRow]) -> None:
        """Insert or update each (by id), in one transaction. Replicas write the same
        rows (same ids, catalog.run_id) from the same events, each when it gets there: a
        row never goes back, from finished to running or from stopped to not stopped,
        so a replica that is behind cannot undo what another wrote."""
        with self.db.transaction(write=True) as conn:
            for row in rows:
                values = _values(row)
                changes = {name: value for name, value in values.items() if name != "id"}
                changes["_id"] = row.id
                if not conn.execute(_UPDATES[_progress(row)], changes).rowcount:
                    # Absent, or stored further on by another replica (kept): insert only
                    # if absent; a replica inserting the same run first wins.
                    conn.execute(self._insert, values)

    def get(self, recording_id: str) -> RecordingRow | None:
        with self.db.transaction() as conn:
            found = conn.execute(
                select(recordings).where(recordings.c.id == recording_id)
            ).first()
        return _row(found) if found is not None else None

    def find(self, query: RecordingQuery) -> list[RecordingRow]:
        c = recordings.c
        stmt = select(recordings).where(*_where(query))
        with self.db.transaction() as conn:
            found = conn.execute(stmt.order_by(c.started.desc(), c.id)).all()
        return [_row(r) for r in found]

    def select(self, where: CatalogFilter) -> list[RecordingRow]:
        """Every row that matches, newest first."""
        c = recordings.c
        stmt = select(recordings)
        if where.organization is not None:
            stmt = stmt.where(c.organization == where.organization)
        if where.extension is not None:
            stmt = stmt.where(c.extension == where.extension)
        if where.state is not None:
            stmt = stmt.where(c.state == where.state)
        stmt = stmt.order_by(c.started.desc(), c.id)
        if where.limit is not None:
            stmt = stmt.limit(where.limit)
        with self.db.transaction() as conn:
            found = conn.execute(stmt).all()
        return [_row(r) for r in found]

    def page(self, query: RecordingQuery, start: int, count: int
             ) -> tuple[int, list[RecordingRow]]:
        """How many rows ``find`` would answer, and the ``count`` of them from ``start``:
        counted and cut by the database, so a list of a busy extension (100,000 rows)
        reads one page, not every row (docs/performance.md, "Recordings")."""
        c = recordings.c
        where = _where(query)
        with self.db.transaction() as conn:
            total = conn.execute(
                select(func.count()).select_from(recordings).where(*where)
            ).scalar_one()
            found = [] if start >= total else conn.execute(
                select(recordings).where(*where).order_by(c.started.desc(), c.id)
                .offset(start).limit(count)
            ).all()
        return total, [_row(r) for r in found]

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
                c.file.is_not(None), c.node,
            )).all()
        return [KnownFile(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), r[7]) for r in found]

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

    def ended_before(self, organization: int, before: float) -> list[RecordingRow]:
        """The organization's finished rows that ended (stopped, else started) before
        ``before``, oldest first: the retention sweep's candidates."""
        c = recordings.c
        stmt = select(recordings).where(
            c.organization == organization,
            c.state.in_(FINISHED),
            c.started < before,  # the index; a run stops after it starts
            func.coalesce(c.stopped, c.started) < before,
        )
        with self.db.transaction() as conn:
            found = conn.execute(stmt.order_by(c.started, c.id)).all()
        return [_row(r) for r in found]

    def delete_finished(self, recording_ids: list[str]) -> int:
        """Delete these rows, but only those finished (never a run that is going on)."""
        c = recordings.c
        with self.db.transaction(write=True) as conn:
            return int(
                conn.execute(
                    delete(recordings).where(c.id.in_(recording_ids), c.state.in_(FINISHED))
                ).rowcount
            )
