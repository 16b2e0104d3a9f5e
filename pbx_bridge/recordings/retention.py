"""Retention, pure: which catalog rows are expired at a time T.

An organization keeps its finished recordings ``retention_days`` after they stopped
(its directory policy, ``recordings.retention_days``; None: for ever). Finished means
``completed``, ``failed`` or ``missing``: a row still ``recording`` or ``paused`` (which
includes a stopped run whose file is not finished yet) never expires, and a row of no
organization (an extension unknown to the directory) has no policy, so it is kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pbx_bridge.recordings.catalog import RecordingRow

__all__ = ["DAY", "FINISHED", "cutoff", "ended", "expired", "is_expired"]

DAY = 86400.0
FINISHED = ("completed", "failed", "missing")


def cutoff(retention_days: int | None, now: float) -> float | None:
    """Rows that ended before this moment are expired; None: nothing expires."""
    return None if retention_days is None else now - retention_days * DAY


def ended(row: RecordingRow) -> float:
    """When the run stopped (a row finished from its file alone: when it started)."""
    return row.stopped if row.stopped is not None else row.started


def is_expired(row: RecordingRow, retention_days: int | None, now: float) -> bool:
    limit = cutoff(retention_days, now)
    return row.state in FINISHED and limit is not None and ended(row) < limit


def expired(
    rows: Iterable[RecordingRow], retention: Mapping[int, int | None], now: float
) -> list[RecordingRow]:
    """The rows expired at ``now``; ``retention``: organization -> its retention_days."""
    return [
        row for row in rows
        if row.organization is not None
        and is_expired(row, retention.get(row.organization), now)
    ]  # fmt: skip
