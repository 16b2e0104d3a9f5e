"""Click-to-call and hang-up through the HTTP API (issue 14 items 1 and 2), unit tier:
the access matrix (user / organization / admin x own / sibling / other organization)
and hostile input for the new routes. AMI is never connected here, so a request that
passes every check reaches ``Originate``/``Hangup`` (recorded by the spy) and gets 503;
one that does not must have sent nothing at all."""

from __future__ import annotations

import json

import pytest

from pbx_bridge.calls.clicktocall import CTC_VAR_HEADER
from tests.unit.api_support import Api, error_of
from tests.unit.test_api_access import ALLOWED, MATRIX, TARGETS, refused


@pytest.fixture
async def api(aiohttp_client, tmp_path, monkeypatch) -> Api:
    api = await Api.start(aiohttp_client, tmp_path)
    api.ready(monkeypatch)
    return api


async def post(api: Api, path: str, body: object, who: str = "john", **query: str):
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return await api.client.post(path, data=data, params=query,
                                 headers={**api.apps.auth(who),
                                          "Content-Type": "application/json"})


def body(ext: str = "0003*210", dest: str = "0003*211", **leg: object) -> dict:
    return {"extension": ext, "nonce": "n-1",
            "phoneCallView": [{"destination": [dest], **leg}]}


# --------------------------------------------------------------------------- access


@pytest.mark.parametrize(("who", "target"), MATRIX)
async def test_post_access_matrix(api: Api, who: str, target: str) -> None:
    uid, ext, device = TARGETS[target]
    for user_ref in (uid, "@owner"):
        resp = await post(api, f"/uapi/phoneCalls/{user_ref}/simple",
                          body(ext, "5551234"), who, allowPublicTransfer="true")
        if target in ALLOWED[who]:
            assert await error_of(resp) == (503, "pbx_unavailable")  # passed every check
            ((name, headers),) = api.spy.calls
            assert name == "Originate" and headers["Channel"] == device
            api.spy.calls.clear()
        elif user_ref == "@owner" and refused(who, target)[0] == 400:
            assert await error_of(resp) == (400, "extension_invalid")
        else:
            assert await error_of(resp) == refused(who, target)
    assert api.spy.calls == [] or target in ALLOWED[who]


@pytest.mark.parametrize(("who", "target"), MATRIX)
async def test_delete_access_matrix(api: Api, who: str, target: str) -> None:
    uid, ext, device = TARGETS[target]
    call = api.pbx.call(device, "PJSIP/pstn")
    for path in (f"{uid}/{ext}", f"{uid}/{ext}/{call.id}"):
        resp = await api.client.delete(f"/uapi/phoneCalls/{path}", headers=api.apps.auth(who))
        if target in ALLOWED[who]:
            assert await error_of(resp) == (503, "pbx_unavailable")
            ((name, headers),) = api.spy.calls
            assert name == "Hangup" and headers["Channel"].startswith(device + "-")
            api.spy.calls.clear()
        else:
            assert await error_of(resp) == refused(who, target)
            assert api.spy.calls == []


async def test_delete_answers_204_when_nothing_matches(api: Api) -> None:
    call = api.pbx.call("PJSIP/0003*210", "PJSIP/pstn", caller_num="0003*210")
    resp = await api.client.delete("/uapi/phoneCalls/@me/0003*210",
                                   params={"phoneNumber": "999"}, headers=api.apps.auth("john"))
    assert resp.status == 204
    resp = await api.client.delete("/uapi/phoneCalls/@me/0003*211", headers=api.apps.auth("john"))
    assert resp.status == 204  # no call on that extension
    # A foreign or unknown call id is one answer.
    for cid in ("0" * 20, api.pbx.call("PJSIP/0003*212", "PJSIP/pstn").id):
        resp = await api.client.delete(f"/uapi/phoneCalls/@me/0003*210/{cid}",
                                       headers=api.apps.auth("john"))
        assert await error_of(resp) == (400, "pc_phonecall_invalid")
    assert api.spy.calls == [] and call.id


