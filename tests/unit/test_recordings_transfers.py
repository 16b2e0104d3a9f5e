"""The recordings catalog through transfers and recordings the PBX started itself
(issue 11 items 6 and 7), replayed from transcripts captured on the real Asterisk
(tests/fixtures/) with MixMonitor events put where the e2e tests see them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pbx_bridge.calls.render import render_call
from pbx_bridge.calls.tracker import Tracker, call_id
from pbx_bridge.config import RecordingsSettings
from pbx_bridge.recording import events
from pbx_bridge.recordings.catalog import Catalog, RecordingRow
from tests.unit.api_support import Api
from tests.unit.test_recordings_catalog import _row_in_state, pcm_wav

FIXTURES = Path(__file__).parent.parent / "fixtures"
A, B, C = "0003*210", "0003*211", "0003*212"
DEVICES = {f"PJSIP/{e}": e for e in (A, B, C)}
MIXFILE = "ChanVariable(MIXMONITOR_FILENAME)"
MONITOR = "/var/spool/asterisk/monitor"


def transcript(name: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in (FIXTURES / f"{name}.jsonl").open()]


class Replay:
    """The tracker, the recording feature's reading of events and the catalog, as the
    running bridge chains them (recording/feature.py, recordings/feature.py)."""

    def __init__(self) -> None:
        self.tracker = Tracker(DEVICES)
        self.unstamped: set[str] = set()
        self.catalog = Catalog(self.tracker, origin_of=lambda f: None, place=lambda r: None)
        self.rows: dict[str, RecordingRow] = {}
        self.names: dict[str, str] = {}  # Uniqueid -> channel name

    def feed(self, ev: dict[str, str]) -> None:
        if ev.get("Event") == "Newchannel":
            self.names[ev["Uniqueid"]] = ev["Channel"]
        self.tracker.feed(ev)
        events.apply_event(self.tracker, ev, self.unstamped)
        for row in self.catalog.on_event(ev):
            self.rows[row.id] = row

    def feed_all(self, evs: list[dict[str, str]]) -> None:
        for ev in evs:
            self.feed(ev)

    def row_of(self, channel_prefix: str) -> RecordingRow:
        (row,) = [r for r in self.rows.values()
                  if self.names[r.channel].startswith(channel_prefix)]
        return row


def mixmonitor_start(snapshot: dict[str, str], file: str, at: str) -> dict[str, str]:
    """A MixMonitorStart as Asterisk 22 sends it for a MixMonitor started outside the
    bridge: the channel's snapshot, no PBX_REC stamp, MixMonitor's own file variable."""
    keep = ("Channel", "ChannelState", "Uniqueid", "Linkedid", "CallerIDNum")
    return {"Event": "MixMonitorStart", "Timestamp": at, **{k: snapshot[k] for k in keep},
            "ChanVariable(PBX_REC)": "", MIXFILE: file}


def recorded_replay(name: str, *channels: str) -> tuple[Replay, list[dict[str, str]]]:
    """Replay `name` with a MixMonitor started on each of `channels` (name prefixes)
    once both parties of the first call are bridged."""
    evs = transcript(name)
    bridged = [i for i, e in enumerate(evs) if e.get("Event") == "BridgeEnter"][1]
    starts = []
    for prefix in channels:
        snap = next(e for e in evs if e.get("Channel", "").startswith(prefix))
        at = f"{float(evs[bridged]['Timestamp']) + 0.1:.6f}"
        starts.append(mixmonitor_start({**snap, "ChannelState": "6"},
                                       f"{MONITOR}/{prefix[6:14]}.wav", at))
    return Replay(), [*evs[:bridged + 1], *starts, *evs[bridged + 1:]]


def hangup_time(evs: list[dict[str, str]], prefix: str) -> float:
    (ev,) = [e for e in evs if e.get("Event") == "Hangup" and e["Channel"].startswith(prefix)]
    return float(ev["Timestamp"])


# --------------------------------------------------------------------------- transfers


def test_a_blind_transfer_ends_the_transferers_run_and_says_so() -> None:
    """B answers A, both record; B blind-transfers A to C (REFER). B's run ends when B
    leaves, as `transferred`; A's channel stays in the call, and so does its run."""
    replay, evs = recorded_replay("blind_transfer", f"PJSIP/{B}", f"PJSIP/{A}")
    transfer = next(i for i, e in enumerate(evs) if e.get("Event") == "BlindTransfer")
    replay.feed_all(evs[:transfer + 1])
    assert replay.row_of(f"PJSIP/{B}").stopped is None  # the event alone ends nothing
    replay.feed_all(evs[transfer + 1:])
    b, a = replay.row_of(f"PJSIP/{B}"), replay.row_of(f"PJSIP/{A}")
    assert (b.reason, b.stopped) == ("transferred", hangup_time(evs, f"PJSIP/{B}"))
    assert (a.reason, a.stopped) == (None, hangup_time(evs, f"PJSIP/{A}"))
    assert b.extension == B and a.extension == A and b.call_id == a.call_id


