"""Background writes yield to requests (issue 15).

The recordings catalog and the event history write to the database in a worker thread
on every MixMonitorStart/Stop. That thread's Python (SQLAlchemy) holds the GIL while the
event loop needs it to read the AMI answer and write the HTTP one: measured, it was most
of what a StartRecording cost over the minimal AMI client sending the same actions
(docs/performance.md, "Issue 15"). So the API counts the requests in flight
(api/quiet.py's middleware) and a background writer first ``await quiet.wait(delay)``:
until no request is in flight, or ``delay`` seconds at most, so a write is later, never
lost, and under a steady load it still leaves every ``delay`` (and carries what queued
meanwhile in one transaction). ``delay`` 0 writes at once, as before.

`QuietWriter` is the writer's side, one per queue (the recordings catalog's rows, the
events' history): at most one writer task waits at a time, and what is queued while it
waits joins its batch. One task per queued item piled up by the ten thousand under the
bench's load (docs/performance.md, "Issue 15": the writer backlog).

No feature imports: the API enters and leaves, the writers wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

__all__ = ["Quiet", "QuietWriter"]


class Quiet:
    """How many requests are in flight, and a wait for none."""

    def __init__(self) -> None:
        self.busy = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False

    def enter(self) -> None:
        self.busy += 1
        if self.busy == 1:
            self._idle.clear()

    def leave(self) -> None:
        self.busy -= 1
        if self.busy == 0:
            self._idle.set()

    def close(self) -> None:
        """A graceful stop: waits end now and from now on (the writers flush)."""
        self._closing = True
        self._idle.set()

    async def wait(self, max_delay: float) -> None:
        """Until no request is in flight, ``max_delay`` seconds at most (0: at once)."""
        if max_delay <= 0 or self._closing or self.busy == 0:
            return
        try:
            async with asyncio.timeout(max_delay):
                await self._idle.wait()
        except TimeoutError:
            pass


class QuietWriter:
    """One queue's writes: ``due(spawn)`` after queueing; ``write()`` then runs once the
    quiet wait ends, batches one after another under ``lock`` (which others may also
    hold: their writes then come between two batches, never inside one)."""

    def __init__(self, quiet: Quiet, delay: float, write: Callable[[], Awaitable[None]]) -> None:
        self.lock = asyncio.Lock()
        self._quiet = quiet
        self._delay = delay
        self._write = write
        # A writer task is spawned that has not taken its batch yet.
        self._due = False
        self._wrote = asyncio.Event()  # set (and replaced) after each batch

    def due(self, spawn: Callable[[Coroutine[Any, Any, None]], object]) -> None:
        """Something was queued: a writer task is spawned unless one already waits."""
        if not self._due:
            self._due = True
            spawn(self._run())

    async def until(self, done: Callable[[], bool]) -> None:
        """Until ``done()``, asked again after each batch (a wait per batch, where a poll
        every few milliseconds by each of a burst's thousands of waiters kept the event
        loop too busy to read the AMI link)."""
        while not done():
            await self._wrote.wait()

    async def _run(self) -> None:
        try:
            async with self.lock:
                await self._quiet.wait(self._delay)
                # What is queued from now on needs a writer of its own.
                self._due = False
                try:
                    await self._write()
                finally:
                    self._wrote.set()
                    self._wrote = asyncio.Event()
        except asyncio.CancelledError:  # maybe before its batch: the next queueing spawns one
            self._due = False
            raise
