"""Who may see and act on what, through every route: user / organization / admin x own /
sibling (same organization, another user) / other organization."""

from __future__ import annotations

import pytest

from tests.unit.api_support import Api, error_of


@pytest.fixture
async def api(aiohttp_client, tmp_path, monkeypatch) -> Api:
    api = await Api.start(aiohttp_client, tmp_path)
    api.ready(monkeypatch)
    return api


# The three targets: John's own line, his sibling Jane's, and user 20's in organization 4.
TARGETS = {
    "own": ("12", "0003*210", "PJSIP/0003*210"),
    "sibling": ("13", "0003*213", "PJSIP/0003*213"),
    "other_org": ("20", "0004*210", "PJSIP/0004*210"),
}
ALLOWED = {
    "john": {"own"},
    "jane": {"sibling"},
    "other": {"other_org"},
    "org3": {"own", "sibling"},
    "org4": {"other_org"},
    "admin": {"own", "sibling", "other_org"},
}
MATRIX = [(who, target) for who in ALLOWED for target in TARGETS]


@pytest.fixture
async def calls(api: Api) -> dict[str, str]:
    """One answered call to the public network on each target extension."""
    return {name: api.pbx.call(dev, "PJSIP/pstn").id for name, (_, _, dev) in TARGETS.items()}


@pytest.mark.parametrize(("who", "target"), MATRIX)
async def test_list(api: Api, calls: dict[str, str], who: str, target: str) -> None:
    uid, ext, _ = TARGETS[target]
    for user_ref in (uid, "@owner"):
        resp = await api.get(f"/uapi/phoneCalls/{user_ref}/{ext}", who=who)
        if target in ALLOWED[who]:
            assert resp.status == 200, (who, target, user_ref)
            body = await resp.json()
            assert [e["id"] for e in body["entry"]] == [calls[target]]
        else:
            assert await error_of(resp) == (403, "access_denied"), (who, target, user_ref)


@pytest.mark.parametrize(("who", "target"), MATRIX)
async def test_get_one(api: Api, calls: dict[str, str], who: str, target: str) -> None:
    uid, ext, _ = TARGETS[target]
    resp = await api.get(f"/uapi/phoneCalls/{uid}/{ext}/{calls[target]}", who=who)
    if target in ALLOWED[who]:
        assert resp.status == 200
        assert (await resp.json())["id"] == calls[target]
    else:
        assert await error_of(resp) == (403, "access_denied")


@pytest.mark.parametrize(("who", "target"), MATRIX)
async def test_put(api: Api, calls: dict[str, str], who: str, target: str) -> None:
    """StopRecording on a view that is not recording: 200, nothing sent to AMI (but
    403 pc_recording_disabled on the sibling's 0003*213, which records every call)."""
    uid, ext, _ = TARGETS[target]
    body = {"action": "StopRecording", "phoneCallViewId": "01"}
    resp = await api.put(f"/uapi/phoneCalls/{uid}/{ext}/{calls[target]}", body, who=who)
    if target in ALLOWED[who] and target == "sibling":
        assert await error_of(resp) == (403, "pc_recording_disabled")
    elif target in ALLOWED[who]:
        assert resp.status == 200
        got = await resp.json()
        assert got["id"] == calls[target]
        assert "recording" not in got["phoneCallView"][0]
    else:
        assert await error_of(resp) == (403, "access_denied")
    assert api.spy.calls == []


@pytest.mark.parametrize(("who", "target"), MATRIX)
async def test_self_of_another_user(api: Api, calls: dict[str, str], who: str, target: str):
    uid, _, _ = TARGETS[target]
    resp = await api.get(f"/uapi/phoneCalls/{uid}/@self", who=who)
    if target in ALLOWED[who]:
        assert resp.status == 200
        assert [e["id"] for e in (await resp.json())["entry"]] == [calls[target]]
    else:
        assert await error_of(resp) == (403, "access_denied")


@pytest.mark.parametrize(
    ("who", "expected"),
    [("john", (403, "access_denied")), ("org3", (400, "extension_invalid")),
     ("admin", (400, "extension_invalid"))],
)
async def test_me_with_an_extension_that_is_not_mine(api: Api, calls, who: str,
                                                     expected: tuple[int, str]) -> None:
    """``@me`` names the token's user. Jane's 0003*213 under it: outside John's context,
    so access_denied (as under its owner's id); within the organization's and the
    admin's, but not theirs (they own no extension), so extension_invalid."""
    for method in ("get", "put"):
        if method == "get":
            resp = await api.get("/uapi/phoneCalls/@me/0003*213", who=who)
        else:
            resp = await api.put(f"/uapi/phoneCalls/@me/0003*213/{calls['sibling']}",
                                 {"action": "StopRecording", "phoneCallViewId": "01"}, who=who)
        assert await error_of(resp) == expected, method