def test_an_attended_transfer_ends_the_transferers_run_and_says_so() -> None:
    """A calls B, both record; B consults C with *2 and hangs up: B's run ends as
    `transferred` (AttendedTransfer names B's channel as both transferers); A's goes on
    with C and ends at A's hang-up."""
    replay, evs = recorded_replay("attended_transfer", f"PJSIP/{B}", f"PJSIP/{A}")
    replay.feed_all(evs)
    b, a = replay.row_of(f"PJSIP/{B}"), replay.row_of(f"PJSIP/{A}")
    assert (b.reason, b.stopped) == ("transferred", hangup_time(evs, f"PJSIP/{B}"))
    assert (a.reason, a.stopped) == (None, hangup_time(evs, f"PJSIP/{A}"))
    assert replay.catalog.running == {}


def test_a_failed_or_threeway_transfer_ends_nothing() -> None:
    replay, evs = recorded_replay("blind_transfer", f"PJSIP/{B}")
    for i, ev in enumerate(evs):
        if ev.get("Event") == "BlindTransfer":
            evs[i] = {**ev, "Result": "Fail"}
    replay.feed_all(evs)
    assert replay.row_of(f"PJSIP/{B}").reason is None


# --------------------------------------------------------------------------- PBX-started


def test_a_recording_the_pbx_started_has_the_file_mixmonitor_named() -> None:
    replay, evs = recorded_replay("blind_transfer", f"PJSIP/{A}")
    replay.feed_all(evs)
    a = replay.row_of(f"PJSIP/{A}")
    assert (a.started_by, a.file, a.format) == ("pbx", f"{MONITOR}/0003*210.wav", "wav")


def test_a_later_stamp_makes_it_the_dialplans() -> None:
    """*1 and the "always" subroutine stamp PBX_REC only after their MixMonitor runs:
    their MixMonitorStart looks like the PBX's until the stamp shows."""
    replay, evs = recorded_replay("blind_transfer", f"PJSIP/{A}")
    start = next(i for i, e in enumerate(evs) if e.get("Event") == "MixMonitorStart")
    replay.feed_all(evs[:start + 1])
    stamped = {**evs[start], "Event": "Newstate",
               "ChanVariable(PBX_REC)": f"{float(evs[start]['Timestamp']) - 0.7:.0f}|3/x.wav"}
    replay.feed(stamped)
    a = replay.row_of(f"PJSIP/{A}")
    assert (a.started_by, a.file) == ("star1", "3/x.wav")


