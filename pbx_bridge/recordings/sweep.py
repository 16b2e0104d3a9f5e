"""The retention sweep: deletes what retention.py says expired, the file first, then the
row (a sweep cut short leaves a row whose file is gone, which the next sweep deletes;
never a file without its row). Blocking: the feature runs it in a thread, and
``pbx-bridge recordings sweep`` directly, with the bridge running or not.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pbx_bridge.directory.store import Directory
from pbx_bridge.recordings.catalog import RecordingRow
from pbx_bridge.recordings.retention import cutoff, expired
from pbx_bridge.recordings.store import RecordingStore

__all__ = ["SweepReport", "Sweeper"]

log = logging.getLogger("pbx_bridge.recordings")
_BATCH = 500  # rows deleted per transaction


@dataclass
class SweepReport:
    swept: list[RecordingRow] = field(default_factory=list)  # file and row deleted
    freed: int = 0  # bytes of the files deleted
    kept: list[tuple[RecordingRow, str]] = field(default_factory=list)  # file not deletable


def _remove_file(row: RecordingRow) -> int:
    """Delete the row's file (as the catalog placed it: inside the recordings folders);
    its size, 0 if there was none. Raises OSError when it exists and cannot go."""
    if not row.host_path:
        return 0
    path = Path(row.host_path)
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        return 0
    path.unlink(missing_ok=True)
    return size


class Sweeper:
    def __init__(
        self, store: RecordingStore, directory: Directory, *,
        clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.store = store
        self.directory = directory
        self._clock = clock

    def retention(self) -> dict[int, int]:
        """Organization -> retention_days, for those that do not keep recordings for ever."""
        return {
            org.id: org.recordings.retention_days
            for org in self.directory.all_organizations()
            if org.recordings.retention_days is not None
        }

    def due(self, now: float | None = None) -> list[RecordingRow]:
        """The rows expired at ``now`` (default: the clock's now), oldest first per
        organization: what a sweep deletes, and what ``--dry-run`` shows."""
        now = self._clock() if now is None else now
        rows: list[RecordingRow] = []
        for org, days in self.retention().items():
            limit = cutoff(days, now)
            assert limit is not None
            rows += expired(self.store.ended_before(org, limit), {org: days}, now)
        return rows

    def sweep(self, now: float | None = None) -> SweepReport:
        report = SweepReport()
        due = self.due(now)
        for start in range(0, len(due), _BATCH):
            gone = []
            for row in due[start:start + _BATCH]:
                try:
                    report.freed += _remove_file(row)
                except OSError as exc:
                    reason = exc.strerror or type(exc).__name__
                    log.warning("recording %s: expired, file not deleted: %s", row.id, reason)
                    report.kept.append((row, reason))
                    continue
                gone.append(row)
            if gone:
                self.store.delete_finished([row.id for row in gone])
                report.swept += gone
        return report
