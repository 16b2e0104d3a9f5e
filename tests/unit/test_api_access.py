"""Who may see and act on what, through every route: user / organization / admin x own /
sibling (same organization, another user) / other organization.

Refusals: inside the requester's organization 403 ``access_denied``; outside it, the
extension or user is answered exactly like an unknown one (400, same body byte for
byte), so a tenant cannot enumerate another's extensions and users."""

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
ORG_OF_WHO = {"john": 3, "jane": 3, "other": 4, "org3": 3, "org4": 4, "admin": None}
ORG_OF_TARGET = {"own": 3, "sibling": 3, "other_org": 4}


def refused(who: str, target: str, unknown: str = "extension_invalid") -> tuple[int, str]:
    """The refusal for a target outside the requester's context: 403 within its own
    organization; outside it, what an unknown extension (or user) gets."""
    if ORG_OF_WHO[who] == ORG_OF_TARGET[target]:
        return 403, "access_denied"
    return 400, unknown


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
            assert await error_of(resp) == refused(who, target), (who, target, user_ref)


@pytest.mark.parametrize(("who", "target"), MATRIX)
async def test_get_one(api: Api, calls: dict[str, str], who: str, target: str) -> None:
    uid, ext, _ = TARGETS[target]
    resp = await api.get(f"/uapi/phoneCalls/{uid}/{ext}/{calls[target]}", who=who)
    if target in ALLOWED[who]:
        assert resp.status == 200
        assert (await resp.json())["id"] == calls[target]
    else:
        assert await error_of(resp) == refused(who, target)


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
        assert await error_of(resp) == refused(who, target)
    assert api.spy.calls == []


@pytest.mark.parametrize(("who", "target"), MATRIX)
async def test_self_of_another_user(api: Api, calls: dict[str, str], who: str, target: str):
    uid, _, _ = TARGETS[target]
    resp = await api.get(f"/uapi/phoneCalls/{uid}/@self", who=who)
    if target in ALLOWED[who]:
        assert resp.status == 200
        assert [e["id"] for e in (await resp.json())["entry"]] == [calls[target]]
    else:
        assert await error_of(resp) == refused(who, target, "user_invalid")


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


# --------------------------------------------------------------------------- unknown = foreign

UNKNOWN_EXT = "0003*299"  # well-formed, in no directory
UNKNOWN_USER = "99"
HEADERS_THAT_MATTER = ("Content-Type", "Content-Length", "Cache-Control", "WWW-Authenticate")


async def _reply(resp) -> tuple:
    """Everything a client sees of an answer, but the Date header."""
    headers = tuple(resp.headers.get(h) for h in HEADERS_THAT_MATTER)
    return resp.status, headers, await resp.read()


async def _all_routes(api: Api, who: str, user_ref: str, ext_ref: str, call: str) -> list:
    base = f"/uapi/phoneCalls/{user_ref}/{ext_ref}"
    body = {"action": "StartRecording", "phoneCallViewId": "01"}
    return [
        await _reply(await api.get(base, who=who)),
        await _reply(await api.get(f"{base}/{call}", who=who)),
        await _reply(await api.put(f"{base}/{call}", body, who=who)),
        await _reply(await api.get(f"/uapi/phoneCall/{user_ref}/{ext_ref}", who=who)),
    ]


@pytest.mark.parametrize("who", ["john", "jane", "org3"])
async def test_another_tenants_extension_is_answered_like_an_unknown_one(
    api: Api, calls: dict[str, str], who: str
) -> None:
    """Organization 4's 0004*210, a live call on it, under every kind of userId: status,
    headers and body byte-identical to an extension that does not exist. (Before: 403
    and, through @owner, "user 20 is outside your context".)"""
    call = calls["other_org"]
    for user_ref in ("@me", "@viewer", "@owner", "20", "12"):
        foreign = await _all_routes(api, who, user_ref, "0004*210", call)
        unknown = await _all_routes(api, who, user_ref, UNKNOWN_EXT, call)
        assert foreign == unknown, (who, user_ref)
        assert foreign[0][0] == 400 and b'"extension_invalid"' in foreign[0][2]
        assert b"20" not in foreign[0][2]


@pytest.mark.parametrize("who", ["other", "org4"])
async def test_another_tenants_user_is_answered_like_an_unknown_one(
    api: Api, calls: dict[str, str], who: str
) -> None:
    """Users 12 and 13 (and the organization account 2, and the admin 1) seen from
    organization 4: with @self and with one of organization 4's own extensions, like the
    unknown user 99."""
    for uid in ("12", "13", "2", "1"):
        for ext_ref in ("@self", "0004*210"):
            foreign = await _all_routes(api, who, uid, ext_ref, calls["own"])
            unknown = await _all_routes(api, who, UNKNOWN_USER, ext_ref, calls["own"])
            assert foreign == unknown, (who, uid, ext_ref)
            assert foreign[0][0] == 400 and b'"user_invalid"' in foreign[0][2]


async def test_within_the_organization_a_refusal_is_403_and_owner_names_no_id(
    api: Api, calls: dict[str, str]
) -> None:
    """John may know Jane and her extensions exist (same organization): 403. Through
    @owner the answer does not name her id."""
    resp = await api.get("/uapi/phoneCalls/@owner/0003*213", who="john")
    assert await error_of(resp) == (403, "access_denied")
    assert "13" not in (await resp.json())["error"]["message"]
    resp = await api.get("/uapi/phoneCalls/13/@self", who="john")
    assert await error_of(resp) == (403, "access_denied")


async def test_the_admin_sees_every_tenant(api: Api, calls: dict[str, str]) -> None:
    for uid, ext, _ in TARGETS.values():
        for user_ref in (uid, "@owner"):
            resp = await api.get(f"/uapi/phoneCalls/{user_ref}/{ext}", who="admin")
            assert resp.status == 200
    resp = await api.get(f"/uapi/phoneCalls/{UNKNOWN_USER}/@self", who="admin")
    assert await error_of(resp) == (400, "user_invalid")


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
