"""`pbx-bridge serve` (a real subprocess, configured through the environment only) killed
with SIGKILL while recordings run on the real PBX. Asterisk owns the recordings, so they
keep going; after a restart the API shows them as recording (same start time), a
StartRecording retried then starts nothing new, StopRecording works, and the files
Asterisk wrote are complete: their length covers the time the bridge was dead. The
recordings catalog lists every run once, with the state and length of its file: the one
still running, the one whose call ended while the bridge was dead, and one that started
and ended while it was dead (found in the monitor folder)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from pbx_bridge.calls.tracker import call_id
from pbx_bridge.recording.naming import recording_path
from tests.reliability.support import (
    JOHN,
    START,
    STOP,
    Calls,
    LiveCall,
    MixMonitorWatch,
    free_port,
    report,
    until,
)
from tests.support.audio import WAVE_FORMAT_PCM, assert_length, inspect_wav
from tests.support.bridge import demo_directory, serve_environ
from tests.support.pbx import recording_file

A, B = "0003*210", "0003*211"
PBX_BRIDGE = Path(sys.executable).with_name("pbx-bridge")


class ServeProcess:
    """`pbx-bridge serve` as its users run it."""

    def __init__(self, env: dict[str, str], log: Path, port: int) -> None:
        self.env = env
        self.log = log
        self.base = f"http://127.0.0.1:{port}"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, http: aiohttp.ClientSession, timeout: float = 20.0) -> float:
        with open(self.log, "ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                str(PBX_BRIDGE), "serve", env=self.env, stdin=asyncio.subprocess.DEVNULL,
                stdout=out, stderr=out, start_new_session=True,
            )
        t0 = time.monotonic()
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{self.base}/readyz") as r:
                    if r.status == 200:
                        return time.monotonic() - t0
            if self.proc.returncode is not None or time.monotonic() - t0 > timeout:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise AssertionError(f"pbx-bridge serve did not become ready:\n{tail}")
            await asyncio.sleep(0.05)

    async def kill(self) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                async with asyncio.timeout(15):
                    await self.proc.wait()
            except TimeoutError:
                await self.kill()


@pytest.fixture
async def serve_env(pbx, tmp_path) -> AsyncIterator[tuple[dict[str, str], str, int]]:
    directory = demo_directory(tmp_path)
    client_id, _ = directory.create_app(JOHN, "kill-test")
    token = directory.issue_token(client_id)[0]
    directory.close()
    port = free_port()
    env = serve_environ(
        pbx, tmp_path, port,
        PBX_BRIDGE_AMI__PING_INTERVAL="2", PBX_BRIDGE_AMI__BACKOFF_CAP="1",
        PBX_BRIDGE_LOGGING__LEVEL="DEBUG",
        # A resync (and so a reconcile with the monitor folder) every second: repeated
        # passes while a recording runs must never list anything twice.
        PBX_BRIDGE_AMI__RESYNC_INTERVAL="1",
    )
    yield env, token, port


async def _file_of(pbx, observer, channel: str) -> Path:
    ev = await observer.wait_for("MixMonitorStart", Channel=channel)
    return pbx.monitor_dir / recording_file(ev)


async def _listed(http: aiohttp.ClientSession, base: str, ext: str, count: int,
                  state: str | None = None, timeout: float = 20.0) -> list[dict]:
    """The extension's catalogued recordings, once there are `count` (all in `state`)."""
    rows: list[dict] = []
    for _ in range(int(timeout / 0.1)):
        async with http.get(f"{base}/uapi/recordings/@me/{ext}") as r:
            assert r.status in (200, 204), await r.text()
            rows = (await r.json())["entry"] if r.status == 200 else []
        if len(rows) == count and all(state in (None, row["state"]) for row in rows):
            return rows
        await asyncio.sleep(0.1)
    raise AssertionError(f"{ext}: not {count} recordings ({state}) within {timeout} s: {rows}")


async def _record_while_dead(pbx, calls: Calls, observer, c: LiveCall) -> tuple[str, Path]:
    """A recording that starts and ends while no bridge runs, then its call ends: another
    AMI client's MixMonitor, named as the dialplan names them. Returns (call id, file)."""
    cid = call_id(c.uniqueid)
    name = recording_path(organization_id=3, extension=c.ext, call_id=cid, view_id="01",
                          fmt="wav", started=time.time())
    resp = await observer.client.send_action("MixMonitor", {"Channel": c.channel, "File": name})
    assert resp.get("Response") == "Success", resp
    await observer.wait_for("MixMonitorStart", Channel=c.channel)
    await asyncio.sleep(1.5)
    await observer.client.send_action("StopMixMonitor", {"Channel": c.channel})
    await observer.wait_for("MixMonitorStop", Channel=c.channel)
    await calls.hangup(c)
    return cid, pbx.monitor_dir / name


def _as_long_as(row: dict, path: Path) -> None:
    assert row["state"] == "completed", row
    assert abs(row["duration"] - inspect_wav(path).duration) < 0.01, (row, path)
    assert row["size"] == path.stat().st_size, row


