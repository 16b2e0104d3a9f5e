"""OnHold, OffHold, Park and UnPark through the API without an AMI answer (issue 14):
hostile bodies, the access matrix, the 409s decided before Asterisk is asked, and the
view fields from Asterisk's events (Hold, MusicOnHoldStart/Stop, ParkedCall...). The
effect on a real PBX is tests/e2e/test_hold_park.py's; the captured transcripts
(api_hold, park_timeout, park_retrieve, hold) replay in test_tracker_replay.py."""

from __future__ import annotations

import pytest

from tests.unit.api_support import EPOCH, Api, Chan, error_of
from tests.unit.test_api_access import ALLOWED, MATRIX, TARGETS, refused

A = "0003*210"
URL = "/uapi/phoneCalls/@me/0003*210/{}"


@pytest.fixture
async def api(aiohttp_client, tmp_path, monkeypatch) -> Api:
    api = await Api.start(aiohttp_client, tmp_path)
    api.ready(monkeypatch)
    return api


def _event(api: Api, ch: Chan, name: str, **headers: str) -> None:
    api.pbx.feed({"Event": name, "Channel": ch.name, "Uniqueid": ch.uniqueid,
                  "Linkedid": ch.linkedid, "Timestamp": f"{EPOCH + 200}.0", **headers})


def _parked(api: Api, ch: Chan, name: str = "ParkedCall", parker: str = A) -> None:
    api.pbx.feed({"Event": name, "ParkeeChannel": ch.name, "ParkeeUniqueid": ch.uniqueid,
                  "ParkeeLinkedid": ch.linkedid, "ParkeeChannelState": "6",
                  "ParkerDialString": f"PJSIP/{parker}", "Parkinglot": "default",
                  "ParkingSpace": "701", "Timestamp": f"{EPOCH + 201}.0"})


HOSTILE = [
    ({"action": "Park", "phoneCallViewId": "01", "maxInParking": v}, "pc_maxinparking_invalid")
    for v in ("9", "3601", "0", "", "-1", "60.5", "1e3", "60\r\nAction: Hangup", "٦٠", "00060")
] + [
    ({"action": "Park", "phoneCallViewId": "01", "maxInParking": v}, "body_invalid")
    for v in (60, None, True, ["60"], {"s": 60})
] + [
    ({"action": "UnPark", "phoneCallViewId": "01", "sendCallTo": v}, "pc_sendcallto_invalid")
    for v in ("0003*211\r\nAction: Originate", "", "0003*211 ", "_X.", "0003*2#1", "9" * 33,
              "PJSIP/0003*211")
] + [
    ({"action": "UnPark", "phoneCallViewId": "01", "sendCallTo": 211}, "body_invalid"),
    ({"action": "OnHold", "phoneCallViewId": "01", "maxInParking": "60"}, "body_invalid"),
    ({"action": "OffHold", "phoneCallViewId": "01", "sendCallTo": "0003*211"}, "body_invalid"),
    ({"action": "Park", "phoneCallViewId": "01", "sendCallTo": "0003*211"}, "body_invalid"),
    ({"action": "OnHold", "phoneCallViewId": "01", "format": "wav"}, "body_invalid"),
    ({"action": "onhold", "phoneCallViewId": "01"}, "pc_action_invalid"),
    ({"action": "OnHold"}, "pc_phonecallview_invalid"),
]


@pytest.mark.parametrize(("body", "code"), HOSTILE)
async def test_hostile_bodies_never_reach_asterisk(api: Api, body: dict, code: str) -> None:
    call = api.pbx.call("PJSIP/0003*210", "PJSIP/0003*211")
    resp = await api.put(URL.format(call.id), body)
    assert await error_of(resp) == (400, code)
    assert api.spy.calls == []


@pytest.mark.parametrize("number", ["0004*210", "0003*999", "7778888", "0003*2100"])
async def test_unpark_to_another_tenant_or_unknown_is_one_answer(api: Api, number: str) -> None:
    """Another organization's extension, an unknown one and a public number: the same
    400, before any state check or AMI action."""
    call = api.pbx.call("PJSIP/0003*210", "PJSIP/0003*211")
    resp = await api.put(URL.format(call.id),
                         {"action": "UnPark", "phoneCallViewId": "01", "sendCallTo": number})
    assert await error_of(resp) == (400, "pc_sendcallto_invalid")
    assert api.spy.calls == []


