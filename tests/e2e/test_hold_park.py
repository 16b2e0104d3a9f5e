"""OnHold/OffHold and Park/UnPark with real baresip phones on the sandbox Asterisk (issue
14): the effect on the PBX itself (who is bridged with whom, from Asterisk's own channel
list; the music the held phone hears; a parked call answered by dialling its space, or
coming back to the parker on timeout) and the PhoneCall the API answers. Recordings go
on through all of it (item 5).

A hold from the handset is baresip's own `hold` (a re-INVITE with sendonly; its `resume`
hangs baresip 1.1, so the held call is ended by the other phone)."""

from __future__ import annotations

import asyncio
import time

from tests.e2e.recordings_support import recordings, stretch
from tests.e2e.test_api_recording import _one_call
from tests.e2e.test_api_recording import api as api
from tests.support.audio import assert_tone, inspect_wav, tone_report, window_rms
from tests.support.bridge import eventually
from tests.support.pbx import live_channels

A, B, C = "0003*210", "0003*211", "0003*212"
A_HZ, B_HZ = 600, 800


async def _a_talks_to_b(api, phones) -> tuple[object, object, dict, float]:
    a = await phones(A, tone_hz=A_HZ)
    b = await phones(B, tone_hz=B_HZ)
    await a.dial(B)
    await b.wait_event("CALL_INCOMING")
    await b.accept()
    await a.wait_event("CALL_ESTABLISHED")
    established = time.monotonic()
    return a, b, await _one_call(api, A), established


def _chan(pbx, ext: str) -> dict:
    chans = [c for c in live_channels(pbx).values() if c["channel"].startswith(f"PJSIP/{ext}-")]
    assert len(chans) == 1, live_channels(pbx)
    return chans[0]


def _bridged(pbx, x: str, y: str) -> bool:
    cx, cy = _chan(pbx, x), _chan(pbx, y)
    return bool(cx["bridge"]) and cx["bridge"] == cy["bridge"]


def _view(call: dict, ext: str) -> dict:
    return next(v for v in call["phoneCallView"] if v["extension"] == ext)


async def _record(api, call: dict, ext: str) -> None:
    view = _view(call, ext)["id"]
    status, body = await api.put(call["id"], {"action": "StartRecording", "format": "wav",
                                              "phoneCallViewId": view}, ext)
    assert status == 200, body
    await eventually(lambda: any(c.rec_id for c in api.bridge.tracker.channels.values()
                                 if c.extension == ext), what=f"{ext}'s recording catalogued")


async def test_onhold_plays_music_to_the_other_party_and_offhold_bridges_back(
        api, phones, pbx) -> None:
    a, b, call, t0 = await _a_talks_to_b(api, phones)
    await _record(api, call, A)
    assert _bridged(pbx, A, B)

    status, held = await api.put(call["id"], {"action": "OnHold", "phoneCallViewId": "01"})
    assert status == 200, held
    t_hold = time.monotonic() - t0
    for view in held["phoneCallView"]:
        assert (view.get("onHold"), view.get("holder")) == (True, A), held
    assert "recording" in _view(held, A) and "recordingId" in _view(held, A)
    # On the PBX: nobody is bridged; B runs MusicOnHold, A waits.
    chans = {ext: _chan(pbx, ext) for ext in (A, B)}
    assert (chans[A]["application"], chans[B]["application"]) == ("Wait", "MusicOnHold")
    assert not chans[A]["bridge"] and not chans[B]["bridge"], chans
    # The catalog: A's recording runs on through the hold.
    assert [r["state"] for r in await recordings(api, A)] == ["recording"]
    status, again = await api.put(call["id"], {"action": "OnHold", "phoneCallViewId": "01"})
    assert (status, again["error"]["code"]) == (409, "pc_phonecallview_state")
    await asyncio.sleep(3)

    status, back = await api.put(call["id"], {"action": "OffHold", "phoneCallViewId": "01"})
    assert status == 200, back
    t_back = time.monotonic() - t0
    assert all("onHold" not in v and "holder" not in v for v in back["phoneCallView"]), back
    assert "recording" in _view(back, A)
    assert _bridged(pbx, A, B)
    await asyncio.sleep(2)
    await b.hangup()
    await a.wait_event("CALL_CLOSED")  # A's hangup handler is cleared at OffHold: no loop

    heard = inspect_wav(b.heard_file).samples
    on_hold = stretch(heard, t_hold + 0.5, t_hold + 2.5)
    # Music, not A: sound all along, but A's steady sine is not what it is made of (a
    # music block may have some energy at 600 Hz; A's tone is nearly all of its block).
    assert min(window_rms(on_hold)) > 50, "B heard silence, not the music on hold"
    assert tone_report(on_hold, A_HZ).share < 0.2, tone_report(on_hold, A_HZ)
    assert_tone(stretch(heard, t_back + 0.5, t_back + 1.8), A_HZ, "A after OffHold")
    assert tone_report(stretch(heard, t_back + 0.5, t_back + 1.8), A_HZ).share > 0.5
    rows = await recordings(api, A)
    assert len(rows) == 1 and rows[0]["state"] in ("recording", "completed"), rows


