"""The catalog's state machine, pure: AMI events (after the tracker applied them) in,
recording rows out. No I/O: the feature (feature.py) persists what changed and finishes
rows by reading their files.

One row per MixMonitor run, keyed while it runs by the channel's Uniqueid (Asterisk
runs at most one of ours per channel at a time): MixMonitorStart opens it (with the
PBX_REC stamp's file if the tracker has it), MixMonitorMute both/1 and 0 open and close
a paused interval, MixMonitorStop or the channel's Hangup stop it; then the file decides
(`finish`): `completed`, `failed` with a reason, or `missing`.

A MixMonitor the PBX started outside the bridge (a dialplan MixMonitor, automixmon,
another AMI client) carries no PBX_REC stamp: its file is the MIXMONITOR_FILENAME that
MixMonitor itself sets on the channel (manager.conf channelvars), an absolute path in
Asterisk's file system. The *1 and "always" subroutines stamp only after their
MixMonitor runs, so until a stamp shows, a run counts as the PBX's and a later stamp
takes over. A run on a Local half belongs to the view of the extension that placed the
call (a ring group or queue that records on its Local channel).

A run whose channel transferred the call (the transferer of a BlindTransfer, either
transferer channel of an AttendedTransfer) ends when that channel leaves: the row is
stopped then with the reason `transferred`. The parties left talking keep their own
channels, and so their recordings (see docs/design.md, "Transfers").

A run the recording feature re-arms (recording/rearm.py: its channel got a new peer)
is one row: the MixMonitorStop of the re-arm (the channel is marked ``rearming``) parks
the row, and the MixMonitorStart of the same file on the same channel takes it up again.
A parked row whose run does not start again ends where it was parked, with the reason
`rearm failed`.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Literal

from pbx_bridge.calls.tracker import Channel, Tracker, call_id
from pbx_bridge.recording.variables import MIXMONITOR_FILE_HEADER, REC_HEADER, parse_rec
from pbx_bridge.recordings.wavfile import FileFacts

__all__ = ["Catalog", "Origin", "RecordingRow", "State", "file_id", "finish", "new_id",
           "run_id"]

Event = Mapping[str, str]
State = Literal["recording", "paused", "completed", "missing", "failed"]
Origin = tuple[str, str | None]  # (startedBy, app id)
_STOPPING = frozenset({"MixMonitorStop", "Hangup"})
# The snapshot prefixes of the channels that hand a call over in each transfer event.
_TRANSFERERS = {
    "BlindTransfer": ("Transferer",),
    "AttendedTransfer": ("OrigTransferer", "SecondTransferer"),
}
# The *1 subroutine's stamp holds ${EPOCH} taken before its MixMonitor ran: up to a
# second (and a busy moment) older than the MixMonitorStart event.
_STAMP_SLACK = 2.0
TRANSFERRED = "transferred"  # the reason of a run its channel's transfer ended
REARM_FAILED = "rearm failed"  # the reason of a run whose re-arm did not start again
_KEPT_REASONS = frozenset({TRANSFERRED, REARM_FAILED})  # how a run ended, kept by finish


def new_id() -> str:
    return "r-" + secrets.token_hex(8)


def run_id(uniqueid: str, file: str | None, started: float) -> str:
    """A run's row id, the same in every replica that sees it (docs/design.md,
    "Replicas"): from what Asterisk tells all of them alike, the channel and the name of
    the file (MixMonitorStart's MIXMONITOR_FILENAME, a resync's PBX_REC: the same last
    part), else the start's event time. A channel runs one file once (names carry the
    start second), so two runs never share an id."""
    name = PurePosixPath(file).name if file else f"{started:.6f}"
    return "r-" + hashlib.sha256(f"{uniqueid}|{name}".encode()).hexdigest()[:16]


def file_id(host_path: str) -> str:
    """The row id of a file found in the folders (reconcile.py): every replica gives
    the file the same one."""
    return "r-" + hashlib.sha256(f"file|{host_path}".encode()).hexdigest()[:16]


@dataclass(slots=True)
class RecordingRow:
    id: str
    extension: str
    call_id: str
    view_id: str
    started: float
    organization: int | None = None
    owner: int | None = None
    channel: str = ""  # the Uniqueid it records
    format: str = "wav"
    file: str | None = None  # as Asterisk reports it (PBX_REC)
    host_path: str | None = None  # where the bridge reads it
    started_by: str = "pbx"
    app_id: str | None = None
    stopped: float | None = None
    paused: list[list[float | None]] = field(default_factory=list)  # [from, to|None]
    duration: float | None = None
    size: int | None = None
    sha256: str | None = None
    state: State = "recording"
    reason: str | None = None
    node: str | None = None  # the [[pbx]] node that recorded it (None: the first)

    @property
    def running(self) -> bool:
        return self.state in ("recording", "paused")


def format_of(file: str | None) -> str:
    """``.WAV`` is wav49 (GSM), ``.wav`` PCM; whatever else MixMonitor was given, its suffix."""
    if not file or "." not in file.rsplit("/", 1)[-1]:
        return "wav"
    suffix = file.rsplit(".", 1)[-1]
    return "wav49" if suffix == "WAV" else suffix.lower()


def finish(row: RecordingRow, facts: FileFacts) -> None:
    """The stopped run's row as its file says: `completed` (duration, size, SHA-256),
    `failed` with the reason, or `missing`."""
    row.size, row.sha256, row.duration = facts.size, facts.sha256 or None, facts.duration
    if row.reason not in _KEPT_REASONS:  # how the run ended stays; an old file's goes
        row.reason = None
    if facts.missing:
        row.state, row.size, row.duration = "missing", None, None
    elif facts.reason:
        row.state, row.reason = "failed", facts.reason
    else:
        row.state = "completed"


class Catalog:
    """The rows of the recordings that run (by channel), and the events that move them.

    ``origin_of(file)``: who started that file through this bridge (api + app, always);
    a stamped file it did not start was started by the dialplan's ``[pbx-bridge-rec]``:
    ``dialplan_trigger(extension)`` says whether as ``always`` (Dial's U() on answer) or
    ``star1``; an unstamped MixMonitor was started by the PBX itself. ``place(row)``:
    fills organization, owner, host path. ``node``: the name of the PBX node whose
    tracker this is, given to every row it opens."""

    def __init__(
        self,
        tracker: Tracker,
        *,
        origin_of: Callable[[str], Origin | None],
        place: Callable[[RecordingRow], None],
        dialplan_trigger: Callable[[str], str] = lambda extension: "star1",
        node: str | None = None,
    ) -> None:
        self.tracker = tracker
        self.node = node
        self.running: dict[str, RecordingRow] = {}  # Uniqueid -> row
        self._origin_of = origin_of
        self._place = place
        self._dialplan_trigger = dialplan_trigger
        self._ending: dict[str, str] = {}  # Uniqueid -> why its run will end (transfer)
        self._unstamped: set[str] = set()  # ids of rows whose file is MIXMONITOR_FILENAME
        # Uniqueid -> (row, when parked): runs between a re-arm's stop and its start.
        self._parked: dict[str, tuple[RecordingRow, float]] = {}

    def on_event(self, ev: Event) -> list[RecordingRow]:
        """The rows this event changed (empty for most events)."""
        name = ev.get("Event", "")
        uid = ev.get("Uniqueid", "")
        if name == "MixMonitorStart":
            ended = [self._unpark(uid)] if self._other_run(uid, ev) else []
            return ended + (self._resume(uid) or self._start(uid, self.tracker.event_time(ev), ev))
        if name in _TRANSFERERS:
            self._transferred(name, ev)
            return []
        if name == "Hangup" and uid in self._parked:
            return [self._unpark(uid)]
        row = self.running.get(uid)
        if row is None:
            return []
        now = self.tracker.event_time(ev)
        if name == "MixMonitorMute":
            return self._mute(row, ev, now)
        if name == "MixMonitorStop" and self._rearming(uid):
            self._parked[uid] = (self.running.pop(uid), now)
            return []
        if name in _STOPPING:
            return [self._stop(uid, now, ev)]
        return self._learn_file(row, ev=ev)

    def _rearming(self, uid: str) -> bool:
        ch = self.tracker.channels.get(uid)
        return ch is not None and ch.rearming

    def _other_run(self, uid: str, ev: Event) -> bool:
        """A MixMonitorStart on a parked channel that is not its re-arm (another file)."""
        if uid not in self._parked:
            return False
        _, stamp = parse_rec(ev.get(REC_HEADER))
        return stamp != self._parked[uid][0].file

    def _resume(self, uid: str) -> list[RecordingRow]:
        """The re-armed run started again: its parked row goes on (same id, same file)."""
        if uid not in self._parked:
            return []
        row, _ = self._parked.pop(uid)
        self.running[uid] = row
        self.tracker.name_recording(uid, row.id)
        return [row]

    def _unpark(self, uid: str) -> RecordingRow:
        """A parked run that did not start again ended at its re-arm's stop."""
        row, parked = self._parked.pop(uid)
        self.running[uid] = row
        self._ending[uid] = REARM_FAILED
        return self._stop(uid, parked)

    def _transferred(self, name: str, ev: Event) -> None:
        """The transferring channels leave the call (Asterisk hangs them up right after;
        a three-way "transfer" keeps the transferer in the call, so it ends nothing)."""
        if ev.get("Result") != "Success" or ev.get("DestType") == "Threeway":
            return
        for prefix in _TRANSFERERS[name]:
            uid = ev.get(prefix + "Uniqueid", "")
            if uid in self.running:
                self._ending[uid] = TRANSFERRED

    def on_snapshot(self, now: float) -> list[RecordingRow]:
        """After a resync: a run whose channel is gone or records no more is stopped,
        one that goes on names its channel again (recordingId on the view, also for the
        rows a restarted bridge took up); a channel that records with no row (started
        while we were away) gets one."""
        changed = [
            self._unpark(uid) for uid in list(self._parked)
            if not self._rearming(uid) and (self.tracker.channels.get(uid) is None
                                            or self.tracker.channels[uid].recording is None)
        ]
        for uid in list(self.running):
            ch = self.tracker.channels.get(uid)
            if ch is None or ch.recording is None:
                changed.append(self._stop(uid, now))
            else:  # the snapshot's channel is new: name its recording again
                self.tracker.name_recording(uid, self.running[uid].id)
        for uid, ch in self.tracker.channels.items():
            if ch.recording is not None and uid not in self.running:
                changed += self._resume(uid) or self._start(uid, ch.recording)
        return changed

    # ------------------------------------------------------------------ transitions
    def _start(self, uid: str, now: float, ev: Event | None = None) -> list[RecordingRow]:
        ch = self.tracker.channels.get(uid)
        extension = self.tracker.view_extension(ch) if ch is not None else None
        if ch is None or extension is None or uid in self.running:
            return []
        call = self.tracker.calls.get(ch.linkedid)
        view_id = call.view_ids.get(extension, "00") if call is not None else "00"
        file = (ev.get(MIXMONITOR_FILE_HEADER) if ev is not None else None) or ch.rec_file
        row = RecordingRow(
            id=run_id(uid, file, now), extension=extension, call_id=call_id(ch.linkedid),
            view_id=view_id, started=ch.recording or now, channel=uid, node=self.node,
        )
        self.running[uid] = row
        self.tracker.name_recording(uid, row.id)
        self._learn_file(row, ch, ev)
        if ch.rec_paused is not None:
            row.paused.append([ch.rec_paused, None])
            row.state = "paused"
        return [row]

    def _learn_file(
        self, row: RecordingRow, ch: Channel | None = None, ev: Event | None = None
    ) -> list[RecordingRow]:
        """The PBX_REC stamp names the file; the *1 subroutine stamps it only after its
        MixMonitor runs, so a later event may be the first to show it (a Hangup too,
        after the tracker dropped the channel). Until then, or for good when nothing of
        ours started it, MixMonitor's own MIXMONITOR_FILENAME names it."""
        ch = ch or self.tracker.channels.get(row.channel)
        started, stamp = (ch.recording, ch.rec_file) if ch is not None else (None, None)
        if not stamp and ev is not None:
            started, stamp = parse_rec(ev.get(REC_HEADER))
        # A stamp from before this run (one whose clearing failed) names another file.
        stale = started is not None and started < row.started - _STAMP_SLACK
        if stamp and not stale and (row.file is None or row.id in self._unstamped):
            self._unstamped.discard(row.id)
            row.file, row.format = stamp, format_of(stamp)
            if started is not None:
                row.started = started
            row.started_by, row.app_id = self._origin_of(stamp) or (
                self._dialplan_trigger(row.extension), None
            )
            self._place(row)
            return [row]
        pbx_file = ev.get(MIXMONITOR_FILE_HEADER) if ev is not None else None
        if row.file is None and pbx_file:
            self._unstamped.add(row.id)
            row.file, row.format, row.started_by = pbx_file, format_of(pbx_file), "pbx"
            self._place(row)
            return [row]
        return []

    def _mute(self, row: RecordingRow, ev: Event, now: float) -> list[RecordingRow]:
        if ev.get("State") == "1" and ev.get("Direction") == "both" and row.state == "recording":
            row.state = "paused"
            row.paused.append([now, None])
            return [row]
        if ev.get("State") == "0" and row.state == "paused":
            row.state = "recording"
            row.paused[-1][1] = now
            return [row]
        return []

    def _stop(self, uid: str, now: float, ev: Event | None = None) -> RecordingRow:
        """The run is over; the row stays `recording` until its file is finished. A run
        its channel's transfer ended says so (``reason``; ``stopped`` is when it left)."""
        row = self.running.pop(uid)
        self._learn_file(row, ev=ev)
        self._unstamped.discard(row.id)
        row.reason = self._ending.pop(uid, row.reason)
        row.stopped = now
        if row.paused and row.paused[-1][1] is None:
            row.paused[-1][1] = now
        row.state = "recording"
        if row.file is None:
            self._place(row)
        return row
