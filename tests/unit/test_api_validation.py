"""Every 400 of the contract, their precedence, and the rule that nothing malformed (CR,
LF, NUL, any control character) ever reaches AMI."""

from __future__ import annotations

import json

import pytest

from pbx_bridge.api import validation
from pbx_bridge.api.errors import ApiError
from tests.unit.api_support import Api, error_of

BASE = "/uapi/phoneCalls/@me/0003*210"
GOOD = {"action": "StartRecording", "format": "wav", "phoneCallViewId": "01"}


@pytest.fixture
async def api(aiohttp_client, tmp_path, monkeypatch) -> Api:
    api = await Api.start(aiohttp_client, tmp_path)
    api.ready(monkeypatch)
    return api


@pytest.fixture
async def call_id(api: Api) -> str:
    """A live, answered call of John's 0003*210 to the public network."""
    return api.pbx.call("PJSIP/0003*210", "PJSIP/pstn").id


# --------------------------------------------------------------------------- path


@pytest.mark.parametrize(
    "user",
    ["@you", "me", "abc", "99999", "1" * 16, "-1", "+12", "12.0", "@ME", "%C3%A9"],
)
async def test_user_invalid(api: Api, user: str) -> None:
    for path in (f"/uapi/phoneCalls/{user}/0003*210", f"/uapi/phoneCalls/{user}/0003*210/ab"):
        assert await error_of(await api.get(path)) == (400, "user_invalid"), path
    resp = await api.put(f"/uapi/phoneCalls/{user}/0003*210/ab", GOOD)
    assert await error_of(resp) == (400, "user_invalid")


@pytest.mark.parametrize(
    "ext",
    [
        "abc",
        "0003*999",  # well-formed, unknown
        "0003**210",
        "*210",
        "@SELF",
        "0003%252A210",  # decoded once: the literal "0003%2A210"
        "0003*210%20",
        "1" * 65,
    ],
)
async def test_extension_invalid(api: Api, ext: str) -> None:
    assert await error_of(await api.get(f"/uapi/phoneCalls/@me/{ext}")) == (
        400,
        "extension_invalid",
    )
    resp = await api.put(f"/uapi/phoneCalls/@me/{ext}/ab", GOOD)
    assert await error_of(resp) == (400, "extension_invalid")


async def test_url_encoded_extension_is_decoded_once(api: Api) -> None:
    assert (await api.get("/uapi/phoneCalls/@me/0003%2A210")).status == 204
    assert (await api.get("/uapi/phoneCalls/%40me/0003%2a210")).status == 204


@pytest.mark.parametrize("call", ["XYZ", "ABCDEF", "a" * 41, "12-34", "%20ab", "ab%2Fcd"])
async def test_phonecall_invalid_syntax(api: Api, call: str) -> None:
    assert await error_of(await api.get(f"{BASE}/{call}")) == (400, "pc_phonecall_invalid")
    assert await error_of(await api.put(f"{BASE}/{call}", GOOD)) == (
        400,
        "pc_phonecall_invalid",
    )


async def test_phonecall_invalid_unknown(api: Api) -> None:
    assert await error_of(await api.get(f"{BASE}/{'0' * 20}")) == (400, "pc_phonecall_invalid")
    assert await error_of(await api.put(f"{BASE}/{'0' * 20}", GOOD)) == (
        400,
        "pc_phonecall_invalid",
    )


# --------------------------------------------------------------------------- body

