"""The PhoneCall shape is written once (pbx_bridge/calls/model.py) and the OpenAPI
document is generated from it: every PhoneCall the service renders must validate against
that document. Two sources of rendered calls:

- every captured transcript (tests/fixtures/*.jsonl) through the stable `pbx-bridge
  replay --trace` CLI, after every event (so this does not depend on where the renderer
  lives);
- the API's own answers (list, one, `fields`, PUT). tests/unit/api_support.py checks
  every 200 PhoneCalls answer of the unit tier the same way; the test here builds calls
  in every state it can and asks for each field on its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pbx_bridge.api import collection
from tests.support.openapi import answer_schema, component, validator
from tests.unit.api_support import EPOCH, Api

REPO = Path(__file__).resolve().parents[2]
TRANSCRIPTS = sorted((REPO / "tests" / "fixtures").glob("*.jsonl"))
DIRECTORY = REPO / "config" / "directory.example.toml"
CLI = Path(sys.executable).with_name("pbx-bridge")


def replayed_calls(transcript: Path) -> list[dict]:
    """Every distinct PhoneCall the replay renders, after any event of ``transcript``."""
    out = subprocess.run(
        [str(CLI), "replay", str(transcript), "--trace", "--directory", str(DIRECTORY)],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout
    seen: dict[str, dict] = {}
    for line in out.splitlines():
        for call in json.loads(line)["calls"]:
            seen.setdefault(json.dumps(call, sort_keys=True), call)
    return list(seen.values())


def test_there_are_transcripts() -> None:
    assert len(TRANSCRIPTS) >= 10, TRANSCRIPTS


@pytest.mark.parametrize("transcript", TRANSCRIPTS, ids=lambda p: p.stem)
def test_every_replayed_phonecall_matches_the_document(transcript: Path) -> None:
    calls = replayed_calls(transcript)
    assert calls, f"{transcript.name} never shows a live call"
    schema = component("PhoneCall")
    for call in calls:
        schema.validate(call)


def test_the_check_fails_on_a_shape_the_document_does_not_have() -> None:
    """The schema is closed and typed, so a renamed, mistyped or null field is caught."""
    call = replayed_calls(REPO / "tests" / "fixtures" / "a_calls_b.jsonl")[-1]
    view = call["phoneCallView"][0]
    wrong = [
        {**{k: v for k, v in call.items() if k != "extension"}, "Extension": "0003*210"},
        {**call, "answered": None},
        {**call, "id": call["id"].upper()},
        {**call, "phoneCallView": [{**view, "status": 5}]},
        {**call, "phoneCallView": [{**view, "callerID": view.get("callerId", "")}]},
        {**call, "published": "yesterday"},
    ]
    schema = component("PhoneCall")
    assert schema.is_valid(call)
    for bad in wrong:
        assert not schema.is_valid(bad), bad


@pytest.fixture
async def api(aiohttp_client, tmp_path, monkeypatch) -> Api:
    api = await Api.start(aiohttp_client, tmp_path)
    api.ready(monkeypatch)
    return api


async def test_every_phonecall_the_api_answers_matches_the_document(api: Api) -> None:
    recorded = api.pbx.call("PJSIP/pstn", "PJSIP/0003*210", caller_num="7778888",
                            caller_name="Bob")
    _pstn, leg = api.pbx.last
    api.pbx.feed({"Event": "MixMonitorStart", "Channel": leg.name, "Uniqueid": leg.uniqueid,
                  "Linkedid": leg.linkedid, "Timestamp": f"{EPOCH + 100}.0"})
    calls = [  # (the call, the extension of its first view)
        (recorded, "0003*210"),
        (api.pbx.call("PJSIP/0003*210", "PJSIP/0003*211"), "0003*210"),  # two views
        (api.pbx.call("PJSIP/0003*211", "PJSIP/pstn", answered=False), "0003*211"),
    ]
    full = component("PhoneCall")
    checked = 0

    async def answer(method: str, path: str, body: dict | None = None) -> dict:
        nonlocal checked
        resp = await (api.get(path) if body is None else api.put(path, body))
        assert resp.status == 200, (path, await resp.text())
        got = await resp.json()
        # api_support validated it against the route's schema already; again, visibly:
        validator(answer_schema(method, resp.url.raw_path, 200)).validate(got)
        checked += len(got["entry"]) if "entry" in got else 1
        return got

    for ext in ("0003*210", "0003*211", "@self"):
        listed = await answer("GET", f"/uapi/phoneCalls/@me/{ext}")
        for entry in listed["entry"]:  # no `fields`: every field, so a whole PhoneCall
            full.validate(entry)
        for name in collection.FIELDS:
            await answer("GET", f"/uapi/phoneCall/@me/{ext}?fields={name}")
    for call, ext in calls:
        full.validate(await answer("GET", f"/uapi/phoneCalls/@me/{ext}/{call.id}"))
        for name in collection.FIELDS:
            await answer("GET", f"/uapi/phoneCalls/@me/{ext}/{call.id}?fields={name}")
        # Answered without AMI: starting a recording view, stopping one that is not.
        action = "StartRecording" if call is recorded else "StopRecording"
        body = {"action": action, "phoneCallViewId": "01"}
        got = await answer("PUT", f"/uapi/phoneCalls/@me/{ext}/{call.id}", body)
        full.validate(got)
        assert ("recording" in got["phoneCallView"][0]) == (call is recorded)
    assert checked >= 60, checked


async def test_the_token_answer_and_the_error_envelope_match_the_document(api: Api) -> None:
    """The other bodies generated from models (api/schemas.py), from real answers."""
    cid, secret = api.apps.client_id["john"], api.apps.secret["john"]
    form = {"grant_type": "client_credentials", "client_id": cid, "client_secret": secret}
    for path in ("/oauth/token", "/oauth/token.php"):
        resp = await api.client.post(path, data=form)
        assert resp.status == 200
        component("Token").validate(await resp.json())
    resp = await api.client.post("/oauth/token", data={**form, "client_secret": "wrong"})
    assert resp.status == 401
    component("Error").validate(await resp.json())
