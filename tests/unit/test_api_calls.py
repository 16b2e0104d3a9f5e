"""The PhoneCalls resources: list, one, the PhoneCallAction's checks that need no AMI
answer, user and extension references, pagination, the singular alias, 503 and 413."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote

import pytest

from tests.unit.api_support import BASE_URL, EPOCH, Api, error_of


@pytest.fixture
async def api(aiohttp_client, tmp_path, monkeypatch) -> Api:
    api = await Api.start(aiohttp_client, tmp_path)
    api.ready(monkeypatch)
    return api


# --------------------------------------------------------------------------- rendering


async def test_one_call_as_the_contract_shows_it(api: Api) -> None:
    call = api.pbx.call("PJSIP/pstn", "PJSIP/0003*210", caller_num="7778888", caller_name="Bob")
    resp = await api.get(f"/uapi/phoneCalls/@me/0003*210/{call.id}")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    got = await resp.json()
    assert got["id"] == call.id and len(call.id) == 20
    assert got["extension"] == "0003*210"
    assert got["ownerId"] == "3"
    assert got["ownerName"] == "Default Organization"
    assert got["link"] == {"self": f"{BASE_URL}/uapi/phoneCalls/12/0003*210/{call.id}"}
    assert got["published"].endswith("+00:00")
    assert "answered" in got
    (view,) = got["phoneCallView"]
    assert view["id"] == "01"
    assert view["extension"] == "0003*210"
    assert view["status"] == "5"
    assert view["flow"] == "8"
    assert view["callerId"] == "Bob <7778888>"
    assert view["source"] == ["7778888"]
    assert "recording" not in view
    assert None not in got.values() and None not in view.values()


async def test_unanswered_call_has_no_answered(api: Api) -> None:
    call = api.pbx.call("PJSIP/pstn", "PJSIP/0003*210", caller_num="7778888", answered=False)
    got = await (await api.get(f"/uapi/phoneCalls/@me/0003*210/{call.id}")).json()
    assert "answered" not in got
    assert got["phoneCallView"][0]["status"] == "3"  # ringing
    assert "answered" not in got["phoneCallView"][0]


# --------------------------------------------------------------------------- list


async def test_no_calls_is_204_with_no_body(api: Api) -> None:
    resp = await api.get("/uapi/phoneCalls/@me/0003*210")
    assert resp.status == 204
    assert await resp.read() == b""
    assert (await api.get("/uapi/phoneCalls/@me/@self")).status == 204


async def test_list_and_pagination(api: Api) -> None:
    ids = [api.pbx.call("PJSIP/0003*210", "PJSIP/pstn").id for _ in range(3)]
    api.pbx.call("PJSIP/0003*211", "PJSIP/pstn")  # John's other line: not in this list
    resp = await api.get("/uapi/phoneCalls/@me/0003*210")
    body = await resp.json()
    assert body["startIndex"] == 0
    assert body["itemsPerPage"] == 3
    assert body["totalResults"] == 3
    assert [e["id"] for e in body["entry"]] == ids  # oldest first
    assert set(body) == {"startIndex", "itemsPerPage", "totalResults", "entry"}

    page = await (await api.get("/uapi/phoneCalls/@me/0003*210?count=2")).json()
    assert (page["startIndex"], page["itemsPerPage"], page["totalResults"]) == (0, 2, 3)
    assert [e["id"] for e in page["entry"]] == ids[:2]
    page = await (await api.get("/uapi/phoneCalls/@me/0003*210?startIndex=2&count=2")).json()
    assert (page["startIndex"], page["itemsPerPage"], page["totalResults"]) == (2, 1, 3)
    assert [e["id"] for e in page["entry"]] == ids[2:]
    page = await (await api.get("/uapi/phoneCalls/@me/0003*210?startIndex=10")).json()
    assert (page["startIndex"], page["itemsPerPage"], page["totalResults"], page["entry"]) == (
        10,
        0,
        3,
        [],
    )
    assert (await api.get("/uapi/phoneCalls/@me/0003*210?count=4999")).status == 200
    assert (await api.get("/uapi/phoneCalls/@me/0003*210?startIndex=4999")).status == 200
    for query in ("count=0", "count=5000"):  # VoipNow's range is 1..4999
        resp = await api.get(f"/uapi/phoneCalls/@me/0003*210?{query}")
        assert await error_of(resp) == (400, "count_invalid")


async def test_a_list_holds_20_calls_unless_count_says_otherwise(api: Api) -> None:
    """VoipNow's default page (was 100)."""
    ids = [api.pbx.call("PJSIP/0003*210", "PJSIP/pstn").id for _ in range(25)]
    everything = await (await api.get("/uapi/phoneCalls/@me/0003*210?count=25")).json()
    order = [e["id"] for e in everything["entry"]]
    assert sorted(order) == sorted(ids)
    page = await (await api.get("/uapi/phoneCalls/@me/0003*210")).json()
    assert (page["itemsPerPage"], page["totalResults"]) == (20, 25)
    assert [e["id"] for e in page["entry"]] == order[:20]
    page = await (await api.get("/uapi/phoneCalls/@me/0003*210?startIndex=20")).json()
    assert [e["id"] for e in page["entry"]] == order[20:]


