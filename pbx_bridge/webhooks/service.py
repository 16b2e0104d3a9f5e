"""The webhooks as the composition root plugs them in: a `Sink` of the events feature
(outbox rows written in the events' transaction, workers woken after it), the
subscriptions the API manages, the sender's lifetime, and the history's pruning."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from sqlalchemy import Connection

from pbx_bridge.config import EventsSettings
from pbx_bridge.events.model import Event
from pbx_bridge.events.store import EventStore
from pbx_bridge.storage.database import Database
from pbx_bridge.webhooks.outbox import Outbox
from pbx_bridge.webhooks.sender import Sender
from pbx_bridge.webhooks.subscriptions import SubscriptionStore

__all__ = ["Webhooks"]

log = logging.getLogger("pbx_bridge.webhooks")
_PRUNE_EVERY = 600.0


class Webhooks:
    def __init__(
        self,
        db: Database,
        settings: EventsSettings,
        history: EventStore,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.subscriptions = SubscriptionStore(db)
        self.outbox = Outbox(db)
        self.sender = Sender(self.outbox, self.subscriptions, settings, clock=clock)
        self.history = history
        self._clock = clock
        self._pruner: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ Sink
    def also(self, conn: Connection, batch: list[Event]) -> None:
        if self.subscriptions.shared:  # another replica may have made or changed some
            self.subscriptions.refresh(
                conn, {ev.organization for ev in batch if ev.organization is not None})
        rows = [(ev.seq, sub.id) for ev in batch for sub in self.subscriptions.matching(ev)]
        self.outbox.enqueue(conn, rows, self._clock())

    def written(self, batch: list[Event]) -> None:
        self.sender.wake({sub.id for ev in batch for sub in self.subscriptions.matching(ev)})

    # ------------------------------------------------------------------ lifetime
    async def start(self) -> None:
        await self.sender.start()
        self._pruner = asyncio.create_task(self._prune())

    async def close(self) -> None:
        if self._pruner is not None:
            self._pruner.cancel()
            await asyncio.gather(self._pruner, return_exceptions=True)
        await self.sender.close()
        try:  # what this sender held goes back to the other replicas now, not at lease end
            await asyncio.to_thread(self.outbox.release, self.sender.owner)
        except Exception:
            log.warning("could not hand back the deliveries this bridge held", exc_info=True)

    async def _prune(self) -> None:
        while True:
            try:
                older = self._clock() - self.settings.history_seconds
                gone = await asyncio.to_thread(
                    self.history.prune, older, self.settings.history_events)
                if gone:
                    log.info("event history: %d old events dropped", gone)
            except Exception:
                log.warning("could not prune the event history", exc_info=True)
            await asyncio.sleep(_PRUNE_EVERY)
