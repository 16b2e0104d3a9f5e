"""Where recordings land, end to end (issue 9, item 17): the configured
`recordings.directory` for the API and for `*1`, the default format (`wav`), and a view
started, stopped and started again within one second: two files, neither overwritten."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from aiohttp.test_utils import TestServer

from pbx_bridge.api.app import create_app
from pbx_bridge.server import Services
from tests.e2e.test_api_recording import A, Api, _one_call
from tests.support.audio import recording_content
from tests.support.bridge import bridge_settings, demo_directory, eventually, wait_ready

START = {"action": "StartRecording", "phoneCallViewId": "01"}  # no format: the default
STOP = {"action": "StopRecording", "phoneCallViewId": "01"}


async def test_configured_directory_default_format_and_a_restart_within_a_second(
    pbx, phones, tmp_path, ami_log,
) -> None:
    import aiohttp

    inner = f"{pbx.inner_dir}/custom-recordings-{uuid.uuid4().hex[:6]}"
    base = pbx.host_path(inner)
    settings = bridge_settings(pbx, tmp_path)
    settings = settings.model_copy(
        update={"recordings": settings.recordings.model_copy(update={"directory": inner})})
    directory = demo_directory(tmp_path)
    bridge = Services(settings, directory)
    server = TestServer(create_app(settings, directory, bridge), host="127.0.0.1")
    await server.start_server()
    try:
        await wait_ready(bridge)
        async with aiohttp.ClientSession() as http:
            api = Api(http, str(server.make_url("")).rstrip("/"), bridge, directory, "")
            api.token = api.token_for(12)
            phone = await phones(A, tone_hz=440)
            await phone.dial("7778888")
            await phone.wait_event("CALL_ESTABLISHED")
            call = await _one_call(api)

            # Start, stop, start: the answers come back well within one second.
            stamps = []
            for body in (START, STOP, START):
                status, answer = await api.put(call["id"], body)
                assert status == 200, answer
                stamps.append(answer["phoneCallView"][0].get("recording"))
            assert stamps[0] and stamps[1] is None and stamps[2] and stamps[2] > stamps[0]
            await asyncio.sleep(2.0)
            status, _ = await api.put(call["id"], STOP)
            assert status == 200

            # *1 from the phone: into the same configured directory.
            await phone.send_dtmf("*1")
            await eventually(lambda: len(ami_log.matching("MixMonitorStart")) == 3,
                             what="the *1 recording")
            await asyncio.sleep(2.0)
            await phone.hangup()
            await eventually(lambda: not bridge.tracker.calls, what="call gone")
    finally:
        await server.close()

    files = sorted(base.glob(f"3/{A}/*/{call['id']}-01-*"))
    assert len(files) == 3, files  # two API recordings (not one overwritten) and *1's
    assert not list(pbx.monitor_dir.glob(f"3/{A}/*/{call['id']}-*")), "not in the default"
    today = {datetime.now(UTC).strftime("%Y-%m-%d"), files[0].parent.name}
    for path in files:
        assert path.suffix == ".wav", path  # the default format
        assert path.parent.name in today
        assert len(path.stem.rsplit("-", 1)[1]) == 6
    assert len({p.name for p in files}) == 3
    for path in files[1:]:  # the first one ran for well under a second
        info = await recording_content(path, own_hz=440)
        assert info.duration >= 1.0, (path, info.duration)