@pytest.mark.parametrize("value", ["12\r\n", "0003*210\n", "1;2", "", "x" * 21, "+1"])
async def test_delete_phone_number_is_checked(api: Api, value: str) -> None:
    api.pbx.call("PJSIP/0003*210", "PJSIP/pstn")
    resp = await api.client.delete("/uapi/phoneCalls/@me/0003*210",
                                   params={"phoneNumber": value}, headers=api.apps.auth("john"))
    assert (await error_of(resp))[1] in ("pc_phonenumber_invalid", "request_invalid")
    assert api.spy.calls == []


# --------------------------------------------------------------------------- the plan


async def test_the_originate_is_async_with_the_bridges_own_id_and_mark(api: Api) -> None:
    resp = await post(api, "/uapi/phoneCalls/@me/callback",
                      body(dest="7778888", source=["5550100"], callerId="Sales <0003*211>"),
                      allowPublicTransfer="true", waitForPickup="7", callDuration="30")
    assert await error_of(resp) == (503, "pbx_unavailable")
    ((name, h),) = api.spy.calls
    assert name == "Originate"
    assert h["Async"] == "true" and h["Context"] == "pbx-bridge-ctc"
    assert h["Exten"] == "7778888" and h["Timeout"] == "7000"
    assert h["Channel"] == "Local/5550100@from-internal"
    assert h["OtherChannelId"] == h["ChannelId"] + ";2"
    assert h["CallerID"] == '"Sales" <0003*211>'
    assert h["Variable"] == [f"PBX_CTC={h['ChannelId']}|5550100|7778888|n-1",
                             "PBX_DIALCTX=from-internal", "PBX_DIALLIMIT=30"]


async def test_the_nonce_shown_is_the_channels_not_the_requests(api: Api) -> None:
    """The PhoneCall's nonce comes from PBX_CTC on the channel, and only when the mark
    names that very call (a mark carried into another call says nothing of it)."""
    a = api.pbx.channel("PJSIP/0003*210", state=5, num="0003*210")
    tag = f"{a.uniqueid}|0003*210|7778888|from-asterisk"
    ev = api.pbx._snapshot(a, "Newstate")
    api.pbx.feed({**ev, CTC_VAR_HEADER: tag})
    (shown,) = (await (await api.get("/uapi/phoneCalls/@me/0003*210")).json())["entry"]
    assert shown["nonce"] == "from-asterisk"
    assert shown["phoneCallView"][0]["destination"] == ["7778888"]
    api.pbx.feed({**ev, CTC_VAR_HEADER: "1.2|0003*210|7778888|elsewhere"})
    (shown,) = (await (await api.get("/uapi/phoneCalls/@me/0003*210")).json())["entry"]
    assert "nonce" not in shown


# --------------------------------------------------------------------------- hostile


