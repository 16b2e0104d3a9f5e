"""PauseRecording and ResumeRecording (issue 11 item 1) through the API, without an AMI
answer: the body, the gate (403 as StartRecording; never on an "always" extension), 409
on a view that records nothing, idempotency (nothing sent), the actions a pause and a
resume send, and `recordingPaused` from what Asterisk reports (MixMonitorMute events,
the PBX_RECPAUSED stamp on a resync)."""

from __future__ import annotations

import pytest

from pbx_bridge.api import validation
from pbx_bridge.calls.model import iso
from pbx_bridge.calls.tracker import Call
from pbx_bridge.recording import events
from tests.unit.api_support import EPOCH, Api, Chan, error_of
from tests.unit.test_api_access import ALLOWED, MATRIX, TARGETS, refused

PAUSE = {"action": "PauseRecording", "phoneCallViewId": "01"}
RESUME = {"action": "ResumeRecording", "phoneCallViewId": "01"}
STARTED = EPOCH + 100
FILE = "3/0003*210/2026-11-30/f-01-062040.wav"


@pytest.fixture
async def api(aiohttp_client, tmp_path, monkeypatch) -> Api:
    api = await Api.start(aiohttp_client, tmp_path)
    api.ready(monkeypatch)
    return api


def _event(api: Api, ch: Chan, name: str, **headers: str) -> None:
    api.pbx.feed({
        "Event": name, "Channel": ch.name, "Uniqueid": ch.uniqueid, "Linkedid": ch.linkedid,
        "Timestamp": f"{EPOCH + 200}.0", **headers,
    })


def _recording(api: Api, ch: Chan, paused: float | None = None) -> None:
    """Asterisk reports a running recording (MixMonitorStart with the PBX_REC stamp),
    then, with ``paused``, a pause (MixMonitorMute both/1 carrying PBX_RECPAUSED)."""
    _event(api, ch, "MixMonitorStart", **{"ChanVariable(PBX_REC)": f"{STARTED}.000|{FILE}"})
    if paused is not None:
        _event(api, ch, "MixMonitorMute", Direction="both", State="1",
               **{"ChanVariable(PBX_RECPAUSED)": f"{paused:.3f}"})


async def _view(api: Api, call: Call, ext: str = "0003*210", who: str = "john") -> dict:
    resp = await api.get(f"/uapi/phoneCalls/@me/{ext}/{call.id}", who=who)
    assert resp.status == 200
    return (await resp.json())["phoneCallView"][0]


# --------------------------------------------------------------------------- the body


@pytest.mark.parametrize("name", ["PauseRecording", "ResumeRecording"])
def test_the_actions_parse(name: str) -> None:
    action = validation.parse_action(f'{{"action":"{name}","phoneCallViewId":"02"}}'.encode())
    assert (action.action, action.format, action.view_id) == (name, None, "02")
    # `format` is checked, then ignored, as on StopRecording
    action = validation.parse_action(
        f'{{"action":"{name}","format":"wav49","phoneCallViewId":"01"}}'.encode())
    assert action.format == "wav49"


async def test_an_unknown_action_names_all_four(api: Api) -> None:
    call = api.pbx.call("PJSIP/0003*210", "PJSIP/pstn")
    resp = await api.put(f"/uapi/phoneCalls/@me/0003*210/{call.id}",
                         {"action": "HoldRecording", "phoneCallViewId": "01"})
    assert resp.status == 400
    message = (await resp.json())["error"]["message"]
    for name in ("StartRecording", "StopRecording", "PauseRecording", "ResumeRecording"):
        assert name in message


# --------------------------------------------------------------------------- 409 and 200


@pytest.mark.parametrize("body", [PAUSE, RESUME])
async def test_a_view_that_records_nothing_is_409(api: Api, body: dict) -> None:
    call = api.pbx.call("PJSIP/0003*210", "PJSIP/pstn")
    resp = await api.put(f"/uapi/phoneCalls/@me/0003*210/{call.id}", body)
    assert await error_of(resp) == (409, "pc_phonecallview_state")
    unanswered = api.pbx.call("PJSIP/pstn", "PJSIP/0003*210", caller_num="7778888",
                              answered=False)
    resp = await api.put(f"/uapi/phoneCalls/@me/0003*210/{unanswered.id}", body)
    assert await error_of(resp) == (409, "pc_phonecallview_state")
    assert api.spy.calls == []


