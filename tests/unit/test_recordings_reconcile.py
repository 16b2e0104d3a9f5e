"""Reconciling the recordings catalog with the folders (issue 11 item 2, last part): the
pure plan (reconcile.py), the walk over real temp folders (scan.py), and the feature's
passes on the unit bridge with its real SQLite catalog (reconciler.py)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import pytest

from pbx_bridge.config import RecordingsSettings
from pbx_bridge.recordings import reconciler as reconciler_module
from pbx_bridge.recordings import scan, wavfile
from pbx_bridge.recordings.catalog import RecordingRow
from pbx_bridge.recordings.reconcile import (
    Folder,
    KnownFile,
    Owner,
    Scan,
    parse_name,
    plan,
)
from pbx_bridge.recordings.store import RecordingQuery
from tests.unit.api_support import Api
from tests.unit.test_recordings_catalog import gsm_wav, pcm_wav

CALL = "0123456789abcdef0123"
NAME = f"3/0003*210/2026-11-30/{CALL}-01-062040.wav"
STARTED = datetime(2026, 11, 30, 6, 20, 40, tzinfo=UTC).timestamp()
OWNERS = {"0003*210": Owner(3, 12), "0003*213": Owner(3, 13), "0004*210": Owner(4, 20)}


def _found(name: str = NAME, folder: Folder | None = None):
    folder = folder or Folder(Path("/mon"))
    found = parse_name(folder, PurePosixPath(name), STARTED + 9)
    assert found is not None
    return found


def _plan(found, known=(), *, present=None, complete=(Path("/mon"),), live_paths=(),
          live_calls=()):
    seen = Scan(found=list(found), present=set(present if present is not None
                                               else (str(f.path) for f in found)),
                complete=list(complete))
    return plan(seen, list(known), live_paths=set(live_paths), live_calls=set(live_calls),
                owner_of=OWNERS.get, started_by=lambda n: "always" if n == "0003*213" else "star1")


# --------------------------------------------------------------------------- pure


def test_a_name_of_our_scheme_says_whose_recording_it_is() -> None:
    f = _found()
    assert (f.path, f.file, f.organization, f.extension, f.call_id, f.view_id, f.started) == (
        Path("/mon") / NAME, NAME, 3, "0003*210", CALL, "01", STARTED)
    # a relative [recordings] directory puts folders in front; an absolute one names files
    assert _found("rec/" + NAME).file == "rec/" + NAME
    absolute = _found(NAME, Folder(Path("/root/var/rec"), asterisk="/var/rec/"))
    assert (absolute.path, absolute.file) == (Path("/root/var/rec") / NAME, "/var/rec/" + NAME)


@pytest.mark.parametrize("name", [
    f"0003*210/2026-11-30/{CALL}-01-062040.wav",  # no organization
    f"3/0003*210/2026-11-30/{CALL}-01-062040.mp3",
    f"3/0003*210/2026-11-30/{CALL[:-1]}-01-062040.wav",  # call id too short
    f"3/0003*210/2026-11-30/{CALL.upper()}-01-062040.wav",
    f"3/0003*210/2026-11-30/{CALL}-1-062040.wav",
    f"3/0003*210/2026-13-30/{CALL}-01-062040.wav",  # no such month
    f"3/0003*210/2026-11-30/{CALL}-01-256040.wav",  # no such hour
    f"3/0003*210/30-11-2026/{CALL}-01-062040.wav",
    f"x3/0003*210/2026-11-30/{CALL}-01-062040.wav",
    f"3/0003 210/2026-11-30/{CALL}-01-062040.wav",
])
def test_other_names_are_not_ours(name: str) -> None:
    assert parse_name(Folder(Path("/mon")), PurePosixPath(name), 0.0) is None


def test_a_file_no_row_knows_becomes_a_row() -> None:
    (row,) = _plan([_found()]).new
    assert (row.organization, row.owner, row.extension, row.call_id, row.view_id) == (
        3, 12, "0003*210", CALL, "01")
    assert (row.file, row.host_path, row.format, row.started, row.stopped) == (
        NAME, f"/mon/{NAME}", "wav", STARTED, STARTED + 9)
    assert (row.started_by, row.app_id) == ("star1", None)
    always = _plan([_found(NAME.replace("210", "213"))]).new[0]
    assert (always.started_by, always.owner) == ("always", 13)
    assert _plan([_found(NAME.replace(".wav", ".WAV"))]).new[0].format == "wav49"


def test_known_and_live_files_are_left_alone() -> None:
    f = _found()
    known = KnownFile("r-1", "completed", str(f.path), "0003*210", CALL, STARTED, True)
    assert _plan([f], [known]).new == []
    assert _plan([f], live_paths=[str(f.path)]).new == []
    # a live recording whose stamp is not seen yet: its call's files are the event path's
    assert _plan([f], live_calls=[CALL]).new == []


def test_a_file_in_the_wrong_organization_is_ignored_never_misowned() -> None:
    stray = _found(NAME.replace("3/0003*210", "4/0003*210"))
    unknown = _found(NAME.replace("0003*210", "0003*999"))
    done = _plan([stray, unknown])
    assert done.new == [] and done.adopt == []
    assert [why for _, why in done.ignored] == [
        "extension 0003*210 is not in organization 4",
        "extension 0003*999 is not in the directory",
    ]


def test_a_vanished_file_is_missing_and_a_returned_one_read_again() -> None:
    gone = KnownFile("r-1", "completed", "/mon/a.wav", "0003*210", CALL, STARTED, True)
    back = KnownFile("r-2", "missing", "/mon/b.wav", "0003*210", CALL, STARTED, True)
    failed = KnownFile("r-3", "failed", "/mon/c.wav", "0003*210", CALL, STARTED, True)
    done = _plan([], [gone, back, failed], present={"/mon/b.wav"})
    assert (done.vanished, done.returned) == ([("r-1", "/mon/a.wav")], [("r-2", "/mon/b.wav")])
    # a folder that could not be read whole (a mount that is down) proves nothing
    assert _plan([], [gone], present=set(), complete=()).vanished == []


def test_a_row_whose_stamp_was_never_seen_is_given_its_file() -> None:
    fileless = KnownFile("r-1", "failed", None, "0003*210", CALL, STARTED + 1, False)
    other_call = KnownFile("r-2", "failed", None, "0003*210", "f" * 20, STARTED, False)
    done = _plan([_found()], [fileless, other_call])
    assert done.new == [] and [(i, f.file, by) for i, f, by in done.adopt] == [
        ("r-1", NAME, "star1")]


# --------------------------------------------------------------------------- the walk


def _write(folder: Path, name: str, content: bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_the_walk_never_follows_links_out_of_the_folders(tmp_path: Path) -> None:
    mon, outside = tmp_path / "mon", tmp_path / "outside"
    real = _write(mon, NAME, pcm_wav(800))
    secret = _write(outside, NAME.replace("-01-", "-02-"), pcm_wav(800))
    os.symlink(secret, real.parent / secret.name)  # a link to a file outside
    os.symlink(outside / "3", mon / "4")  # a link to a folder outside
    _write(mon, "notes.txt", b"x")
    seen = scan.scan([Folder(mon)])
    assert [f.path for f in seen.found] == [real]
    assert seen.present == {str(real), str(mon / "notes.txt")}
    assert seen.complete == [mon]


def test_the_folders_are_the_monitor_folder_and_an_absolute_directory(tmp_path: Path) -> None:
    rec = RecordingsSettings(monitor_dir=str(tmp_path / "mon"), host_root=str(tmp_path / "root"),
                             directory="/var/rec")
    folders = scan.folders(rec)
    assert folders == [Folder(tmp_path / "root/var/rec", "/var/rec"), Folder(tmp_path / "mon")]
    _write(tmp_path / "root/var/rec", NAME, pcm_wav(800))
    seen = scan.scan(folders)
    assert [f.file for f in seen.found] == ["/var/rec/" + NAME]
    assert seen.complete == [tmp_path / "root/var/rec"]  # the monitor folder is absent
    assert scan.folders(RecordingsSettings(directory="rec")) == [
        Folder(Path("/var/spool/asterisk/monitor"))]


# --------------------------------------------------------------------------- the feature


@pytest.fixture
async def api(aiohttp_client, tmp_path, monkeypatch) -> Api:
    api = await Api.start(aiohttp_client, tmp_path)
    api.ready(monkeypatch)
    api.bridge.recordings.settings = RecordingsSettings(
        monitor_dir=str(tmp_path / "mon"), settle_interval=0.05)
    return api


async def _rows(api: Api, *extensions: str) -> list[RecordingRow]:
    return await api.bridge.recordings.find(
        RecordingQuery(extensions=extensions or ("0003*210",)))


async def test_a_pass_catalogues_each_file_once_and_reads_it_once(
        api: Api, tmp_path: Path, monkeypatch) -> None:
    path = _write(tmp_path / "mon", NAME, pcm_wav(16000))
    wav49 = _write(tmp_path / "mon", NAME.replace("-01-", "-02-").replace(".wav", ".WAV"),
                   gsm_wav(25))
    reads: list[Path] = []
    real_inspect = wavfile.inspect
    monkeypatch.setattr(reconciler_module.wavfile, "inspect",
                        lambda p: reads.append(p) or real_inspect(p))
    await api.bridge.recordings.reconciler.run()
    rows = {row.host_path: row for row in await _rows(api)}
    assert set(rows) == {str(path), str(wav49)}
    row = rows[str(path)]
    assert (row.state, row.duration, row.size, row.started_by, row.organization,
            row.owner) == ("completed", 2.0, path.stat().st_size, "star1", 3, 12)
    assert row.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (rows[str(wav49)].format, rows[str(wav49)].duration) == ("wav49", 1.0)
    assert sorted(reads) == sorted([path, wav49])
    await api.bridge.recordings.reconciler.run()  # again: nothing new, nothing read
    assert len(await _rows(api)) == 2 and len(reads) == 2


async def test_a_vanished_file_is_missing_until_it_comes_back(api: Api, tmp_path: Path) -> None:
    path = _write(tmp_path / "mon", NAME, pcm_wav(8000))
    content = path.read_bytes()
    reconciler = api.bridge.recordings.reconciler
    await reconciler.run()
    path.unlink()
    await reconciler.run()
    (row,) = await _rows(api)
    assert (row.state, row.size, row.duration) == ("missing", None, None)
    path.write_bytes(content)
    await reconciler.run()
    (row,) = await _rows(api)
    assert (row.state, row.duration) == ("completed", 1.0)


async def test_a_file_a_live_channel_writes_is_left_to_the_events(
        api: Api, tmp_path: Path) -> None:
    _write(tmp_path / "mon", NAME, pcm_wav(8000))
    a = api.pbx.channel("PJSIP/0003*210", state=6)
    ev = {"Event": "MixMonitorStart", "Channel": a.name, "Uniqueid": a.uniqueid,
          "Linkedid": a.linkedid, "ChanVariable(PBX_REC)": f"{STARTED}|{NAME}"}
    api.pbx.feed(ev)
    await api.bridge.recordings.reconciler.run()
    api.bridge.recordings.on_event(ev)
    for _ in range(100):
        rows = await _rows(api)
        if rows:
            break
        await asyncio.sleep(0.02)
    (row,) = rows  # the event path's row, and no second one
    assert row.state == "recording"
    await api.bridge.recordings.reconciler.run()
    assert len(await _rows(api)) == 1


async def test_a_file_under_another_organization_is_logged_not_catalogued(
        api: Api, tmp_path: Path, caplog) -> None:
    _write(tmp_path / "mon", NAME.replace("3/0003*210", "4/0003*210"), pcm_wav(800))
    with caplog.at_level(logging.WARNING, logger="pbx_bridge.recordings"):
        await api.bridge.recordings.reconciler.run()
        await api.bridge.recordings.reconciler.run()
    assert await _rows(api, "0003*210", "0004*210") == []
    assert [r.getMessage() for r in caplog.records].count(
        f"recordings: {tmp_path}/mon/{NAME.replace('3/0003*210', '4/0003*210')} not "
        "catalogued: extension 0003*210 is not in organization 4") == 1


async def test_every_resync_reconciles(api: Api, tmp_path: Path) -> None:
    _write(tmp_path / "mon", NAME, pcm_wav(800))
    recordings = api.bridge.recordings
    recordings.on_snapshot([])
    recordings.on_snapshot([])  # while the first pass runs: one more after it
    for _ in range(200):
        if recordings.reconciler.passes >= 2:
            break
        await asyncio.sleep(0.02)
    assert recordings.reconciler.passes == 2
    assert len(await _rows(api)) == 1


async def test_a_row_that_never_learnt_its_file_gets_it_not_a_twin(
        api: Api, tmp_path: Path) -> None:
    # *1 stamps PBX_REC only after its MixMonitor runs: a call that ends first leaves a
    # row without a file ("file unknown"); the file found later is that row's.
    path = _write(tmp_path / "mon", NAME, pcm_wav(8000))
    blind = RecordingRow(id="r-00000000000000aa", extension="0003*210", call_id=CALL,
                         view_id="01", started=STARTED + 0.4, organization=3, owner=12,
                         started_by="pbx", stopped=STARTED + 3, state="failed",
                         reason="file unknown")
    await asyncio.to_thread(api.bridge.recordings.store.save, blind)
    await api.bridge.recordings.reconciler.run()
    (row,) = await _rows(api)
    assert (row.id, row.state, row.reason, row.file, row.host_path, row.duration) == (
        blind.id, "completed", None, NAME, str(path), 1.0)
    assert (row.started, row.stopped, row.started_by) == (STARTED + 0.4, STARTED + 3, "star1")
