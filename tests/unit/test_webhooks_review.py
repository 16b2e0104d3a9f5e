"""Webhooks reviewed for what must never happen: a subscription's secret in a log line
(a failed database write carries its parameters), a receiver reached through a name that
resolves to a refused range when the delivery is made (not only when it was saved), and
a sender whose memory grows with the rows a dead receiver leaves pending."""

from __future__ import annotations

import asyncio
import logging
import time
import tracemalloc

from sqlalchemy import Connection

from pbx_bridge.events.model import Event, event_id
from pbx_bridge.webhooks.signing import new_secret
from pbx_bridge.webhooks.subscriptions import Subscription, new_id
from tests.unit.api_support import Api, error_of
from tests.unit.test_webhooks import A_PATH, A, B, api, receivers, until

__all__ = ["api", "receivers"]


def _sub(url: str, **kw: object) -> Subscription:
    base: dict[str, object] = dict(
        id=new_id(), organization=3, extension=A, url=url, method="POST",
        types=("call.ringing", "recording.started"), active=True, secret=new_secret(),
        created=time.time())
    base.update(kw)
    return Subscription(**base)  # type: ignore[arg-type]


async def test_a_failed_write_never_logs_the_secret(api: Api, caplog) -> None:
    """A database that refuses the new subscription (here a trigger, as a full disk or a
    constraint would): the 500's log line must not carry the secret, nor SQL parameters."""
    with api.bridge.webhooks.subscriptions.db.transaction(write=True) as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON webhook_subscriptions "
            "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
    caplog.set_level(logging.DEBUG)
    resp = await api.client.post(A_PATH, json={"url": "http://127.0.0.1:9/hook"},
                                 headers=api.apps.auth("john"))
    assert await error_of(resp) == (500, "internal_error")
    assert "internal error" in caplog.text  # the failure is logged...
    assert "whsec_" not in caplog.text  # ...without the secret it was writing


async def test_a_name_resolving_to_a_refused_range_is_not_reached(api: Api, receivers
                                                                  ) -> None:
    """Saved while its name pointed elsewhere (DNS changes after the check): the
    delivery resolves `localhost` again, finds loopback, and sends nothing."""
    rec = await receivers()
    sender = api.bridge.webhooks.sender
    sender.guard.allow = ()
    port = int(rec.url.rsplit(":", 1)[1].split("/", 1)[0])
    api.bridge.webhooks.subscriptions.add(_sub(f"http://localhost:{port}/hook"))
    api.pbx.call(f"PJSIP/{A}", f"PJSIP/{B}", answered=False)
    await until(lambda: sender.counts.failed >= 1)
    assert rec.raw == []
    (row,) = api.bridge.webhooks.outbox.find()
    assert row.state == "pending" and "refused range" in (row.last_error or ""), row


def _pile(api: Api, sub: Subscription, n: int, start: int) -> None:
    """n pending rows (with their ~2 KB events) for `sub`, written as the feature does."""
    now = time.time()
    batch = [Event(seq=s, id=event_id(s), type="recording.started", time=now,
                   organization=3, extension=A, phone_call_id="x" * 20,
                   data={"pad": "y" * 2000}) for s in range(start, start + n)]

    def rows(conn: Connection, events: list[Event]) -> None:
        api.bridge.webhooks.outbox.enqueue(conn, [(e.seq, sub.id) for e in events], now)
    api.bridge.events.store.append(batch, rows)


async def _peak_while_failing(api: Api, sub: Subscription, seconds: float) -> int:
    sender = api.bridge.webhooks.sender
    tracemalloc.start()
    try:
        before = sender.counts.failed
        sender.wake([sub.id])
        await until(lambda: sender.counts.failed >= before + 3)
        await asyncio.sleep(seconds)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def test_a_dead_receiver_s_backlog_stays_in_the_database(api: Api) -> None:
    """A receiver that refuses connections with 100, then 20,100 rows pending (40 MB of
    events): the sender's peak memory while it keeps failing is the same (it holds one
    batch at a time), not 400 KB more per 2,000 rows."""
    sub = _sub("http://127.0.0.1:9/hook")  # port 9 (discard): refused on loopback
    api.bridge.webhooks.subscriptions.add(sub)
    _pile(api, sub, 100, 1_000_000)
    small = await _peak_while_failing(api, sub, 0.5)
    _pile(api, sub, 20_000, 2_000_000)
    large = await _peak_while_failing(api, sub, 0.5)
    assert api.bridge.webhooks.outbox.counts()["pending"] == 20_100
    # 20,000 more rows of 2 KB each would be 40 MB if held: a 4 MB slack says "not held".
    assert large - small < 4_000_000, (small, large)