# --------------------------------------------------------------------------- collection


LIST = "/uapi/phoneCalls/@me/0003*210"


async def _ids(api: Api, query: str) -> list[str]:
    resp = await api.get(f"{LIST}?{query}")
    if resp.status == 204:
        return []
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["totalResults"] == len(body["entry"])  # one page in these tests
    return [e["id"] for e in body["entry"]]


@pytest.fixture
def three(api: Api) -> list[str]:
    """Three calls of 0003*210 started one minute apart: EPOCH, EPOCH+60, EPOCH+120."""
    calls = [api.pbx.call("PJSIP/0003*210", "PJSIP/pstn") for _ in range(3)]
    for k, call in enumerate(calls):
        call.published = EPOCH + 60 * k
    return [c.id for c in calls]


async def test_filter_by_id(api: Api, three: list[str]) -> None:
    """The issue's example: filterBy=id&filterOp=equals&filterValue=abc answered a call
    whose id is not abc."""
    a, b, c = three
    assert await _ids(api, "filterBy=id&filterOp=equals&filterValue=abc") == []
    assert await _ids(api, f"filterBy=id&filterOp=equals&filterValue={b}") == [b]
    assert await _ids(api, f"filterBy=id&filterOp=inArray&filterValue={c},{a},ffff") == [a, c]
    assert await _ids(api, f"filterBy=id&filterOp=startsWith&filterValue={a[:12]}") == [a]
    assert await _ids(api, f"filterBy=id&filterValue={b[3:15]}") == [b]  # default: contains
    assert await _ids(api, "filterBy=id&filterOp=present") == three
    assert await _ids(api, f"filterBy=id&filterOp=greaterThan&filterValue={min(three)}") == [
        i for i in three if i > min(three)]


async def test_filter_by_published_compares_instants(api: Api, three: list[str]) -> None:
    a, b, c = three
    second = datetime.fromtimestamp(EPOCH + 60, UTC)
    paris = second.astimezone(timezone(timedelta(hours=1))).isoformat()  # same instant
    for value in (second.isoformat(), paris, second.strftime("%Y-%m-%dT%H:%M:%SZ")):
        q = quote(value, safe="")
        assert await _ids(api, f"filterBy=published&filterOp=equals&filterValue={q}") == [b]
        assert await _ids(api, f"filterBy=published&filterOp=greaterThan&filterValue={q}") == [c]
        assert await _ids(api, f"filterBy=published&filterOp=lessThan&filterValue={q}") == [a]
    day = quote(second.strftime("%Y-%m-%dT"), safe="")
    assert await _ids(api, f"filterBy=published&filterOp=startsWith&filterValue={day}") == three
    early = quote(datetime.fromtimestamp(EPOCH - 3600, UTC).isoformat(), safe="")
    assert await _ids(api, f"filterBy=published&filterOp=lessThan&filterValue={early}") == []
    resp = await api.get(f"{LIST}?filterBy=published&filterOp=lessThan&filterValue={early}")
    assert resp.status == 204  # nothing left after the filter, like no call at all


async def test_sort_order(api: Api, three: list[str]) -> None:
    assert await _ids(api, "") == three  # oldest first, as before
    assert await _ids(api, "sortOrder=ascending") == three
    assert await _ids(api, "sortOrder=descending") == three[::-1]
    page = await (await api.get(f"{LIST}?sortOrder=descending&count=1&startIndex=1")).json()
    assert [e["id"] for e in page["entry"]] == [three[1]]


