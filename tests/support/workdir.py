"""An autouse fixture for tests of CLI commands: a fresh working folder and none of the
caller's PBX_BRIDGE_* variables, the default database in the test's own state folder,
so that a command reads only the settings the test gives.
Import it into a test module to apply it there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.upper().startswith("PBX_BRIDGE_"):
            monkeypatch.delenv(name)
    # The default database lives in the state directory (config.default_database_url).
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    return tmp_path
