"""A directory of a provider's size (issue 16): a load that changes nothing writes
nothing, so a running service (another handle on the same database) keeps its snapshot
and re-reads nothing; a load that changes one row is seen by the service."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.provider_directory import provider_directory
from pbx_bridge.directory.models import DirectoryFile, Extension, RecordingSetup
from pbx_bridge.directory.store import Directory

pytestmark = pytest.mark.unit

DEMO = Path(__file__).resolve().parents[2] / "config" / "directory.example.toml"


def test_a_load_that_changes_nothing_leaves_the_running_snapshot(tmp_path: Path) -> None:
    cli = Directory.open(tmp_path / "d.sqlite3")
    service = Directory.open(tmp_path / "d.sqlite3")
    try:
        cli.load_toml(DEMO)
        before = service.rows.snapshot()
        cli.load_toml(DEMO)  # `pbx-bridge directory load` of the same file again
        assert service.rows.snapshot() is before, "nothing was written: nothing re-read"

        ext = before.extensions["0003*212"]
        cli.load(DirectoryFile(extensions=[ext.model_copy(
            update={"recording": RecordingSetup(enabled=True)})]))
        after = service.rows.snapshot()
        assert after is not before
        assert after.extensions["0003*212"].recording.enabled
        assert after.extensions["0003*210"] == before.extensions["0003*210"]
    finally:
        cli.close()
        service.close()


def test_the_provider_directory_loads_and_a_flip_changes_one_in_a_hundred(tmp_path) -> None:
    data = provider_directory(organizations=5, users=20, extensions=400)
    flipped = provider_directory(organizations=5, users=20, extensions=400, flip=True)
    changed = [a for a, b in zip(data.extensions, flipped.extensions, strict=True) if a != b]
    assert len(changed) == 4
    with Directory.open(tmp_path / "p.sqlite3") as directory:
        directory.load(data)
        assert len(directory.all_extensions()) == 400
        first = directory.extension("1000*100")
        assert isinstance(first, Extension) and directory.organization_of_extension(first)
