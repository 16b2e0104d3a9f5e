"""docker/ stays consistent (cheap checks; tests/containers builds and runs it for real
with podman), and the Asterisk image's entrypoint script runs for real (plain sh)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from devtools.sandbox import ROOT_PACKAGES

REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO / "docker" / "asterisk-entrypoint.sh"
CONF_TEMPLATE = "/usr/local/share/pbx-bridge/asterisk-conf"
SECRETS = {
    "PBX_BRIDGE_AMI__SECRET": "ami-Secret_1.x",
    "PBX_BRIDGE_ARI__PASSWORD": "ari-secret-2",
    "PBX_BRIDGE_DEMO_SIP_PASSWORD": "sip-secret-3",
}


def test_compose_mounts_the_project_asterisk_conf() -> None:
    compose = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())
    asterisk = compose["services"]["asterisk"]
    # ${PBX_BRIDGE_ASTERISK_CONF:-../asterisk-conf}: the tests mount a port-shifted copy.
    mounts = [re.sub(r"^\$\{PBX_BRIDGE_ASTERISK_CONF:-([^}]+)\}", r"\1", v).split(":")
              for v in asterisk["volumes"]]
    conf = [(src, dst) for src, dst, *_ in mounts if dst == CONF_TEMPLATE]
    assert conf, f"asterisk service must mount the config at {CONF_TEMPLATE}"
    assert f"SRC=${{PBX_BRIDGE_CONF_SRC:-{CONF_TEMPLATE}}}" in ENTRYPOINT.read_text()
    src = (REPO / "docker" / conf[0][0]).resolve()
    assert src == (REPO / "asterisk-conf").resolve()
    assert (src / "manager.conf").exists()
    assert compose["services"]["bridge"]["depends_on"] == ["asterisk"]


def test_asterisk_image_uses_the_sandbox_packages() -> None:
    dockerfile = (REPO / "docker" / "asterisk.Dockerfile").read_text()
    # The public image users get; the container tier builds from a local one instead.
    assert "ARG BASE=docker.io/library/debian:sid-slim\nFROM ${BASE}\n" in dockerfile
    for pkg in ROOT_PACKAGES:
        if pkg.startswith("asterisk"):
            assert pkg in dockerfile, pkg


def test_bridge_image_runs_the_console_script() -> None:
    dockerfile = (REPO / "docker" / "bridge.Dockerfile").read_text()
    assert '"pbx-bridge", "serve"' in dockerfile
    assert "\nUSER pbx-bridge\n" in dockerfile
    assert "HEALTHCHECK" in dockerfile and "/readyz" in dockerfile
    # No secret in the image: settings come from the environment at run time.
    env_lines = [ln for ln in dockerfile.splitlines() if "SECRET" in ln or "PASSWORD" in ln]
    assert env_lines == [], env_lines


def test_compose_has_no_default_secret_and_refuses_to_start_without() -> None:
    compose = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())
    asterisk_env = compose["services"]["asterisk"]["environment"]
    assert set(SECRETS) <= set(asterisk_env)
    for service in ("asterisk", "bridge"):
        for name, value in compose["services"][service]["environment"].items():
            if "SECRET" in name or "PASSWORD" in name:
                # ${VAR:?message}: compose stops with the message when VAR is unset/empty.
                assert re.fullmatch(rf"\$\{{{name}:\?[^}}]+\}}", value), (service, name, value)
    assert "demo-secret" not in (REPO / "docker" / "compose.yaml").read_text()
    # The optional PostgreSQL: its password only passed through, no default.
    assert "POSTGRES_PASSWORD" in compose["services"]["postgres"]["environment"]
    assert compose["services"]["postgres"]["profiles"] == ["postgres"]


def test_asterisk_image_runs_the_entrypoint() -> None:
    dockerfile = (REPO / "docker" / "asterisk.Dockerfile").read_text()
    assert "COPY docker/asterisk-entrypoint.sh /usr/local/bin/pbx-bridge-asterisk-entrypoint" in (
        dockerfile
    )
    assert 'ENTRYPOINT ["/usr/local/bin/pbx-bridge-asterisk-entrypoint"]' in dockerfile


def _entrypoint(tmp_path: Path, env: dict[str, str], *cmd: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
    base.update(PBX_BRIDGE_CONF_SRC=str(REPO / "asterisk-conf"),
                PBX_BRIDGE_CONF_DST=str(tmp_path / "etc"), **env)
    return subprocess.run(["sh", str(ENTRYPOINT), *cmd], env=base, capture_output=True,
                          text=True, timeout=30, check=False)


def test_entrypoint_writes_the_secrets_and_runs_with_umask_027(tmp_path: Path) -> None:
    run = _entrypoint(tmp_path, SECRETS, "sh", "-c", "umask")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "0027"
    etc = tmp_path / "etc"
    manager = (etc / "manager.conf").read_text()
    assert "secret = ami-Secret_1.x\n" in manager
    assert "password = ari-secret-2\n" in (etc / "ari.conf").read_text()
    assert "password = sip-secret-3\n" in (etc / "pjsip.conf").read_text()
    for conf in etc.iterdir():
        assert not re.search(r"^(secret|password) = CHANGE-ME$", conf.read_text(), re.M), conf
        assert stat.S_IMODE(conf.stat().st_mode) == 0o640, conf
    # Everything else is asterisk-conf/ byte for byte.
    assert (etc / "extensions.conf").read_bytes() == (
        REPO / "asterisk-conf" / "extensions.conf").read_bytes()


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_entrypoint_refuses_a_missing_or_placeholder_secret(tmp_path: Path, missing: str) -> None:
    for value in (None, "", "CHANGE-ME"):
        env = {k: v for k, v in SECRETS.items() if k != missing}
        if value is not None:
            env[missing] = value
        run = _entrypoint(tmp_path, env, "true")
        assert run.returncode == 64, (value, run.stderr)
        assert f"{missing} is not set" in run.stderr
        assert not (tmp_path / "etc").exists()


def test_entrypoint_refuses_a_secret_that_would_need_quoting(tmp_path: Path) -> None:
    run = _entrypoint(tmp_path, {**SECRETS, "PBX_BRIDGE_AMI__SECRET": "a/b;c"}, "true")
    assert run.returncode == 64
    assert "only letters" in run.stderr
    assert "a/b;c" not in run.stderr  # the secret itself is never printed
