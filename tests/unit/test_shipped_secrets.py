"""No working secret ships, the bridge's AMI user gets only the classes it needs, and
`serve` refuses a secret everybody knows (issue 9, item 3)."""

from __future__ import annotations

import configparser
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pbx_bridge.cli import main
from pbx_bridge.config import Settings
from pbx_bridge.secret_check import refused_secret

CONF = Path(__file__).resolve().parents[2] / "asterisk-conf"
PBX_BRIDGE = Path(sys.executable).with_name("pbx-bridge")


def _asterisk_conf(name: str) -> configparser.RawConfigParser:
    """An Asterisk .conf as sections of options (';' comments, '=' or '=>')."""
    parser = configparser.RawConfigParser(
        delimiters=("=>", "="), inline_comment_prefixes=(";",), comment_prefixes=(";",),
        strict=False, interpolation=None,
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((CONF / name).read_text())
    return parser


def _classes(value: str) -> set[str]:
    return {c.strip() for c in value.split(",") if c.strip()}


def test_bridge_ami_user_has_only_the_classes_it_needs() -> None:
    user = _asterisk_conf("manager.conf")["pbx-bridge"]
    read, write = _classes(user["read"]), _classes(user["write"])
    # user: the UserEvent the *1 subroutine sends when it cannot record.
    assert read == {"call", "user"}
    # system: MixMonitor and DBPut/DBDelTree exist only in that class (see manager.conf);
    # originate: click-to-call and the spying/pickup actions (issue 14), numbers checked.
    assert write == {"system", "call", "reporting", "originate"}
    for dangerous in ("command", "config", "all"):
        assert dangerous not in write, dangerous
    assert user["permit"].startswith("127.0.0.1/")


def test_no_working_secret_in_asterisk_conf() -> None:
    assert _asterisk_conf("manager.conf")["pbx-bridge"]["secret"] == "CHANGE-ME"
    assert _asterisk_conf("ari.conf")["pbx-bridge"]["password"] == "CHANGE-ME"
    pjsip = _asterisk_conf("pjsip.conf")
    passwords = {s: pjsip[s]["password"] for s in pjsip.sections() if "password" in pjsip[s]}
    assert passwords and set(passwords.values()) == {"CHANGE-ME"}, passwords
    for conf in CONF.iterdir():
        text = conf.read_text()
        assert "demo-secret" not in text and "password = demo" not in text, conf.name


def test_media_listens_on_loopback_in_the_demo_config() -> None:
    pjsip = _asterisk_conf("pjsip.conf")
    for section in ("ext-endpoint", "pstn"):
        assert pjsip[section]["media_address"] == "127.0.0.1", section
        assert pjsip[section]["bind_rtp_to_media_address"] == "yes", section


def _settings(secret: str, **ami: object) -> Settings:
    return Settings(ami={"secret": secret, **ami})


@pytest.mark.parametrize(
    "secret", ["", "  ", "CHANGE-ME", "change-me", "pbx-bridge-demo-secret", "demo"]
)
def test_known_or_empty_secret_is_refused(secret: str) -> None:
    assert refused_secret(_settings(secret)) is not None
    assert refused_secret(_settings(secret), demo=True) is None
    assert refused_secret(_settings(secret, allow_demo_secret=True)) is None


def test_a_random_secret_is_accepted() -> None:
    assert refused_secret(_settings("3b9c0e1f6a2d4c8e9f0a1b2c")) is None


@pytest.mark.parametrize("secret", ["pbx-bridge-demo-secret", "CHANGE-ME", ""])
def test_serve_refuses_a_known_secret_with_one_line(
    secret: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    for key in list(os.environ):
        if key.startswith("PBX_BRIDGE_") and "SANDBOX" not in key:
            monkeypatch.delenv(key)
    monkeypatch.setenv("PBX_BRIDGE_AMI__SECRET", secret)
    monkeypatch.setenv("PBX_BRIDGE_DATABASE__URL", f"sqlite:///{tmp_path / 'd.sqlite3'}")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pbx-bridge serve: "), err
    if secret:
        assert secret not in err[0]
    assert not (tmp_path / "d.sqlite3").exists()  # refused before touching anything


def test_serve_demo_flag_accepts_the_placeholder(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
    env.update(
        PBX_BRIDGE_AMI__SECRET="CHANGE-ME",
        PBX_BRIDGE_AMI__PORT="9",  # nothing answers: the service runs, not ready
        PBX_BRIDGE_HTTP__PORT=str(port),
        PBX_BRIDGE_DATABASE__URL=f"sqlite:///{tmp_path / 'd.sqlite3'}",
    )
    subprocess.run([str(PBX_BRIDGE), "db", "upgrade"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    proc = subprocess.Popen([str(PBX_BRIDGE), "serve", "--demo"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "serve --demo never answered /healthz"
                time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