@pytest.mark.parametrize(
    "body",
    [{"action": "OnHold", "phoneCallViewId": "01"},
     {"action": "Park", "phoneCallViewId": "01", "maxInParking": "60"}],
)
@pytest.mark.parametrize(("who", "target"), MATRIX)
async def test_access_matrix(api: Api, who: str, target: str, body: dict) -> None:
    """An allowed view reaches the PBX (here: not connected, 503); the others are
    refused as every PhoneCalls route refuses them, and nothing is sent."""
    calls = {name: api.pbx.call(dev, "PJSIP/pstn").id for name, (_, _, dev) in TARGETS.items()}
    uid, ext, _ = TARGETS[target]
    resp = await api.put(f"/uapi/phoneCalls/{uid}/{ext}/{calls[target]}", body, who=who)
    if target in ALLOWED[who]:
        assert await error_of(resp) == (503, "pbx_unavailable")
    else:
        assert await error_of(resp) == refused(who, target)
        assert api.spy.calls == []


async def test_state_conflicts_are_decided_before_asking(api: Api) -> None:
    call = api.pbx.call("PJSIP/0003*210", "PJSIP/0003*211")
    a, b = api.pbx.last or ()
    for body in ({"action": "OffHold", "phoneCallViewId": "01"},
                 {"action": "UnPark", "phoneCallViewId": "01", "sendCallTo": "0003*212"}):
        assert await error_of(await api.put(URL.format(call.id), body)) == (
            409, "pc_phonecallview_state")
    _event(api, a, "Hold")  # held from A's phone: OnHold again, or OffHold, is 409
    for action in ("OnHold", "OffHold"):
        resp = await api.put(URL.format(call.id), {"action": action, "phoneCallViewId": "01"})
        assert await error_of(resp) == (409, "pc_phonecallview_state")
    _event(api, a, "Unhold")
    _parked(api, b)
    resp = await api.put(URL.format(call.id), {"action": "Park", "phoneCallViewId": "01"})
    assert await error_of(resp) == (409, "pc_phonecallview_state")
    assert api.spy.calls == []


async def _views(api: Api, call_id: str, ext: str = A) -> list[dict]:
    resp = await api.get(f"/uapi/phoneCalls/@me/{ext}/{call_id}")
    assert resp.status == 200, await resp.text()
    return (await resp.json())["phoneCallView"]


async def test_hold_shows_the_same_from_the_phone_and_from_onhold(api: Api) -> None:
    call = api.pbx.call("PJSIP/0003*210", "PJSIP/0003*211")
    a, b = api.pbx.last or ()
    assert all("onHold" not in v for v in await _views(api, call.id))
    _event(api, a, "Hold")  # A's phone: re-INVITE sendonly
    _event(api, b, "MusicOnHoldStart", Class="default")
    from_phone = await _views(api, call.id)
    _event(api, a, "Unhold")
    _event(api, b, "MusicOnHoldStop")
    assert all("onHold" not in v and "holder" not in v for v in await _views(api, call.id))
    _event(api, b, "MusicOnHoldStart", Class="default")  # OnHold: B hears the music
    from_api = await _views(api, call.id)
    assert from_phone == from_api
    assert [(v["onHold"], v["holder"]) for v in from_api] == [(True, A)] * 2


async def test_parked_call_stays_in_the_parkers_list(api: Api) -> None:
    call = api.pbx.call("PJSIP/0003*210", "PJSIP/pstn")
    a, b = api.pbx.last or ()
    _parked(api, b)
    api.pbx.hangup(a)  # the parker's phone leaves at Park
    views = await _views(api, call.id)
    assert [(v["extension"], v["parked"], v["parkedPos"], v["parkedBy"]) for v in views] == [
        (A, True, "701", A)]
    _parked(api, b, "ParkedCallTimeOut")
    resp = await api.get(URL.format(call.id))
    assert await error_of(resp) == (400, "pc_phonecall_invalid")  # nobody of A's left


async def test_ringing_shows_while_the_phone_rings(api: Api) -> None:
    call = api.pbx.call("PJSIP/0003*210", "PJSIP/0003*211", answered=False)
    views = {v["extension"]: v for v in await _views(api, call.id)}
    assert views["0003*211"].get("ringing") is True and "ringing" not in views[A]
