"""The systemd unit users install (packaging/systemd/pbx-bridge.service) is one systemd
accepts without a warning, hardened (`systemd-analyze security` exposure, offline), and
in step with what the service does on its signals."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pbx_bridge.config import HttpSettings

UNIT = Path(__file__).resolve().parents[2] / "packaging" / "systemd" / "pbx-bridge.service"
INSTALLED = "/opt/pbx-bridge/bin/pbx-bridge"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed")


def _unit_here(tmp_path: Path) -> Path:
    """The unit with ExecStart on this checkout's pbx-bridge: `verify` wants the binary to
    exist. Nothing else changes."""
    text = UNIT.read_text()
    assert f"ExecStart={INSTALLED} serve" in text
    here = tmp_path / "pbx-bridge.service"
    here.write_text(text.replace(INSTALLED, str(Path(sys.executable).with_name("pbx-bridge"))))
    return here


def _analyze(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run([ANALYZE, *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, check=False)


@needs_analyze
def test_systemd_verify_accepts_the_unit_without_a_warning(tmp_path) -> None:
    # `verify` exits 0 on an unknown key or a bad value too, and says so on stderr.
    done = _analyze("verify", str(_unit_here(tmp_path)), cwd=tmp_path)
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr


@needs_analyze
def test_systemd_verify_would_see_a_mistake(tmp_path) -> None:
    unit = _unit_here(tmp_path)
    unit.write_text(unit.read_text().replace("ProtectSystem=strict", "ProtectSystem=strikt"))
    assert "strikt" in _analyze("verify", str(unit), cwd=tmp_path).stderr


@needs_analyze
def test_systemd_security_exposure_is_low(tmp_path) -> None:
    done = _analyze("security", "--offline=yes", str(_unit_here(tmp_path)), cwd=tmp_path)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d) (\w+)", done.stdout)
    assert found, done.stdout + done.stderr
    exposure = float(found.group(1))
    print(f"systemd-analyze security exposure: {exposure} {found.group(2)}")
    # 1.3 when written (0 = best, 10 = worst); what is left is needed: the network,
    # the asterisk group, the host's root.
    assert exposure <= 2.0, done.stdout


def test_unit_gives_the_drain_time_and_reloads_with_sighup() -> None:
    text = UNIT.read_text()
    stop = float(re.search(r"^TimeoutStopSec=(\d+)$", text, re.M).group(1))  # type: ignore[union-attr]
    assert stop > HttpSettings().shutdown_timeout, "systemd must not kill a draining service"
    assert "ExecReload=/bin/kill -HUP $MAINPID" in text
    for hardening in ("ProtectSystem=strict", "StateDirectory=pbx-bridge", "NoNewPrivileges=yes",
                      "CapabilityBoundingSet=\n"):
        assert hardening in text
