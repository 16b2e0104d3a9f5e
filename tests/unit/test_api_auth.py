"""Bearer tokens: every place a token may come from, and every way of getting 401."""

from __future__ import annotations

import logging

import pytest

from tests.unit.api_support import Api, error_of

LIST = "/uapi/phoneCalls/@me/0003*210"


@pytest.fixture
async def api(aiohttp_client, tmp_path, monkeypatch) -> Api:
    api = await Api.start(aiohttp_client, tmp_path)
    api.ready(monkeypatch)
    return api


async def test_authorization_bearer(api: Api) -> None:
    resp = await api.get(
        LIST, who=None, headers={"Authorization": f"Bearer {api.apps.token['john']}"}
    )
    assert resp.status == 204


async def test_authorization_scheme_is_case_insensitive(api: Api) -> None:
    resp = await api.get(
        LIST, who=None, headers={"Authorization": f"bearer {api.apps.token['john']}"}
    )
    assert resp.status == 204


async def test_authentication_header_of_the_original_docs(api: Api) -> None:
    resp = await api.get(
        LIST, who=None, headers={"Authentication": f"Bearer {api.apps.token['john']}"}
    )
    assert resp.status == 204


async def test_access_request_token_query_parameter(api: Api) -> None:
    resp = await api.get(LIST, who=None, params={"accessRequestToken": api.apps.token["john"]})
    assert resp.status == 204


async def test_authorization_wins_over_the_query(api: Api) -> None:
    # The first place holding a token is the only one used.
    resp = await api.get(
        LIST,
        who=None,
        headers={"Authorization": f"Bearer {api.apps.token['john']}"},
        params={"accessRequestToken": "garbage"},
    )
    assert resp.status == 204
    resp = await api.get(
        LIST,
        who=None,
        headers={"Authorization": "Bearer garbage"},
        params={"accessRequestToken": api.apps.token["john"]},
    )
    assert resp.status == 401


async def test_another_scheme_is_passed_over_for_the_other_places(api: Api) -> None:
    """A Basic Authorization header (say, from a proxy) does not hide the bearer token
    in Authentication or accessRequestToken; a bad Bearer token is not passed over."""
    basic = {"Authorization": "Basic am9objpzZWNyZXQ="}
    token = api.apps.token["john"]
    resp = await api.get(LIST, who=None, headers={**basic, "Authentication": f"Bearer {token}"})
    assert resp.status == 204
    resp = await api.get(LIST, who=None, headers=basic, params={"accessRequestToken": token})
    assert resp.status == 204
    resp = await api.get(LIST, who=None, headers={**basic, "Authentication": "Bearer nope"},
                         params={"accessRequestToken": token})
    assert await error_of(resp) == (401, "unauthorized")
    resp = await api.get(LIST, who=None, headers=basic)
    assert await error_of(resp) == (401, "unauthorized")
    assert "not a Bearer token" in (await resp.json())["error"]["message"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic am9objpzZWNyZXQ="},
        {"Authorization": "Token abc"},
        {"Authorization": "Bearer not-a-known-token"},
        {"Authorization": "Bearer two words"},
        {"Authorization": "Bearer t\u00e9st"},
        {"Authentication": "Bearer not-a-known-token"},
        {"Authentication": "nonsense"},
    ],
    ids=lambda h: repr(h)[:40],
)
async def test_401(api: Api, headers: dict[str, str]) -> None:
    resp = await api.get(LIST, who=None, headers=headers)
    assert await error_of(resp) == (401, "unauthorized")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "query",
    [
        "accessRequestToken=",
        "accessRequestToken=nope",
        "accessRequestToken=%0D%0A",
        "accessRequestToken=%00",
        "accessRequestToken=a&accessRequestToken=b",
    ],
)
async def test_401_query(api: Api, query: str) -> None:
    resp = await api.get(f"{LIST}?{query}", who=None)
    assert await error_of(resp) == (401, "unauthorized")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_two_authorization_headers_are_refused(api: Api) -> None:
    from multidict import CIMultiDict

    token = api.apps.token["john"]
    headers = CIMultiDict([("Authorization", f"Bearer {token}"), ("Authorization", "Bearer x")])
    resp = await api.client.get(LIST, headers=headers)
    assert await error_of(resp) == (401, "unauthorized")


async def test_expired_token(aiohttp_client, tmp_path, monkeypatch) -> None:
    now = [1_800_000_000.0]
    api = await Api.start(aiohttp_client, tmp_path, clock=lambda: now[0])
    api.ready(monkeypatch)
    token, _ = api.directory.issue_token(api.apps.client_id["john"], ttl=60)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await api.get(LIST, who=None, headers=headers)).status == 204
    now[0] += 61
    resp = await api.get(LIST, who=None, headers=headers)
    assert await error_of(resp) == (401, "unauthorized")
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


async def test_revoked_token(api: Api) -> None:
    api.directory.revoke_token(api.apps.token["john"])
    assert await error_of(await api.get(LIST)) == (401, "unauthorized")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/uapi/phoneCalls/@me/0003*210"),
        ("GET", "/uapi/phoneCalls/@me/0003*210/abc"),
        ("PUT", "/uapi/phoneCalls/@me/0003*210/abc"),
        ("GET", "/uapi/phoneCall/@me/0003*210"),
        ("GET", "/uapi/phoneCall/@me/0003*210/abc"),
        ("PUT", "/uapi/phoneCall/@me/0003*210/abc"),
    ],
)
async def test_every_uapi_route_needs_a_token(api: Api, method: str, path: str) -> None:
    resp = await api.client.request(method, path, data=b'{"action":')
    assert await error_of(resp) == (401, "unauthorized")


async def test_401_comes_before_everything_else(api: Api) -> None:
    # Malformed path, body and call id, PBX down: still 401 without a token.
    api.bridge.ready = False
    resp = await api.put("/uapi/phoneCalls/@you/x%0Ay/ZZZ", b"\xff", who=None)
    assert await error_of(resp) == (401, "unauthorized")


async def test_tokens_never_reach_the_logs(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = api.apps.token["john"]
    client = api.client
    r1 = await client.get(LIST, params={"accessRequestToken": token})
    r2 = await client.get(LIST, headers={"Authorization": f"Bearer {token}"})
    r3 = await client.get(LIST, params={"accessRequestToken": token + "x"})
    r4 = await api.get("/uapi/phoneCalls/@me/%0D%0Ainjected", params={"x": token})
    assert [r1.status, r2.status, r3.status, r4.status] == [204, 204, 401, 400]
    assert '"GET /uapi/phoneCalls/@me/0003*210" 204' in caplog.text  # the access log ran
    assert "%0D%0Ainjected" in caplog.text  # logged still encoded
    assert token not in caplog.text
    assert "accessRequestToken" not in caplog.text
    assert "\ninjected" not in caplog.text
