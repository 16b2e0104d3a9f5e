"""What an event is, as every bridge that hears the same AMI events agrees on it: its
``key`` (events/model.py's Draft), from what Asterisk sent and nothing a bridge made up
(no clock, no random id, no in-memory counter), so that two replicas fed the same events
store each event once (the history's unique key; events/store.py).

- A call event: ``call|<phase>|<phoneCallId>|<anchor>|<extension>``. The phoneCallId
  comes from the Linkedid; the anchor is the Uniqueid of the view's first channel when
  the view was first announced, so an extension that leaves the call and joins it again
  (a new channel) is a new view, and its ``answered``/``hangup`` name the same anchor as
  its ``ringing``. A bridge that restarts reads the anchor back from the history's keys.
- A recording event: ``rec|<kind>|<run>|<n>``, the run being the Uniqueid of the channel
  MixMonitor records and the run's start (as Asterisk's events told it), and ``n`` the
  pause's number for ``paused``/``resumed`` (a run may pause many times).
"""

from __future__ import annotations

from collections.abc import Iterable

from pbx_bridge.calls.tracker import seq_of
from pbx_bridge.recordings.catalog import RecordingRow

__all__ = ["anchor_of", "call_key", "first_channel", "recording_key"]

_SEP = "|"
UNKNOWN_ANCHOR = "?"


def first_channel(uniqueids: Iterable[str]) -> str:
    """The view's anchor: its oldest channel (Asterisk's own order of Uniqueids)."""
    found = sorted(uniqueids, key=lambda uid: (seq_of(uid), uid))
    return found[0] if found else UNKNOWN_ANCHOR


def call_key(phase: str, call_id: str, anchor: str, extension: str) -> str:
    return _SEP.join(("call", phase, call_id, anchor.replace(_SEP, "_"), extension))


def anchor_of(key: str) -> str | None:
    """The anchor a stored call event's key names (None: not a call key)."""
    parts = key.split(_SEP, 4)
    return parts[3] if len(parts) == 5 and parts[0] == "call" else None


def recording_key(kind: str, row: RecordingRow) -> str:
    run = f"{row.channel}@{row.started:.6f}" if row.channel else f"file:{row.file or row.id}"
    n = str(len(row.paused)) if kind in ("recording.paused", "recording.resumed") else ""
    return _SEP.join(("rec", kind, run, n))