async def test_pausing_a_paused_view_is_200_and_sends_nothing(api: Api) -> None:
    call = api.pbx.call("PJSIP/0003*210", "PJSIP/pstn")
    a, _ = api.pbx.last or ()
    _recording(api, a, paused=STARTED + 2.5)
    for _ in range(2):
        resp = await api.put(f"/uapi/phoneCalls/@me/0003*210/{call.id}", PAUSE)
        assert resp.status == 200
        view = (await resp.json())["phoneCallView"][0]
        assert view["recording"] == iso(STARTED)
        assert view["recordingPaused"] == iso(STARTED + 2.5)
    assert api.spy.calls == []


async def test_resuming_a_running_recording_is_200_and_sends_nothing(api: Api) -> None:
    call = api.pbx.call("PJSIP/0003*210", "PJSIP/pstn")
    a, _ = api.pbx.last or ()
    _recording(api, a)
    resp = await api.put(f"/uapi/phoneCalls/@me/0003*210/{call.id}", RESUME)
    assert resp.status == 200
    view = (await resp.json())["phoneCallView"][0]
    assert "recording" in view and "recordingPaused" not in view
    assert api.spy.calls == []


async def test_a_pause_stamps_then_mutes_both_directions(api: Api) -> None:
    """What a pause asks of Asterisk, in order (the AMI client is not connected, so it
    answers 503 and the view stays unpaused: only what Asterisk confirms shows)."""
    call = api.pbx.call("PJSIP/0003*210", "PJSIP/pstn")
    a, _ = api.pbx.last or ()
    _recording(api, a)
    resp = await api.put(f"/uapi/phoneCalls/@me/0003*210/{call.id}", PAUSE)
    assert await error_of(resp) == (503, "pbx_unavailable")
    assert [name for name, _ in api.spy.calls] == ["Setvar", "MixMonitorMute"]
    setvar, mute = (headers for _, headers in api.spy.calls)
    assert setvar["Channel"] == a.name and setvar["Variable"] == "PBX_RECPAUSED"
    assert float(setvar["Value"]) > 0
    assert mute == {"Channel": a.name, "Direction": "both", "State": "1"}
    assert "recordingPaused" not in await _view(api, call)


async def test_a_resume_unmutes_then_clears_the_stamp(api: Api) -> None:
    call = api.pbx.call("PJSIP/0003*210", "PJSIP/pstn")
    a, _ = api.pbx.last or ()
    _recording(api, a, paused=STARTED + 1)
    resp = await api.put(f"/uapi/phoneCalls/@me/0003*210/{call.id}", RESUME)
    assert await error_of(resp) == (503, "pbx_unavailable")
    assert api.spy.calls == [
        ("MixMonitorMute", {"Channel": a.name, "Direction": "both", "State": "0"}),
        ("Setvar", {"Channel": a.name, "Variable": "PBX_RECPAUSED", "Value": ""}),
    ]
    assert "recordingPaused" in await _view(api, call)


async def test_stopping_a_paused_recording_clears_the_stamp_too(api: Api) -> None:
    call = api.pbx.call("PJSIP/0003*210", "PJSIP/pstn")
    a, _ = api.pbx.last or ()
    _recording(api, a, paused=STARTED + 1)
    resp = await api.put(f"/uapi/phoneCalls/@me/0003*210/{call.id}",
                         {"action": "StopRecording", "phoneCallViewId": "01"})
    assert await error_of(resp) == (503, "pbx_unavailable")
    assert [(n, h.get("Variable")) for n, h in api.spy.calls] == [
        ("StopMixMonitor", None), ("Setvar", "PBX_REC"), ("Setvar", "PBX_RECPAUSED"),
    ]


# --------------------------------------------------------------------------- the gate


@pytest.mark.parametrize("body", [PAUSE, RESUME])
async def test_the_gate_is_start_recordings_and_always_is_refused(api: Api, body: dict) -> None:
    """0003*212: recording off; 0003*213: "always" (a mandatory recording: pausing it
    would stop it by another name). Refused before anything, recording or not."""
    for ext in ("0003*212", "0003*213"):
        call = api.pbx.call(f"PJSIP/{ext}", "PJSIP/pstn")
        a, _ = api.pbx.last or ()
        _recording(api, a)
        for who, user in (("jane", "@me"), ("org3", "13"), ("admin", "@owner")):
            resp = await api.put(f"/uapi/phoneCalls/{user}/{ext}/{call.id}", body, who=who)
            assert await error_of(resp) == (403, "pc_recording_disabled"), (ext, who)
    assert api.spy.calls == []


