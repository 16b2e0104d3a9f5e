"""Bearer tokens through the real HTTP server, on a bridge connected to the real Asterisk
with a live call: unknown, expired, revoked, tampered and another app's tokens; near
misses answered no faster than far misses; and no token (nor client secret) in any log
line, the server's access log and aiohttp's own error log included."""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import secrets
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from pbx_bridge.calls.tracker import call_id
from tests.reliability.support import (
    JANE,
    JOHN,
    OTHER,
    START,
    Api,
    Calls,
    env_int,
    report,
    serve,
    wait_consistent,
)

A = "0003*210"
LIST = f"/uapi/phoneCalls/@me/{A}"


@dataclass
class Rig:
    api: Api
    call: str


@pytest.fixture
async def rig(pbx, observer, tmp_path) -> AsyncIterator[Rig]:
    calls = Calls(pbx, observer.client, observer)
    try:
        async with serve(pbx, tmp_path, http={"request_timeout": 1.0}) as api:
            await calls.add_phones(1)
            live = await calls.start(A)
            await wait_consistent(api.bridge, observer.client)
            yield Rig(api, call_id(live.uniqueid))
    finally:
        await calls.close()


def _tampered(token: str) -> dict[str, str]:
    flip = {c: ("B" if c == "A" else "A") for c in token}
    return {
        "last char changed": token[:-1] + flip[token[-1]],
        "first char changed": flip[token[0]] + token[1:],
        "middle char changed": token[:20] + flip[token[20]] + token[21:],
        "one char short": token[:-1],
        "one char long": token + "A",
        "padding added": token + "=",
        "case flipped": token.swapcase(),
        "doubled": token + token,
        "base64 of it": base64.b64encode(token.encode()).decode(),
    }


async def _unauthorized(api: Api, token: str, where: str):
    if where == "query":
        return await api.request("GET", f"{LIST}?accessRequestToken={token}", user=None)
    return await api.request("GET", LIST, user=None, headers={where: f"Bearer {token}"})


async def test_bad_tokens(rig: Rig) -> None:
    api, directory = rig.api, rig.api.directory
    good = api.token(JOHN)
    assert (await api.list(A, user=JOHN)).status == 200

    expired_app, _ = directory.create_app(JOHN, "expiring")
    expired = directory.issue_token(expired_app, ttl=1)[0]
    revoked = directory.issue_token(expired_app)[0]
    directory.revoke_token(revoked)
    bad = {
        "unknown": secrets.token_urlsafe(32),
        "revoked": revoked,
        "empty": "",
        "not a b64token": "tok en",
        **_tampered(good),
    }
    await asyncio.sleep(1.1)
    bad["expired"] = expired
    answers: dict[str, set[tuple[str, str]]] = {}
    n = 0
    for what, token in bad.items():
        for where in ("Authorization", "Authentication", "query"):
            r = await _unauthorized(api, token, where)
            n += 1
            assert (r.status, r.code) == (401, "unauthorized"), (what, where, r.text)
            assert r.headers["WWW-Authenticate"].startswith('Bearer realm="pbx-bridge"')
            assert not token or token not in r.text, "the token is never echoed"
            answers.setdefault(what, set()).add((r.text, r.headers["WWW-Authenticate"]))
    # Unknown, expired, revoked and tampered (well-formed) tokens cannot be told apart;
    # only a token that is not even a b64token says so.
    alike = set().union(*(v for k, v in answers.items()
                          if k not in ("empty", "not a b64token")))
    assert len(alike) == 1, alike

    # Another app's token is a valid token: it acts in its own user's context only.
    # Jane (John's organization) is refused; to user 20 (another tenant) John's 0003*210
    # is an unknown extension (docs/contract.md, "Unknown and foreign are one answer").
    jane, other = api.token(JANE), api.token(OTHER)
    for token, refusal in ((jane, (403, "access_denied")), (other, (400, "extension_invalid"))):
        for route in ("GET", "PUT"):
            path = LIST if route == "GET" else f"{LIST}/{rig.call}"
            r = await api.request(route, path.replace("@me", "12"), token=token,
                                  json_body=START if route == "PUT" else None)
            assert (r.status, r.code) == refusal, r.text
        r = await api.request("GET", LIST, token=token)  # @me is *their* user, and
        assert (r.status, r.code) == refusal, r.text  # 0003*210 not theirs
    # A second app of John's is John: same context.
    second, _ = directory.create_app(JOHN, "second app")
    r = await api.request("GET", LIST, token=directory.issue_token(second)[0])
    assert r.status == 200 and r.body["entry"][0]["id"] == rig.call
    report("tokens_bad", requests=n, kinds=sorted(bad))


async def _timed(api: Api, token: str) -> float:
    t0 = time.perf_counter()
    async with api.http.get(api.base + LIST, headers={"Authorization": f"Bearer {token}"}) as r:
        await r.read()
        assert r.status == 401
    return time.perf_counter() - t0


