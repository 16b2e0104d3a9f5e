"""The full context matrix on live calls of the real PBX, through the real HTTP server:
user / organization / admin (and a user of the other tenant) x their own tenant's,
a sibling user's and a foreign tenant's extensions x every route (GET list, GET one,
PUT StartRecording, PUT StopRecording, both path prefixes, numeric and @owner user).

Nothing leaks: a list holds exactly the calls of the extension in the path, each with
only the views the requester may see; a call the path's extension is not in, or a view
the requester may not act on, is answered exactly like one that does not exist (same
status, same body); outside the requester's context every route says 403 whatever the
call id, as long as the extension or user is in the requester's own organization;
outside it, every route answers exactly like an unknown extension or user (400, the
same body byte for byte, under @owner, @me, a numeric id or with @self).

The calls (directory: John 12 owns 0003*210/211, Jane 13 owns 0003*212/213, both in
organization 3; user 20 owns 0004*210 in organization 4):
  own      0003*210 alone
  mixed    0003*211 -> 0003*213 (John and Jane)
  foreign  0004*210 -> 0003*212 (the other tenant calls Jane)
  far      0004*210 alone
  sibling  0003*212 alone
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from devtools.phones import Phone
from pbx_bridge.calls.tracker import call_id
from tests.reliability.support import (
    ADMIN,
    ALWAYS_RECORDED,
    JANE,
    JOHN,
    ORG3,
    OTHER,
    OWNER,
    RECORDABLE,
    Api,
    Calls,
    Reply,
    report,
    serve,
    until,
    wait_consistent,
)

ORG_OF = {JOHN: 3, JANE: 3, OTHER: 4}
PRINCIPALS = {"user": JOHN, "organization": ORG3, "admin": ADMIN, "other tenant": OTHER}
TENANT = {"0003*210": "own", "0003*211": "own", "0003*212": "sibling",
          "0003*213": "sibling", "0004*210": "foreign"}  # as seen from John
MISSING = "0123456789abcdef0123"  # well-formed, no such call
UNKNOWN_EXT = "0003*299"  # well-formed, no such extension
UNKNOWN_USER = "99"


def org_of(principal: int) -> int | None:
    return {ORG3: 3, ADMIN: None}.get(principal, ORG_OF.get(principal))


def same_org(principal: int, ext: str) -> bool:
    return org_of(principal) == ORG_OF[OWNER[ext]]


def visible(principal: int, ext: str) -> bool:
    if principal == ADMIN:
        return True
    if principal == ORG3:
        return ORG_OF[OWNER[ext]] == 3
    return OWNER[ext] == principal


@dataclass
class LiveView:
    id: str
    exts: list[str]  # in view order
    view_ids: dict[str, str]


@pytest.fixture
async def matrix(pbx, observer, tmp_path) -> AsyncIterator[tuple[Api, dict[str, LiveView]]]:
    calls = Calls(pbx, observer.client, observer)
    answering: list[Phone] = []
    try:
        async with serve(pbx, tmp_path) as api:
            for ext in ("0003*212", "0003*213"):  # registered phones that answer at once
                answering.append(await Phone(pbx, ext, auto_answer=True).start())
            await calls.add_phones(1)
            plan = {
                "own": ("0003*210", "public-sim", "7778888"),
                "mixed": ("0003*211", "from-internal", "0003*213"),
                "foreign": ("0004*210", "from-internal", "0003*212"),
                "far": ("0004*210", "public-sim", "7778888"),
                "sibling": ("0003*212", "public-sim", "7778888"),
            }
            live: dict[str, LiveView] = {}
            for name, (ext, context, exten) in plan.items():
                c = await calls.start(ext, context=context, exten=exten)
                cid = call_id(c.uniqueid)
                want = 2 if context == "from-internal" else 1

                def both_up(cid: str = cid, want: int = want) -> bool:
                    call = api.bridge.tracker.call(cid)
                    return call is not None and len(call.extensions()) == want and all(
                        ch.state == 6 and (ch.extension not in ALWAYS_RECORDED
                                           or ch.recording is not None)
                        for ch in call.channels.values() if ch.extension)

                await until(both_up, 15, f"call {name} answered")
                call = api.bridge.tracker.call(cid)
                live[name] = LiveView(cid, call.extensions(), dict(call.view_ids))
            await wait_consistent(api.bridge, observer.client)
            yield api, live
    finally:
        for phone in answering:
            await phone.stop()
        await calls.close()


HEADERS_THAT_MATTER = ("Content-Type", "Content-Length", "Cache-Control", "WWW-Authenticate")


def _same(a: Reply, b: Reply) -> bool:
    """Byte-identical to a client: status, body and every header but Date."""
    def seen(r: Reply) -> tuple:
        return r.status, r.text, tuple(r.headers.get(h) for h in HEADERS_THAT_MATTER)
    return seen(a) == seen(b)


def _check_no_leak(principal: int, target: str, body: dict, live: dict[str, LiveView]) -> None:
    """A 200 body: only calls of `target`, only views the principal may see."""
    entries = body["entry"] if "entry" in body else [body]
    ids_of_target = {c.id for c in live.values() if target in c.exts}
    for entry in entries:
        assert entry["id"] in ids_of_target, (principal, target, entry["id"])
        call = next(c for c in live.values() if c.id == entry["id"])
        expected = [e for e in call.exts if visible(principal, e)]
        assert [v["extension"] for v in entry["phoneCallView"]] == expected, (
            principal, target, entry)
        assert [v["id"] for v in entry["phoneCallView"]] == [call.view_ids[e] for e in expected]
    text = str(body)
    assert not re.search(r"PJSIP/|Local/|\d{10}\.\d+", text), "no channel names or Linkedids"


async def test_context_matrix(matrix) -> None:
    api, live = matrix
    n = 0
    outcome: dict[str, dict[str, str]] = {}
    for role, principal in PRINCIPALS.items():
        for target, tenant in TENANT.items():
            cell = f"{tenant} {target}"
            allowed = visible(principal, target)
            for prefix in ("/uapi/phoneCalls", "/uapi/phoneCall"):
                for user in (str(OWNER[target]), "@owner"):
                    base = f"{prefix}/{user}/{target}"
                    def req(m: str, p: str, b: dict | None = None, who: int = principal):
                        return api.request(m, p, user=who, json_body=b)
                    missing = {
                        "get": await req("GET", f"{base}/{MISSING}"),
                        "start": await req("PUT", f"{base}/{MISSING}", {
                            "action": "StartRecording", "phoneCallViewId": "01"}),
                        "stop": await req("PUT", f"{base}/{MISSING}", {
                            "action": "StopRecording", "phoneCallViewId": "01"}),
                    }
                    n += 3
                    r = await req("GET", base)
                    n += 1
                    if not allowed and same_org(principal, target):
                        assert (r.status, r.code) == (403, "access_denied"), (role, cell, r.text)
                        for m in missing.values():
                            assert _same(m, r), (role, cell, m.text)
                    elif not allowed:
                        # Another tenant's extension: exactly an unknown one, every route.
                        ghost = f"{prefix}/{user}/{UNKNOWN_EXT}"
                        u = await req("GET", ghost)
                        n += 1
                        assert (r.status, r.code) == (400, "extension_invalid"), (role, cell)
                        assert _same(r, u), (role, cell, r.text, u.text)
                        for key, m in missing.items():
                            body = None if key == "get" else {
                                "action": "StartRecording" if key == "start" else
                                "StopRecording", "phoneCallViewId": "01"}
                            um = await req("PUT" if body else "GET", f"{ghost}/{MISSING}", body)
                            n += 1
                            assert _same(m, um) and _same(m, r), (role, cell, key, m.text)
                    elif r.status == 200:
                        _check_no_leak(principal, target, r.body, live)
                        assert {e["id"] for e in r.body["entry"]} == {
                            c.id for c in live.values() if target in c.exts}
                    else:
                        pytest.fail(f"{role} {cell}: {r.status} {r.text}")
                    outcome.setdefault(role, {})[cell] = str(r.status)
                    for name, call in live.items():
                        mine = target in call.exts
                        g = await req("GET", f"{base}/{call.id}")
                        n += 1
                        if not allowed:
                            assert _same(g, missing["get"]), (role, cell, name, g.text)
                            continue
                        if not mine:  # a call the path's extension is not in = missing
                            assert _same(g, missing["get"]), (role, cell, name, g.text)
                            assert (g.status, g.code) == (400, "pc_phonecall_invalid")
                        else:
                            assert g.status == 200, g.text
                            _check_no_leak(principal, target, g.body, live)
                        for action in ("StartRecording", "StopRecording"):
                            key = "start" if action == "StartRecording" else "stop"
                            for ext in call.exts:  # every view of the call, visible or not
                                body = {"action": action, "phoneCallViewId": call.view_ids[ext]}
                                p = await req("PUT", f"{base}/{call.id}", body)
                                n += 1
                                if not mine:
                                    assert _same(p, missing[key]), (role, cell, name, p.text)
                                elif not visible(principal, ext):
                                    # Someone else's view: exactly like a view that is not
                                    # there.
                                    ghost = await req("PUT", f"{base}/{call.id}", {
                                        "action": action, "phoneCallViewId": "09"})
                                    assert _same(p, ghost), (role, cell, name, p.text)
                                    assert (p.status, p.code) == (400,
                                                                  "pc_phonecallview_invalid")
                                elif ext in ALWAYS_RECORDED:
                                    # Recorded by the setup: neither started nor stopped
                                    # by an app, and the view shows it recording.
                                    assert (p.status, p.code) == (403, "pc_recording_disabled")
                                    assert "recording" in next(
                                        v for v in g.body["phoneCallView"]
                                        if v["extension"] == ext), g.text
                                elif action == "StartRecording" and ext not in RECORDABLE:
                                    assert (p.status, p.code) == (403, "pc_recording_disabled")
                                else:
                                    assert p.status == 200, (role, cell, name, p.text)
                                    _check_no_leak(principal, target, p.body, live)
                                    view = next(v for v in p.body["phoneCallView"]
                                                if v["extension"] == ext)
                                    assert ("recording" in view) == (action == "StartRecording")
    # @self lists: the user's extensions the requester may see, nothing else.
    for principal, user, exts in ((JOHN, "@me", ("0003*210", "0003*211")),
                                  (ORG3, "13", ("0003*212", "0003*213")),
                                  (OTHER, "@me", ("0004*210",)),
                                  (ADMIN, "20", ("0004*210",))):
        r = await api.request("GET", f"/uapi/phoneCalls/{user}/@self", user=principal)
        n += 1
        assert r.status == 200, r.text
        assert {e["id"] for e in r.body["entry"]} == {
            c.id for c in live.values() if set(c.exts) & set(exts)}
        for e in r.body["entry"]:
            assert all(visible(principal, v["extension"]) for v in e["phoneCallView"])
    # Another tenant's users and extensions through @me and @self: like unknown ones.
    for principal, foreign_users, foreign_exts in (
        (JOHN, (OTHER,), ("0004*210",)),
        (ORG3, (OTHER,), ("0004*210",)),
        (OTHER, (JOHN, JANE, ORG3, ADMIN), ("0003*210", "0003*212", "0003*213")),
    ):
        for uid in foreign_users:
            r = await api.request("GET", f"/uapi/phoneCalls/{uid}/@self", user=principal)
            u = await api.request("GET", f"/uapi/phoneCalls/{UNKNOWN_USER}/@self",
                                  user=principal)
            n += 2
            assert (r.status, r.code) == (400, "user_invalid") and _same(r, u), (principal, uid)
        for ext in foreign_exts:
            for user in ("@me", "@owner"):
                call = next(c.id for c in live.values() if ext in c.exts)
                for suffix in ("", f"/{call}"):
                    r = await api.request("GET", f"/uapi/phoneCalls/{user}/{ext}{suffix}",
                                          user=principal)
                    u = await api.request("GET", f"/uapi/phoneCalls/{user}/{UNKNOWN_EXT}{suffix}",
                                          user=principal)
                    n += 2
                    assert (r.status, r.code) == (400, "extension_invalid"), (principal, ext)
                    assert _same(r, u) and "outside" not in r.text, (principal, ext, r.text)
    await asyncio.sleep(0)
    report("context_matrix", requests=n, list_status=outcome)
