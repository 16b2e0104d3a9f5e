"""Phone folders of finished runs are pruned (kill_stale); a live run's are kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pbx_bridge.phones import PHONES_DIR, Phone
from pbx_bridge.sandbox import Sandbox


def test_dead_runs_folders_are_pruned_live_ones_kept(tmp_path: Path) -> None:
    sb = Sandbox(name="unit", root=tmp_path)
    base = tmp_path / PHONES_DIR / "unit"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    names = {
        "gone": f"0003_210-{dead}-3",
        "gone_carrier": f"7778888-{dead}-0",
        "mine": f"0003_210-{os.getpid()}-1",
        "odd": "notes",  # not a phone folder: left alone
    }
    for name in names.values():
        (base / name).mkdir(parents=True)
        (base / name / "baresip.log").write_text("log")
    other = tmp_path / PHONES_DIR / "other" / f"0003_210-{dead}-3"  # another instance
    other.mkdir(parents=True)

    Phone.kill_stale(sb)

    assert sorted(p.name for p in base.iterdir()) == sorted([names["mine"], names["odd"]])
    assert other.is_dir()
