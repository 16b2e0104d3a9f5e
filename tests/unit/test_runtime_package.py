"""The runtime package holds only what runs next to a PBX (issue 10, item 5): the
development sandbox and SIP phones live in devtools/, outside the wheel and the image,
and `pbx-bridge` offers no development commands."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

from pbx_bridge.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
RUNTIME = REPO / "pbx_bridge"
# Top-level packages of the checkout that are never installed.
DEV_PACKAGES = {"devtools", "bench", "tests"}
# What only development tooling does: build and chroot into a Debian root, run baresip.
# The bridge talks to Asterisk over AMI only and starts no programs.
DEV_ONLY_MODULES = {"subprocess"}


def _imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from x import y` may name a module y of package x
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _string_imports(path: Path) -> set[str]:
    """Module names given to importlib as string literals (the CLI registry)."""
    return {
        node.value
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and node.value.split(".")[0] in DEV_PACKAGES | {"pbx_bridge"}
        and node.value.replace(".", "").replace("_", "").isalnum()
    }


def test_runtime_modules_import_no_dev_tooling() -> None:
    offenders = []
    for path in sorted(RUNTIME.rglob("*.py")):
        for name in _imported_modules(path) | _string_imports(path):
            top = name.split(".")[0]
            if top in DEV_PACKAGES or top in DEV_ONLY_MODULES:
                offenders.append(f"{path.relative_to(REPO)}: {name}")
            if name in {"pbx_bridge.sandbox", "pbx_bridge.phones"}:
                offenders.append(f"{path.relative_to(REPO)}: {name}")
    assert offenders == []


def test_runtime_package_holds_no_sandbox_or_phone_modules() -> None:
    names = {p.stem for p in RUNTIME.rglob("*.py")}
    assert not names & {"sandbox", "phones"}
    for path in RUNTIME.rglob("*.py"):
        text = path.read_text().lower()
        for word in ("mmdebstrap", "baresip", "chroot"):
            assert word not in text, (path.relative_to(REPO), word)


def test_pbx_bridge_cli_offers_no_development_commands() -> None:
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert "serve" in commands  # the registry did load
    assert not {"sandbox", "phone"} & set(commands)
    usage = parser.format_help()
    assert "sandbox" not in usage and "phone " not in usage


def test_wheel_and_image_hold_only_the_runtime_package() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["tool"]["setuptools"]["packages"]["find"]["include"] == ["pbx_bridge*"]
    # Every console script points into the runtime package (none dangles into devtools).
    scripts = project["project"]["scripts"]
    assert all(target.startswith("pbx_bridge.") for target in scripts.values()), scripts
    dockerfile = (REPO / "docker" / "bridge.Dockerfile").read_text()
    copied = [ln.split()[1] for ln in dockerfile.splitlines() if ln.startswith("COPY ")]
    assert "pbx_bridge" in copied
    assert not DEV_PACKAGES & set(copied) and "." not in copied, copied


def test_devtools_cli_offers_the_sandbox_and_the_phone() -> None:
    def run(*args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "devtools", *args], cwd=REPO,
                              capture_output=True, text=True, timeout=60, check=True)
        return proc.stdout

    assert "sandbox" in run("--help") and "phone" in run("--help")
    assert "{build,start,stop,status,cli,path}" in run("sandbox", "--help")
    phone = run("phone", "--help")
    for option in ("--ext", "--dial", "--seconds", "--carrier", "--sandbox"):
        assert option in phone, option
