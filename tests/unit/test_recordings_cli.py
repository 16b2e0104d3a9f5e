"""``pbx-bridge recordings list|show|export|sweep`` through the real CLI entry, on the
database the settings name (no bridge running): filters, formats, one-line errors, and
the retention sweep (--dry-run deletes nothing)."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import pytest

from pbx_bridge.cli import main
from pbx_bridge.directory.store import Directory
from pbx_bridge.recordings.retention import DAY
from pbx_bridge.recordings.store import RecordingStore
from tests.support.workdir import workdir  # noqa: F401 (autouse)
from tests.unit.test_recordings_catalog import pcm_wav
from tests.unit.test_recordings_retention import row

DEMO = Path(__file__).resolve().parents[2] / "config" / "directory.example.toml"
NOW = time.time()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A database with the demo directory (organization 4 keeps recordings 365 days) and
    five recordings: three in organization 3, two in organization 4 (one expired)."""
    path = tmp_path / "pbx.toml"
    db = tmp_path / "d.sqlite3"
    path.write_text(f'[database]\nurl = "sqlite:///{db}"\n')
    monitor = tmp_path / "monitor"
    monitor.mkdir()
    with Directory.open(db) as directory:
        directory.load_toml(DEMO)
        store = RecordingStore(directory.database)
        for rid, org, ext, state, age in (
            ("r-0000000000000001", 3, "0003*210", "completed", 400),
            ("r-0000000000000002", 3, "0003*210", "failed", 2),
            ("r-0000000000000003", 3, "0003*211", "recording", 1),
            ("r-0000000000000004", 4, "0004*210", "completed", 366),
            ("r-0000000000000005", 4, "0004*210", "completed", 10),
        ):
            file = monitor / f"{rid}.wav"
            file.write_bytes(pcm_wav(800))
            r = row(rid, org=org, state=state, started=NOW - age * DAY,
                    stopped=NOW - age * DAY + 30, path=file)
            r.extension, r.size, r.duration = ext, file.stat().st_size, 0.1
            store.save(r)
    return path


def run(capsys: pytest.CaptureFixture[str], config: Path, *argv: str) -> tuple[int, str, str]:
    rc = main(["recordings", *argv, "--config", str(config)])
    out, err = capsys.readouterr()
    return rc, out, err


def ids(out: str) -> list[str]:
    return [line.split()[0] for line in out.splitlines()[1:]]


def test_list_newest_first_with_filters(capsys: pytest.CaptureFixture[str], config: Path):
    rc, out, err = run(capsys, config, "list")
    assert rc == 0, err
    assert out.splitlines()[0].split()[:3] == ["ID", "STATE", "ORG"]
    assert ids(out) == [f"r-000000000000000{i}" for i in (3, 2, 5, 4, 1)]
    assert ids(run(capsys, config, "list", "--organization", "4")[1]) == [
        "r-0000000000000005", "r-0000000000000004"]
    assert ids(run(capsys, config, "list", "--extension", "0003*211")[1]) == [
        "r-0000000000000003"]
    assert ids(run(capsys, config, "list", "--state", "completed", "--limit", "2")[1]) == [
        "r-0000000000000005", "r-0000000000000004"]
    assert ids(run(capsys, config, "list", "--organization", "9")[1]) == []


def test_show_and_an_unknown_id(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    rc, out, err = run(capsys, config, "show", "r-0000000000000002")
    assert rc == 0, err
    shown = json.loads(out)
    assert (shown["id"], shown["state"], shown["extension"]) == (
        "r-0000000000000002", "failed", "0003*210")
    assert shown["started"].endswith("+00:00")
    rc, out, err = run(capsys, config, "show", "r-ffffffffffffffff")
    assert (rc, out) == (1, "")
    assert err == "pbx-bridge: error: no recording with id 'r-ffffffffffffffff'\n"


def test_export_csv_and_jsonl(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    rc, out, err = run(capsys, config, "export", "--organization", "3")
    assert rc == 0, err
    records = list(csv.DictReader(io.StringIO(out)))
    assert [r["id"] for r in records] == [f"r-000000000000000{i}" for i in (3, 2, 1)]
    assert records[0]["state"] == "recording" and json.loads(records[0]["paused"]) == []
    rc, out, err = run(capsys, config, "export", "--format", "jsonl", "--state", "failed")
    assert rc == 0, err
    (record,) = [json.loads(line) for line in out.splitlines()]
    assert record["id"] == "r-0000000000000002" and record["organization"] == 3


def test_sweep_dry_run_then_for_real(capsys: pytest.CaptureFixture[str], config: Path,
                                     tmp_path: Path) -> None:
    """Only organization 4 has a retention (365 days, the demo): its 366-day-old
    recording goes; organization 3's 400-day-old one stays (kept for ever)."""
    files = {p.name for p in (tmp_path / "monitor").iterdir()}
    rc, out, err = run(capsys, config, "sweep", "--dry-run")
    assert rc == 0, err
    assert out.splitlines()[0].startswith("r-0000000000000004  completed  org 4")
    assert out.splitlines()[-1].startswith("dry run: 1 expired recordings would be deleted")
    assert {p.name for p in (tmp_path / "monitor").iterdir()} == files  # nothing deleted
    assert "r-0000000000000004" in ids(run(capsys, config, "list")[1])

    rc, out, err = run(capsys, config, "sweep")
    assert rc == 0, err
    assert out.splitlines()[-1] == (
        f"1 expired recordings deleted, {len(pcm_wav(800))} bytes freed")
    assert {p.name for p in (tmp_path / "monitor").iterdir()} == files - {
        "r-0000000000000004.wav"}
    assert "r-0000000000000004" not in ids(run(capsys, config, "list")[1])
    assert run(capsys, config, "sweep")[1].splitlines()[-1].startswith("0 expired")


@pytest.mark.parametrize("argv", [
    ["list", "--organization", "x"], ["list", "--state", "done"], ["list", "--limit", "0"],
    ["list", "--extension", "abc"], ["export", "--format", "xml"], ["show"],
])
def test_usage_errors(capsys: pytest.CaptureFixture[str], config: Path, argv: list[str]):
    with pytest.raises(SystemExit) as exc:
        main(["recordings", *argv, "--config", str(config)])
    assert exc.value.code == 2 and "usage:" in capsys.readouterr().err


def test_a_refused_database_is_one_line(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[database]\nurl = "mysql://u@h/db"\n')
    rc, out, err = run(capsys, bad, "list")
    assert rc == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("pbx-bridge: error: ")
