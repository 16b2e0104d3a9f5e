"""Click-to-call and hang-up end to end (issue 14 items 1 and 2): real baresip phones,
the real HTTP server, the sandbox Asterisk. What is checked comes from Asterisk itself:
its channels and bridges (`core show channels concise`), its events (the test's own AMI
client), and the PhoneCalls the API shows afterwards."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from tests.e2e.test_api_recording import A, Api, _serve
from tests.support.bridge import eventually
from tests.support.pbx import EventLog, live_channels

B = "0003*211"  # John Doe's second extension (demo directory)
PUBLIC = "7778888"  # the sandbox answers it (extensions.conf [public-sim])


@pytest.fixture
async def api(pbx, tmp_path) -> AsyncIterator[Api]:
    async for a in _serve(pbx, tmp_path):
        yield a


async def _post(api: Api, mode: str, body: dict, **query: str) -> tuple[int, dict, str]:
    async with api.http.post(f"{api.base}/uapi/phoneCalls/@me/{mode}", json=body,
                             params=query, headers=api.auth()) as r:
        return r.status, await r.json(), r.headers.get("Location", "")


async def _delete(api: Api, path: str, **query: str) -> tuple[int, dict | None]:
    async with api.http.delete(f"{api.base}/uapi/phoneCalls/@me/{path}", params=query,
                               headers=api.auth()) as r:
        return r.status, (await r.json() if r.status == 200 else None)


def _bridged(pbx, *devices: str) -> bool:
    """Asterisk has these devices' channels in one bridge."""
    chans = live_channels(pbx).values()
    bridges = [{c["bridge"] for c in chans if c["channel"].startswith(d + "-") and c["bridge"]}
               for d in devices]
    return all(len(b) == 1 for b in bridges) and len(set.union(*bridges)) == 1


def _ts(ev: dict) -> float:
    return float(ev["Timestamp"])


async def test_simple_rings_the_extension_then_dials_the_destination(
        api: Api, phones, pbx, ami_log: EventLog) -> None:
    a = await phones(A)
    b = await phones(B)
    status, body, location = await _post(api, "simple", {
        "extension": A, "nonce": "ctc-simple.1",
        "phoneCallView": [{"destination": [B], "callerId": "Sales Desk <0003*210>"}]})
    assert status == 201, body
    call_id = body["id"]
    assert re.fullmatch(r"[0-9a-f]{20}", call_id)
    assert location.endswith(f"/uapi/phoneCalls/12/{A}/{call_id}")
    assert body["nonce"] == "ctc-simple.1", body  # read back from the channel's PBX_CTC
    await a.wait_event("CALL_INCOMING")
    # Asterisk's own events carry the mark, on the first leg, and the id is its Linkedid.
    ring = await ami_log.wait_for("Newstate", ChannelStateDesc="Ringing",
                                  where=lambda e: e["Channel"].startswith(f"PJSIP/{A}-"))
    assert ring["ChanVariable(PBX_CTC)"].endswith("|0003*210|0003*211|ctc-simple.1"), ring
    await a.accept()
    await b.wait_event("CALL_INCOMING")
    await b.accept()
    await b.wait_event("CALL_ESTABLISHED")
    await eventually(lambda: _bridged(pbx, f"PJSIP/{A}", f"PJSIP/{B}"), what="A and B bridged")
    (listed,) = await api.list(A)
    assert listed["id"] == call_id and listed["nonce"] == "ctc-simple.1", listed
    views = {v["extension"]: v for v in listed["phoneCallView"]}
    assert set(views) == {A, B}
    assert views[A]["source"] == [A] and views[A]["destination"] == [B]
    assert {v["status"] for v in views.values()} == {"5"}, views
    (seen_by_b,) = await api.list(B)
    assert seen_by_b["id"] == call_id and seen_by_b["nonce"] == "ctc-simple.1"
    # Hang up by the phoneNumber filter: a number not in the call hangs up nothing.
    assert (await _delete(api, A, phoneNumber="7778899"))[0] == 204
    status, hung = await _delete(api, A, phoneNumber=B)
    assert status == 200 and hung == {"hungUp": [call_id]}
    # 200 came once Asterisk confirmed: A's channel is gone already, B follows.
    assert not any(c["channel"].startswith(f"PJSIP/{A}-") for c in live_channels(pbx).values())
    await b.wait_event("CALL_CLOSED")
    await eventually(lambda: not api.bridge.tracker.calls, what="the call gone")


