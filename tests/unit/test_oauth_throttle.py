"""Failed client authentication at the OAuth endpoints is throttled per client id and per
address with a growing lockout, logged without the secret, and counted in the metrics
(issue 9, item 5)."""

from __future__ import annotations

import logging

import pytest

from pbx_bridge.api.metrics import REGISTRY
from pbx_bridge.api.oauth import THROTTLE
from pbx_bridge.api.throttle import FailedAuthThrottle, address_key
from pbx_bridge.config import AuthSettings
from tests.unit.api_support import Api, error_of
from tests.unit.oauth_support import start_api


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def api(aiohttp_client, tmp_path) -> Api:
    return await start_api(aiohttp_client, tmp_path, lockout_max=10.0)


@pytest.fixture
def clock(api: Api) -> Clock:
    clock = Clock()
    api.client.app[THROTTLE].clock = clock
    return clock


async def _try(api: Api, who: str, secret: str | None = None, path: str = "/oauth/token"):
    cid = api.apps.client_id.get(who, who)
    form = {"client_id": cid, "client_secret": secret or api.apps.secret[who]}
    if path == "/oauth/revoke":
        form["token"] = "whatever"
    else:
        form["grant_type"] = "client_credentials"
    return await api.client.post(path, data=form)


def _failures(api: Api, reason: str) -> float:
    registry = api.client.app[REGISTRY].registry  # type: ignore[attr-defined]
    value = registry.get_sample_value(
        "pbx_bridge_oauth_client_auth_failures_total", {"reason": reason}
    )
    return value or 0.0


# --------------------------------------------------------------------------- through HTTP


async def test_wrong_secrets_lock_the_client_id_out_for_longer_and_longer(
    api: Api, clock: Clock
) -> None:
    for _ in range(api.settings.auth.failures_per_client - 1):
        assert await error_of(await _try(api, "john", "wrong")) == (401, "invalid_client")
    # The 5th failure starts a 1 s lockout; each further failure doubles it, up to 10 s.
    waits = []
    for _ in range(6):
        assert await error_of(await _try(api, "john", "wrong")) == (401, "invalid_client")
        refused = await _try(api, "john")  # the right secret: not even looked at
        assert await error_of(refused) == (429, "too_many_requests")
        waits.append(int(refused.headers["Retry-After"]))
        clock.now += waits[-1]
    assert waits == [1, 2, 4, 8, 10, 10]
    # Over: the right secret works, and starts the client id's count again.
    assert (await _try(api, "john")).status == 200
    assert await error_of(await _try(api, "john", "wrong")) == (401, "invalid_client")
    assert (await _try(api, "john")).status == 200
    # Another client id is not locked by John's failures (the address is under its limit).
    assert (await _try(api, "jane")).status == 200


async def test_revoke_shares_the_throttle(api: Api, clock: Clock) -> None:
    for _ in range(api.settings.auth.failures_per_client):
        resp = await _try(api, "john", "wrong", path="/oauth/revoke")
        assert await error_of(resp) == (401, "invalid_client")
    assert await error_of(await _try(api, "john")) == (429, "too_many_requests")
    assert await error_of(await _try(api, "john", path="/oauth/revoke")) == (
        429,
        "too_many_requests",
    )


async def test_spraying_client_ids_locks_the_address(api: Api, clock: Clock) -> None:
    for n in range(api.settings.auth.failures_per_address):
        resp = await _try(api, f"sprayed-{n}", "guess")
        assert await error_of(resp) == (401, "invalid_client")
    resp = await _try(api, "jane")  # even a good client, from that address, waits
    assert await error_of(resp) == (429, "too_many_requests")
    assert resp.headers["Retry-After"] == "1"
    clock.now += 1
    assert (await _try(api, "jane")).status == 200


