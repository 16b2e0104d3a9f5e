"""Click-to-call latency (issue 14): `POST /uapi/phoneCalls/@me/simple` -> the first ring
(AMI `Newstate` Ringing on the extension's channel), against a raw AMI `Originate`
(Async, the same channel, context and destination) from the minimal client
(bench/rawami.py), same run, same sandbox Asterisk, same registered baresip phone that
never answers. Both are timed from just before the request is written to the Timestamp
of Asterisk's own Ringing event (same host clock); each call is hung up before the next.

    PBX_BRIDGE_SANDBOX_NAME=bench PBX_BRIDGE_SANDBOX_PORT_OFFSET=1300 \\
        .venv/bin/python -m bench.clicktocall --rounds 30
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

from bench.rawami import RawAmi, parse
from bench.run import stats
from devtools.phones import Phone
from devtools.sandbox import HARNESS_AMI_USER, Sandbox
from pbx_bridge.api.app import create_app
from pbx_bridge.server import Services
from tests.support.bridge import bridge_settings, demo_directory, wait_ready

EXT = "0003*210"
DEST = "0003*211"


def _ringing(raw: RawAmi, seen: int) -> tuple[float, str] | None:
    assert raw.capture is not None
    for block in raw.capture[seen:]:
        ev = parse(block)
        if (ev.get("Event") == "Newstate" and ev.get("ChannelStateDesc") == "Ringing"
                and ev.get("Channel", "").startswith(f"PJSIP/{EXT}-")):
            return float(ev["Timestamp"]), ev["Channel"]
    return None


async def _ring(raw: RawAmi, start: float, seen: int) -> float:
    deadline = time.monotonic() + 10
    while (hit := _ringing(raw, seen)) is None:
        if time.monotonic() > deadline:
            raise RuntimeError("no Ringing within 10 s")
        await asyncio.sleep(0.002)
    await raw.action("Hangup", {"Channel": hit[1]})
    await asyncio.sleep(0.3)  # the phone settles before the next call
    return hit[0] - start


async def run(rounds: int) -> dict[str, dict[str, float]]:
    sb = Sandbox(name=os.environ.get("PBX_BRIDGE_SANDBOX_NAME", "bench"))
    sb.start(timeout=90)
    tmp = Path(tempfile.mkdtemp(prefix="ctc-bench-"))
    directory = demo_directory(tmp)
    settings = bridge_settings(sb, tmp)
    bridge = Services(settings, directory)
    server = TestServer(create_app(settings, directory, bridge), host="127.0.0.1")
    await server.start_server()
    phone = await Phone(sb, EXT).start()
    raw = await RawAmi.connect("127.0.0.1", sb.ami_port, HARNESS_AMI_USER, sb.secrets.harness,
                               events="call", filters=("Event: Newstate",))
    raw.capture = []
    out: dict[str, list[float]] = {"api": [], "raw": []}
    try:
        await wait_ready(bridge)
        client_id, _ = directory.create_app(12, "bench")
        token = directory.issue_token(client_id)[0]
        url = str(server.make_url("/uapi/phoneCalls/@me/simple"))
        body = {"extension": EXT, "nonce": "bench",
                "phoneCallView": [{"destination": [DEST]}]}
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
            for i in range(rounds):
                seen, start = len(raw.capture), time.time()
                async with http.post(url, json=body) as r:
                    assert r.status == 201, await r.text()
                out["api"].append(await _ring(raw, start, seen))
                seen, start = len(raw.capture), time.time()
                await raw.action("Originate", {
                    "Channel": f"PJSIP/{EXT}", "Context": "pbx-bridge-dial", "Exten": DEST,
                    "Priority": "1", "Timeout": "25000", "Async": "true",
                    "ChannelId": f"rawbench-{int(start)}.{i}"})
                out["raw"].append(await _ring(raw, start, seen))
    finally:
        await raw.close()
        await phone.stop()
        await server.close()
        sb.stop()
    return {k: stats(v) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    for name, figures in asyncio.run(run(args.rounds)).items():
        print(name, {k: round(v, 1) for k, v in figures.items()})


if __name__ == "__main__":
    main()
