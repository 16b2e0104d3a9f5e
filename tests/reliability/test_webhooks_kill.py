"""Webhooks through a SIGKILL (issue 12, done-when): `pbx-bridge serve` (a real subprocess)
records a real call on the sandbox Asterisk and pauses/resumes it through the API until
ten recording events wait in its outbox, undelivered because the receiver (a real aiohttp
server on loopback) answers 503. The bridge is killed with SIGKILL, the receiver starts
answering 204, the bridge is started again: all ten events arrive, each accepted exactly
once per `webhook-id`, every request's signature verified with `standardwebhooks`.

The receiver counts raw requests (every attempt, 503s included) and unique ids: at least
once means raw exceeds unique by the refused attempts before the kill (and, in general,
by any 2xx whose answer a crash lost before the row was settled)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from standardwebhooks import Webhook

from pbx_bridge.calls.tracker import call_id
from tests.reliability.support import START, Calls, report, start_server, until
from tests.reliability.test_bridge_kill import A, ServeProcess, serve_env  # noqa: F401

PBX_BRIDGE = Path(sys.executable).with_name("pbx-bridge")
TYPES = ["recording.started", "recording.paused", "recording.resumed"]
# started, then paused/resumed in turn: ten events, the last a pause.
ACTIONS = ["PauseRecording", "ResumeRecording"] * 4 + ["PauseRecording"]


class Receiver:
    """Answers 503 while `refusing`, else 204; verifies every request's signature."""

    def __init__(self) -> None:
        self.secret = ""
        self.refusing = True
        self.raw: list[tuple[str, int]] = []  # (webhook-id, status answered)
        self.events: dict[str, dict] = {}  # de-duplicated by webhook-id
        self.bad_signatures = 0

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            event = Webhook(self.secret).verify(body, dict(request.headers))
        except Exception:
            self.bad_signatures += 1
            return web.Response(status=400)
        msg_id = request.headers["webhook-id"]
        assert event["id"] == msg_id
        status = 503 if self.refusing else 204
        self.raw.append((msg_id, status))
        if status == 204:
            self.events.setdefault(msg_id, event)
        return web.Response(status=status)

    def seen(self) -> set[str]:
        return {i for i, _ in self.raw}

    def accepted(self) -> Counter[str]:
        return Counter(i for i, s in self.raw if s == 204)


async def _pending(env: dict[str, str]) -> int:
    """Pending rows as `pbx-bridge events deliveries` (the admin's command) lists them."""
    proc = await asyncio.create_subprocess_exec(
        str(PBX_BRIDGE), "events", "deliveries", "--state", "pending", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return len(out.decode().splitlines()) - 1  # the header line


@pytest.fixture
async def receiver() -> Receiver:
    return Receiver()


async def test_ten_pending_events_survive_sigkill(pbx, observer, serve_env, receiver,  # noqa: F811
                                                  tmp_path) -> None:
    env, token, port = serve_env
    env = dict(env, PBX_BRIDGE_EVENTS__ALLOW_NETWORKS='["127.0.0.0/8"]',
               PBX_BRIDGE_EVENTS__BACKOFF_FIRST="0.2", PBX_BRIDGE_EVENTS__BACKOFF_CAP="1",
               PBX_BRIDGE_EVENTS__POLL_INTERVAL="0.5")
    app = web.Application()
    app.router.add_post("/hook", receiver.hook)
    server = await start_server(app)
    calls = Calls(pbx, observer.client, observer)
    bridge = ServeProcess(env, tmp_path / "serve.log", port)
    auth = {"Authorization": f"Bearer {token}"}
    try:
        async with aiohttp.ClientSession(headers=auth) as http:
            await bridge.start(http)
            url = f"{bridge.base}/uapi/extensions/@me/{A}/phoneCallEvents"
            hook = str(server.make_url("/hook"))
            async with http.post(url, json={"url": hook, "types": TYPES}) as r:
                assert r.status == 201, await r.text()
                receiver.secret = (await r.json())["secret"]
            await calls.add_phones(1)
            (c,) = await calls.start_many([A])
            call = f"{bridge.base}/uapi/phoneCalls/@me/{A}/{call_id(c.uniqueid)}"
            for n, body in enumerate([START] + [
                    {"action": a, "phoneCallViewId": "01"} for a in ACTIONS], start=1):
                for _ in range(50):  # the call may not be tracked yet
                    async with http.put(call, json=body) as r:
                        if r.status == 200:
                            break
                    await asyncio.sleep(0.1)
                assert r.status == 200, await r.text()
                # Asterisk's answer made the event; the receiver refused it at least once.
                await until(lambda n=n: len(receiver.seen()) == n, 20, f"{n} events tried")
            assert await _pending(env) == 10
            refused_before_kill = len(receiver.raw)

            await bridge.kill()
            receiver.refusing = False
            assert await _pending(env) == 10, "the outbox outlived the process"
            await bridge.start(http)
            await until(lambda: len(receiver.events) == 10, 30, "ten events delivered")
            await asyncio.sleep(2.0)  # a few more sender polls: nothing is sent again
            assert await _pending(env) == 0

            accepted = receiver.accepted()
            assert set(accepted) == receiver.seen() and len(accepted) == 10
            assert all(k == 1 for k in accepted.values()), accepted
            assert receiver.bad_signatures == 0
            kinds = [e["type"] for e in sorted(receiver.events.values(), key=lambda e: e["seq"])]
            assert kinds == ["recording.started"] + [
                "recording.paused" if a == "PauseRecording" else "recording.resumed"
                for a in ACTIONS], kinds
            log = (tmp_path / "serve.log").read_text(errors="replace")
            assert receiver.secret not in log and receiver.secret[6:] not in log
            report("webhooks_sigkill", events=10, unique_ids=len(receiver.events),
                   raw_requests=len(receiver.raw), refused_before_kill=refused_before_kill,
                   accepted_per_id=sorted(set(accepted.values())),
                   raw_after_restart=len(receiver.raw) - refused_before_kill,
                   attempts_per_id=json.dumps(sorted(Counter(i for i, _ in receiver.raw)
                                                     .values())))
            await calls.hangup(c)
    finally:
        await bridge.stop()
        await calls.close()
        await server.close()
