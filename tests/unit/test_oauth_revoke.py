"""OAuth endpoints beyond the plain token grant (issue 9, items 4 and 12): VoipNow's
``/oauth/token.php``, RFC 7009 revocation at ``/oauth/revoke``, revocation from the CLI in
another process honoured by the running service at once, and the periodic purge."""

from __future__ import annotations

import asyncio
import base64
import sqlite3
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlencode

import pytest

from pbx_bridge.directory.store import token_id
from tests.unit.api_support import Api, error_of
from tests.unit.oauth_support import FORM, authenticated, start_api

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def api(aiohttp_client, tmp_path) -> Api:
    return await start_api(aiohttp_client, tmp_path)


async def _oauth_token(api: Api, who: str) -> str:
    resp = await api.client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": api.apps.client_id[who],
            "client_secret": api.apps.secret[who],
        },
    )
    assert resp.status == 200
    return (await resp.json())["access_token"]


# --------------------------------------------------------------------------- token.php


@pytest.mark.parametrize("redirect_uri", ["https://crm.example.com/voipnow/callback/", ""])
async def test_voipnow_token_php(api: Api, redirect_uri: str) -> None:
    """The form VoipNow's PHP client posts: its own path, `type=unifiedapi` and a
    `redirect_uri` besides the client credentials grant (extra fields are ignored)."""
    body = urlencode(
        {
            "type": "unifiedapi",
            "client_id": api.apps.client_id["john"],
            "client_secret": api.apps.secret["john"],
            "redirect_uri": redirect_uri,
            "grant_type": "client_credentials",
        }
    )
    resp = await api.client.post("/oauth/token.php", data=body, headers=FORM)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Cache-Control"] == "no-store"
    answer = await resp.json()
    assert set(answer) == {"access_token", "token_type", "expires_in"}
    assert answer["token_type"] == "Bearer"
    assert answer["expires_in"] == api.settings.auth.token_ttl
    principal = api.directory.authenticate(answer["access_token"])
    assert principal is not None and principal.user_id == 12
    assert await authenticated(api, answer["access_token"])


async def test_token_php_refuses_what_token_refuses(api: Api) -> None:
    body = {"type": "unifiedapi", "grant_type": "client_credentials", "redirect_uri": ""}
    resp = await api.client.post(
        "/oauth/token.php",
        data={**body, "client_id": api.apps.client_id["john"], "client_secret": "wrong"},
    )
    assert await error_of(resp) == (401, "invalid_client")
    resp = await api.client.post("/oauth/token.php", data={**body, "grant_type": "password"})
    assert await error_of(resp) == (400, "unsupported_grant_type")
    resp = await api.client.get("/oauth/token.php")
    assert await error_of(resp) == (405, "method_not_allowed")


# --------------------------------------------------------------------------- revoke


async def test_revoke_own_token(api: Api) -> None:
    token = await _oauth_token(api, "john")
    assert await authenticated(api, token)
    resp = await api.client.post(
        "/oauth/revoke",
        data={
            "token": token,
            "token_type_hint": "access_token",
            "client_id": api.apps.client_id["john"],
            "client_secret": api.apps.secret["john"],
        },
    )
    assert resp.status == 200
    assert await resp.read() == b""
    assert resp.headers["Cache-Control"] == "no-store"
    assert not await authenticated(api, token)
    assert await authenticated(api, api.apps.token["john"])  # the app's other token lives


