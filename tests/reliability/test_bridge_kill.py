"""`pbx-bridge serve` (a real subprocess, configured through the environment only) killed
with SIGKILL while recordings run on the real PBX. Asterisk owns the recordings, so they
keep going; after a restart the API shows them as recording (same start time), a
StartRecording retried then starts nothing new, StopRecording works, and the files
Asterisk wrote are complete: their length covers the time the bridge was dead."""

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
from tests.reliability.support import (
    JOHN,
    START,
    STOP,
    Calls,
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
    )
    yield env, token, port


async def _file_of(pbx, observer, channel: str) -> Path:
    ev = await observer.wait_for("MixMonitorStart", Channel=channel)
    return pbx.monitor_dir / recording_file(ev)


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
            a, b = await calls.start_many([A, B])

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
            await asyncio.sleep(1.0)

            await bridge.kill()
            t_kill = time.monotonic()
            # Asterisk keeps recording with no bridge at all; one call even ends meanwhile.
            size = file_a.stat().st_size
            await asyncio.sleep(1.5)
            assert file_a.stat().st_size > size + 8000, "the recording went on"
            await calls.hangup(b)
            t_hangup_b = time.monotonic()
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