async def test_fields(api: Api, three: list[str]) -> None:
    """fields=id,extension answered every field."""
    body = await (await api.get(f"{LIST}?fields=id,extension")).json()
    assert [set(e) for e in body["entry"]] == [{"id", "extension"}] * 3
    body = await (await api.get(f"{LIST}?fields=published")).json()
    assert [set(e) for e in body["entry"]] == [{"id", "published"}] * 3  # id always kept
    one = await (await api.get(f"{LIST}/{three[0]}?fields=phoneCallView,link")).json()
    assert set(one) == {"id", "phoneCallView", "link"}
    assert one["phoneCallView"][0]["extension"] == "0003*210"  # a view comes whole
    full = await (await api.get(f"{LIST}/{three[0]}")).json()
    assert {"extension", "ownerId", "published", "phoneCallView", "link"} <= set(full)


async def test_filter_sort_fields_and_paging_together(api: Api, three: list[str]) -> None:
    _a, b, _c = three
    since = quote(datetime.fromtimestamp(EPOCH, UTC).isoformat(), safe="")
    resp = await api.get(f"{LIST}?filterBy=published&filterOp=greaterThan&filterValue={since}"
                         "&sortOrder=descending&fields=id&count=1&startIndex=1")
    body = await resp.json()
    assert (body["startIndex"], body["itemsPerPage"], body["totalResults"]) == (1, 1, 2)
    assert body["entry"] == [{"id": b}]


async def test_hung_up_calls_leave_the_list(api: Api) -> None:
    api.pbx.call("PJSIP/0003*210", "PJSIP/pstn")
    a, b = api.pbx.last
    assert (await api.get("/uapi/phoneCalls/@me/0003*210")).status == 200
    api.pbx.hangup(b)
    api.pbx.hangup(a)
    assert (await api.get("/uapi/phoneCalls/@me/0003*210")).status == 204


# --------------------------------------------------------------------------- references


async def test_user_references(api: Api) -> None:
    call = api.pbx.call("PJSIP/0003*210", "PJSIP/pstn")
    for user in ("@me", "@viewer", "@owner", "12", "%40me"):
        for prefix in ("/uapi/phoneCalls", "/uapi/phoneCall"):
            resp = await api.get(f"{prefix}/{user}/0003*210")
            assert resp.status == 200, (prefix, user)
            (entry,) = (await resp.json())["entry"]
            assert entry["id"] == call.id
            # link.self always names the user by id, under the canonical plural path
            assert entry["link"]["self"] == f"{BASE_URL}/uapi/phoneCalls/12/0003*210/{call.id}"
            one = await api.get(f"{prefix}/{user}/0003*210/{call.id}")
            assert (await one.json()) == entry


async def test_self_lists_every_extension_of_the_user(api: Api) -> None:
    c1 = api.pbx.call("PJSIP/0003*210", "PJSIP/pstn")
    c2 = api.pbx.call("PJSIP/pstn", "PJSIP/0003*211", caller_num="7778888")
    c3 = api.pbx.call("PJSIP/0003*211", "PJSIP/0003*210")  # both of John's lines
    api.pbx.call("PJSIP/0003*212", "PJSIP/pstn")  # Jane's
    body = await (await api.get("/uapi/phoneCalls/@me/@self")).json()
    assert [(e["id"], e["extension"]) for e in body["entry"]] == [
        (c1.id, "0003*210"),
        (c2.id, "0003*211"),
        (c3.id, "0003*211"),  # the first of the user's extensions in the call
    ]
    assert body["entry"][2]["link"]["self"].endswith(f"/12/0003*211/{c3.id}")
    # one call through @self
    got = await (await api.get(f"/uapi/phoneCalls/@me/@self/{c2.id}")).json()
    assert got["extension"] == "0003*211"
    # ... but not somebody else's
    other = api.pbx.call("PJSIP/0003*213", "PJSIP/pstn")
    resp = await api.get(f"/uapi/phoneCalls/@me/@self/{other.id}")
    assert await error_of(resp) == (400, "pc_phonecall_invalid")


async def test_owner_with_self_is_user_invalid(api: Api) -> None:
    assert await error_of(await api.get("/uapi/phoneCalls/@owner/@self")) == (
        400,
        "user_invalid",
    )


