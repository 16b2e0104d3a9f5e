"""The call-control PUT actions (Transfer, TransferToVoicemail, PickUp, BargeIn, Whisper,
Monitor) in the unit tier: the access matrix, every hostile value, the sendCallTo rule,
and the exact AMI action each valid request becomes. The AMI client here is never
connected, so a valid request ends in 503 after its action was sent (the spy records
it); a refused one never reaches AMI. What Asterisk does with them is the e2e tier's
(tests/e2e/test_callcontrol_spy.py)."""

from __future__ import annotations

import pytest

from pbx_bridge.api import validation
from tests.unit.api_support import Api, error_of

JOHN_A, JOHN_B, JANE, JANE_OFF, OTHER_ORG = (
    "0003*210", "0003*211", "0003*213", "0003*212", "0004*210")
BASE = f"/uapi/phoneCalls/@me/{JOHN_A}"
SPYING = ("BargeIn", "Whisper", "Monitor")
ALL = ("Transfer", "TransferToVoicemail", "PickUp", *SPYING)


@pytest.fixture
async def api(aiohttp_client, tmp_path, monkeypatch) -> Api:
    api = await Api.start(aiohttp_client, tmp_path)
    api.ready(monkeypatch)
    return api


@pytest.fixture
async def call_id(api: Api) -> str:
    """John's 0003*210 talking to John's 0003*211 (views 01 and 02), answered."""
    return api.pbx.call(f"PJSIP/{JOHN_A}", f"PJSIP/{JOHN_B}").id


def body(action: str, **fields: str) -> dict[str, str]:
    return {"action": action, "phoneCallViewId": "01", "sendCallTo": JANE, **fields}


async def sent(api: Api, path: str, data: dict, who: str = "john") -> list[tuple[str, dict]]:
    """A valid request: it reaches AMI (503 from the unconnected client); what was sent."""
    assert await error_of(await api.put(path, data, who)) == (503, "pbx_unavailable")
    return api.spy.calls


# --------------------------------------------------------------------------- the AMI actions


async def test_transfer_is_a_blind_transfer_of_the_views_channel(api: Api, call_id) -> None:
    (name, headers), = await sent(api, f"{BASE}/{call_id}", body("Transfer"))
    a, _b = api.pbx.last
    assert (name, headers) == ("BlindTransfer", {
        "Channel": a.name, "Context": "pbx-bridge-dial", "Exten": JANE})


async def test_voicemail_is_a_blind_transfer_into_the_voicemail_context(api, call_id) -> None:
    data = body("TransferToVoicemail", phoneCallViewId="02", sendCallTo=JOHN_B)
    (name, headers), = await sent(api, f"{BASE}/{call_id}", data)
    _a, b = api.pbx.last
    assert (name, headers) == ("BlindTransfer", {
        "Channel": b.name, "Context": "pbx-bridge-voicemail", "Exten": JOHN_B})


@pytest.mark.parametrize(("action", "extra", "options", "caller_id", "timeout"), [
    ("BargeIn", {}, "qEuB", f"BargeIn <{JOHN_A}>", "25000"),
    ("BargeIn", {"callerId": "Boss <0003*212>", "waitForPickup": "300"}, "qEuB",
     "Boss <0003*212>", "300000"),
    ("Whisper", {}, "qEuw", f"Whisper <{JOHN_A}>", "25000"),
    ("Whisper", {"private": "0"}, "qEuw", f"Whisper <{JOHN_A}>", "25000"),
    ("Whisper", {"private": "1"}, "qEuW", f"Whisper <{JOHN_A}>", "25000"),
    ("Monitor", {}, "qEu", f"Monitor <{JOHN_A}>", "25000"),
])
async def test_spying_originates_chanspy_on_the_views_channel(
        api: Api, call_id, action, extra, options, caller_id, timeout) -> None:
    (name, headers), = await sent(api, f"{BASE}/{call_id}", body(action, **extra))
    a, _b = api.pbx.last
    assert (name, headers) == ("Originate", {
        "Channel": f"Local/{JANE}@pbx-bridge-dial", "Application": "ChanSpy",
        "Data": f"{a.uniqueid},{options}", "CallerID": caller_id, "Timeout": timeout,
        "Async": "true", "Variable": f"PBX_CC={action}|{call_id}|01"})