async def test_a_hold_from_the_handset_shows_as_onhold_does(api, phones, pbx, ami_log) -> None:
    a, b, call, _ = await _a_talks_to_b(api, phones)
    await a.command("hold")
    await ami_log.wait_for("MusicOnHoldStart")
    await eventually(lambda: api.bridge.tracker.calls_of(A)[0].hold()[0], what="held")
    held = await _one_call(api, A)
    for view in held["phoneCallView"]:
        assert (view.get("onHold"), view.get("holder")) == (True, A), held
    assert _bridged(pbx, A, B)  # a phone's hold keeps the bridge; B hears the music in it
    status, body = await api.put(call["id"], {"action": "OffHold", "phoneCallViewId": "01"})
    assert (status, body["error"]["code"]) == (409, "pc_phonecallview_state")
    await b.hangup()


async def test_park_then_the_space_is_dialled(api, phones, pbx, ami_log) -> None:
    a, _b, call, _ = await _a_talks_to_b(api, phones)
    await _record(api, call, B)
    c = await phones(C)
    status, parked = await api.put(call["id"], {"action": "Park", "phoneCallViewId": "01",
                                                "maxInParking": "60"})
    assert status == 200, parked
    for view in parked["phoneCallView"]:
        assert (view["parked"], view["parkedPos"], view["parkedBy"]) == (True, "701", A)
    await a.wait_event("CALL_CLOSED")  # the parker's phone leaves after the announcement
    assert "parkedcalls" in pbx.cli("parking show default").lower() or \
        B in pbx.cli("parking show default")
    after = await _one_call(api, A)  # the parker still finds the call it parked
    assert [v["extension"] for v in after["phoneCallView"]] == [A, B]
    assert "recording" in _view(after, B)  # B's recording goes on in the lot
    assert [r["state"] for r in await recordings(api, B)] == ["recording"]
    await c.dial("701")
    await c.wait_event("CALL_ESTABLISHED")
    await ami_log.wait_for("UnParkedCall")
    assert _bridged(pbx, B, C)
    await eventually(lambda: not api.bridge.tracker.calls_of(A), what="A's view gone")
    # C is a new peer of B's recorded channel: the recording is re-armed
    # (recording/rearm.py) and shows again once Asterisk's MixMonitorStart confirms it
    for _ in range(100):
        mine = await _one_call(api, B)
        if "recording" in _view(mine, B):
            break
        await asyncio.sleep(0.1)
    assert all("parked" not in v for v in mine["phoneCallView"])
    assert "recording" in _view(mine, B), mine
    await c.hangup()


async def test_park_times_out_back_to_the_parker(api, phones, pbx, ami_log) -> None:
    a, b, call, _ = await _a_talks_to_b(api, phones)
    status, parked = await api.put(call["id"], {"action": "Park", "phoneCallViewId": "01",
                                                "maxInParking": "10"})
    assert status == 200, parked
    await a.wait_event("CALL_CLOSED")
    started = time.monotonic()
    await a.wait_event("CALL_INCOMING", timeout=30)
    assert time.monotonic() - started > 5  # not before its time (10 s from the Park)
    assert (await ami_log.wait_for("ParkedCallTimeOut")).get("ParkingSpace") == "701"
    await a.accept()
    await a.wait_event("CALL_ESTABLISHED")
    assert _bridged(pbx, A, B)
    back = await _one_call(api, A)
    assert back["id"] == call["id"]
    assert [(v["extension"], v["status"]) for v in back["phoneCallView"]] == [
        (A, "5"), (B, "5")]
    assert all("parked" not in v for v in back["phoneCallView"])
    await b.hangup()


async def test_unpark_sends_the_parked_call_to_an_extension(api, phones, pbx, ami_log) -> None:
    a, _b, call, _ = await _a_talks_to_b(api, phones)
    c = await phones(C, auto_answer=True)
    status, _ = await api.put(call["id"], {"action": "Park", "phoneCallViewId": "01"})
    assert status == 200
    await a.wait_event("CALL_CLOSED")
    status, sent = await api.put(call["id"], {"action": "UnPark", "phoneCallViewId": "01",
                                              "sendCallTo": C})
    assert status == 200, sent
    await c.wait_event("CALL_ESTABLISHED")
    await eventually(lambda: _bridged(pbx, B, C), what="B bridged with C")
    await c.hangup()
