"""The real Services (pbx_bridge/server.py) wired to the sandbox Asterisk, for integration tests."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from devtools.sandbox import Sandbox
from pbx_bridge.config import Settings
from pbx_bridge.directory.store import Directory
from pbx_bridge.server import Services

DEMO_DIRECTORY = Path(__file__).resolve().parents[2] / "config" / "directory.example.toml"


def demo_directory(tmp_path: Path) -> Directory:
    directory = Directory.open(tmp_path / "directory.sqlite3")
    directory.load_toml(DEMO_DIRECTORY)
    return directory


def serve_environ(sandbox: Sandbox, tmp_path: Path, port: int, **settings: str) -> dict[str, str]:
    """The environment of a `pbx-bridge serve` subprocess on the sandbox and the demo
    directory of `demo_directory(tmp_path)`, listening on `port`; `settings` add
    PBX_BRIDGE_* variables (or replace these). Nothing of the caller's own PBX_BRIDGE_*
    leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
    env.update(
        PBX_BRIDGE_AMI__PORT=str(sandbox.ami_port),
        PBX_BRIDGE_AMI__SECRET=sandbox.secrets.ami,
        PBX_BRIDGE_HTTP__PORT=str(port),
        PBX_BRIDGE_DATABASE__URL=f"sqlite:///{tmp_path / 'directory.sqlite3'}",
        # The recordings catalog reads the sandbox's files, as bridge_settings says.
        PBX_BRIDGE_RECORDINGS__MONITOR_DIR=str(sandbox.monitor_dir),
        PBX_BRIDGE_RECORDINGS__HOST_ROOT=str(sandbox.root),
    )
    env.update(settings)
    return env


def bridge_settings(sandbox: Sandbox, tmp_path: Path, *, port: int | None = None,
                    **ami: object) -> Settings:
    return Settings(
        ami={
            "port": port or sandbox.ami_port,
            "secret": sandbox.secrets.ami,
            "ping_interval": 1.0,
            "ping_timeout": 1.0,
            "backoff_cap": 1.0,
            "action_timeout": 3.0,
            **ami,
        },
        database={"url": f"sqlite:///{tmp_path / 'directory.sqlite3'}"},
        # Where the recordings catalog reads what the sandbox Asterisk writes: its monitor
        # folder and its root, as this host sees them.
        recordings={"monitor_dir": str(sandbox.monitor_dir), "host_root": str(sandbox.root),
                    "settle_interval": 0.2},
    )


async def start_bridge(settings: Settings, directory: Directory) -> Services:
    bridge = Services(settings, directory)
    await bridge.start()
    await wait_ready(bridge)
    return bridge


async def wait_ready(bridge: Services, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not (bridge.ready and bridge.ami.connected):
        if time.monotonic() > deadline:
            raise AssertionError("the bridge did not become ready")
        await asyncio.sleep(0.05)


async def eventually(predicate, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.05)
