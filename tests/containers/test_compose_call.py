"""docker/ for real: both images built (cached by their inputs), docker/compose.yaml
brought up with podman-compose, a real baresip call to the containerized Asterisk,
recorded through the containerized bridge's API with a token from its own CLI, and the
file on the recordings volume opened and checked (and served back by the bridge, which
proves it reads the volume the Asterisk container writes)."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from devtools.containers import ComposeProject, ensure_image
from devtools.phones import Phone
from devtools.sandbox import REPO_DIR, Sandbox, shift_ports
from tests.e2e.test_api_recording import MILLIWATT_HZ
from tests.support.audio import WAVE_FORMAT_PCM, assert_length, recording_content

A = "0003*210"  # John Doe (user 12), recording enabled, trigger star1
OWN_HZ = 600
# The tier's ports: the sandbox's offset (PBX_BRIDGE_SANDBOX_PORT_OFFSET, 0 in CI) plus
# this, so the containerized Asterisk never meets the sandbox tests' one.
PORT_SHIFT = 50
RECORDINGS_GID = 10001  # the group pbx-bridge of both images


@dataclass
class Stack:
    project: ComposeProject
    sandbox: Sandbox  # the baresip root and the tier's ports, no Asterisk of its own
    sip_password: str
    base: str  # the bridge's URL

    def recordings(self) -> Path:
        return self.project.volume_path("recordings")


def _conf(tmp_path: Path, offset: int) -> Path:
    """asterisk-conf/ unchanged but for the ports (what the sandbox does with an offset)."""
    conf = tmp_path / "asterisk-conf"
    shutil.copytree(REPO_DIR / "asterisk-conf", conf)
    if offset:
        shift_ports(conf, offset)
    conf.chmod(0o755)
    return conf


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    offset = int(os.environ.get("PBX_BRIDGE_SANDBOX_PORT_OFFSET", "0")) + PORT_SHIFT
    name = re.sub(r"[^a-z0-9]", "", os.environ.get("PBX_BRIDGE_SANDBOX_NAME", "dev").lower())
    log = tmp_path / "containers.log"
    t0 = time.monotonic()
    images = {"PBX_BRIDGE_ASTERISK_IMAGE": ensure_image("asterisk", log=log),
              "PBX_BRIDGE_IMAGE": ensure_image("bridge", log=log)}
    print(f"images ready in {time.monotonic() - t0:.1f} s: {images}; logs in {log}")
    keys = {k: secrets.token_hex(16) for k in (
        "PBX_BRIDGE_AMI__SECRET", "PBX_BRIDGE_ARI__PASSWORD", "PBX_BRIDGE_DEMO_SIP_PASSWORD")}
    http_port = 8080 + offset
    project = ComposeProject(
        f"pbxbridge{name}{os.getpid()}",
        {**images, **keys,
         "PBX_BRIDGE_ASTERISK_CONF": str(_conf(tmp_path, offset)),
         "PBX_BRIDGE_AMI__PORT": str(5038 + offset),
         "PBX_BRIDGE_HTTP__PORT": str(http_port)},
        log=log,
    )
    try:
        project.compose("up", "-d", "--no-build")
        yield Stack(project, Sandbox(name=f"containers-{name}", port_offset=offset),
                    keys["PBX_BRIDGE_DEMO_SIP_PASSWORD"], f"http://127.0.0.1:{http_port}")
    finally:
        with open(log, "a") as out:
            for service in ("asterisk", "directory", "bridge"):
                out.write(f"--- {service}\n{project.logs(service)}\n")
        project.down()


async def _ready(base: str, timeout: float = 60.0) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(int(timeout / 0.5)):
            try:
                async with http.get(f"{base}/readyz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
    raise AssertionError(f"the bridge at {base} was not ready within {timeout} s")


def _token(project: ComposeProject) -> str:
    """An app and a token for user 12, made with the bridge container's own CLI."""
    created = project.exec("bridge", "pbx-bridge", "app", "create", "--user", "12",
                           "--name", "containers-tier")
    client_id = re.search(r"^client_id: (\S+)$", created, re.M)
    assert client_id, created
    return project.exec("bridge", "pbx-bridge", "token", "issue",
                        f"--app={client_id[1]}").strip()