async def test_pick_up_originates_pickupchan_on_the_ringing_channel(api: Api) -> None:
    call_id = api.pbx.call(f"PJSIP/{JOHN_A}", f"PJSIP/{JOHN_B}", answered=False).id
    data = body("PickUp", phoneCallViewId="02")
    (name, headers), = await sent(api, f"{BASE}/{call_id}", data)
    _a, b = api.pbx.last
    assert (name, headers["Application"], headers["Data"], headers["Channel"]) == (
        "Originate", "PickupChan", b.name, f"Local/{JANE}@pbx-bridge-dial")
    assert headers["Async"] == "true"


async def test_a_public_number_needs_allow_public_transfer(api: Api, call_id) -> None:
    for query in ("", "?allowPublicTransfer=false", "?allowPublicTransfer=0"):
        resp = await api.put(f"{BASE}/{call_id}{query}", body("Transfer", sendCallTo="7778888"))
        assert await error_of(resp) == (400, "pc_sendcallto_invalid"), query
    assert api.spy.calls == []
    for query in ("?allowPublicTransfer=true", "?allowPublicTransfer=1"):
        calls = await sent(api, f"{BASE}/{call_id}{query}", body("Transfer", sendCallTo="7778888"))
        assert calls[-1][1]["Exten"] == "7778888"


# --------------------------------------------------------------------------- who may


@pytest.mark.parametrize(("who", "path", "expected"), [
    ("john", f"/uapi/phoneCalls/@me/{JOHN_A}", None),
    ("org3", f"/uapi/phoneCalls/12/{JOHN_A}", None),
    ("admin", f"/uapi/phoneCalls/12/{JOHN_A}", None),
    ("jane", f"/uapi/phoneCalls/12/{JOHN_A}", (403, "access_denied")),
    ("other", f"/uapi/phoneCalls/12/{JOHN_A}", (400, "extension_invalid")),
    ("org4", f"/uapi/phoneCalls/12/{JOHN_A}", (400, "extension_invalid")),
    ("jane", f"/uapi/phoneCalls/@me/{JANE}", (400, "pc_phonecall_invalid")),
    (None, f"/uapi/phoneCalls/@me/{JOHN_A}", (401, "unauthorized")),
])
@pytest.mark.parametrize("action", ALL)
async def test_access_matrix(api: Api, call_id, who, path, expected, action) -> None:
    data = body(action, phoneCallViewId="02" if action == "PickUp" else "01")
    resp = await api.put(f"{path}/{call_id}", data, who)
    if expected is None:  # allowed: the action's own state rules come next
        assert (await error_of(resp))[0] in (503, 409)
    else:
        assert await error_of(resp) == expected
        assert api.spy.calls == []


# --------------------------------------------------------------------------- hostile input


@pytest.mark.parametrize("value", [
    OTHER_ORG,  # another organization's extension
    "0003*999",  # no such extension
    "0003*210\r\nAction: Originate",
    "\r\n", "0003*213\n", "\x000003*213", "", " 0003*213", "0003*21 3", "x", "+", "*",
    "0" * 33, "7778888;x", "sip:7778888@evil", "Local/0003*213@from-internal",
    "\uff11\uff12\uff13",  # full-width digits
])
@pytest.mark.parametrize("action", ALL)
async def test_send_call_to_invalid(api: Api, call_id, action, value: str) -> None:
    for query in ("", "?allowPublicTransfer=true"):
        resp = await api.put(f"{BASE}/{call_id}{query}", body(action, sendCallTo=value))
        assert await error_of(resp) == (400, "pc_sendcallto_invalid"), (value, query)
    assert api.spy.calls == []


async def test_foreign_and_unknown_extensions_answer_the_same(api: Api, call_id) -> None:
    answers = []
    for value in (OTHER_ORG, "0003*999"):
        resp = await api.put(f"{BASE}/{call_id}", body("Transfer", sendCallTo=value), "admin")
        answers.append((resp.status, await resp.json()))
    assert answers[0] == answers[1]


async def test_voicemail_takes_an_extension_only(api: Api, call_id) -> None:
    resp = await api.put(f"{BASE}/{call_id}?allowPublicTransfer=true",
                         body("TransferToVoicemail", sendCallTo="7778888"))
    assert await error_of(resp) == (400, "pc_sendcallto_invalid")
    assert api.spy.calls == []


