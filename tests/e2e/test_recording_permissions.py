"""A real recording is not world-readable, and the call's media listen on loopback only
(issue 9, item 8 and the RTP minor): both as the sandbox Asterisk runs asterisk-conf/."""

from __future__ import annotations

import asyncio
import stat
import subprocess
import uuid

from pbx_bridge.pbx.ami import is_success
from tests.support.audio import wait_file_complete


def _asterisk_udp_sockets(pid: int) -> list[str]:
    """Local addresses of the UDP sockets Asterisk (pid) has open, from `ss -uanp`."""
    out = subprocess.run(["ss", "-uanpH"], capture_output=True, text=True, check=True,
                         timeout=10).stdout
    return [line.split()[3] for line in out.splitlines() if f"pid={pid}," in line]


async def test_recording_and_media_stay_private(pbx, phones, ami_log) -> None:
    a = await phones("0003*210", tone_hz=440)
    await a.dial("7778888")
    await a.wait_event("CALL_ESTABLISHED")
    up = await ami_log.wait_for(
        "Newstate", ChannelStateDesc="Up",
        where=lambda e: e.get("Channel", "").startswith("PJSIP/0003*210"),
    )
    channel = up["Channel"]

    # RTP while the call runs: every Asterisk UDP socket in the media range is on loopback.
    rtp = range(16000 + pbx.port_offset, 17000 + pbx.port_offset)
    local = await asyncio.to_thread(_asterisk_udp_sockets, pbx.pid())
    media = [addr for addr in local if int(addr.rsplit(":", 1)[1]) in rtp]
    assert media, f"no RTP socket of Asterisk found during the call: {local}"
    assert all(addr.rsplit(":", 1)[0] == "127.0.0.1" for addr in media), media

    # A recording in folders MixMonitor creates itself, as the API's paths are.
    tag = uuid.uuid4().hex[:8]
    rel = f"perm-{tag}/0003*210/day/{tag}.wav"
    resp = await ami_log.client.send_action("MixMonitor", {"Channel": channel, "File": rel})
    assert is_success(resp), resp
    await ami_log.wait_for("MixMonitorStart", Channel=channel)
    await asyncio.sleep(1.0)
    await a.hangup()
    path = pbx.monitor_dir / rel
    await wait_file_complete(path)

    checked = [path, *path.relative_to(pbx.monitor_dir).parents]
    for item in checked:
        full = pbx.monitor_dir / item if not item.is_absolute() else item
        mode = stat.S_IMODE(full.stat().st_mode)
        assert mode & 0o007 == 0, f"{full} is {oct(mode)}: readable by everybody"
    assert stat.S_IMODE(path.stat().st_mode) & 0o040, "group-readable, for the bridge's group"