def test_a_resync_keeps_a_run_the_pbx_started() -> None:
    """No stamp says the PBX's MixMonitor runs; none says it stopped either: only its
    MixMonitorStop or the hang-up end it (a periodic resync used to clear it)."""
    replay, evs = recorded_replay("blind_transfer", f"PJSIP/{A}")
    start = next(i for i, e in enumerate(evs) if e.get("Event") == "MixMonitorStart")
    replay.feed_all(evs[:start + 1])
    rows = [{**ch, "Event": "CoreShowChannel", "ChanVariable(PBX_REC)": ""}
            for ch in (evs[0], evs[1])]
    replay.tracker.resync(rows, now=float(evs[start]["Timestamp"]) + 1)
    events.apply_snapshot(replay.tracker, rows, replay.unstamped)
    assert replay.catalog.on_snapshot(float(evs[start]["Timestamp"]) + 1) == []
    (call,) = replay.tracker.calls.values()
    (view,) = [v for v in render_call(replay.tracker, call, A)["phoneCallView"]
               if v["extension"] == A]
    assert view["recordingId"] == replay.row_of(f"PJSIP/{A}").id


def test_a_run_on_a_local_channel_is_the_view_of_the_extension_that_placed_the_call() -> None:
    """A dials 0003*299, which reaches B through a Local channel: a MixMonitor on the
    Local half (a ring group that records) shows on A's view and is A's recording."""
    evs = transcript("local_optimized")
    bridged = next(i for i, e in enumerate(evs) if e.get("Event") == "LocalOptimizationBegin")
    local2 = next(e for e in evs if e.get("Channel", "").endswith(";2"))
    start = mixmonitor_start({**local2, "ChannelState": "6"}, f"{MONITOR}/ring.wav",
                             evs[bridged - 1]["Timestamp"])
    replay = Replay()
    replay.feed_all([*evs[:bridged], start])
    (row,) = replay.rows.values()
    assert (row.extension, row.view_id, row.started_by) == (A, "01", "pbx")
    assert row.call_id == call_id(evs[1]["Linkedid"])
    (call,) = replay.tracker.calls.values()
    views = {v["extension"]: v for v in render_call(replay.tracker, call, A)["phoneCallView"]}
    assert views[A]["recordingId"] == row.id and "recording" in views[A]
    assert "recording" not in views[B]
    replay.feed_all(evs[bridged:])
    assert replay.rows[row.id].stopped is not None


@pytest.fixture
async def api(aiohttp_client, tmp_path, monkeypatch) -> Api:
    api = await Api.start(aiohttp_client, tmp_path)
    api.ready(monkeypatch)
    return api


async def test_the_pbxs_file_is_read_or_said_to_lie_outside_the_recordings_folders(
    api: Api, tmp_path: Path
) -> None:
    """MIXMONITOR_FILENAME is an absolute path in Asterisk's file system: under the
    monitor folder it is read (host_root + path), elsewhere never served, and the row
    says why (it used to say "file unknown" for every run the PBX started)."""
    root = tmp_path / "root"
    monitor = root / MONITOR.lstrip("/")
    api.bridge.recordings.settings = RecordingsSettings(
        monitor_dir=str(monitor), host_root=str(root), settle_interval=0.05)
    (monitor / "pbx").mkdir(parents=True)
    (monitor / "pbx" / "in.wav").write_bytes(pcm_wav(8000))
    for file, state, reason in ((f"{MONITOR}/pbx/in.wav", "completed", None),
                                ("/tmp/pbx/out.wav", "failed", "outside the recordings folders")):
        a = api.pbx.channel("PJSIP/0003*210", state=6)
        ev = {"Event": "MixMonitorStart", "Channel": a.name, "Uniqueid": a.uniqueid,
              "Linkedid": a.linkedid, MIXFILE: file}
        api.pbx.feed(ev)
        api.bridge.recordings.on_event(ev)
        api.pbx.hangup(a)
        api.bridge.recordings.on_event({"Event": "Hangup", "Uniqueid": a.uniqueid})
        row = await _row_in_state(api, state, file)
        assert (row.started_by, row.reason) == ("pbx", reason)
    assert row.host_path is None