@pytest.mark.parametrize("body", [PAUSE, RESUME])
@pytest.mark.parametrize(("who", "target"), MATRIX)
async def test_access_matrix(api: Api, who: str, target: str, body: dict) -> None:
    """As StopRecording's matrix (tests/unit/test_api_access.py): an allowed view that
    records nothing is 409, the sibling's "always" line 403, the rest refused alike."""
    calls = {name: api.pbx.call(dev, "PJSIP/pstn").id for name, (_, _, dev) in TARGETS.items()}
    uid, ext, _ = TARGETS[target]
    resp = await api.put(f"/uapi/phoneCalls/{uid}/{ext}/{calls[target]}", body, who=who)
    if target in ALLOWED[who] and target == "sibling":
        assert await error_of(resp) == (403, "pc_recording_disabled")
    elif target in ALLOWED[who]:
        assert await error_of(resp) == (409, "pc_phonecallview_state")
    else:
        assert await error_of(resp) == refused(who, target)
    assert api.spy.calls == []


# --------------------------------------------------------------------------- what shows


async def test_recording_paused_follows_asterisks_events(api: Api) -> None:
    call = api.pbx.call("PJSIP/0003*210", "PJSIP/pstn")
    a, _ = api.pbx.last or ()
    _recording(api, a, paused=STARTED + 3)
    assert (await _view(api, call))["recordingPaused"] == iso(STARTED + 3)
    _event(api, a, "MixMonitorMute", Direction="both", State="0")
    assert "recordingPaused" not in await _view(api, call)
    # One direction muted is no pause (the other party is still recorded).
    _event(api, a, "MixMonitorMute", Direction="read", State="1")
    assert "recordingPaused" not in await _view(api, call)
    # A pause without the bridge's stamp (another AMI client): the event's time.
    _event(api, a, "MixMonitorMute", Direction="both", State="1")
    assert (await _view(api, call))["recordingPaused"] == iso(EPOCH + 200)
    # Stopped while paused: neither shows; a new recording starts unpaused.
    _event(api, a, "MixMonitorStop")
    view = await _view(api, call)
    assert "recording" not in view and "recordingPaused" not in view
    _event(api, a, "MixMonitorStart",
           **{"ChanVariable(PBX_REC)": f"{STARTED + 50}.000|{FILE}"})
    assert "recordingPaused" not in await _view(api, call)


async def test_a_hang_up_ends_the_pause(api: Api) -> None:
    call = api.pbx.call("PJSIP/0003*210", "PJSIP/0003*211")
    a, _ = api.pbx.last or ()
    _recording(api, a, paused=STARTED + 3)
    api.pbx.hangup(a)
    resp = await api.get(f"/uapi/phoneCalls/@me/0003*211/{call.id}")
    views = (await resp.json())["phoneCallView"]
    assert all("recordingPaused" not in v and "recording" not in v for v in views)


@pytest.mark.parametrize(
    ("stamp", "shown"),
    [
        (f"{STARTED + 4}.250", iso(STARTED + 4)),  # this recording's pause
        (f"{STARTED - 60}.000", None),  # left by an earlier recording: stale
        ("", None),  # resumed
        ("garbage", None),
    ],
)
async def test_a_resync_reads_the_stamp(api: Api, stamp: str, shown: str | None) -> None:
    """After a bridge restart the pause comes back from the channel (CoreShowChannel rows
    carry PBX_RECPAUSED through manager.conf's channelvars)."""
    call = api.pbx.call("PJSIP/0003*210", "PJSIP/pstn")
    a, _ = api.pbx.last or ()
    row = {
        "Event": "CoreShowChannel", "Channel": a.name, "Uniqueid": a.uniqueid,
        "Linkedid": a.linkedid, "ChannelState": "6",
        "ChanVariable(PBX_REC)": f"{STARTED}.000|{FILE}",
        "ChanVariable(PBX_RECPAUSED)": stamp,
    }
    _recording(api, a, paused=STARTED + 1)  # what the tracker held before
    events.apply_snapshot(api.bridge.tracker, [row])
    view = await _view(api, call)
    assert view["recording"] == iso(STARTED)
    assert view.get("recordingPaused") == shown