BODY_INVALID = [
    b"",
    b"{",
    b"not json",
    b"[]",
    b'"StartRecording"',
    b"null",
    b"1",
    b'{"action": "StartRecording", "phoneCallViewId": "01"} trailing',
    b'{"action":"StartRecording","phoneCallViewId":"\xff"}',  # not UTF-8
    b"\xef\xbb\xbf{}",  # a BOM is not JSON
    b'{"action":"StopRecording","action":"StartRecording","phoneCallViewId":"01"}',
    b'{"action":"StartRecording","phoneCallViewId":"01","extra":"x"}',
    b'{"action":"StartRecording","phoneCallViewId":"01","a\\r\\nb":"x"}',
    b'{"action":1,"phoneCallViewId":"01"}',
    b'{"action":null,"phoneCallViewId":"01"}',
    b'{"action":["StartRecording"],"phoneCallViewId":"01"}',
    b'{"action":"StartRecording","format":null,"phoneCallViewId":"01"}',
    b'{"action":"StartRecording","format":1,"phoneCallViewId":"01"}',
    b'{"action":"StartRecording","phoneCallViewId":1}',
    b'{"action":"StartRecording","phoneCallViewId":true}',
    b'{"action":"StartRecording","phoneCallViewId":{"id":"01"}}',
    b'{"action":"StartRecording","phoneCallViewId":"01","n":NaN}',
    b"[" * 100_000,
]


@pytest.mark.parametrize("body", BODY_INVALID, ids=lambda b: repr(b)[:50])
async def test_body_invalid(api: Api, call_id: str, body: bytes) -> None:
    resp = await api.put(f"{BASE}/{call_id}", body)
    assert await error_of(resp) in {(400, "body_invalid"), (413, "body_too_large")}
    if len(body) <= api.settings.http.body_limit:
        assert await error_of(resp) == (400, "body_invalid")


@pytest.mark.parametrize(
    "body",
    [
        {"phoneCallViewId": "01"},
        {"action": "", "phoneCallViewId": "01"},
        {"action": "startrecording", "phoneCallViewId": "01"},
        {"action": "STARTRECORDING", "phoneCallViewId": "01"},
        {"action": "StartRecording ", "phoneCallViewId": "01"},
        {"action": "pauseRecording", "phoneCallViewId": "01"},
        {"action": "Resume", "phoneCallViewId": "01"},
        {"action": "StartRecording\r\nAction: Originate", "phoneCallViewId": "01"},
        {"action": "x" * 5000, "phoneCallViewId": "01"},
    ],
    ids=lambda b: repr(b)[:40],
)
async def test_action_invalid(api: Api, call_id: str, body: dict) -> None:
    assert await error_of(await api.put(f"{BASE}/{call_id}", body)) == (400, "pc_action_invalid")


@pytest.mark.parametrize("fmt", ["", "mp3", "WAV", "wav ", "gsm", "wav49\n", "w\u0430v"])
@pytest.mark.parametrize(
    "action", ["StartRecording", "StopRecording", "PauseRecording", "ResumeRecording"]
)
async def test_recformat_invalid(api: Api, call_id: str, fmt: str, action: str) -> None:
    body = {"action": action, "format": fmt, "phoneCallViewId": "01"}
    assert await error_of(await api.put(f"{BASE}/{call_id}", body)) == (
        400,
        "pc_recformat_invalid",
    )


@pytest.mark.parametrize(
    "view", [None, "", "1", "001", "0a", "\u0661\u0662", "01\n", " 01", "-1", "99"]
)
async def test_phonecallview_invalid(api: Api, call_id: str, view: str | None) -> None:
    body: dict = {"action": "StartRecording"}
    if view is not None:
        body["phoneCallViewId"] = view
    assert await error_of(await api.put(f"{BASE}/{call_id}", body)) == (
        400,
        "pc_phonecallview_invalid",
    )