async def test_failures_are_logged_without_the_secret(
    api: Api, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    secret = "Sup3r-Secret-Guess-7f3a9"
    await _try(api, "john", secret)
    await _try(api, "no\u202eclient<script>", secret)
    await _try(api, "x" * 100, secret)
    await _try(api, "y" * 1000, secret)  # not even looked up
    resp = await api.client.post("/oauth/token", data={"grant_type": "client_credentials"})
    assert resp.status == 401
    text = caplog.text
    assert secret not in text
    lines = [r.getMessage() for r in caplog.records if r.name == "pbx_bridge.api.oauth"]
    cid = api.apps.client_id["john"]
    assert f"failed (wrong_secret): client_id={cid} remote=127.0.0.1" in lines[0]
    assert "failed (unknown_client): client_id=no?client?script? remote=127.0.0.1" in lines[1]
    assert f"client_id={'x' * 40}... remote=127.0.0.1" in lines[2]
    assert "failed (malformed): client_id=- remote=127.0.0.1" in lines[3]
    assert "failed (malformed)" in lines[4]
    assert "\u202e" not in text and "<script>" not in text


async def test_lockouts_are_logged_once_and_refusals_not_at_all(
    api: Api, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for _ in range(api.settings.auth.failures_per_client):
        await _try(api, "john", "wrong")
    for _ in range(50):
        assert (await _try(api, "john", "wrong")).status == 429
    lines = [r.getMessage() for r in caplog.records if r.name == "pbx_bridge.api.oauth"]
    assert len(lines) == api.settings.auth.failures_per_client + 1
    assert f"client_id={api.apps.client_id['john']} locked out for 1 s after 5" in lines[-1]


async def test_failures_are_counted_by_reason(api: Api, clock: Clock) -> None:
    for _ in range(2):
        await _try(api, "john", "wrong")
    await _try(api, "nobody", "guess")
    await api.client.post("/oauth/token", data={"grant_type": "client_credentials"})
    api.directory.set_app_disabled(api.apps.client_id["jane"], True)
    await _try(api, "jane")
    assert (await _try(api, "john")).status == 200
    counts = {
        r: _failures(api, r)
        for r in ("wrong_secret", "unknown_client", "malformed", "app_disabled", "locked_out")
    }
    assert counts == {
        "wrong_secret": 2,
        "unknown_client": 1,
        "malformed": 1,
        "app_disabled": 1,
        "locked_out": 0,
    }
    for _ in range(api.settings.auth.failures_per_client):
        await _try(api, "john", "wrong")
    await _try(api, "john")
    assert _failures(api, "locked_out") == 1


# --------------------------------------------------------------------------- the tables


def _throttle(**settings: object) -> tuple[FailedAuthThrottle, Clock]:
    clock = Clock()
    return FailedAuthThrottle(AuthSettings(**settings), clock=clock), clock  # type: ignore[arg-type]


def test_memory_stays_bounded_when_ids_and_addresses_are_sprayed() -> None:
    throttle, clock = _throttle(throttle_entries=1000)
    for n in range(50_000):
        throttle.failed(f"client-{n}", f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}")
        clock.now += 0.001
    assert len(throttle.clients) == 1000
    assert len(throttle.addresses) == 1000


def test_entries_are_forgotten_after_twice_the_longest_lockout() -> None:
    throttle, clock = _throttle(lockout_max=60.0)
    for _ in range(12):  # 2 ** (12 - 5) s, capped at 60 s
        throttle.failed("c", "10.0.0.1")
    assert throttle.retry_after("c", "10.0.0.2") == 60
    clock.now += 60
    assert throttle.retry_after("c", "10.0.0.2") == 0
    assert len(throttle.clients) == 1  # remembered: one more failure locks again
    assert throttle.failed("c", "10.0.0.1")[-1].seconds == 60
    clock.now += 120
    assert throttle.retry_after("c", "10.0.0.1") == 0
    assert len(throttle.clients) == 0 and len(throttle.addresses) == 0
    assert throttle.failed("c", "10.0.0.1") == []  # a fresh start


def test_long_keys_are_cut() -> None:
    throttle, _ = _throttle(failures_per_client=1)
    throttle.failed("k" * 100_000, "10.0.0.1")
    assert throttle.retry_after("k" * 200, None) == 1  # the same first 128 characters
    assert max(len(k) for k in throttle.clients._entries) <= 128


@pytest.mark.parametrize(
    ("remote", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:1:2:3", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        (None, "-"),
        ("", "-"),
    ],
)
def test_address_keys(remote: str | None, key: str) -> None:
    assert address_key(remote) == key