async def test_organization_account_lists_a_user_of_its_organization(api: Api) -> None:
    call = api.pbx.call("PJSIP/0003*212", "PJSIP/pstn")
    body = await (await api.get("/uapi/phoneCalls/13/@self", who="org3")).json()
    assert [e["id"] for e in body["entry"]] == [call.id]
    assert body["entry"][0]["link"]["self"].endswith(f"/13/0003*212/{call.id}")
    assert (await api.get("/uapi/phoneCalls/@me/@self", who="org3")).status == 204


async def test_call_id_is_stable_and_derived_from_the_linkedid(api: Api) -> None:
    import hashlib

    call = api.pbx.call("PJSIP/0003*210", "PJSIP/pstn")
    linkedid = api.pbx.last[0].uniqueid
    assert call.id == hashlib.sha1(linkedid.encode()).hexdigest()[:20]
    assert linkedid.startswith(f"{EPOCH}.")


# --------------------------------------------------------------------------- PUT, no AMI


async def test_recording_disabled(api: Api) -> None:
    """0003*212: call recording off; 0003*213: recording "always", not on demand."""
    for ext in ("0003*212", "0003*213"):
        call = api.pbx.call(f"PJSIP/{ext}", "PJSIP/pstn")
        for fmt in ({}, {"format": "wav49"}):
            body = {"action": "StartRecording", "phoneCallViewId": "01", **fmt}
            resp = await api.put(f"/uapi/phoneCalls/@me/{ext}/{call.id}", body, who="jane")
            assert await error_of(resp) == (403, "pc_recording_disabled"), ext
        # the organization and the admin are held to the same phone terminal setup
        for who, user in (("org3", "13"), ("admin", "@owner")):
            body = {"action": "StartRecording", "phoneCallViewId": "01"}
            resp = await api.put(f"/uapi/phoneCalls/{user}/{ext}/{call.id}", body, who=who)
            assert await error_of(resp) == (403, "pc_recording_disabled")
        # Stopping: with recording off there is nothing to stop (200, no AMI action);
        # a recording "always" is not the app's to stop, for anyone.
        body = {"action": "StopRecording", "phoneCallViewId": "01"}
        for who, user in (("jane", "@me"), ("org3", "13"), ("admin", "@owner")):
            resp = await api.put(f"/uapi/phoneCalls/{user}/{ext}/{call.id}", body, who=who)
            if ext == "0003*212":
                assert resp.status == 200
            else:
                assert await error_of(resp) == (403, "pc_recording_disabled")
    assert api.spy.calls == []


async def test_recording_disabled_on_the_view_not_the_path(api: Api) -> None:
    """The policy is the recorded view's extension's, whatever the path's extension."""
    call = api.pbx.call("PJSIP/0003*210", "PJSIP/0003*212")  # John calls Jane
    body = {"action": "StartRecording", "phoneCallViewId": "02"}  # Jane's view
    resp = await api.put(f"/uapi/phoneCalls/12/0003*210/{call.id}", body, who="org3")
    assert await error_of(resp) == (403, "pc_recording_disabled")
    assert api.spy.calls == []


async def test_unanswered_view_is_409(api: Api) -> None:
    call = api.pbx.call("PJSIP/pstn", "PJSIP/0003*210", caller_num="7778888", answered=False)
    body = {"action": "StartRecording", "phoneCallViewId": "01"}
    resp = await api.put(f"/uapi/phoneCalls/@me/0003*210/{call.id}", body)
    assert await error_of(resp) == (409, "pc_phonecallview_state")
    assert api.spy.calls == []


async def test_stop_when_not_recording_is_200_and_idempotent(api: Api) -> None:
    call = api.pbx.call("PJSIP/0003*210", "PJSIP/pstn")
    body = {"action": "StopRecording", "phoneCallViewId": "01"}
    for prefix in ("/uapi/phoneCalls", "/uapi/phoneCall"):
        resp = await api.put(f"{prefix}/@me/0003*210/{call.id}", body)
        assert resp.status == 200
        got = await resp.json()
        assert got["id"] == call.id and "recording" not in got["phoneCallView"][0]
    assert api.spy.calls == []


