"""Recording events, pure: a catalog row as it was written (recordings/feature.py hands
each saved copy over, in order) in, the events its change means out.

recording -> paused: ``recording.paused``; paused -> recording: ``recording.resumed``;
first seen: ``recording.started`` (and ``paused`` if it starts paused, as after a
restart); stop time set: ``recording.stopped``; the file read: ``recording.completed``,
or ``recording.failed`` (failed with a reason, or missing). ``data`` = the Recording.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pbx_bridge.calls.model import iso
from pbx_bridge.events.model import Draft
from pbx_bridge.recordings.catalog import RecordingRow

__all__ = ["RecordingEvents", "recording_json"]

_FINAL = {"completed": "recording.completed", "failed": "recording.failed",
          "missing": "recording.failed"}


def recording_json(row: RecordingRow, base_url: str) -> dict[str, Any]:
    """The Recording resource (CONTRACT section 6), its links under the extension's owner."""
    self_link = f"{base_url}/uapi/recordings/{row.owner}/{row.extension}/{row.id}"
    data: dict[str, Any] = {
        "id": row.id, "phoneCallId": row.call_id, "phoneCallViewId": row.view_id,
        "extension": row.extension, "ownerId": str(row.organization) if row.organization else None,
        "format": row.format, "state": row.state, "reason": row.reason,
        "startedBy": row.started_by, "appId": row.app_id,
        "started": iso(row.started), "stopped": iso(row.stopped),
        "paused": [{"from": iso(a), "to": iso(b)} if b is not None else {"from": iso(a)}
                   for a, b in row.paused],
        "duration": row.duration, "size": row.size, "sha256": row.sha256,
        "link": {"self": self_link, "media": f"{self_link}/media"},
    }
    return {k: v for k, v in data.items() if v is not None}


class RecordingEvents:
    """``running``: rows a bridge before a restart already announced (still running)."""

    def __init__(self, base_url: str, running: Iterable[RecordingRow] = ()) -> None:
        self._base = base_url
        self._known: dict[str, tuple[str, bool]] = {
            row.id: (row.state, row.stopped is not None) for row in running
        }

    def on_row(self, row: RecordingRow, now: float) -> list[Draft]:
        """The events this saved copy of a row means (``now``: when it was saved)."""
        kinds = self._kinds(row)
        if row.state in _FINAL:
            self._known.pop(row.id, None)
        else:
            self._known[row.id] = (row.state, row.stopped is not None)
        data = recording_json(row, self._base) if kinds else {}
        return [
            Draft(type=kind, time=_when(kind, row, now), extension=row.extension,
                  phone_call_id=row.call_id, data=data)
            for kind in kinds
        ]

    def _kinds(self, row: RecordingRow) -> list[str]:
        state, stopped = self._known.get(row.id, (None, False))
        kinds: list[str] = []
        if state is None:
            kinds.append("recording.started")
            state = "recording"
        if row.state == "paused" and state == "recording":
            kinds.append("recording.paused")
        elif row.state == "recording" and state == "paused" and row.stopped is None:
            kinds.append("recording.resumed")
        if row.stopped is not None and not stopped:
            kinds.append("recording.stopped")
        if row.state in _FINAL:
            kinds.append(_FINAL[row.state])
        return kinds


def _when(kind: str, row: RecordingRow, now: float) -> float:
    """When it happened, as Asterisk's events told the catalog; the file's verdict: now."""
    last_pause = row.paused[-1] if row.paused else [None, None]
    when = {
        "recording.started": row.started, "recording.stopped": row.stopped,
        "recording.paused": last_pause[0], "recording.resumed": last_pause[1],
    }.get(kind)
    return when if when is not None else now
