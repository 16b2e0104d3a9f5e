"""`pbx-bridge serve` (a real subprocess) restarted and reloaded the way systemd does it,
against the real sandbox Asterisk, its AMI link through a relay the test can freeze and
read (tests/support/proxy.py: both ends real).

- SIGTERM while a StartRecording waits for Asterisk: the listener closes at once (a new
  connection is refused), the request still completes (200, the recording really runs),
  then the service logs off AMI and exits 0. The answer's X-Request-Id is the id of the
  request in the JSON log and ends the ActionID of the AMI actions it caused.
- SIGHUP: the log level is read again from the config file, and the directory from the
  database (the AstDB recording policy follows it), while the AMI link stays the same
  connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from pbx_bridge.calls.tracker import call_id
from pbx_bridge.config import AmiSettings
from pbx_bridge.directory.store import Directory
from tests.reliability.support import JOHN, START, Calls, free_port
from tests.support.bridge import DEMO_DIRECTORY, demo_directory, serve_environ
from tests.support.proxy import LinkCutter

A = "0003*210"
PBX_BRIDGE = Path(sys.executable).with_name("pbx-bridge")
# The ActionID of an action an HTTP request caused: "-<its request id>" at the end.
_CAUSED = re.compile(rb"ActionID: pbxb-[0-9a-f]{8}-\d+-[0-9a-f]{16}\r\n")


class Serve:
    """`pbx-bridge serve` with its log in a file, signalled like systemd does."""

    def __init__(self, env: dict[str, str], log: Path, port: int, *args: str) -> None:
        self.env, self.log, self.args = env, log, args
        self.base = f"http://127.0.0.1:{port}"
        self.port = port
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, http: aiohttp.ClientSession) -> None:
        with open(self.log, "ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                str(PBX_BRIDGE), "serve", *self.args, env=self.env,
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
                start_new_session=True,
            )

        async def ready() -> bool:
            assert self.proc is not None and self.proc.returncode is None, self.text()[-2000:]
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{self.base}/readyz") as r:
                    return r.status == 200
            return False

        for _ in range(300):
            if await ready():
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"not ready:\n{self.text()[-2000:]}")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@pytest.fixture
async def relay(pbx) -> AsyncIterator[LinkCutter]:
    cutter = await LinkCutter(pbx.ami_port).start()
    try:
        yield cutter
    finally:
        await cutter.close()


def _token(tmp_path: Path) -> str:
    directory = demo_directory(tmp_path)
    try:
        client_id, _ = directory.create_app(JOHN, "signals-test")
        return directory.issue_token(client_id)[0]
    finally:
        directory.close()


async def _refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


def _actions(sent: bytes) -> list[dict[str, str]]:
    """The AMI actions in the bytes the bridge sent (header names lower-cased)."""
    out = []
    for block in sent.decode(errors="replace").split("\r\n\r\n"):
        headers = dict(
            (k.strip().lower(), v.strip())
            for k, _, v in (line.partition(":") for line in block.split("\r\n") if line)
        )
        if "action" in headers:
            out.append(headers)
    return out


async def _eventually(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.1)):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s")


async def test_sigterm_drains_a_request_in_flight(pbx, observer, relay, tmp_path) -> None:
    token = _token(tmp_path)
    port = free_port()
    env = serve_environ(
        pbx, tmp_path, port,
        PBX_BRIDGE_AMI__PORT=str(relay.port),
        PBX_BRIDGE_LOGGING__FORMAT="json",
        PBX_BRIDGE_HTTP__SHUTDOWN_TIMEOUT="60",
    )
    bridge = Serve(env, tmp_path / "serve.log", port)
    calls = Calls(pbx, observer.client, observer)
    auth = {"Authorization": f"Bearer {token}"}
    try:
        async with aiohttp.ClientSession(headers=auth) as http:
            await bridge.start(http)
            await calls.add_phones(1)
            call = await calls.start(A)
            url = f"{bridge.base}/uapi/phoneCalls/@me/{A}/{call_id(call.uniqueid)}"
            for _ in range(100):  # until the bridge tracks the call
                async with http.get(url) as r:
                    if r.status == 200:
                        break
                await asyncio.sleep(0.1)
            # The bridge's own tagging of the new call is done (not caused by a request).
            await observer.wait_for("VarSet", Channel=call.channel, Variable="PBX_VIEW")

            relay.frozen = True  # Asterisk gets nothing more: the request waits for it
            mark = len(relay.upstream)
            put = asyncio.create_task(http.put(url, json=START))
            await _eventually(lambda: _CAUSED.search(relay.upstream, mark) is not None,
                              "the StartRecording's first action reached the AMI link")
            bridge.signal(signal.SIGTERM)
            for _ in range(150):
                if await _refused(port):
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("new connections still accepted while draining")
            assert not put.done(), "the request waits for Asterisk"
            relay.frozen = False

            async with await put as r:
                body = await r.json()
                assert r.status == 200, body
                request_id = r.headers["X-Request-Id"]
            assert body["phoneCallView"][0]["recording"], body
            await observer.wait_for("MixMonitorStart", Channel=call.channel)
            assert bridge.proc is not None
            async with asyncio.timeout(30):
                assert await bridge.proc.wait() == 0, bridge.text()[-2000:]

        actions = _actions(bytes(relay.upstream[mark:]))
        caused = [a["action"] for a in actions if a["actionid"].endswith(f"-{request_id}")]
        assert "MixMonitor" in caused, actions
        assert all(re.fullmatch(r"pbxb-[0-9a-f]{8}-\d+(-[0-9a-f]{16})?", a["actionid"])
                   for a in actions), actions
        assert actions[-1]["action"] == "Logoff", "the link was closed cleanly, last"
        records = [json.loads(line) for line in bridge.text().splitlines() if line]
        (access,) = [r for r in records if r["logger"] == "pbx_bridge.access"
                     and '"PUT ' in r["message"]]
        assert access["request_id"] == request_id and " 200 " in access["message"]
        assert token not in bridge.text() and pbx.secrets.ami not in bridge.text()
        with contextlib.suppress(Exception):
            await calls.ami.send_action("StopMixMonitor", {"Channel": call.channel})
    finally:
        await bridge.stop()
        await calls.close()


async def test_sighup_reloads_level_and_directory_keeping_the_link(
    pbx, relay, tmp_path
) -> None:
    token = _token(tmp_path)
    port = free_port()
    config = tmp_path / "bridge.toml"
    config.write_text('[logging]\nlevel = "WARNING"\n')
    env = serve_environ(
        pbx, tmp_path, port,
        PBX_BRIDGE_AMI__PORT=str(relay.port),
        # Only SIGHUP may bring the directory change to the service in this test.
        PBX_BRIDGE_DATABASE__DIRECTORY_POLL="3600",
    )
    bridge = Serve(env, tmp_path / "serve.log", port, "--config", str(config))
    astdb = "rec/0003*212"  # 0003*212 records nothing in the demo directory
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
            await bridge.start(http)
            assert astdb not in pbx.cli("database show pbx_bridge")
            async with http.get(f"{bridge.base}/uapi/phoneCalls/@me/{A}") as r:
                assert r.status == 204
            assert "pbx_bridge.access" not in bridge.text(), "INFO is not logged yet"
            connected = _bridge_sessions(pbx)
            # The event session and the default [ami] action_sessions (pbx/pool.py).
            assert len(connected) == _SESSIONS, pbx.cli("manager show connected")

            changed = tmp_path / "directory.toml"
            changed.write_text(DEMO_DIRECTORY.read_text().replace(
                'recording = { enabled = false, trigger = "star1", format = "wav" }',
                'recording = { enabled = true, trigger = "star1", format = "wav" }', 1))
            directory = Directory.open(tmp_path / "directory.sqlite3")
            directory.load_toml(changed)
            directory.close()
            config.write_text('[logging]\nlevel = "INFO"\n')
            bridge.signal(signal.SIGHUP)

            await _eventually(lambda: astdb in pbx.cli("database show pbx_bridge"),
                              "the AstDB policy follows the reloaded directory")
            async with http.get(f"{bridge.base}/uapi/phoneCalls/@me/{A}") as r:
                assert r.status == 204
            await _eventually(lambda: "pbx_bridge.access" in bridge.text(), "INFO logged now")
            async with http.get(f"{bridge.base}/readyz") as r:
                assert r.status == 200
        assert relay.connections == _SESSIONS, "no AMI session was ever dropped"
        assert _bridge_sessions(pbx) == connected
        assert bridge.proc is not None and bridge.proc.returncode is None
        assert token not in bridge.text() and pbx.secrets.ami not in bridge.text()
    finally:
        await bridge.stop()


_SESSIONS = 1 + AmiSettings.model_fields["action_sessions"].default


def _bridge_sessions(pbx) -> list[list[str]]:
    """`manager show connected` rows of the bridge's AMI user: user, address, when it
    logged in and its file descriptor (the same rows = the same connection). The columns
    are Username, IP Address, Start, Elapsed, FileDes, ...: Elapsed is left out, it ticks."""
    rows = [line.split() for line in pbx.cli("manager show connected").splitlines()]
    return sorted(row[:3] + row[4:5] for row in rows if row and row[0] == "pbx-bridge")
