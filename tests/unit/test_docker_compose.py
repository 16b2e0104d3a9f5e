"""The Docker path is not run here (no engine); check it stays consistent instead."""

from __future__ import annotations

from pathlib import Path

import yaml

from pbx_bridge.sandbox import ROOT_PACKAGES

REPO = Path(__file__).resolve().parents[2]


def test_compose_mounts_the_project_asterisk_conf() -> None:
    compose = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())
    asterisk = compose["services"]["asterisk"]
    mounts = [v.split(":") for v in asterisk["volumes"]]
    conf = [(src, dst) for src, dst, *_ in mounts if dst == "/etc/asterisk"]
    assert conf, "asterisk service must mount the config at /etc/asterisk"
    src = (REPO / "docker" / conf[0][0]).resolve()
    assert src == (REPO / "asterisk-conf").resolve()
    assert (src / "manager.conf").exists()
    assert compose["services"]["bridge"]["depends_on"] == ["asterisk"]


def test_asterisk_image_uses_the_sandbox_packages() -> None:
    dockerfile = (REPO / "docker" / "asterisk.Dockerfile").read_text()
    assert "FROM debian:sid" in dockerfile
    for pkg in ROOT_PACKAGES:
        if pkg.startswith("asterisk"):
            assert pkg in dockerfile, pkg


def test_bridge_image_runs_the_console_script() -> None:
    dockerfile = (REPO / "docker" / "bridge.Dockerfile").read_text()
    assert '"pbx-bridge", "serve"' in dockerfile