HOSTILE = [
    # (body, query, code)
    (body(ext="0003*210\r\nAction: Command"), {}, "extension_invalid"),
    (body(dest="0003*211\r\nAction: Command"), {}, "pc_destination_invalid"),
    (body(dest="7778888\n"), {"allowPublicTransfer": "true"}, "pc_destination_invalid"),
    (body(source=["0003*210\r\n"]), {}, "pc_source_invalid"),
    (body(callerId="John\r\nAction: Originate <0003*210>"), {}, "pc_callerid_invalid"),
    (body(callerId='"John" <0003*210>'), {}, "pc_callerid_invalid"),
    (body(callerId="John <7778888>"), {"allowPublicTransfer": "true"}, "pc_callerid_invalid"),
    (body(callerId="John <0004*210>"), {}, "pc_callerid_invalid"),
    (body(callerId="John 0003*210"), {}, "pc_callerid_invalid"),
    ({**body(), "nonce": "abc\r\ndef"}, {}, "pc_nonce_invalid"),
    ({**body(), "nonce": "a" * 65}, {}, "pc_nonce_invalid"),
    ({**body(), "nonce": "a|b"}, {}, "pc_nonce_invalid"),
    ({**body(), "nonce": "a,b"}, {}, "pc_nonce_invalid"),
    ({**body(), "nonce": ""}, {}, "pc_nonce_invalid"),
    ({**body(), "nonce": 5}, {}, "body_invalid"),
    ({**body(), "nonce": None}, {}, "body_invalid"),
    ({**body(), "extension": 3}, {}, "body_invalid"),
    ({**body(), "phoneCallView": {}}, {}, "body_invalid"),
    ({**body(), "phoneCallView": []}, {}, "body_invalid"),
    ({**body(), "extra": "x"}, {}, "body_invalid"),
    ({"extension": "0003*210"}, {}, "body_invalid"),
    (body(dest=7778888), {}, "body_invalid"),  # type: ignore[arg-type]
    ({**body(), "phoneCallView": [{"destination": "0003*211"}]}, {}, "body_invalid"),
    ({**body(), "phoneCallView": [{"destination": ["0003*211", "0003*212"]}]}, {},
     "pc_destination_invalid"),
    ('{"extension": "0003*210", "extension": "0003*211"}', {}, "body_invalid"),
    ("[1]", {}, "body_invalid"),
    (b"\xff", {}, "body_invalid"),
    ('{"extension": NaN}', {}, "body_invalid"),
    (body(ext="@self"), {}, "extension_invalid"),
    (body(ext="0004*210"), {}, "extension_invalid"),  # another organization's: unknown
    (body(ext="0003*212"), {}, "access_denied"),  # Jane's
    (body(dest="0004*210"), {}, "pc_destination_invalid"),  # outside the organization
    (body(dest="0003*999"), {}, "pc_destination_invalid"),  # unknown
    (body(dest="7778888"), {}, "pc_destination_invalid"),  # public, not allowed
    (body(dest="7778888"), {"allowPublicTransfer": "false"}, "pc_destination_invalid"),
    (body(dest="0003*210"), {}, "pc_destination_invalid"),  # itself
    (body(source=["0003*211"]), {}, "pc_source_invalid"),  # simple: the extension only
    (body(), {"waitForPickup": "0"}, "pc_waitforpickup_invalid"),
    (body(), {"waitForPickup": "301"}, "pc_waitforpickup_invalid"),
    (body(), {"waitForPickup": "1e3"}, "pc_waitforpickup_invalid"),
    (body(), {"waitForPickup": "-5"}, "pc_waitforpickup_invalid"),
    (body(), {"waitForPickup": "\u0663"}, "pc_waitforpickup_invalid"),  # Arabic-Indic 3
    (body(), {"callDuration": "0"}, "pc_callduration_invalid"),
    (body(), {"callDuration": "86401"}, "pc_callduration_invalid"),
    (body(), {"callDuration": "5\r\n"}, "request_invalid"),
    (body(), {"allowPublicTransfer": "yes"}, "pc_allowpublictransfer_invalid"),
    (body(), {"other": "1"}, "request_invalid"),
]


@pytest.mark.parametrize(("payload", "query", "code"), HOSTILE)
async def test_hostile_input_never_reaches_ami(api: Api, payload, query, code) -> None:
    resp = await post(api, "/uapi/phoneCalls/@me/simple", payload, **query)
    status, got = await error_of(resp)
    assert got == code and status in (400, 403)
    assert api.spy.calls == []


async def test_callback_sources(api: Api) -> None:
    for source, query, code in (
        (["7778888"], {}, "pc_source_invalid"),  # public, not allowed
        (["0004*210"], {}, "pc_source_invalid"),
        (["0003*999"], {"allowPublicTransfer": "true"}, "pc_source_invalid"),
    ):
        resp = await post(api, "/uapi/phoneCalls/@me/callback",
                          body(dest="0003*212", source=source), **query)
        assert await error_of(resp) == (400, code), source
    assert api.spy.calls == []
    # A colleague's extension is dialled through its own device.
    resp = await post(api, "/uapi/phoneCalls/@me/callback",
                      body(dest="0003*211", source=["0003*212"]))
    assert await error_of(resp) == (503, "pbx_unavailable")
    assert api.spy.calls[0][1]["Channel"] == "PJSIP/0003*212"


async def test_wrong_method_and_media_type(api: Api) -> None:
    resp = await api.client.post("/uapi/phoneCalls/@me/simple", data=json.dumps(body()),
                                 headers={**api.apps.auth("john"), "Content-Type": "text/plain"})
    assert await error_of(resp) == (415, "unsupported_media_type")
    resp = await api.client.post("/uapi/phoneCalls/@me/simple", data=json.dumps(body()))
    assert (await error_of(resp))[0] == 401
    assert api.spy.calls == []