# --------------------------------------------------------------------------- query


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("count=5000", "count_invalid"),  # VoipNow's range: 1..4999
        ("count=0", "count_invalid"),
        ("count=-1", "count_invalid"),
        ("count=abc", "count_invalid"),
        ("count=", "count_invalid"),
        ("count=1e3", "count_invalid"),
        ("count=%2B5", "count_invalid"),
        ("count=1&count=2", "count_invalid"),
        ("startIndex=1.5", "startindex_invalid"),
        ("startIndex=-0", "startindex_invalid"),
        ("startIndex=5000", "startindex_invalid"),
        ("startIndex=99999999999", "startindex_invalid"),
        ("startIndex=%00", "request_invalid"),  # a control character: before its meaning
        ("other=%0D%0A", "request_invalid"),
        ("x%0A=1", "request_invalid"),
        ("sortBy=published", "request_invalid"),  # unknown: never silently ignored
        ("Count=5", "request_invalid"),  # names are case-sensitive
        ("sortOrder=up", "request_invalid"),
        ("filterBy=extension&filterOp=equals&filterValue=1", "filterby_invalid"),
        ("filterOp=equals&filterValue=1", "filterby_invalid"),
        ("filterBy=id&filterOp=like&filterValue=1", "filterop_invalid"),
        ("filterBy=id&filterOp=equals", "filtervalue_invalid"),
        ("filterBy=id&filterOp=present&filterValue=1", "filtervalue_invalid"),
        ("filterBy=published&filterOp=greaterThan&filterValue=yesterday", "filtervalue_invalid"),
        ("fields=id,nope", "fields_invalid"),
        ("fields=id,phoneCallView.status", "fields_invalid"),
        ("fields=id,%20extension", "fields_invalid"),
        ("fields=", "fields_invalid"),
    ],
)
async def test_list_query_invalid(api: Api, query: str, code: str) -> None:
    resp = await api.get(f"{BASE}?{query}")
    assert await error_of(resp) == (400, code)


async def test_one_and_put_take_only_their_parameters(api: Api, call_id: str) -> None:
    """GET one takes `fields` (and the token); PUT only the token: anything else is
    request_invalid, never ignored, and it is checked before the body."""
    url = f"{BASE}/{call_id}"
    assert (await api.get(f"{url}?fields=id")).status == 200
    assert await error_of(await api.get(f"{url}?count=5")) == (400, "request_invalid")
    assert await error_of(await api.get(f"{url}?fields=nope")) == (400, "fields_invalid")
    stop = {"action": "StopRecording", "phoneCallViewId": "01"}
    assert (await api.put(url, stop)).status == 200
    assert await error_of(await api.put(f"{url}?fields=id", stop)) == (400, "request_invalid")
    assert await error_of(await api.put(f"{url}?x=1", b"{")) == (400, "request_invalid")
    token = api.apps.token["john"]
    resp = await api.put(f"{url}?accessRequestToken={token}", stop, who=None)
    assert resp.status == 200


# --------------------------------------------------------------------------- precedence


async def test_precedence(api: Api, call_id: str) -> None:
    bad_body = b"{"
    # path before body
    assert await error_of(await api.put("/uapi/phoneCalls/@you/0003*210/zz", bad_body)) == (
        400,
        "user_invalid",
    )
    # user before extension
    assert await error_of(await api.put("/uapi/phoneCalls/@you/bad/zz", bad_body)) == (
        400,
        "user_invalid",
    )
    # extension before body
    assert await error_of(await api.put("/uapi/phoneCalls/@me/bad/zz", bad_body)) == (
        400,
        "extension_invalid",
    )
    # access before body
    assert await error_of(await api.put("/uapi/phoneCalls/13/0003*212/zz", bad_body)) == (
        403,
        "access_denied",
    )
    # body before phoneCallId
    assert await error_of(await api.put(f"{BASE}/ZZ", bad_body)) == (400, "body_invalid")
    # action before format before view
    resp = await api.put(f"{BASE}/ZZ", {"action": "x", "format": "mp3"})
    assert await error_of(resp) == (400, "pc_action_invalid")
    resp = await api.put(f"{BASE}/ZZ", {"action": "StartRecording", "format": "mp3"})
    assert await error_of(resp) == (400, "pc_recformat_invalid")
    resp = await api.put(f"{BASE}/ZZ", {"action": "StartRecording"})
    assert await error_of(resp) == (400, "pc_phonecallview_invalid")
    # a valid body, then the phoneCallId
    assert await error_of(await api.put(f"{BASE}/ZZ", GOOD)) == (400, "pc_phonecall_invalid")
    # 503 only once everything the request says is valid
    api.bridge.ready = False
    assert await error_of(await api.put(f"{BASE}/ZZ", GOOD)) == (400, "pc_phonecall_invalid")
    assert await error_of(await api.put(f"{BASE}/{call_id}", GOOD)) == (503, "pbx_unavailable")
    assert api.spy.calls == []


