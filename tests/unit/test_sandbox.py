"""The sandbox fails with one clear line when it cannot work, and never hangs."""

from __future__ import annotations

import shutil
import socket
from collections import namedtuple
from pathlib import Path

import pytest

from devtools import sandbox as sb
from devtools.cli import main


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
    assert err == ["devtools sandbox: the Asterisk sandbox needs root (chroot, mmdebstrap): "
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


# ---- issue 9: the instance's own secrets, never asterisk-conf/'s placeholders


def _prepared(tmp_path: Path, monkeypatch, **env: str) -> sb.Sandbox:
    for key in ("PBX_BRIDGE_AMI__SECRET", "PBX_BRIDGE_ARI__PASSWORD",
                "PBX_BRIDGE_DEMO_SIP_PASSWORD"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / ".pbx-bridge-root-ok").write_text("ok")
    box = sb.Sandbox(name="unit", root=root, port_offset=0)
    box.prepare()
    return box


def test_prepare_puts_generated_secrets_in_place_of_the_placeholders(
    tmp_path, monkeypatch
) -> None:
    box = _prepared(tmp_path, monkeypatch)
    keys = box.secrets
    assert len({keys.ami, keys.ari, keys.sip, keys.harness}) == 4
    assert all(len(k) >= 24 for k in (keys.ami, keys.ari, keys.sip, keys.harness))
    etc = box.instance_dir / "etc"
    manager = (etc / "manager.conf").read_text()
    assert "[pbx-bridge]" in manager and f"secret = {keys.ami}\n" in manager
    assert f"[{sb.HARNESS_AMI_USER}]\nsecret = {keys.harness}\n" in manager
    assert f"password = {keys.ari}\n" in (etc / "ari.conf").read_text()
    assert f"password = {keys.sip}\n" in (etc / "pjsip.conf").read_text()
    for conf in etc.iterdir():
        assert "= CHANGE-ME" not in conf.read_text(), conf.name
    for private in (box.secrets_file, etc / "manager.conf", etc / "pjsip.conf"):
        assert private.stat().st_mode & 0o077 == 0, private
    # The harness user lives only in the instance's copy, never in asterisk-conf/.
    assert sb.HARNESS_AMI_USER not in (sb.DEFAULT_CONF_DIR / "manager.conf").read_text()
    # Another process (e.g. `python -m devtools phone`) reads the same secrets back.
    assert sb.Sandbox(name="unit", root=box.root).secrets == keys
    assert keys.ami not in repr(keys)


def test_prepare_takes_the_secrets_make_demo_exports(tmp_path, monkeypatch) -> None:
    box = _prepared(tmp_path, monkeypatch, PBX_BRIDGE_AMI__SECRET="a" * 48,
                    PBX_BRIDGE_DEMO_SIP_PASSWORD="s" * 48)
    assert box.secrets.ami == "a" * 48 and box.secrets.sip == "s" * 48
    assert box.secrets.ari not in ("", "CHANGE-ME")


@pytest.mark.parametrize("bad", ["CHANGE-ME", "with space", "semi;colon"])
def test_prepare_refuses_an_unusable_given_secret(tmp_path, monkeypatch, bad) -> None:
    with pytest.raises(sb.SandboxError, match="PBX_BRIDGE_AMI__SECRET"):
        _prepared(tmp_path, monkeypatch, PBX_BRIDGE_AMI__SECRET=bad)


def test_recording_folders_are_not_world_readable(tmp_path, monkeypatch) -> None:
    box = _prepared(tmp_path, monkeypatch)
    for folder in (box.instance_dir, box.instance_dir / "spool", box.monitor_dir):
        assert folder.stat().st_mode & 0o007 == 0, folder
