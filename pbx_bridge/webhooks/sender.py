"""The sender: one worker per receiver (subscription), so a slow or dead receiver only
ever waits for itself; the API never waits for any.

A worker takes its receiver's due outbox rows, oldest first, and sends each, signed
(signing.py), with ``[events] timeout`` for the whole attempt and no redirects. A 2xx
settles the row ``delivered``; anything else is retried after ``backoff_first *
2^(n-1)`` seconds (capped at ``backoff_cap``, the upper half jittered), n being the
row's attempts or the receiver's failures in a row, whichever is more (so a receiver
that is down backs off even while new events keep arriving for it), and the worker
holds off that receiver until then; a row still failing ``retry_window`` seconds
after it was written is ``dead``. Workers stop when their receiver has nothing pending;
`wake` (after events are written) and a poll every ``poll_interval`` seconds (a
restart's leftovers, ``events redeliver`` from another process, rows another replica
wrote or gave up) start them again.

Replicas (PostgreSQL): the rows a worker attempts are claimed for ``delivery_lease``
seconds (outbox.py), a few at a time (as many as fit in half the lease at ``timeout``
each), and the receiver's failures in a row and hold-off live in the database, so every
replica's worker for a receiver backs off together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import aiohttp
import orjson
from prometheus_client import Histogram
from yarl import URL

from pbx_bridge.config import EventsSettings
from pbx_bridge.webhooks.guard import AddressRefused, Guard, GuardedResolver
from pbx_bridge.webhooks.outbox import Delivery, Outbox
from pbx_bridge.webhooks.signing import sign
from pbx_bridge.webhooks.subscriptions import Subscription, SubscriptionStore
from pbx_bridge.webhooks.voipnow import query_string

__all__ = ["DeliveryCounts", "Sender"]

log = logging.getLogger("pbx_bridge.webhooks")
_BATCH = 20


@dataclass
class DeliveryCounts:
    attempts: int = 0
    delivered: int = 0
    failed: int = 0  # attempts that did not get a 2xx
    dead: int = 0


class Sender:
    def __init__(
        self,
        outbox: Outbox,
        subscriptions: SubscriptionStore,
        settings: EventsSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.outbox = outbox
        self.subscriptions = subscriptions
        self.settings = settings
        self.guard = Guard(settings.allow_networks)
        self.counts = DeliveryCounts()
        # Not registered here: /metrics's registry collects it (api/metrics.py).
        self.lag = Histogram(
            "pbx_bridge_webhook_delivery_lag_seconds",
            "from an event written to the outbox to its successful delivery",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400),
            registry=None,
        )
        self._clock = clock
        # Who this sender is in the outbox's claims (host, process, instance).
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._failing: set[str] = set()  # receivers this sender saw fail since a 2xx
        self._workers: dict[str, tuple[asyncio.Task[None], asyncio.Event]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._poller: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifetime
    async def start(self) -> None:
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.guard), limit=0,
                                         limit_per_host=0)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
            headers={"User-Agent": "pbx-bridge-webhooks"},
        )
        self._poller = asyncio.create_task(self._poll())

    async def close(self) -> None:
        tasks = [t for t, _ in self._workers.values()]
        if self._poller is not None:
            tasks.append(self._poller)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._workers.clear()
        if self._session is not None:
            await self._session.close()

    def wake(self, subscriptions: Iterable[str]) -> None:
        for sub_id in subscriptions:
            worker = self._workers.get(sub_id)
            if worker is None:
                flag = asyncio.Event()
                task = asyncio.create_task(self._work(sub_id, flag))
                worker = self._workers[sub_id] = (task, flag)
            worker[1].set()

    async def _poll(self) -> None:
        while True:
            try:
                if self.subscriptions.shared:  # made or changed through another replica
                    await asyncio.to_thread(self.subscriptions.reload)
                self.wake(await asyncio.to_thread(self.outbox.waiting))
            except Exception:  # a broken database: the next round tries again
                log.warning("could not look for pending deliveries", exc_info=True)
            await asyncio.sleep(self.settings.poll_interval)

    # ------------------------------------------------------------------ one receiver
    async def _work(self, sub_id: str, flag: asyncio.Event) -> None:
        try:
            while await self._round(sub_id, flag):
                pass
        except Exception:
            log.exception("webhook worker %s stopped; the poll restarts it", sub_id)
        finally:
            self._workers.pop(sub_id, None)

    async def _round(self, sub_id: str, flag: asyncio.Event) -> bool:
        """One pass: send what is due; False when the worker may stop."""
        flag.clear()
        sub = self.subscriptions.cached(sub_id)
        if sub is None or not sub.active:
            return False
        due = await asyncio.to_thread(self.outbox.take, sub_id, self._clock(), self._batch(),
                                      owner=self.owner, lease=self.settings.delivery_lease)
        for delivery in due:
            retry_at = await self._attempt(sub, delivery)
            if retry_at is not None:  # the receiver fails: leave it alone until then
                await self._pause(flag, retry_at, wake_early=False)
                return True
        if due:
            return True
        upcoming = await asyncio.to_thread(self.outbox.next_due, sub_id)
        if upcoming is None and not flag.is_set():
            return False
        await self._pause(flag, upcoming, wake_early=True)
        return True

    def _batch(self) -> int:
        """Rows taken at once: with claims, as many as end well within their lease."""
        if not self.outbox.claims:
            return _BATCH
        fit = int(self.settings.delivery_lease // (2 * self.settings.timeout))
        return max(1, min(_BATCH, fit))

    async def _pause(self, flag: asyncio.Event, until: float | None, *, wake_early: bool) -> None:
        timeout = None if until is None else max(0.0, until - self._clock())
        if not wake_early:
            await asyncio.sleep(timeout or 0.0)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(flag.wait(), timeout)

    # ------------------------------------------------------------------ one attempt
    async def _attempt(self, sub: Subscription, d: Delivery) -> float | None:
        """Send once and settle the row; the retry time when it failed."""
        status, error = await self._send(sub, d)
        now = self._clock()
        attempts = d.attempts + 1
        self.counts.attempts += 1
        if status is not None and 200 <= status < 300:
            self.counts.delivered += 1
            self.lag.observe(max(0.0, now - d.created))  # written with its event
            if sub.id in self._failing or d.attempts:  # (another replica's failures too)
                self._failing.discard(sub.id)
                await asyncio.to_thread(self.outbox.recovered, sub.id)
            await self._settle(d, state="delivered", attempts=attempts, next_at=d.next_at,
                               status=status, error=None, now=now)
            return None
        self.counts.failed += 1
        self._failing.add(sub.id)
        error = error or f"HTTP {status}"
        if now - d.created >= self.settings.retry_window:
            self.counts.dead += 1
            log.warning("webhook %s: delivery %d dead after %d attempts (%s)",
                        sub.id, d.id, attempts, error)
            await self._settle(d, state="dead", attempts=attempts, next_at=d.next_at,
                               status=status, error=error, now=now)
            return now
        # The streak is the receiver's, shared by replicas: every sender holds off.
        retry_at = await asyncio.to_thread(
            self.outbox.failed, sub.id, lambda streak: now + self._backoff(max(attempts, streak)))
        await self._settle(d, state="pending", attempts=attempts, next_at=retry_at,
                           status=status, error=error, now=now)
        return retry_at

    async def _settle(self, d: Delivery, **outcome: object) -> None:
        if not await asyncio.to_thread(self._settle_now, d.id, outcome):
            log.info("webhook delivery %d: settled by another sender meanwhile", d.id)

    def _settle_now(self, delivery_id: int, outcome: dict[str, object]) -> bool:
        return self.outbox.settle(delivery_id, owner=self.owner, **outcome)  # type: ignore[arg-type]

    def _backoff(self, attempts: int) -> float:
        s = self.settings
        delay = min(s.backoff_first * 2 ** min(attempts - 1, 40), s.backoff_cap)
        return delay / 2 + random.uniform(0, delay / 2)

    async def _send(self, sub: Subscription, d: Delivery) -> tuple[int | None, str | None]:
        assert self._session is not None
        event = orjson.loads(d.event)
        ts = int(self._clock())
        url = URL(sub.url)
        if sub.method == "GET":
            query = query_string(event)
            signed = query.encode()
            target = URL(str(url) + ("&" if url.raw_query_string else "?") + query,
                         encoded=True)
            body = None
        else:
            signed = body = d.event.encode()
            target = url
        headers = {"webhook-id": event["id"], "webhook-timestamp": str(ts),
                   "webhook-signature": sign(sub.secret, event["id"], ts, signed)}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            self.guard.check_literal(url.host or "")
            async with self._session.request(sub.method, target, data=body, headers=headers,
                                             allow_redirects=False) as resp:
                return resp.status, None
        except aiohttp.ClientConnectorError as exc:
            # The guard refusing what a name resolves to now (DNS rebinding, or a change
            # since it was saved) reaches us wrapped as a DNS error: say what it was.
            cause = exc.os_error
            if isinstance(cause, AddressRefused):
                return None, f"AddressRefused: {str(cause)[:200]}"
            return None, f"{type(exc).__name__}: {str(exc)[:200]}"
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return None, f"{type(exc).__name__}: {str(exc)[:200]}"
