"""The recordings catalog (issue 11 items 2 and 8): the state machine over AMI events
(catalog.py), reading finished files (wavfile.py) on real small WAVE files, and the
feature end to end on the unit bridge: rows persisted, finished from the file."""

from __future__ import annotations

import asyncio
import hashlib
import struct
from pathlib import Path

import pytest

from pbx_bridge.calls.tracker import Tracker, call_id
from pbx_bridge.config import RecordingsSettings
from pbx_bridge.recording import events
from pbx_bridge.recordings import wavfile
from pbx_bridge.recordings.catalog import Catalog, RecordingRow
from pbx_bridge.recordings.feature import host_path
from pbx_bridge.recordings.store import RecordingQuery
from tests.unit.api_support import Api

T0 = 1_790_000_000.0
FILE = "3/0003*210/2026-11-30/f-01-062040.wav"


# --------------------------------------------------------------------------- files


def pcm_wav(samples: int, *, declared: int | None = None, rate: int = 8000) -> bytes:
    data = struct.pack(f"<{samples}h", *([1000, -1000] * samples)[:samples])
    size = len(data) if declared is None else declared
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    return (b"RIFF" + struct.pack("<I", 36 + size) + b"WAVE" + b"fmt " + struct.pack("<I", 16)
            + fmt + b"data" + struct.pack("<I", size) + data)


def gsm_wav(frames: int, *, fact: bool = True) -> bytes:
    """wav49 as Asterisk writes it: fmt (GSM 6.10), fact (samples), data (65 B / 320)."""
    fmt = struct.pack("<HHIIHHHH", 0x31, 1, 8000, 1625, 65, 0, 2, 320)
    body = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if fact:
        body += b"fact" + struct.pack("<II", 4, frames * 320)
    data = bytes(65 * frames)
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