async def test_start_when_already_recording_is_200_and_sends_nothing(api: Api) -> None:
    """The idempotent branch: the view records already (a *1 recording, seen through the
    MixMonitorStart event), so StartRecording answers the current state."""
    call = api.pbx.call("PJSIP/0003*210", "PJSIP/pstn")
    a, _b = api.pbx.last
    api.pbx.feed(
        {
            "Event": "MixMonitorStart",
            "Channel": a.name,
            "Uniqueid": a.uniqueid,
            "Linkedid": a.linkedid,
            "Timestamp": f"{EPOCH + 100}.0",
        }
    )
    body = {"action": "StartRecording", "format": "wav49", "phoneCallViewId": "01"}
    resp = await api.put(f"/uapi/phoneCalls/@me/0003*210/{call.id}", body)
    assert resp.status == 200
    view = (await resp.json())["phoneCallView"][0]
    assert view["recording"].startswith("2026-")
    assert api.spy.calls == []


# --------------------------------------------------------------------------- 503


@pytest.mark.parametrize("state", ["not_ready", "not_connected"])
async def test_503_while_the_pbx_is_down(api: Api, monkeypatch, state: str) -> None:
    from tests.unit.api_support import force_connected

    call = api.pbx.call("PJSIP/0003*210", "PJSIP/pstn")
    if state == "not_ready":
        api.bridge.ready = False
    else:
        force_connected(monkeypatch, api.bridge.ami, False)
    requests = [
        api.get("/uapi/phoneCalls/@me/0003*210"),
        api.get("/uapi/phoneCalls/@me/@self"),
        api.get(f"/uapi/phoneCalls/@me/0003*210/{call.id}"),
        api.get(f"/uapi/phoneCall/@me/0003*210/{call.id}"),
        api.put(
            f"/uapi/phoneCalls/@me/0003*210/{call.id}",
            {"action": "StartRecording", "phoneCallViewId": "01"},
        ),
        api.put(
            f"/uapi/phoneCalls/@me/0003*210/{call.id}",
            {"action": "StopRecording", "phoneCallViewId": "01"},
        ),
    ]
    start = time.monotonic()
    for resp in await asyncio.gather(*requests):
        assert await error_of(resp) == (503, "pbx_unavailable")
    assert time.monotonic() - start < 2.0  # never hangs
    assert api.spy.calls == []


async def test_503_with_the_real_never_connected_client(aiohttp_client, tmp_path) -> None:
    """No faking at all: the bridge's AMI client points at a closed port."""
    api = await Api.start(aiohttp_client, tmp_path)
    assert not api.bridge.ami.connected
    assert await error_of(await api.get("/uapi/phoneCalls/@me/0003*210")) == (
        503,
        "pbx_unavailable",
    )


# --------------------------------------------------------------------------- 413


async def test_body_too_large(api: Api) -> None:
    call = api.pbx.call("PJSIP/0003*210", "PJSIP/pstn")
    big = b'{"action":"StartRecording","phoneCallViewId":"01","x":"' + b"a" * 20000 + b'"}'
    resp = await api.put(f"/uapi/phoneCalls/@me/0003*210/{call.id}", big)
    assert await error_of(resp) == (413, "body_too_large")
    # just under the limit is parsed (and refused for its unknown field)
    limit = api.settings.http.body_limit
    head = b'{"action":"StartRecording","phoneCallViewId":"01","x":"'
    fits = head + b"a" * (limit - len(head) - 2) + b'"}'
    assert len(fits) == limit
    resp = await api.put(f"/uapi/phoneCalls/@me/0003*210/{call.id}", fits)
    assert await error_of(resp) == (400, "body_invalid")
    assert api.spy.calls == []


async def test_body_limit_is_configurable(aiohttp_client, tmp_path, monkeypatch) -> None:
    api = await Api.start(aiohttp_client, tmp_path, body_limit=100)
    api.ready(monkeypatch)
    call = api.pbx.call("PJSIP/0003*210", "PJSIP/pstn")
    body = {"action": "StopRecording", "phoneCallViewId": "01", "format": "wav"}
    assert (await api.put(f"/uapi/phoneCalls/@me/0003*210/{call.id}", body)).status == 200
    body["pad"] = "x" * 100
    resp = await api.put(f"/uapi/phoneCalls/@me/0003*210/{call.id}", body)
    assert await error_of(resp) == (413, "body_too_large")