@pytest.mark.parametrize(("data", "code"), [
    ({"action": "Transfer", "phoneCallViewId": "01"}, "pc_sendcallto_invalid"),
    (body("Transfer", sendCallTo=123), "body_invalid"),  # type: ignore[arg-type]
    (body("Whisper", private=1), "body_invalid"),  # type: ignore[arg-type]
    (body("Whisper", private=True), "body_invalid"),  # type: ignore[arg-type]
    (body("Whisper", private="2"), "body_invalid"),
    (body("Whisper", private="1\n"), "body_invalid"),
    (body("BargeIn", waitForPickup=30), "body_invalid"),  # type: ignore[arg-type]
    (body("BargeIn", waitForPickup=None), "body_invalid"),  # type: ignore[arg-type]
    (body("BargeIn", waitForPickup="0"), "pc_waitforpickup_invalid"),
    (body("BargeIn", waitForPickup="301"), "pc_waitforpickup_invalid"),
    (body("BargeIn", waitForPickup="030"), "pc_waitforpickup_invalid"),
    (body("BargeIn", waitForPickup="1e2"), "pc_waitforpickup_invalid"),
    (body("BargeIn", waitForPickup="25\r\n"), "pc_waitforpickup_invalid"),
    (body("BargeIn", callerId="Boss <0003*212>\r\nAction: Command"), "body_invalid"),
    (body("BargeIn", callerId='Boss" <0003*212>'), "body_invalid"),
    (body("BargeIn", callerId="Boss"), "body_invalid"),
    (body("BargeIn", callerId="B" * 65 + " <1>"), "body_invalid"),
    (body("BargeIn", callerId="Boss <0003*212> x"), "body_invalid"),
    # a field the action does not take is refused, never ignored
    (body("Transfer", private="1"), "body_invalid"),
    (body("Monitor", callerId="Boss <1>"), "body_invalid"),
    (body("Whisper", waitForPickup="10"), "body_invalid"),
    ({"action": "StartRecording", "phoneCallViewId": "01", "sendCallTo": JANE}, "body_invalid"),
])
async def test_hostile_bodies(api: Api, call_id, data: dict, code: str) -> None:
    assert await error_of(await api.put(f"{BASE}/{call_id}", data)) == (400, code)
    assert api.spy.calls == []


@pytest.mark.parametrize("query", [
    "?allowPublicTransfer=yes", "?allowPublicTransfer=", "?allowPublicTransfer=TRUE",
    "?allowPublicTransfer=true&allowPublicTransfer=true", "?allowPublicTransfer=%0d%0a",
    "?allowpublictransfer=true",
])
async def test_allow_public_transfer_invalid(api: Api, call_id, query: str) -> None:
    resp = await api.put(f"{BASE}/{call_id}{query}", body("Transfer"))
    assert await error_of(resp) == (400, "request_invalid")
    assert api.spy.calls == []


# --------------------------------------------------------------------------- the view's state


@pytest.mark.parametrize("action", ["Transfer", "TransferToVoicemail", *SPYING])
async def test_actions_on_an_unanswered_view_are_409(api: Api, action: str) -> None:
    call_id = api.pbx.call(f"PJSIP/{JOHN_A}", f"PJSIP/{JOHN_B}", answered=False).id
    for view in ("01", "02"):  # the caller waiting, the callee ringing
        resp = await api.put(f"{BASE}/{call_id}", body(action, phoneCallViewId=view))
        assert await error_of(resp) == (409, "pc_phonecallview_state"), view
    assert api.spy.calls == []


async def test_pick_up_of_a_view_not_ringing_is_409(api: Api, call_id) -> None:
    for view in ("01", "02"):
        resp = await api.put(f"{BASE}/{call_id}", body("PickUp", phoneCallViewId=view))
        assert await error_of(resp) == (409, "pc_phonecallview_state")
    assert api.spy.calls == []


async def test_nothing_sent_holds_a_control_character(api: Api, call_id) -> None:
    await sent(api, f"{BASE}/{call_id}", body("BargeIn", callerId="Boss <0003*212>"))
    for _name, headers in api.spy.calls:
        for key, value in headers.items():
            assert not validation.has_control(key + value)
