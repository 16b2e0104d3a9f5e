"""Session fixtures for the integration and e2e tiers: one real Asterisk per test run.

The sandbox starts once per session (a fresh instance folder, the project's own
asterisk-conf/), and every test gets a clean PBX: no channels, no stale phones. Set
PBX_BRIDGE_SANDBOX_NAME / PBX_BRIDGE_SANDBOX_PORT_OFFSET to run next to another sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from devtools.phones import Phone
from devtools.sandbox import Sandbox, SandboxError
from tests.support.pbx import EventLog, connect_ami, wait_no_channels

# Port offsets tried when the default ports are taken and none was given.
_FALLBACK_OFFSETS = (1000, 2000, 3000, 4000)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    sb = Sandbox(name=os.environ.get("PBX_BRIDGE_SANDBOX_NAME", "test"))
    try:
        sb.stop()  # a previous run that died may have left it running
        if sb.busy_ports() and "PBX_BRIDGE_SANDBOX_PORT_OFFSET" not in os.environ:
            # Something else (say, `make demo`) holds the default ports: move aside
            # rather than fail, as a newcomer running the README's two commands would.
            for offset in _FALLBACK_OFFSETS:
                sb.port_offset = offset
                if not sb.busy_ports():
                    break
        sb.start(timeout=90)
    except SandboxError as exc:
        pytest.fail(f"the real Asterisk sandbox could not start: {exc}", pytrace=False)
    Phone.kill_stale(sb)
    try:
        yield sb
    finally:
        Phone.kill_stale(sb)
        sb.stop()


@pytest.fixture
async def pbx(sandbox: Sandbox) -> AsyncIterator[Sandbox]:
    """The sandbox, with no live channel before and after the test."""
    await _clean(sandbox)
    _empty_monitor(sandbox)
    yield sandbox
    await _clean(sandbox)


async def _clean(sb: Sandbox) -> None:
    with contextlib.suppress(SandboxError):
        await asyncio.to_thread(sb.cli, "channel request hangup all")
        await asyncio.to_thread(sb.cli, "database deltree pbx_bridge")
    await wait_no_channels(sb, timeout=15)


def _empty_monitor(sb: Sandbox) -> None:
    """No recording files from earlier tests: a bridge reconciles its catalog with the
    monitor folder when it starts, and would list them next to the test's own."""
    if not sb.monitor_dir.is_dir():
        return
    for entry in sb.monitor_dir.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


@pytest.fixture
async def ami_log(pbx: Sandbox) -> AsyncIterator[EventLog]:
    """A test's own AMI client recording every event (the `.client` attribute)."""
    log = EventLog()
    client = await connect_ami(pbx, log)
    log.client = client  # type: ignore[attr-defined]
    try:
        yield log
    finally:
        await client.close()


@pytest.fixture
async def phones(pbx: Sandbox) -> AsyncIterator[Callable[..., object]]:
    """Factory: `await phones("0003*210")` starts a registered baresip phone;
    `await phones("7778888", carrier=True)` one on the public side. All are stopped
    when the test ends."""
    started: list[Phone] = []

    async def make(user: str, *, carrier: bool = False, **kw: object) -> Phone:
        phone = Phone.carrier(pbx, user, **kw) if carrier else Phone(pbx, user, **kw)
        await phone.start()
        started.append(phone)
        return phone

    try:
        yield make
    finally:
        for phone in started:
            await phone.stop()