def test_pcm_duration_size_and_sha256(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    path.write_bytes(pcm_wav(8000 * 3 + 4000))
    facts = wavfile.inspect(path)
    assert facts == wavfile.FileFacts(
        size=path.stat().st_size, duration=3.5,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
    )


@pytest.mark.parametrize("fact", [True, False])
def test_gsm_duration_from_fact_chunk_or_size(tmp_path: Path, fact: bool) -> None:
    path = tmp_path / "a.WAV"
    path.write_bytes(gsm_wav(50, fact=fact))  # 50 * 320 samples = 2 s
    assert wavfile.inspect(path).duration == 2.0
    assert wavfile.inspect(path).reason is None


def test_a_file_cut_short_counts_the_bytes_it_has(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    path.write_bytes(pcm_wav(8000, declared=10**6))  # header says more than is there
    assert wavfile.inspect(path).duration == 1.0


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "shorter than its header"),
    (pcm_wav(0)[:30], "shorter than its header"),
    (pcm_wav(0), "no audio"),  # the 44-byte file of a call that never carried audio
    (b"RIFX" + bytes(40), "not a RIFF/WAVE file"),
    (gsm_wav(0), "no audio"),
])
def test_unusable_files_say_why(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "a.wav"
    path.write_bytes(content)
    facts = wavfile.inspect(path)
    assert (facts.reason, facts.missing) == (reason, False)


def test_a_vanished_file_is_missing(tmp_path: Path) -> None:
    assert wavfile.inspect(tmp_path / "gone.wav").missing


def test_host_path_maps_relative_and_absolute_names() -> None:
    rec = RecordingsSettings(monitor_dir="/srv/mon", host_root="/srv/root", directory="/var/rec")
    assert host_path("3/x.wav", rec) == Path("/srv/mon/3/x.wav")
    assert host_path("/var/rec/3/x.wav", rec) == Path("/srv/root/var/rec/3/x.wav")
    plain = RecordingsSettings(directory="/var/rec")
    assert host_path("/var/rec/x.wav", plain) == Path("/var/rec/x.wav")
    assert host_path("/var/spool/asterisk/monitor/3/x.wav", RecordingsSettings()) == Path(
        "/var/spool/asterisk/monitor/3/x.wav"
    )
    assert host_path("3/../../etc/passwd", rec) is None


def test_a_stamp_naming_a_file_outside_the_recordings_folders_is_never_served() -> None:
    # PBX_REC can be set by anything in the dialplan or another AMI client: the catalog
    # must not serve or delete /etc/passwd because a channel variable named it.
    rec = RecordingsSettings(monitor_dir="/srv/mon", host_root="/srv/root")
    assert host_path("/etc/passwd", rec) is None
    assert host_path("/etc/passwd", RecordingsSettings()) is None
    assert host_path("/srv/mon-other/x.wav", RecordingsSettings(monitor_dir="/srv/mon")) is None
    assert host_path("/var/rec2/x.wav", RecordingsSettings(directory="/var/rec")) is None


# --------------------------------------------------------------------------- state machine


class Pbx:
    def __init__(self) -> None:
        self.tracker = Tracker({"PJSIP/0003*210": "0003*210"})
        self.placed: list[str] = []
        self.catalog = Catalog(
            self.tracker,
            origin_of=lambda f: ("api", "app1") if f == "api.wav" else None,
            place=lambda row: self.placed.append(row.id),
        )
        self.uid = f"{T0:.0f}.1"

    def feed(self, name: str, at: float, **headers: str) -> list[RecordingRow]:
        ev = {"Event": name, "Channel": "PJSIP/0003*210-00000001", "Uniqueid": self.uid,
              "Linkedid": self.uid, "ChannelState": "6", "Timestamp": f"{at:.6f}", **headers}
        self.tracker.feed(ev)
        events.apply_event(self.tracker, ev)
        return self.catalog.on_event(ev)


def _stamp(file: str, at: float) -> dict[str, str]:
    return {"ChanVariable(PBX_REC)": f"{at:.3f}|{file}"}


def test_a_run_start_pause_resume_stop() -> None:
    pbx = Pbx()
    pbx.feed("Newchannel", T0)
    (row,) = pbx.feed("MixMonitorStart", T0 + 1, **_stamp("api.wav", T0 + 0.5))
    assert (row.state, row.started, row.file) == ("recording", T0 + 0.5, "api.wav")
    assert row.format == "wav"
    assert (row.started_by, row.app_id, row.extension) == ("api", "app1", "0003*210")
    assert (row.call_id, row.view_id) == (call_id(pbx.uid), "01")
    assert row.id.startswith("r-") and len(row.id) == 18
    assert pbx.tracker.channels[pbx.uid].rec_id == row.id  # the view shows recordingId
    assert pbx.feed("Newstate", T0 + 2) == []
    assert pbx.feed("MixMonitorMute", T0 + 3, Direction="read", State="1") == []
    (row,) = pbx.feed("MixMonitorMute", T0 + 3, Direction="both", State="1")
    assert (row.state, row.paused) == ("paused", [[T0 + 3, None]])
    (row,) = pbx.feed("MixMonitorMute", T0 + 5, Direction="both", State="0")
    assert (row.state, row.paused) == ("recording", [[T0 + 3, T0 + 5]])
    (row,) = pbx.feed("MixMonitorStop", T0 + 6)
    assert (row.state, row.stopped) == ("recording", T0 + 6)
    assert pbx.tracker.channels[pbx.uid].rec_id is None
    assert pbx.catalog.running == {}
    assert pbx.feed("Hangup", T0 + 7) == []


def test_a_hangup_stops_a_paused_run_and_closes_its_pause() -> None:
    pbx = Pbx()
    pbx.feed("Newchannel", T0)
    pbx.feed("MixMonitorStart", T0 + 1, **_stamp("x.WAV", T0 + 1))
    pbx.feed("MixMonitorMute", T0 + 2, Direction="both", State="1")
    (row,) = pbx.feed("Hangup", T0 + 4)
    assert (row.stopped, row.paused, row.format, row.started_by) == (
        T0 + 4, [[T0 + 2, T0 + 4]], "wav49", "star1")


def test_who_started_it() -> None:
    pbx = Pbx()
    pbx.feed("Newchannel", T0)
    (row,) = pbx.feed("MixMonitorStart", T0 + 1)  # no stamp: started outside the bridge
    assert (row.started_by, row.file) == ("pbx", None)
    # *1 stamps PBX_REC after its MixMonitor runs: a later event shows the file
    pbx.tracker.mark_recording(pbx.uid, T0 + 1, "star.wav")
    (row,) = pbx.feed("Newstate", T0 + 2)
    assert (row.started_by, row.file) == ("star1", "star.wav")


def test_a_stamped_run_of_an_always_extension_was_started_by_the_dialplan_on_answer() -> None:
    pbx = Pbx()
    pbx.catalog = Catalog(
        pbx.tracker, origin_of=lambda f: None, place=lambda row: None,
        dialplan_trigger=lambda number: "always" if number == "0003*210" else "star1",
    )
    pbx.feed("Newchannel", T0)
    (row,) = pbx.feed("MixMonitorStart", T0 + 1, **_stamp("always.wav", T0 + 1))
    assert (row.started_by, row.app_id, row.file) == ("always", None, "always.wav")


def test_a_resync_stops_runs_whose_channel_went_and_adopts_unknown_ones() -> None:
    pbx = Pbx()
    pbx.feed("Newchannel", T0)
    pbx.feed("MixMonitorStart", T0 + 1, **_stamp("a.wav", T0 + 1))
    pbx.tracker.resync([], now=T0 + 9)  # the channel is gone
    (row,) = pbx.catalog.on_snapshot(T0 + 9)
    assert row.stopped == T0 + 9 and pbx.catalog.running == {}
    row_snapshot = {"Event": "CoreShowChannel", "Channel": "PJSIP/0003*210-00000002",
                    "Uniqueid": "u2", "Linkedid": "u2", "ChannelState": "6",
                    **_stamp("b.wav", T0 + 10)}
    pbx.tracker.resync([row_snapshot], now=T0 + 11)
    events.apply_snapshot(pbx.tracker, [row_snapshot])
    (row,) = pbx.catalog.on_snapshot(T0 + 11)
    assert (row.file, row.started, row.stopped) == ("b.wav", T0 + 10, None)
    assert pbx.catalog.on_snapshot(T0 + 12) == []  # never listed twice


# --------------------------------------------------------------------------- the feature


@pytest.fixture
async def api(aiohttp_client, tmp_path, monkeypatch) -> Api:
    api = await Api.start(aiohttp_client, tmp_path)
    api.ready(monkeypatch)
    return api


async def _row_in_state(api: Api, state: str, file: str = FILE) -> RecordingRow:
    catalog = api.bridge.recordings
    for _ in range(200):
        rows = await catalog.find(RecordingQuery(extensions=("0003*210",)))
        mine = [row for row in rows if row.file == file]
        if mine and mine[0].state == state:
            return mine[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no row in state {state}: {rows}")


async def test_the_feature_persists_and_finishes_from_the_file(api: Api, tmp_path: Path) -> None:
    api.bridge.recordings.settings = RecordingsSettings(
        monitor_dir=str(tmp_path / "mon"), settle_interval=0.05)
    path = tmp_path / "mon" / FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(pcm_wav(16000))
    a = api.pbx.channel("PJSIP/0003*210", state=6)
    ev = {"Event": "MixMonitorStart", "Channel": a.name, "Uniqueid": a.uniqueid,
          "Linkedid": a.linkedid, **_stamp(FILE, T0)}
    api.pbx.feed(ev)
    api.bridge.recordings.on_event(ev)
    row = await _row_in_state(api, "recording")
    assert (row.host_path, row.organization, row.owner) == (str(path), 3, 12)
    api.pbx.hangup(a)
    api.bridge.recordings.on_event({"Event": "Hangup", "Uniqueid": a.uniqueid,
                                    "Timestamp": f"{T0 + 5}"})
    row = await _row_in_state(api, "completed")
    assert (row.duration, row.size) == (2.0, path.stat().st_size)
    assert row.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert row.stopped == T0 + 5


async def test_an_empty_file_is_failed_and_a_vanished_one_missing(
    api: Api, tmp_path: Path
) -> None:
    api.bridge.recordings.settings = RecordingsSettings(
        monitor_dir=str(tmp_path), settle_interval=0.05)
    (tmp_path / "empty.wav").write_bytes(pcm_wav(0))
    for file, state, reason in (("empty.wav", "failed", "no audio"),
                                ("gone.wav", "missing", None)):
        a = api.pbx.channel("PJSIP/0003*210", state=6)
        ev = {"Event": "MixMonitorStart", "Channel": a.name, "Uniqueid": a.uniqueid,
              "Linkedid": a.linkedid, **_stamp(file, T0)}
        api.pbx.feed(ev)
        api.bridge.recordings.on_event(ev)
        api.pbx.hangup(a)
        api.bridge.recordings.on_event({"Event": "Hangup", "Uniqueid": a.uniqueid})
        row = await _row_in_state(api, state, file)
        assert (row.file, row.reason) == (file, reason)


async def test_rows_queued_together_are_saved_in_one_transaction_in_order(
    api: Api, tmp_path: Path
) -> None:
    """Issue 15: the catalog's writes run in a worker thread next to the requests; rows
    queued while one write is on its way leave together, one commit, the last version
    of a row winning as when they were saved one by one."""
    catalog = api.bridge.recordings
    catalog.settings = RecordingsSettings(monitor_dir=str(tmp_path))
    store = catalog.store
    batches: list[list[tuple[str, str]]] = []
    save_all = store.save_all

    def counted(rows: list[RecordingRow]) -> None:
        batches.append([(r.id, r.state) for r in rows])
        save_all(rows)

    store.save_all = counted  # type: ignore[method-assign]  # the real one, counted
    a, b = (api.pbx.channel("PJSIP/0003*210", state=6) for _ in range(2))
    for ch, file in ((a, FILE), (b, FILE.replace("f-01", "f-02"))):
        ev = {"Event": "MixMonitorStart", "Channel": ch.name, "Uniqueid": ch.uniqueid,
              "Linkedid": ch.linkedid, **_stamp(file, T0)}
        api.pbx.feed(ev)
        catalog.on_event(ev)
    catalog.on_event({"Event": "MixMonitorStop", "Channel": a.name, "Uniqueid": a.uniqueid,
                      "Timestamp": f"{T0 + 3}"})
    for _ in range(200):
        if not catalog._unwritten:
            break
        await asyncio.sleep(0.01)

    assert len(batches) == 1  # both starts and the stop: one transaction, in order
    first, second, last = (row_id for row_id, _state in batches[0])
    assert first == last != second
    rows = {r.file: r for r in await catalog.find(RecordingQuery(extensions=("0003*210",)))}
    assert rows[FILE].stopped == T0 + 3
    assert rows[FILE.replace("f-01", "f-02")].stopped is None
