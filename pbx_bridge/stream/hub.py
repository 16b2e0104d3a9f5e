"""The stream's fan-out: one bounded queue per connected client.

The events feature tells its sinks about each batch only after it is stored
(events/feature.py), so everything a client is handed here is already in the history:
a client that registers first and then reads the history after its resume point
misses nothing (it skips, by sequence, what it gets twice).

Back-pressure: a client's queue holds at most ``bound`` events. A client that stops
reading stops draining it (its writes wait for the socket); when one more event would
not fit, the client is cut: its queue is emptied at once, ``on_cut`` aborts its
connection (which also ends a write waiting for the socket), and it may reconnect with
``Last-Event-ID``. Memory per client is bounded by the queue, not by what is produced.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy import Connection

from pbx_bridge.events.model import Event
from pbx_bridge.events.store import EventStore

__all__ = ["Cut", "Ended", "StreamHub", "Subscriber"]

log = logging.getLogger("pbx_bridge.stream")


class Ended(Exception):
    """The stream is over: the service is shutting down."""


class Cut(Ended):
    """The client fell ``bound`` events behind and was cut."""


class Subscriber:
    """One connected client: ``wants`` says which events it may and wants to see."""

    def __init__(self, wants: Callable[[Event], bool], bound: int,
                 on_cut: Callable[[], None]) -> None:
        self.wants = wants
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=bound)
        self.cut = False
        self.ended = False
        self._on_cut = on_cut

    def offer(self, event: Event) -> bool:
        """Queue the event; False (and the client cut) when the queue is full."""
        if self.cut:
            return True
        try:
            self.queue.put_nowait(event)
            return True
        except asyncio.QueueFull:
            self.cut_now()
            return False

    def cut_now(self) -> None:
        self.cut = True
        while not self.queue.empty():  # free what it holds now, not when it goes
            self.queue.get_nowait()
        self.queue.put_nowait(_CUT_MARK)  # wakes a reader waiting on the queue
        self._on_cut()

    def end(self) -> None:
        self.ended = True
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(_CUT_MARK)

    async def next(self) -> Event:
        event = await self.queue.get()
        if self.cut:
            raise Cut
        if self.ended:
            raise Ended
        return event


_CUT_MARK = Event(seq=0, id="", type="", time=0.0, organization=None, extension="",
                  phone_call_id=None, data={})


class StreamHub:
    """A `Sink` of the events feature (``also``/``written``) plus the counters the
    metrics show: clients connected now, clients cut so far."""

    def __init__(self, store: EventStore, bound: int) -> None:
        self.store = store
        self.bound = bound
        self.clients: set[Subscriber] = set()
        self.cut_total = 0

    def subscribe(self, wants: Callable[[Event], bool],
                  on_cut: Callable[[], None]) -> Subscriber:
        sub = Subscriber(wants, self.bound, on_cut)
        self.clients.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.clients.discard(sub)

    def close(self) -> None:
        """Shutting down: every stream ends (its clients reconnect to the next bridge)."""
        for sub in self.clients:
            sub.end()

    # ------------------------------------------------------------------ Sink
    def also(self, conn: Connection, batch: list[Event]) -> None:
        """Nothing to write: the history is the events table itself."""

    def written(self, batch: list[Event]) -> None:
        for sub in list(self.clients):
            try:
                kept = all(sub.offer(event) for event in batch if sub.wants(event))
            except Exception:  # the directory unreadable: cut it (it resumes), not the rest
                log.warning("event stream client cut: could not check an event",
                            exc_info=True)
                sub.cut_now()
                kept = False
            if not kept:
                self.cut_total += 1
                self.clients.discard(sub)
                log.info("event stream client cut (queue of %d events full)", self.bound)

    def queued(self) -> int:
        """Events waiting in all clients' queues (the measure of what they hold)."""
        return sum(sub.queue.qsize() for sub in self.clients)
