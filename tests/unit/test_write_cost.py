"""The background writes next to the request path stay cheap in Python (issue 15).

The recordings catalog saves a row on every MixMonitorStart/Stop, and the webhook sender
settles every delivery, in a worker thread while the event loop answers requests; the
thread's Python holds the GIL the loop needs. Building a statement per row with
``.values()`` cost ~1,000-1,250 Python calls of SQLAlchemy per saved row (~0.6-1 ms);
a statement built once and executed with parameters ~110-140. Counted, not timed: the
count is the same on a busy machine.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from pbx_bridge.directory.store import Directory
from pbx_bridge.recordings.catalog import RecordingRow
from pbx_bridge.recordings.store import RecordingStore
from pbx_bridge.storage.schema import events
from pbx_bridge.webhooks.outbox import Outbox

# Measured with the built-once statements / with a statement per call: a catalog save
# 141 (insert) and 112 (update) / 990 and ~1,250; a settle 99 / 276.
CALLS_PER_SAVE = 450
CALLS_PER_SETTLE = 180


def python_calls(fn: Callable[[], Any]) -> int:
    count = 0

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal count
        if event == "call":
            count += 1

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return count


def _row(n: int, **kw: Any) -> RecordingRow:
    return RecordingRow(id=f"rec-{n}", extension="0003*210", call_id="c1", view_id="01",
                        started=1_700_000_000.0 + n, file=f"x/{n}.wav", **kw)


def test_saving_a_catalog_row_builds_no_statement_per_row(tmp_path: Path) -> None:
    directory = Directory.open(tmp_path / "d.sqlite3")
    store = RecordingStore(directory.database)
    store.save(_row(0))  # warm: SQLAlchemy compiles each statement once
    store.save(_row(0, state="stopped", stopped=1_700_000_009.0))
    # and each of the three updates (running, stopped, finished: replicas never go back)
    store.save(_row(0, state="completed", stopped=1_700_000_009.0, duration=9.0))

    inserted = python_calls(lambda: store.save(_row(1)))
    updated = python_calls(lambda: store.save(
        _row(1, state="completed", stopped=1_700_000_010.0, duration=9.0, paused=[[2.0, 3.0]])))

    assert inserted < CALLS_PER_SAVE
    assert updated < CALLS_PER_SAVE
    saved = store.get("rec-1")
    assert saved is not None
    assert (saved.state, saved.duration, saved.paused) == ("completed", 9.0, [[2.0, 3.0]])
    assert store.get("rec-0") is not None and store.get("rec-0").state == "completed"  # type: ignore[union-attr]
    directory.close()


def test_settling_a_webhook_delivery_builds_no_statement_per_call(tmp_path: Path) -> None:
    directory = Directory.open(tmp_path / "d.sqlite3")
    db = directory.database
    outbox = Outbox(db)
    with db.transaction(write=True) as conn:
        conn.execute(events.insert(), [{"seq": 1, "id": "e1", "type": "call.started",
                                        "time": 1.0, "organization": None,
                                        "extension": "0003*210", "data": "{}"}])
        Outbox.enqueue(conn, [(1, "sub-a"), (1, "sub-b")], 1.0)
    first, second = (d.id for d in outbox.find())
    outbox.settle(first, state="pending", attempts=1, next_at=5.0, status=500,
                  error="HTTP 500", now=2.0)  # warm

    calls = python_calls(lambda: outbox.settle(second, state="delivered", attempts=1,
                                               next_at=2.0, status=200, error=None, now=3.0))

    assert calls < CALLS_PER_SETTLE
    shown = {d.id: d for d in outbox.find()}
    assert (shown[second].state, shown[second].last_status, shown[second].finished) == (
        "delivered", 200, 3.0)
    assert (shown[first].state, shown[first].attempts, shown[first].last_error) == (
        "pending", 1, "HTTP 500")
    directory.close()
