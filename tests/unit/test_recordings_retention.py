"""Retention (issue 11 item 4): the pure policy (which rows are expired at a time T), the
sweep on a real database and real files, and the service's periodic sweep counted in
/metrics. Time is a fake clock moved by days; nothing sleeps for days."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pbx_bridge.api.metrics import Metrics
from pbx_bridge.config import RecordingsSettings
from pbx_bridge.directory.models import DirectoryFile, RecordingPolicy
from pbx_bridge.directory.store import Directory
from pbx_bridge.recordings.catalog import RecordingRow
from pbx_bridge.recordings.retention import DAY, expired, is_expired
from pbx_bridge.recordings.store import RecordingStore
from pbx_bridge.recordings.sweep import Sweeper
from pbx_bridge.server import Services
from tests.unit.api_support import DEMO, make_settings
from tests.unit.test_recordings_catalog import pcm_wav

T0 = 1_795_849_232.0  # 2026-11-28


def row(rid: str, *, org: int | None = 3, state: str = "completed", started: float = T0,
        stopped: float | None = T0 + 60, path: Path | None = None) -> RecordingRow:
    return RecordingRow(
        id=rid, extension="0003*210", call_id="b817d2618fe6f1804333", view_id="01",
        started=started, organization=org, owner=12, channel="u1", stopped=stopped,
        state=state,  # type: ignore[arg-type]
        host_path=str(path) if path is not None else None,
    )


# --------------------------------------------------------------------------- the policy


@pytest.mark.parametrize(
    ("state", "stopped", "days", "now", "expected"),
    [
        ("completed", T0 + 60, 30, T0 + 60 + 30 * DAY + 1, True),
        ("completed", T0 + 60, 30, T0 + 60 + 30 * DAY, False),  # exactly 30 days: kept
        ("completed", T0 + 60, 30, T0 + 29 * DAY, False),
        ("failed", T0 + 60, 1, T0 + 2 * DAY, True),
        ("missing", T0 + 60, 1, T0 + 2 * DAY, True),
        ("missing", None, 1, T0 + 1 * DAY + 1, True),  # never stopped: from its start
        ("recording", None, 1, T0 + 999 * DAY, False),  # running: never
        ("paused", None, 1, T0 + 999 * DAY, False),
        ("recording", T0 + 60, 1, T0 + 999 * DAY, False),  # stopped, file not finished
        ("completed", T0 + 60, None, T0 + 99999 * DAY, False),  # kept for ever
    ],
)
def test_which_rows_are_expired_at_t(
    state: str, stopped: float | None, days: int | None, now: float, expected: bool
) -> None:
    assert is_expired(row("r", state=state, stopped=stopped), days, now) is expected


def test_each_organization_has_its_own_retention() -> None:
    rows = [row("a", org=3), row("b", org=4), row("c", org=None), row("d", org=9)]
    retention = {3: 1, 4: 10, 9: None}
    assert [r.id for r in expired(rows, retention, T0 + 2 * DAY)] == ["a"]
    assert [r.id for r in expired(rows, retention, T0 + 11 * DAY)] == ["a", "b"]


# --------------------------------------------------------------------------- the sweep


def _directory(tmp_path: Path, org3: int | None, org4: int | None) -> Directory:
    directory = Directory.open(tmp_path / "d.sqlite3")
    directory.load_toml(DEMO)
    directory.load(DirectoryFile(organizations=[
        org.model_copy(update={"recordings": RecordingPolicy(retention_days=days)})
        for org, days in zip(directory.all_organizations(), (org3, org4), strict=True)
    ]))  # fmt: skip
    return directory


def _file(tmp_path: Path, name: str, samples: int = 8000) -> Path:
    path = tmp_path / "monitor" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(pcm_wav(samples))
    return path


def test_a_sweep_deletes_expired_files_and_rows_and_nothing_else(tmp_path: Path) -> None:
    directory = _directory(tmp_path, org3=30, org4=None)
    store = RecordingStore(directory.database)
    old, recent = _file(tmp_path, "old.wav"), _file(tmp_path, "recent.wav", 100)
    running, org4 = _file(tmp_path, "running.wav"), _file(tmp_path, "org4.wav")
    stuck = tmp_path / "monitor" / "stuck.wav"
    stuck.mkdir()  # a "file" that cannot be unlinked (even by root): kept, row and all
    rows = [
        row("r-old", path=old),
        row("r-failed", state="failed", path=_file(tmp_path, "failed.wav", 0)),
        row("r-missing", state="missing", path=tmp_path / "monitor" / "gone.wav"),
        row("r-recent", path=recent, started=T0 + 20 * DAY, stopped=T0 + 20 * DAY + 5),
        row("r-running", state="recording", stopped=None, path=running),
        row("r-finishing", state="recording", path=running),
        row("r-org4", org=4, path=org4),
        row("r-noorg", org=None),
        row("r-stuck", path=stuck),
    ]
    for r in rows:
        store.save(r)
    expired_ids = {"r-old", "r-failed", "r-missing", "r-stuck"}
    sweeper = Sweeper(store, directory, clock=lambda: T0 + 31 * DAY)

    assert {r.id for r in sweeper.due()} == expired_ids  # what --dry-run shows
    assert {r.id for r in sweeper.due(T0 + 29 * DAY)} == set()
    report = sweeper.sweep()

    assert {r.id for r in report.swept} == expired_ids - {"r-stuck"}
    assert report.freed == len(pcm_wav(8000)) + len(pcm_wav(0))
    assert [(r.id, why) for r, why in report.kept] == [("r-stuck", "Is a directory")]
    left = {r.id for r in rows if store.get(r.id) is not None}
    assert left == {r.id for r in rows} - expired_ids | {"r-stuck"}
    assert not old.exists() and recent.exists() and running.exists() and org4.exists()
    assert sweeper.sweep().swept == []  # nothing left to do
    directory.close()


async def test_the_service_sweeps_periodically_and_counts_it(tmp_path: Path) -> None:
    now = [T0]
    settings = make_settings(tmp_path).model_copy(update={"recordings": RecordingsSettings(
        monitor_dir=str(tmp_path / "monitor"), sweep_interval=0.02)})  # fmt: skip
    directory = _directory(tmp_path, org3=7, org4=None)
    services = Services(settings, directory, clock=lambda: now[0])
    metrics = Metrics(services.link, services.recording, services.recordings)
    path = _file(tmp_path, "a.wav")
    services.recordings.store.save(row("r-a", path=path))
    await services.start()
    try:
        await asyncio.sleep(0.1)  # a few sweeps at T0: within the 7 days, nothing goes
        assert path.exists() and services.recordings.swept == {}
        now[0] = T0 + 8 * DAY
        for _ in range(500):  # the count follows the deletion: wait for both
            if not path.exists() and services.recordings.swept:
                break
            await asyncio.sleep(0.01)
        assert not path.exists() and services.recordings.store.get("r-a") is None
        text = metrics.render().decode()
        assert 'pbx_bridge_recordings_swept_total{state="completed"} 1.0' in text
        assert f"pbx_bridge_recordings_swept_bytes_total {float(len(pcm_wav(8000)))}" in text
    finally:
        await services.close()
        directory.close()