async def test_sigkill_while_recording(pbx, observer, serve_env, tmp_path) -> None:
    env, token, port = serve_env
    auth = {"Authorization": f"Bearer {token}"}
    calls = Calls(pbx, observer.client, observer)
    watch = MixMonitorWatch(observer)
    bridge = ServeProcess(env, tmp_path / "serve.log", port)
    try:
        async with aiohttp.ClientSession(headers=auth) as http:
            boot = await bridge.start(http)
            await calls.add_phones(1)
            a, b, c = await calls.start_many([A, B, B])

            async def put(ext: str, cid: str, body: dict) -> tuple[int, dict]:
                url = f"{bridge.base}/uapi/phoneCalls/@me/{ext}/{cid}"
                async with http.put(url, json=body) as r:
                    return r.status, await r.json()

            async def view(ext: str) -> dict:
                async with http.get(f"{bridge.base}/uapi/phoneCalls/@me/{ext}") as r:
                    assert r.status == 200, await r.text()
                    (entry,) = (await r.json())["entry"]
                    return entry["phoneCallView"][0]

            ida, idb = call_id(a.uniqueid), call_id(b.uniqueid)
            for ext, cid in ((A, ida), (B, idb)):
                for _ in range(50):  # the call may not be tracked yet
                    status, body = await put(ext, cid, START)
                    if status == 200:
                        break
                    await asyncio.sleep(0.1)
                assert status == 200, body
            t_rec = time.monotonic()
            stamp_a = (await view(A))["recording"]
            file_a = await _file_of(pbx, observer, a.channel)
            file_b = await _file_of(pbx, observer, b.channel)
            (row_a,) = await _listed(http, bridge.base, A, 1, "recording")
            (row_b,) = await _listed(http, bridge.base, B, 1, "recording")
            await asyncio.sleep(1.0)

            await bridge.kill()
            t_kill = time.monotonic()
            # Asterisk keeps recording with no bridge at all; one call even ends meanwhile.
            size = file_a.stat().st_size
            await asyncio.sleep(1.5)
            assert file_a.stat().st_size > size + 8000, "the recording went on"
            await calls.hangup(b)
            t_hangup_b = time.monotonic()
            cid_c, file_c = await _record_while_dead(pbx, calls, observer, c)
            await asyncio.sleep(1.0)

            restart = await bridge.start(http)
            t_back = time.monotonic()
            assert (await view(A))["recording"] == stamp_a, "same recording, same start"
            async with http.get(f"{bridge.base}/uapi/phoneCalls/@me/{B}") as r:
                assert r.status == 204, "the call that ended while the bridge was dead is gone"
            status, body = await put(A, ida, START)  # a client's retry: nothing new starts
            assert status == 200 and body["phoneCallView"][0]["recording"] == stamp_a, body
            await asyncio.sleep(1.0)
            status, body = await put(A, ida, STOP)
            t_stop = time.monotonic()
            assert status == 200 and "recording" not in body["phoneCallView"][0], body
            await observer.wait_for("MixMonitorStop", Channel=a.channel)
            assert len(watch.starts(a.channel)) == 1 and len(watch.starts(b.channel)) == 1

            for path, seconds in ((file_a, t_stop - t_rec), (file_b, t_hangup_b - t_rec)):
                await until(lambda p=path: inspect_wav(p).duration > 0, 10, f"{path} closed")
                info = inspect_wav(path)
                assert info.format_tag == WAVE_FORMAT_PCM
                # The file covers the recording (its stopwatch), with real slack both
                # ways: not a timing figure.
                assert_length(info, slept=seconds, recorded=seconds)
                assert info.rms > 100, "sound, not silence"
            await _check_catalog(http, bridge.base, (row_a, file_a), (row_b, file_b),
                                 (cid_c, file_c))
            log = (tmp_path / "serve.log").read_text(errors="replace")
            assert token not in log and pbx.secrets.ami not in log
            report(
                "bridge_sigkill",
                serve_ready_s=round(boot, 2),
                restart_ready_s=round(restart, 2),
                bridge_dead_s=round(t_back - t_kill, 2),
                recording_a_s=round(inspect_wav(file_a).duration, 2),
                recording_b_s=round(inspect_wav(file_b).duration, 2),
            )
    finally:
        await bridge.stop()
        await calls.close()


async def _check_catalog(http: aiohttp.ClientSession, base: str, a: tuple[dict, Path],
                         b: tuple[dict, Path], c: tuple[str, Path]) -> None:
    """After the restart: A's run (stopped after it), B's (its call ended while the bridge
    was dead) and C's (started and ended while it was dead) each listed once, completed,
    as long as their files; and still so after more resyncs (one a second)."""
    (row_a,) = await _listed(http, base, A, 1, "completed")
    rows_b = await _listed(http, base, B, 2, "completed")
    assert row_a["id"] == a[0]["id"] and row_a["startedBy"] == "api"
    _as_long_as(row_a, a[1])
    by_call = {row["phoneCallId"]: row for row in rows_b}
    assert set(by_call) == {b[0]["phoneCallId"], c[0]}, rows_b
    assert by_call[b[0]["phoneCallId"]]["id"] == b[0]["id"]
    _as_long_as(by_call[b[0]["phoneCallId"]], b[1])
    # C: found in the folder; B's policy (on demand) says the dialplan's *1 started it
    row_c = by_call[c[0]]
    assert (row_c["startedBy"], row_c["phoneCallViewId"]) == ("star1", "01"), row_c
    _as_long_as(row_c, c[1])
    await asyncio.sleep(2.5)  # more resyncs, more reconciles: nothing new
    assert await _listed(http, base, A, 1) == [row_a]
    assert sorted(r["id"] for r in await _listed(http, base, B, 2)) == sorted(
        r["id"] for r in rows_b)