async def test_a_foreign_call_is_indistinguishable_from_a_missing_one(
    api: Api, calls: dict[str, str]
) -> None:
    # Jane's call and the other organization's, asked for through John's own extension.
    for target in ("sibling", "other_org"):
        resp = await api.get(f"/uapi/phoneCalls/@me/0003*210/{calls[target]}")
        missing = await api.get(f"/uapi/phoneCalls/@me/0003*210/{'f' * 20}")
        assert await error_of(resp) == await error_of(missing) == (400, "pc_phonecall_invalid")
        assert (await resp.json())["error"]["message"] == (await missing.json())["error"]["message"]
        body = {"action": "StopRecording", "phoneCallViewId": "01"}
        resp = await api.put(f"/uapi/phoneCalls/@me/0003*210/{calls[target]}", body)
        assert await error_of(resp) == (400, "pc_phonecall_invalid")


async def test_views_are_filtered_to_what_the_requester_may_see(api: Api) -> None:
    """John calls Jane, who is in his organization; then user 20 (organization 4)."""
    local = api.pbx.call("PJSIP/0003*210", "PJSIP/0003*212")
    cross = api.pbx.call("PJSIP/0003*211", "PJSIP/0004*210")

    async def views(who: str, path: str) -> list[tuple[str, str]]:
        resp = await api.get(path, who=who)
        assert resp.status == 200, await resp.text()
        return [(v["id"], v["extension"]) for v in (await resp.json())["phoneCallView"]]

    path = f"/uapi/phoneCalls/12/0003*210/{local.id}"
    assert await views("john", path) == [("01", "0003*210")]
    assert await views("org3", path) == [("01", "0003*210"), ("02", "0003*212")]
    assert await views("admin", path) == [("01", "0003*210"), ("02", "0003*212")]
    assert await views("jane", f"/uapi/phoneCalls/@me/0003*212/{local.id}") == [("02", "0003*212")]
    assert await views("john", f"/uapi/phoneCalls/@me/0003*211/{cross.id}") == [("01", "0003*211")]
    assert await views("other", f"/uapi/phoneCalls/@me/0004*210/{cross.id}") == [("02", "0004*210")]
    assert await views("org4", f"/uapi/phoneCalls/20/0004*210/{cross.id}") == [("02", "0004*210")]


async def test_a_view_the_requester_may_not_act_on(api: Api) -> None:
    local = api.pbx.call("PJSIP/0003*210", "PJSIP/0003*212")
    for view in ("02", "03"):  # Jane's view; no such view
        body = {"action": "StopRecording", "phoneCallViewId": view}
        resp = await api.put(f"/uapi/phoneCalls/@me/0003*210/{local.id}", body)
        assert await error_of(resp) == (400, "pc_phonecallview_invalid")
    # The organization account may act on both views, through either extension.
    body = {"action": "StopRecording", "phoneCallViewId": "02"}
    resp = await api.put(f"/uapi/phoneCalls/12/0003*210/{local.id}", body, who="org3")
    assert resp.status == 200
    assert api.spy.calls == []


async def test_a_view_that_left_the_call(api: Api) -> None:
    """A view whose leg hung up while the call goes on: recording it is 409
    pc_phonecallview_state ("already hung up", CONTRACT section 2), stopping it a no-op
    (200); no AMI action either way. Under a requester who may not act on it, it stays
    indistinguishable from a view that never was (400)."""
    call = api.pbx.call("PJSIP/0003*210", "PJSIP/0003*212")  # John calls Jane
    _a, b = api.pbx.last
    api.pbx.hangup(b)  # Jane's leg ends; John's channel is still there
    url = f"/uapi/phoneCalls/12/0003*210/{call.id}"
    resp = await api.put(url, {"action": "StartRecording", "phoneCallViewId": "02"}, who="org3")
    assert await error_of(resp) == (403, "pc_recording_disabled")  # Jane's 0003*212: off
    resp = await api.put(url, {"action": "StopRecording", "phoneCallViewId": "02"}, who="org3")
    assert resp.status == 200
    assert [v["id"] for v in (await resp.json())["phoneCallView"]] == ["01"]
    resp = await api.put(url, {"action": "StopRecording", "phoneCallViewId": "02"}, who="john")
    assert await error_of(resp) == (400, "pc_phonecallview_invalid")  # not John's to see

    call = api.pbx.call("PJSIP/0003*210", "PJSIP/0003*211")  # John's two lines
    _a, b = api.pbx.last
    api.pbx.hangup(b)
    url = f"/uapi/phoneCalls/@me/0003*210/{call.id}"
    resp = await api.put(url, {"action": "StartRecording", "phoneCallViewId": "02"})
    assert await error_of(resp) == (409, "pc_phonecallview_state")
    assert "hung up" in (await resp.json())["error"]["message"]
    resp = await api.put(url, {"action": "StopRecording", "phoneCallViewId": "02"})
    assert resp.status == 200
    resp = await api.put(url, {"action": "StopRecording", "phoneCallViewId": "03"})
    assert await error_of(resp) == (400, "pc_phonecallview_invalid")  # never a view
    assert api.spy.calls == []