# --------------------------------------------------------------------------- no control char

CONTROL = ["%0D", "%0A", "%0D%0A", "%00", "%09", "%1B", "%7F", "%C2%85"]


@pytest.mark.parametrize("ch", CONTROL)
async def test_control_chars_in_path_segments(api: Api, call_id: str, ch: str) -> None:
    cases = [
        (f"/uapi/phoneCalls/12{ch}/0003*210/{call_id}", "user_invalid"),
        (f"/uapi/phoneCalls/{ch}12/0003*210/{call_id}", "user_invalid"),
        (f"/uapi/phoneCalls/@me{ch}/0003*210/{call_id}", "user_invalid"),
        (f"/uapi/phoneCalls/@me/0003*210{ch}/{call_id}", "extension_invalid"),
        (f"/uapi/phoneCalls/@me/0003{ch}*210/{call_id}", "extension_invalid"),
        (f"/uapi/phoneCalls/@me/@self{ch}/{call_id}", "extension_invalid"),
        (f"/uapi/phoneCalls/@me/0003*210/{call_id}{ch}", "pc_phonecall_invalid"),
        (f"/uapi/phoneCalls/@me/0003*210/{ch}{call_id}", "pc_phonecall_invalid"),
    ]
    for path, code in cases:
        assert await error_of(await api.put(path, GOOD)) == (400, code), path
        assert await error_of(await api.get(path)) == (400, code), path
        alias = path.replace("/phoneCalls/", "/phoneCall/")
        assert await error_of(await api.put(alias, GOOD)) == (400, code), alias
    assert api.spy.calls == []


@pytest.mark.parametrize("ch", ["\r", "\n", "\r\n", "\x00", "\t", "\x1b", "\x7f", "\x85"])
@pytest.mark.parametrize(
    ("field", "code"),
    [
        ("action", "pc_action_invalid"),
        ("format", "pc_recformat_invalid"),
        ("phoneCallViewId", "pc_phonecallview_invalid"),
    ],
)
async def test_control_chars_in_body_fields(
    api: Api, call_id: str, ch: str, field: str, code: str
) -> None:
    for value in (GOOD[field] + ch, ch + GOOD[field], GOOD[field] + ch + "Action: Originate"):
        body = dict(GOOD, **{field: value})
        resp = await api.put(f"{BASE}/{call_id}", body)
        assert await error_of(resp) == (400, code), repr(value)
    # A control character in a key is an unknown field.
    resp = await api.put(f"{BASE}/{call_id}", dict(GOOD, **{field + ch: "x"}))
    assert await error_of(resp) == (400, "body_invalid")
    assert api.spy.calls == []


async def test_the_spy_sees_what_reaches_ami(api: Api, call_id: str) -> None:
    """The control for the tests above: a valid StartRecording does reach AMI (where the
    real, unconnected client refuses it: 503), so an empty spy means something."""
    resp = await api.put(f"{BASE}/{call_id}", GOOD)
    assert await error_of(resp) == (503, "pbx_unavailable")
    names = [name for name, _ in api.spy.calls]
    assert "MixMonitor" in names
    for _name, headers in api.spy.calls:
        for key, value in headers.items():
            assert not validation.has_control(key + value)


# --------------------------------------------------------------------------- pure parts


def test_parse_action_defaults() -> None:
    action = validation.parse_action(b'{"action":"StopRecording","phoneCallViewId":"02"}')
    assert (action.action, action.format, action.view_id) == ("StopRecording", None, "02")


def test_parse_action_is_strict_about_types() -> None:
    for body in ({"action": "StartRecording", "phoneCallViewId": 1}, {"action": True}):
        with pytest.raises(ApiError) as err:
            validation.parse_action(json.dumps(body).encode())
        assert err.value.code == "body_invalid"