async def _near_vs_far(api: Api, rounds: int) -> dict:
    good = api.token(JOHN)
    near_suffix = good[:-1] + ("A" if good[-1] != "A" else "B")
    near_prefix = ("A" if good[0] != "A" else "B") + good[1:]
    times: dict[str, list[float]] = {"near (last char)": [], "near (first char)": [],
                                     "far (random)": []}
    rnd = random.Random(7)
    for _ in range(50):  # warm-up
        await _timed(api, secrets.token_urlsafe(32))
    for _ in range(rounds):
        order = [("near (last char)", near_suffix), ("near (first char)", near_prefix),
                 ("far (random)", secrets.token_urlsafe(32))]
        rnd.shuffle(order)
        for name, token in order:
            times[name].append(await _timed(api, token))
    medians = {k: statistics.median(v) for k, v in times.items()}
    far = medians["far (random)"]
    for name in ("near (last char)", "near (first char)"):
        # Behaviour, not speed: a near miss is not answered measurably faster (a 15 %
        # margin absorbs the scheduling noise of a shared 2-core machine).
        assert medians[name] >= 0.85 * far, (name, medians)
    return {"rounds": rounds, "median_ms": {k: round(v * 1000, 3) for k, v in medians.items()},
            "near_over_far": {k: round(v / far, 3) for k, v in medians.items()}}


async def test_near_miss_tokens_are_not_answered_faster(rig: Rig) -> None:
    report("token_timing", **await _near_vs_far(rig.api, 300))


@pytest.mark.soak
async def test_near_miss_timing_soak(rig: Rig) -> None:
    report("token_timing_soak",
           **await _near_vs_far(rig.api, env_int("PBX_BRIDGE_SOAK_TOKEN_ROUNDS", 3000)))


class Everything(logging.Handler):
    """Every record of every logger, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def _raw(api: Api, data: bytes) -> bytes:
    host, port = api.base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(5):
            return await reader.read(65536)
    finally:
        writer.transport.abort()


async def test_tokens_never_reach_the_logs(rig: Rig) -> None:
    api, directory = rig.api, rig.api.directory
    handler = Everything()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        client_id, secret = directory.create_app(JOHN, "log test")
        token = directory.issue_token(client_id)[0]
        # Through the OAuth endpoint too (its answer holds a fresh token).
        r = await api.request("POST", "/oauth/token", user=None,
                              data=f"grant_type=client_credentials&client_id={client_id}"
                                   f"&client_secret={secret}".encode(),
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status == 200, r.text
        oauth_token = r.body["access_token"]
        secrets_ = [token, oauth_token, secret]
        for t in (token, oauth_token):
            q = f"accessRequestToken={t}"
            for method, path, body in [
                ("GET", f"{LIST}?{q}", None),
                ("GET", f"{LIST}/{rig.call}?{q}", None),
                ("PUT", f"{LIST}/{rig.call}?{q}", START),
                ("PUT", f"{LIST}/{rig.call}?{q}", {"action": "x"}),
                ("GET", f"/uapi/phoneCalls/@me/0003*299?{q}", None),
                ("GET", f"/nowhere?{q}", None),
                ("DELETE", f"{LIST}/{rig.call}?{q}", None),
                ("GET", f"{LIST}?{q}&count=x", None),
            ]:
                await api.request(method, path, user=None, json_body=body)
            await api.request("GET", LIST, user=None, headers={"Authorization": f"Bearer {t}"})
            await api.request("GET", LIST, user=None, headers={"Authentication": f"bearer {t}"})
            await api.request("PUT", f"{LIST}/{rig.call}", user=None, data=b"x" * 20000,
                              headers={"Authorization": f"Bearer {t}"})
            # Requests the HTTP parser refuses: aiohttp logs the offending line.
            for data in (
                f"GET {LIST}?accessRequestToken={t}&q=a b HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
                f"GET {LIST}?accessRequestToken={t}&q=\xe9 HTTP/1.1\r\nHost: x\r\n\r\n"
                .encode("latin-1"),
                f"GET {LIST} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\x7f\r\n\r\n"
                .encode(),
                f"GET {LIST} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}"
                f"{'A' * 9000}\r\n\r\n".encode(),
            ):
                out = await _raw(api, data)
                assert out.startswith(b"HTTP/1.") and b" 400 " in out.split(b"\r\n")[0]
            # A slow body with the token in the query (408 after request_timeout).
            out = await _raw(api, f"PUT {LIST}/{rig.call}?accessRequestToken={t} HTTP/1.1\r\n"
                                  f"Host: x\r\nContent-Length: 50\r\n\r\n{{".encode())
            assert b" 408 " in out.split(b"\r\n")[0]
        await asyncio.sleep(0.2)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    text = "\n".join(handler.lines)
    assert "pbx_bridge.access" in text, "the access log was captured"
    assert "aiohttp.server" in text, "aiohttp's error log was captured"
    for s in secrets_:
        leaks = [line for line in handler.lines if s in line]
        assert not leaks, f"a secret reached the logs:\n{leaks[0][:500]}"
    report("tokens_logs", log_lines=len(handler.lines))
