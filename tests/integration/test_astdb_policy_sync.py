"""The *1 recording policy in the real sandbox Asterisk's AstDB, kept by difference
(issue 16): a directory change writes only the keys that changed and deletes only the
gone ones, other families are never touched, a reconnect repairs by difference, and
readiness never waits for the sync. The AMI actions are counted on the wire (a relay
between the bridge and Asterisk), the AstDB content read with Asterisk's own CLI."""

from __future__ import annotations

import asyncio

from devtools.sandbox import Sandbox
from pbx_bridge.directory.models import DirectoryFile, Extension, RecordingSetup
from pbx_bridge.recording.astdb import expected_policy
from pbx_bridge.server import Services
from tests.support.bridge import (
    bridge_settings,
    demo_directory,
    eventually,
    start_bridge,
    wait_ready,
)
from tests.support.proxy import LinkCutter


def astdb(sb: Sandbox, family: str = "pbx_bridge") -> dict[str, str]:
    """``database show <family>`` as key (without the family) -> value."""
    out: dict[str, str] = {}
    for line in sb.cli(f"database show {family}").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.startswith(f"/{family}/"):
            out[key.strip().removeprefix(f"/{family}/")] = value.strip()
    return out


def sent(relay: LinkCutter, action: str, since: int = 0) -> int:
    """How many ``action`` actions the bridge wrote towards Asterisk after byte ``since``."""
    return bytes(relay.upstream[since:]).count(f"Action: {action}\r\n".encode())


def ext(number: str, owner: int, enabled: bool, trigger: str = "star1") -> Extension:
    return Extension(number=number, owner=owner, device=f"PJSIP/{number}",
                     recording=RecordingSetup(enabled=enabled, trigger=trigger, format="wav"))


async def _synced(bridge, directory, sb: Sandbox) -> None:
    want = expected_policy(directory, "")
    await eventually(lambda: astdb(sb) == want, timeout=15, what="AstDB equals the policy")
    await asyncio.sleep(0.3)  # nothing more is written after it is reached


async def test_a_directory_change_writes_only_the_changed_keys(pbx, tmp_path) -> None:
    pbx.cli("database put pbx_bridge_other keep me")  # another family: never touched
    pbx.cli("database put pbx_bridge rec/9999*999 wav,9,9999*999,star1")  # stale: deleted
    directory = demo_directory(tmp_path)
    relay = await LinkCutter(pbx.ami_port).start()
    bridge = await start_bridge(bridge_settings(pbx, tmp_path, port=relay.port), directory)
    try:
        await _synced(bridge, directory, pbx)
        assert sent(relay, "DBGetTree") == 1
        assert sent(relay, "DBPut") == len(expected_policy(directory, ""))
        assert sent(relay, "DBDel") == 1 and sent(relay, "DBDelTree") == 0

        mark = len(relay.upstream)
        bridge.reload_directory()  # nothing changed: nothing is written, nothing read
        await asyncio.sleep(0.5)
        assert sent(relay, "DB", mark) == 0

        # 0003*212 starts recording, 0003*210 stops, 0003*211 turns to "always".
        directory.load(DirectoryFile(extensions=[
            ext("0003*212", 13, True), ext("0003*210", 12, False),
            ext("0003*211", 12, True, "always"),
        ]))
        bridge.reload_directory()
        await _synced(bridge, directory, pbx)
        assert sent(relay, "DBPut", mark) == 2  # rec/0003*212 and rec/0003*211
        assert sent(relay, "DBDel", mark) == 1  # rec/0003*210
        assert sent(relay, "DBGetTree", mark) == 0  # the tree is read once per connect
        assert astdb(pbx, "pbx_bridge_other") == {"keep": "me"}
    finally:
        await bridge.close()
        await relay.close()
        pbx.cli("database deltree pbx_bridge_other")


async def test_a_reconnect_repairs_what_changed_behind_the_bridge(pbx, tmp_path) -> None:
    directory = demo_directory(tmp_path)
    relay = await LinkCutter(pbx.ami_port).start()
    bridge = await start_bridge(bridge_settings(pbx, tmp_path, port=relay.port), directory)
    try:
        await _synced(bridge, directory, pbx)
        pbx.cli("database put pbx_bridge rec/0003*210 wav,3,0003*210,always")  # tampered
        pbx.cli("database del pbx_bridge rec/0004*210")  # lost
        mark, connections = len(relay.upstream), relay.connections
        relay.cut()
        await eventually(lambda: relay.connections > connections and bridge.ready, timeout=15)
        await _synced(bridge, directory, pbx)
        assert sent(relay, "DBGetTree", mark) == 1
        assert sent(relay, "DBPut", mark) == 2 and sent(relay, "DBDel", mark) == 0
    finally:
        await bridge.close()
        await relay.close()


async def test_readiness_does_not_wait_for_the_policy(pbx, tmp_path) -> None:
    directory = demo_directory(tmp_path)
    relay = await LinkCutter(pbx.ami_port).start()
    relay.hold = b"DB"  # Asterisk is slow to answer any AstDB action
    bridge = Services(bridge_settings(pbx, tmp_path, port=relay.port), directory)
    try:
        await bridge.start()
        await wait_ready(bridge)
        assert astdb(pbx) == {}, "nothing written yet: *1 reads what AstDB held"
        relay.release.set()
        await _synced(bridge, directory, pbx)
    finally:
        await bridge.close()
        await relay.close()
