"""Webhooks end to end inside one process: subscriptions through the API (access
rules, errors), events from the tracker written to the outbox before any attempt, and
a real aiohttp receiver on loopback: signatures verified with the Standard Webhooks
reference library (`standardwebhooks`), VoipNow's GET fields, retries (500 x3 then 200:
one arrival), a slow receiver that does not hold up another, a restart that resumes,
no redirects followed, the SSRF guard, `pbx-bridge events deliveries|redeliver`."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from standardwebhooks import Webhook

from pbx_bridge.config import EventsSettings
from pbx_bridge.events.model import Event, event_id
from pbx_bridge.webhooks.guard import Guard
from pbx_bridge.webhooks.outbox import Delivery
from pbx_bridge.webhooks.service import Webhooks
from tests.unit.api_support import Api, error_of

A, B = "0003*210", "0003*211"
A_PATH = "/uapi/extensions/@me/0003%2A210/phoneCallEvents"
FAST = EventsSettings(allow_networks=["127.0.0.0/8"], timeout=2.0, backoff_first=0.05,
                      backoff_cap=0.2, poll_interval=0.2)


@dataclass
class Receiver:
    """A webhook receiver: answers ``plan`` statuses in turn (then 200), keeps every
    raw arrival, and de-duplicates by webhook-id as receivers should."""

    plan: list[int] = field(default_factory=list)
    delay: float = 0.0
    raw: list[tuple[str, dict[str, str], bytes, str]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.raw.append((request.method, dict(request.headers), body,
                         request.rel_url.raw_query_string))
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=self.plan.pop(0) if self.plan else 200)

    @property
    def ids(self) -> Counter[str]:
        return Counter(h["webhook-id"] for _, h, _, _ in self.raw)

    def unique(self) -> list[dict[str, Any]]:
        seen: dict[str, dict[str, Any]] = {}
        for _method, headers, body, _q in self.raw:
            seen.setdefault(headers["webhook-id"], json.loads(body) if body else {})
        return list(seen.values())


@pytest.fixture
async def receivers(aiohttp_server):
    async def make(**kw: Any) -> Receiver:
        rec = Receiver(**kw)
        app = web.Application()
        app.router.add_route("*", "/hook", rec.handle)

        async def moved(request: web.Request) -> web.Response:
            raise web.HTTPFound(rec.url)
        app.router.add_route("*", "/moved", moved)
        server = await aiohttp_server(app, host="127.0.0.1")
        rec.url = str(server.make_url("/hook"))
        return rec
    return make


@pytest.fixture
async def api(aiohttp_client, tmp_path, monkeypatch) -> Api:
    api = await Api.start(aiohttp_client, tmp_path)
    api.ready(monkeypatch)
    sender = api.bridge.webhooks.sender
    sender.settings = api.bridge.webhooks.settings = FAST
    sender.guard.allow = Guard(FAST.allow_networks).allow
    events = api.bridge.events
    feed = api.pbx.feed

    def feed_and_tell(ev: dict[str, str]) -> None:
        feed(ev)
        events.on_event(ev)
    monkeypatch.setattr(api.pbx, "feed", feed_and_tell)
    return api


async def subscribe(api: Api, url: str, who: str = "john", path: str = A_PATH,
                    **body: Any) -> dict[str, Any]:
    resp = await api.client.post(path, json={"url": url, **body}, headers=api.apps.auth(who))
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def until(predicate: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def verify(secret: str, headers: dict[str, str], signed: bytes) -> None:
    Webhook(secret).verify(signed, {k.lower(): v for k, v in headers.items()}, json_parse=False)


async def test_a_call_is_delivered_signed_to_a_post_subscriber(api: Api, receivers) -> None:
    rec = await receivers()
    sub = await subscribe(api, rec.url)
    assert sub["secret"].startswith("whsec_") and sub["method"] == "POST"
    api.pbx.call(f"PJSIP/{A}", f"PJSIP/{B}")
    await until(lambda: len(rec.raw) == 2)
    for _method, headers, body, _q in rec.raw:
        verify(sub["secret"], headers, body)
    got = [(e["type"], e["data"]["callEventType"]) for e in rec.unique()]
    assert got == [("call.ringing", 1), ("call.answered", 4)]
    assert all(e["extension"] == A and e["ownerId"] == "3" for e in rec.unique())
    resp = await api.client.get(f"{A_PATH}/{sub['id']}", headers=api.apps.auth("john"))
    assert "secret" not in await resp.json()  # shown once


async def test_voipnow_get_delivery_sends_its_query_fields_signed(api: Api, receivers) -> None:
    rec = await receivers()
    sub = await subscribe(api, rec.url, method="GET", types=["call.ringing"])
    api.pbx.call("PJSIP/pstn", f"PJSIP/{A}", caller_num="7778888", caller_name="John Doe")
    await until(lambda: len(rec.raw) == 1)
    method, headers, body, query = rec.raw[0]
    assert method == "GET" and body == b""
    verify(sub["secret"], headers, query.encode())
    fields = dict(part.split("=", 1) for part in query.split("&"))
    assert fields["EventType"] == "call.ringing" and fields["EventId"] == headers["webhook-id"]
    assert fields["CallerIDNum"] == "7778888" and fields["CallerIDName"] == "John%20Doe"
    assert fields["CalledExtension"] == "0003%2A210" and fields["CallFlow"] == "IN"
    assert fields["CallStatus"] == "CALLING" and fields["CalledNumber"] == "0003%2A210"
    assert {"CallID", "CalledDID", "CallerExtension"} <= set(fields)


async def test_three_500s_then_200_arrive_once_per_id(api: Api, receivers) -> None:
    rec = await receivers(plan=[500, 500, 500])
    await subscribe(api, rec.url, types=["call.ringing"])
    api.pbx.call(f"PJSIP/{A}", f"PJSIP/{B}", answered=False)
    await until(lambda: len(rec.raw) == 4)
    await asyncio.sleep(0.3)
    assert len(rec.ids) == 1 and list(rec.ids.values()) == [4]  # one event, four arrivals
    (row,) = api.bridge.webhooks.outbox.find()
    assert (row.state, row.attempts, row.last_status) == ("delivered", 4, 200)


async def test_a_slow_receiver_does_not_hold_up_another(api: Api, receivers) -> None:
    slow = await receivers(delay=1.5)
    fast = await receivers()
    await subscribe(api, slow.url)
    await subscribe(api, fast.url)
    api.pbx.call(f"PJSIP/{A}", f"PJSIP/{B}")
    await until(lambda: len(fast.raw) == 2, timeout=1.2)  # the slow one is still on its first
    assert len(slow.raw) == 1


async def test_a_redirect_is_never_followed(api: Api, receivers) -> None:
    rec = await receivers()
    await subscribe(api, rec.url.replace("/hook", "/moved"), types=["call.ringing"])
    api.pbx.call(f"PJSIP/{A}", f"PJSIP/{B}", answered=False)
    await until(lambda: api.bridge.webhooks.sender.counts.failed >= 1)
    assert rec.raw == []
    (row,) = api.bridge.webhooks.outbox.find()
    assert row.state == "pending" and row.last_status == 302


async def test_loopback_is_refused_unless_allowed(api: Api, receivers) -> None:
    api.bridge.webhooks.sender.guard.allow = ()
    for url in ("http://127.0.0.1:9/hook", "http://[::1]:9/x", "http://10.1.2.3/x",
                "http://169.254.169.254/latest", "http://localhost:9/x", "ftp://example.com/x",
                "http://0.0.0.0/x"):
        resp = await api.client.post(A_PATH, json={"url": url}, headers=api.apps.auth("john"))
        assert await error_of(resp) == (400, "url_invalid"), url


async def test_subscription_errors_and_access(api: Api, receivers) -> None:
    rec = await receivers()
    post = api.client.post
    bad_type = await post(A_PATH, json={"url": rec.url, "types": ["call.nope"]},
                          headers=api.apps.auth("john"))
    assert await error_of(bad_type) == (400, "event_type_invalid")
    bad_body = await post(A_PATH, json={"url": rec.url, "extra": 1},
                          headers=api.apps.auth("john"))
    assert await error_of(bad_body) == (400, "body_invalid")
    sub = await subscribe(api, rec.url)
    one = f"{A_PATH}/{sub['id']}"
    # Jane (same organization, not her extension) and user 20 (another organization).
    other_ext = await api.client.get("/uapi/extensions/12/0003%2A210/phoneCallEvents",
                                     headers=api.apps.auth("jane"))
    assert await error_of(other_ext) == (403, "access_denied")
    foreign = await api.client.get("/uapi/extensions/12/0003%2A210/phoneCallEvents",
                                   headers=api.apps.auth("other"))
    assert await error_of(foreign) == (400, "extension_invalid")  # as PhoneCalls answer
    on_b = await api.client.get(f"/uapi/extensions/@me/0003%2A211/phoneCallEvents/{sub['id']}",
                                headers=api.apps.auth("john"))
    assert await error_of(on_b) == (400, "subscription_invalid")
    put = await api.client.put(one, json={"active": False}, headers=api.apps.auth("john"))
    assert put.status == 200 and (await put.json())["active"] is False
    listed = await api.client.get(A_PATH, headers=api.apps.auth("john"))
    assert (await listed.json())["totalResults"] == 1
    gone = await api.client.delete(one, headers=api.apps.auth("john"))
    assert gone.status == 204
    assert (await api.client.get(A_PATH, headers=api.apps.auth("john"))).status == 204


async def test_organization_subscription_gets_every_extension(api: Api, receivers) -> None:
    rec = await receivers()
    path = "/uapi/organizations/3/phoneCallEvents"
    user = await api.client.post(path, json={"url": rec.url}, headers=api.apps.auth("john"))
    assert await error_of(user) == (403, "access_denied")
    foreign = await api.client.post(path, json={"url": rec.url}, headers=api.apps.auth("org4"))
    assert await error_of(foreign) == (400, "organization_invalid")
    await subscribe(api, rec.url, who="org3", path=path, types=["call.ringing"])
    api.pbx.call(f"PJSIP/{A}", f"PJSIP/{B}", answered=False)
    await until(lambda: len(rec.raw) == 2)
    assert sorted(e["extension"] for e in rec.unique()) == [A, B]


def _events(n: int, first: int = 1) -> list[Event]:
    return [Event(seq=s, id=event_id(s), type="call.ringing", time=0.0, organization=3,
                  extension=A, phone_call_id="ab" * 10, data={"n": s})
            for s in range(first, first + n)]


async def test_pending_deliveries_resume_after_a_restart(api: Api, receivers) -> None:
    """The outbox rows are written with the events; a new Webhooks (a restarted
    bridge) delivers them all, once per id."""
    rec = await receivers()
    await subscribe(api, rec.url)
    hooks = api.bridge.webhooks
    await hooks.close()  # the sender is gone: nothing is attempted
    batch = _events(10, first=1000)
    hooks.history.append(batch, hooks.also)
    assert hooks.outbox.counts() == {"pending": 10}
    again = Webhooks(api.bridge.directory.database, FAST, hooks.history)
    await again.start()
    try:
        await until(lambda: len(rec.ids) == 10)
        assert set(rec.ids.values()) == {1}
    finally:
        await again.close()


async def test_a_receiver_that_stays_down_goes_dead_and_redeliver_revives(
    api: Api, receivers
) -> None:
    from pbx_bridge.webhooks.cli import deliveries_lines

    rec = await receivers(plan=[500] * 100)
    await subscribe(api, rec.url, types=["call.ringing"])
    hooks = api.bridge.webhooks
    hooks.sender.settings = EventsSettings(**{**FAST.model_dump(), "retry_window": 0.3})
    api.pbx.call(f"PJSIP/{A}", f"PJSIP/{B}", answered=False)
    await until(lambda: hooks.outbox.counts().get("dead") == 1)
    (row,) = hooks.outbox.find("dead")
    assert row.attempts >= 2 and row.last_status == 500
    assert any(f"{row.id}" in line and "dead" in line for line in deliveries_lines(hooks.outbox))
    rec.plan.clear()
    hooks.sender.settings = FAST
    assert hooks.outbox.redeliver(row.id, 0.0)
    hooks.sender.wake([row.subscription])
    await until(lambda: hooks.outbox.counts().get("delivered") == 1)



async def test_a_receiver_that_is_down_backs_off_even_as_new_events_arrive(
        api: Api, receivers, monkeypatch) -> None:
    """Each new event's row has no attempts yet; the hold-off must still grow with the
    receiver's failures in a row (else a dead receiver is hit every few seconds all
    day), and start again from the first step once it answers 2xx."""
    rec = await receivers()
    sub_id = (await subscribe(api, rec.url, types=["call.ringing"]))["id"]
    sub = api.bridge.webhooks.subscriptions.cached(sub_id)
    sender = api.bridge.webhooks.sender
    sender.settings = FAST.model_copy(update={"backoff_first": 1.0, "backoff_cap": 3600.0})
    answers = [(503, None)] * 8 + [(200, None), (503, None)]

    async def send(_sub: object, _d: object) -> tuple[int | None, str | None]:
        return answers.pop(0)
    monkeypatch.setattr(sender, "_send", send)
    monkeypatch.setattr(api.bridge.webhooks.outbox, "settle", lambda *a, **kw: None)
    now = 1_000_000.0
    sender._clock = lambda: now
    holds = []
    for seq in range(10):  # a new event each time: every row is on its first attempt
        fresh = Delivery(id=seq, event_seq=seq, subscription=sub_id, state="pending",
                         attempts=0, next_at=now, created=now)
        retry_at = await sender._attempt(sub, fresh)
        holds.append(None if retry_at is None else retry_at - now)
    for n, hold in enumerate(holds[:8], start=1):  # 2^(n-1) s, the upper half jittered
        assert 2 ** (n - 1) / 2 <= hold <= 2 ** (n - 1), (n, holds)
    assert holds[8] is None and holds[9] <= 1.0  # delivered: the next failure starts over
