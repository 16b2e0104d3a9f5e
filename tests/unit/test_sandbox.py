"""The sandbox fails with one clear line when it cannot work, and never hangs."""

from __future__ import annotations

import shutil
import socket
from collections import namedtuple
from pathlib import Path

import pytest

from pbx_bridge import sandbox as sb
from pbx_bridge.cli import main


def test_not_root(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(sb.os, "geteuid", lambda: 1000)
    with pytest.raises(sb.SandboxError, match="needs root"):
        sb.ensure_root(tmp_path / "root")


def test_no_mmdebstrap(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(sb.os, "geteuid", lambda: 0)
    monkeypatch.setattr(sb.shutil, "which", lambda name: None)
    with pytest.raises(sb.SandboxError, match="apt-get install mmdebstrap"):
        sb.ensure_root(tmp_path / "root")


def test_no_disk(monkeypatch, tmp_path) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(sb.os, "geteuid", lambda: 0)
    monkeypatch.setattr(sb.shutil, "which", lambda name: "/usr/bin/mmdebstrap")
    monkeypatch.setattr(sb.shutil, "disk_usage", lambda p: usage(10**9, 10**9, 10**6))
    with pytest.raises(sb.SandboxError, match="not enough disk"):
        sb.ensure_root(tmp_path / "root")


def test_a_built_root_is_reused_without_building(monkeypatch, tmp_path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / ".pbx-bridge-root-ok").write_text("ok")
    monkeypatch.setattr(sb.subprocess, "run", lambda *a, **k: pytest.fail("rebuilt"))
    assert sb.ensure_root(root) == root


def test_busy_port_is_one_clear_error(tmp_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        box = sb.Sandbox(name="unit", root=tmp_path, port_offset=port - 5038)
        with pytest.raises(sb.SandboxError, match=f"port {port} .* in use"):
            box.start(timeout=1)


def test_cli_prints_one_line_and_exits_1(monkeypatch, capsys) -> None:
    def boom(*a, **k):
        raise sb.SandboxError("the Asterisk sandbox needs root (chroot, mmdebstrap): run as root")

    monkeypatch.setattr(sb, "ensure_root", boom)
    assert main(["sandbox", "build"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["pbx-bridge sandbox: the Asterisk sandbox needs root (chroot, mmdebstrap): "
                   "run as root"]


def test_port_offset_rewrites_only_ports(tmp_path, monkeypatch) -> None:
    conf = Path(sb.DEFAULT_CONF_DIR)
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / ".pbx-bridge-root-ok").write_text("ok")
    box = sb.Sandbox(name="unit", root=root, port_offset=1000)
    box.prepare()
    etc = box.instance_dir / "etc"
    assert "port = 6038" in (etc / "manager.conf").read_text()
    assert "127.0.0.1:6060" in (etc / "pjsip.conf").read_text()
    assert (etc / "features.conf").read_text() == (conf / "features.conf").read_text()
    asterisk_conf = (etc / "asterisk.conf").read_text()
    assert "[directories]\n" in asterisk_conf and "astspooldir => /var/pbx-sandbox/unit/spool" \
        in asterisk_conf
    shutil.rmtree(root)
