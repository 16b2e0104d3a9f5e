"""The stream's fan-out: one bounded queue per connected client.

Everything a client is handed here is already in the history, in the history's order:
a client that registers first and then reads the history after its resume point
misses nothing (it skips, by sequence, what it gets twice).

Replicas: the history is shared, and an event one replica stored is not stored again by
another that heard the same AMI event (events/store.py), so the hub follows the
history, not this bridge's writes: a tail reads the events after the last one handed
out, in sequence order, when this bridge stored some (its sinks' ``written`` wakes it)
and every ``[events] stream_poll_interval`` seconds (what other replicas stored). A
batch this bridge stored right after the last one handed out is handed out as it is,
without reading it back (a single bridge never reads its own events again).

Back-pressure: a client's queue holds at most ``bound`` events. A client that stops
reading stops draining it (its writes wait for the socket); when one more event would
not fit, the client is cut: its queue is emptied at once, ``on_cut`` aborts its
connection (which also ends a write waiting for the socket), and it may reconnect with
``Last-Event-ID``. Memory per client is bounded by the queue, not by what is produced.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
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

    def __init__(self, store: EventStore, bound: int, poll_interval: float = 1.0) -> None:
        self.store = store
        self.bound = bound
        self.poll_interval = poll_interval
        self.clients: set[Subscriber] = set()
        self.cut_total = 0
        self.handed: int | None = None  # the last seq handed out (None: no tail yet)
        self._wake = asyncio.Event()
        self._tail: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Follow the history from its last event now (before the first client
        subscribes and reads the history: nothing falls between the two)."""
        if self._tail is None:
            if self.handed is None:
                self.handed = await asyncio.to_thread(self.store.last_seq)
            self._tail = asyncio.create_task(self._follow())

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
        if self._tail is not None:
            self._tail.cancel()
            self._tail = None

    # ------------------------------------------------------------------ Sink
    def also(self, conn: Connection, batch: list[Event]) -> None:
        """Nothing to write: the history is the events table itself."""

    def written(self, batch: list[Event]) -> None:
        """This bridge stored ``batch``: hand it out if it comes right after the last
        event handed out, else let the tail read the history in order."""
        if self.handed is None:
            return  # no stream ever started: nothing follows the history
        if batch and batch[0].seq == self.handed + 1 and all(
                b.seq == a.seq + 1 for a, b in itertools.pairwise(batch)):
            self._hand_out(batch)
        else:
            self._wake.set()

    async def _follow(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            self._wake.clear()
            try:
                await self._catch_up()
            except Exception:  # a broken database: the next round tries again
                log.warning("event stream: could not read the history", exc_info=True)

    async def _catch_up(self) -> None:
        assert self.handed is not None
        if not self.clients:  # nobody to hand out to: just keep up with the history
            top = await asyncio.to_thread(self.store.last_seq)
            if not self.clients:  # (one that came meanwhile may need what came before)
                self.handed = max(self.handed, top)
            return
        while True:
            page = await asyncio.to_thread(self.store.after_events, self.handed, 500)
            page = [ev for ev in page if ev.seq > self.handed]  # written() went first
            if not page:
                return
            self._hand_out(page)

    def _hand_out(self, batch: list[Event]) -> None:
        self.handed = batch[-1].seq
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
