"""Helpers for tests that talk to the real sandbox Asterisk."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from devtools.sandbox import HARNESS_AMI_USER, Sandbox
from pbx_bridge.pbx.ami import AmiClient
from pbx_bridge.recording.variables import parse_rec

# The bridge's AMI user (asterisk-conf/manager.conf, the shipped classes); its secret is
# the sandbox instance's: `sandbox.secrets.ami`.
AMI_USER = "pbx-bridge"
# The tests' own clients log in as the harness user (every class, sandbox only):
# `sandbox.secrets.harness`.
HARNESS_USER = HARNESS_AMI_USER

Event = dict[str, str]


@dataclass
class EventLog:
    """Every AMI event a test's client saw, with a way to wait for one."""

    events: list[Event] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, ev: Event) -> None:
        self.events.append(dict(ev))
        self._changed.set()

    def matching(self, name: str, **headers: str) -> list[Event]:
        return [
            e
            for e in self.events
            if e.get("Event") == name and all(e.get(k) == v for k, v in headers.items())
        ]

    async def wait_for(
        self, name: str, timeout: float = 10.0, where: Callable[[Event], bool] | None = None,
        **headers: str,
    ) -> Event:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for e in self.events[seen:]:
                if e.get("Event") == name and all(e.get(k) == v for k, v in headers.items()):
                    if where is None or where(e):
                        return e
            seen = len(self.events)
            left = deadline - time.monotonic()
            if left <= 0:
                names = [e.get("Event") for e in self.events[-10:]]
                raise AssertionError(f"no {name} {headers} within {timeout} s; last: {names}")
            self._changed.clear()
            try:
                async with asyncio.timeout(left):
                    await self._changed.wait()
            except TimeoutError:
                pass


async def connect_ami(sandbox: Sandbox, log: EventLog | None = None) -> AmiClient:
    client = AmiClient("127.0.0.1", sandbox.ami_port, HARNESS_USER, sandbox.secrets.harness)
    if log is not None:
        client.add_event_handler(log)
    await client.start()
    await client.wait_connected(10)
    return client


def live_channels(sandbox: Sandbox) -> dict[str, dict[str, str]]:
    """What Asterisk itself reports: `core show channels concise`, by Uniqueid."""
    out: dict[str, dict[str, str]] = {}
    for line in sandbox.cli("core show channels concise").splitlines():
        parts = line.split("!")
        if len(parts) < 14:
            continue
        out[parts[13]] = {
            "channel": parts[0],
            "context": parts[1],
            "exten": parts[2],
            "state": parts[4],
            "application": parts[5],
            "callerid": parts[7],
            "bridge": parts[12],
        }
    return out


async def wait_no_channels(sandbox: Sandbox, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        chans = await asyncio.to_thread(live_channels, sandbox)
        if not chans:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"channels still up after {timeout} s: {list(chans)}")
        await asyncio.sleep(0.1)


def recording_file(ev: Event) -> str:
    """The file (relative to the monitor folder) an event's channel records to, from
    PBX_REC ("<start epoch>|<file>", set before MixMonitor by the bridge and *1)."""
    return parse_rec(ev.get("ChanVariable(PBX_REC)"))[1] or ""
