"""The Python floor of a StartRecording: the thinnest aiohttp server sending the bridge's
actions. One route per direction, no authentication, no directory, no tracker, no events
(its AMI session logs in with ``Events: off``), a JSON answer of a few bytes:

    PUT /start {"channel": ..., "file": ..., "stamp": ...}
        -> Setvar PBX_REC + MixMonitor with the bridge's options, pipelined, as the bridge
           sends them (recording/service.py), answered once both are answered
    PUT /stop  {"channel": ...}  -> StopMixMonitor + Setvar PBX_REC "", pipelined

bench/run.py runs it as a process of its own, started (and pinned) like the bridge, as
the method "aiohttp": the bridge minus this is what pbx_bridge itself adds (auth, the
view look-up, locks, rendering, its event handling); this minus "raw AMI, the bridge's
actions" is what an aiohttp server in CPython costs. If this floor alone is slower than
ARI, the aim "bridge <= ARI" is out of reach for any aiohttp server on that machine.

    python -m bench.aiohttp_floor PORT AMI_PORT AMI_USER   (the secret: $AMI_SECRET)
"""

from __future__ import annotations

import asyncio
import os
import sys

from aiohttp import web

from bench.rawami import RawAmi
from pbx_bridge.recording.variables import MIXMONITOR_OPTIONS, REC_VAR, rec_value

AMI = web.AppKey("ami", RawAmi)


def _success(*answers: dict[str, str]) -> bool:
    return all(a.get("Response") == "Success" for a in answers)


async def start(request: web.Request) -> web.Response:
    body = await request.json()
    ami, ch = request.app[AMI], body["channel"]
    setvar, mixmon = await asyncio.gather(
        ami.action("Setvar", {"Channel": ch, "Variable": REC_VAR,
                              "Value": rec_value(body["stamp"], body["file"])}),
        ami.action("MixMonitor", {"Channel": ch, "File": body["file"],
                                  "Options": MIXMONITOR_OPTIONS}),
    )
    # The bridge's own test of a start: Success and a MixMonitorID.
    ok = _success(setvar, mixmon) and bool(mixmon.get("MixMonitorID"))
    return web.json_response({"ok": ok}, status=200 if ok else 502)


async def stop(request: web.Request) -> web.Response:
    body = await request.json()
    ami, ch = request.app[AMI], body["channel"]
    answers = await asyncio.gather(
        ami.action("StopMixMonitor", {"Channel": ch}),
        ami.action("Setvar", {"Channel": ch, "Variable": REC_VAR, "Value": ""}),
    )
    ok = _success(*answers)
    return web.json_response({"ok": ok}, status=200 if ok else 502)


async def main(port: int, ami_port: int, user: str, secret: str) -> None:
    app = web.Application()
    app[AMI] = await RawAmi.connect("127.0.0.1", ami_port, user, secret)  # events off
    app.router.add_put("/start", start)
    app.router.add_put("/stop", stop)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await asyncio.Event().wait()  # until the bench ends the process
    finally:
        await app[AMI].close()
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3],
                     os.environ["AMI_SECRET"]))