async def test_revoke_with_http_basic(api: Api) -> None:
    cid, secret = api.apps.client_id["org3"], api.apps.secret["org3"]
    basic = base64.b64encode(f"{cid}:{secret}".encode()).decode()
    resp = await api.client.post(
        "/oauth/revoke",
        data={"token": api.apps.token["org3"], "token_type_hint": "refresh_token"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert resp.status == 200
    assert not await authenticated(api, api.apps.token["org3"])


async def test_revoke_unknown_or_foreign_token_is_200_and_changes_nothing(api: Api) -> None:
    john = {"client_id": api.apps.client_id["john"], "client_secret": api.apps.secret["john"]}
    for token in ("no-such-token", api.apps.token["jane"], api.apps.token["admin"]):
        resp = await api.client.post("/oauth/revoke", data={**john, "token": token})
        assert resp.status == 200
        assert await resp.read() == b""
    assert await authenticated(api, api.apps.token["jane"])
    assert await authenticated(api, api.apps.token["admin"])


async def test_revoke_needs_client_authentication_and_a_token(api: Api) -> None:
    token = api.apps.token["john"]
    cid = api.apps.client_id["john"]
    resp = await api.client.post(
        "/oauth/revoke", data={"token": token, "client_id": cid, "client_secret": "wrong"}
    )
    assert await error_of(resp) == (401, "invalid_client")
    assert resp.headers["WWW-Authenticate"].startswith("Basic")
    resp = await api.client.post("/oauth/revoke", data={"token": token})
    assert await error_of(resp) == (401, "invalid_client")
    resp = await api.client.post(
        "/oauth/revoke", data={"client_id": cid, "client_secret": api.apps.secret["john"]}
    )
    assert await error_of(resp) == (400, "invalid_request")
    resp = await api.client.post(
        "/oauth/revoke",
        data=f"token={token}&token={token}&client_id={cid}",
        headers=FORM,
    )
    assert await error_of(resp) == (400, "invalid_request")
    assert await authenticated(api, token)


async def test_a_disabled_app_gets_no_token(api: Api) -> None:
    api.directory.set_app_disabled(api.apps.client_id["john"], True)
    resp = await api.client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": api.apps.client_id["john"],
            "client_secret": api.apps.secret["john"],
        },
    )
    assert await error_of(resp) == (401, "invalid_client")
    assert not await authenticated(api, api.apps.token["john"])
    api.directory.set_app_disabled(api.apps.client_id["john"], False)
    assert await authenticated(api, await _oauth_token(api, "john"))


# --------------------------------------------------------------------------- another process


def _cli(api: Api, tmp_path: Path, *argv: str) -> str:
    config = tmp_path / "cli.toml"
    config.write_text(f'[database]\nurl = "{api.settings.database.url.get_secret_value()}"\n')
    done = subprocess.run(
        [sys.executable, "-m", "pbx_bridge.cli", *argv, "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_cli_revocation_in_another_process_is_honoured_at_once(
    api: Api, tmp_path: Path
) -> None:
    """The running service caches the directory, but tokens and apps are read from the
    database on every request: a `token revoke` or `app disable` run next to it counts
    from the very next request."""
    john, jane = api.apps.token["john"], api.apps.token["jane"]
    assert await authenticated(api, john) and await authenticated(api, jane)
    listed = _cli(api, tmp_path, "token", "list")
    assert token_id(john) in listed and john not in listed

    _cli(api, tmp_path, "token", "revoke", token_id(john))
    assert not await authenticated(api, john)
    assert await authenticated(api, jane)

    _cli(api, tmp_path, "app", "disable", "--app", api.apps.client_id["jane"])
    assert not await authenticated(api, jane)
    resp = await api.client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": api.apps.client_id["jane"],
            "client_secret": api.apps.secret["jane"],
        },
    )
    assert await error_of(resp) == (401, "invalid_client")

    _cli(api, tmp_path, "app", "enable", "--app", api.apps.client_id["jane"])
    assert await authenticated(api, await _oauth_token(api, "jane"))


# --------------------------------------------------------------------------- purge


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_the_running_service_purges_expired_tokens(aiohttp_client, tmp_path) -> None:
    clock = Clock()
    api = await start_api(aiohttp_client, tmp_path, clock=clock, purge_interval=0.05)
    cid = api.apps.client_id["john"]
    short, _ = api.directory.issue_token(cid, ttl=10)
    lasting, _ = api.directory.issue_token(cid, ttl=10_000)
    clock.now += 60
    db = sqlite3.connect(api.directory.path)

    def stored() -> set[str]:
        return {row[0][:12] for row in db.execute("SELECT token_hash FROM tokens")}

    try:
        assert token_id(short) in stored()  # expired, but still there ...
        for _ in range(400):  # ... until the service's own task deletes it
            if token_id(short) not in stored():
                break
            await asyncio.sleep(0.05)
        assert token_id(short) not in stored()
        assert token_id(lasting) in stored()
    finally:
        db.close()
