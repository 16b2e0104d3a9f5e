"""Recording events, pure: a catalog row as it was written (recordings/feature.py hands
each saved copy over, in order) in, the events its change means out.

recording -> paused: ``recording.paused``; paused -> recording: ``recording.resumed``;
first seen: ``recording.started`` (and ``paused`` if it starts paused, as after a
restart); stop time set: ``recording.stopped``; the file read: ``recording.completed``,
or ``recording.failed`` (failed with a reason, or missing). ``data`` = the Recording;
``key`` the run as Asterisk's events name it (events/keys.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from pbx_bridge.events.keys import recording_key
from pbx_bridge.events.model import Draft
from pbx_bridge.recordings.catalog import RecordingRow
from pbx_bridge.recordings.resource import recording_json

__all__ = ["RecordingEvents"]

_FINAL = {"completed": "recording.completed", "failed": "recording.failed",
          "missing": "recording.failed"}


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
        data = recording_json(row, self._base, row.owner) if kinds else {}
        return [
            Draft(type=kind, time=_when(kind, row, now), extension=row.extension,
                  phone_call_id=row.call_id, data=data, key=recording_key(kind, row))
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