async def test_a_call_is_recorded_through_the_images_and_compose(stack: Stack) -> None:
    project = stack.project
    assert project.wait("directory") == 0, project.logs("directory")
    await _ready(stack.base)
    # The image's HEALTHCHECK (GET /readyz) passes in the running container.
    assert project.healthcheck("bridge") == "healthy"
    assert project.exec("bridge", "id", "-u").strip() != "0"
    # Only the installed package: no build tools, no sources, no development tooling.
    leftovers = project.exec("bridge", "python3", "-c", (
        "import importlib.util as u, os; print([m for m in ('pip', 'setuptools', 'build',"
        " 'devtools', 'pytest') if u.find_spec(m)] + [d for d in ('/src', '/wheels',"
        " '/opt/build') if os.path.exists(d)])"))
    assert leftovers.strip() == "[]", leftovers
    headers = {"authorization": f"Bearer {_token(project)}"}

    async with Phone(stack.sandbox, A, password=stack.sip_password, tone_hz=OWN_HZ) as phone, \
            aiohttp.ClientSession(headers=headers) as http:
        await phone.dial("7778899")  # the PBX answers with a 1004 Hz tone
        await phone.wait_event("CALL_ESTABLISHED")
        calls_url = f"{stack.base}/uapi/phoneCalls/@me/{A}"
        call = await _one_call(http, calls_url)
        t0 = time.monotonic()
        status, body = await _put(http, f"{calls_url}/{call['id']}", "StartRecording")
        assert status == 200 and body["phoneCallView"][0]["recording"], body
        await asyncio.sleep(2.5)
        status, body = await _put(http, f"{calls_url}/{call['id']}", "StopRecording")
        recorded = time.monotonic() - t0
        assert status == 200 and "recording" not in body["phoneCallView"][0], body
        await phone.hangup()
        row = await _completed(http, f"{stack.base}/uapi/recordings/@me/{A}", call["id"])
        async with http.get(f"{stack.base}/uapi/recordings/@me/{A}/{row['id']}/media") as r:
            assert r.status == 200
            served = await r.read()

    (path,) = (stack.recordings() / "3" / A).glob(f"*/{call['id']}-01-*.wav")
    info = await recording_content(path, own_hz=OWN_HZ, other_hz=MILLIWATT_HZ)
    assert info.format_tag == WAVE_FORMAT_PCM
    assert (info.channels, info.sample_rate, info.bits_per_sample) == (1, 8000, 16)
    assert_length(info, slept=2.5, recorded=recorded)
    # Written by the Asterisk container for the bridge's group only; read by the bridge.
    st = path.stat()
    assert (st.st_gid, st.st_mode & 0o777) == (RECORDINGS_GID, 0o640)
    assert served == path.read_bytes()


async def _one_call(http: aiohttp.ClientSession, url: str, timeout: float = 15.0) -> dict:
    for _ in range(int(timeout / 0.2)):
        async with http.get(url) as r:
            assert r.status in (200, 204), await r.text()
            if r.status == 200:
                (call,) = (await r.json())["entry"]
                return call
        await asyncio.sleep(0.2)
    raise AssertionError(f"no call on {url} within {timeout} s")


async def _put(http: aiohttp.ClientSession, url: str, action: str) -> tuple[int, dict]:
    body = {"action": action, "phoneCallViewId": "01"}
    if action == "StartRecording":
        body["format"] = "wav"
    async with http.put(url, json=body) as r:
        return r.status, await r.json()


async def _completed(http: aiohttp.ClientSession, url: str, call_id: str,
                     timeout: float = 20.0) -> dict:
    for _ in range(int(timeout / 0.2)):
        async with http.get(f"{url}?phoneCallId={call_id}&state=completed") as r:
            assert r.status in (200, 204), await r.text()
            if r.status == 200:
                (row,) = (await r.json())["entry"]
                return row
        await asyncio.sleep(0.2)
    raise AssertionError(f"the recording of {call_id} did not complete within {timeout} s")