async def test_callback_calls_the_source_then_a_public_number_for_call_duration(
        api: Api, phones, pbx, ami_log: EventLog) -> None:
    DURATION = 4
    b = await phones(B)
    body = {"extension": A, "nonce": "cb-1",
            "phoneCallView": [{"source": [B], "destination": [PUBLIC]}]}
    status, err, _ = await _post(api, "callback", body)
    assert (status, err["error"]["code"]) == (400, "pc_destination_invalid")  # not allowed
    status, placed, _ = await _post(api, "callback", body, allowPublicTransfer="true",
                                    callDuration=str(DURATION))
    assert status == 201, placed
    await b.wait_event("CALL_INCOMING")
    await b.accept()
    await b.wait_event("CALL_ESTABLISHED")
    await eventually(lambda: _bridged(pbx, f"PJSIP/{B}", f"Local/{PUBLIC}@public-sim"),
                     what="B bridged with the public number")
    (listed,) = await api.list(B)
    assert listed["id"] == placed["id"] and listed["nonce"] == "cb-1"
    assert listed["phoneCallView"][0]["destination"] == [PUBLIC]
    # callDuration: Asterisk hangs the call up after B answered (its own timestamps).
    up = await ami_log.wait_for("Newstate", ChannelStateDesc="Up",
                                where=lambda e: e["Channel"].startswith(f"PJSIP/{B}-"))
    gone = await ami_log.wait_for("Hangup", timeout=15,
                                  where=lambda e: e["Channel"].startswith(f"PJSIP/{B}-"))
    # Slack both ways: Asterisk's bridge checks the limit on its own tick (once seen
    # ending 1.97 s after a 3 s limit), and a loaded machine delays events.
    assert DURATION - 1.5 <= _ts(gone) - _ts(up) <= DURATION + 3.0, (_ts(gone) - _ts(up))
    # Asterisk ended it (the PBX's own limit), not the phone or the public side.
    assert ami_log.matching("SoftHangupRequest", Channel=gone["Channel"]), gone
    await b.wait_event("CALL_CLOSED")


async def test_an_unanswered_first_leg_ends_after_wait_for_pickup(
        api: Api, phones, pbx, ami_log: EventLog) -> None:
    a = await phones(A)
    status, placed, _ = await _post(api, "simple", {
        "extension": A, "phoneCallView": [{"destination": [B]}]}, waitForPickup="2")
    assert status == 201, placed
    assert "nonce" not in placed
    await a.wait_event("CALL_INCOMING")
    first = await ami_log.wait_for("Newchannel",
                                   where=lambda e: e["Channel"].startswith(f"PJSIP/{A}-"))
    gone = await ami_log.wait_for("Hangup", timeout=15,
                                  where=lambda e: e["Uniqueid"] == first["Uniqueid"])
    assert 1.5 <= _ts(gone) - _ts(first) <= 6.0, (_ts(gone) - _ts(first))
    failed = await ami_log.wait_for("OriginateResponse", Response="Failure")
    assert failed["Reason"] in ("3", "5", "8"), failed  # no answer / busy / congestion
    await eventually(lambda: not api.bridge.tracker.calls, what="the call gone")
    assert not ami_log.matching("Newchannel", Exten=B)  # B was never dialled


async def test_a_phone_that_is_not_registered_is_409(api: Api, pbx) -> None:
    status, err, _ = await _post(api, "simple", {
        "extension": A, "phoneCallView": [{"destination": [B]}]})
    assert (status, err["error"]["code"]) == (409, "pc_call_failed"), err
    assert not api.bridge.tracker.calls
