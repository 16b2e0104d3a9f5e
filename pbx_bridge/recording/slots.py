"""One view's recording slot: what serialises and remembers its starts and stops.

A view is ``(linkedid, extension)``. Its slot holds the lock every start and stop of
the view runs under, the second of its last start (file names carry the start second,
so a second start must wait for a later one), and the start time of a StartRecording
that timed out (its actions may still run in a slow Asterisk: the next start asks
first). `ViewSlots` keeps one slot per view and forgets the slots of ended calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Container
from dataclasses import dataclass, field

View = tuple[str, str]  # (linkedid, extension)


@dataclass(slots=True, eq=False)
class ViewSlot:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_start: int | None = None  # the second of the view's last start
    in_doubt: float | None = None  # start time of a start that timed out

    async def free_second(self, clock: Callable[[], float]) -> float:
        """A start time in a later second than the view's previous start. MixMonitor
        truncates an existing file, so a view started, stopped and started again within
        one second would overwrite its previous recording. Waits (under the view's
        lock) at most one second."""
        now = clock()
        last = self.last_start
        if last is not None and int(now) <= last:
            await asyncio.sleep(min(1.0, last + 1 - now))
            now = max(clock(), last + 1.0)
        self.last_start = int(now)
        return now


class ViewSlots:
    def __init__(self) -> None:
        self._slots: dict[View, ViewSlot] = {}

    def __len__(self) -> int:
        return len(self._slots)

    def get(self, view: View) -> ViewSlot | None:
        return self._slots.get(view)

    def busy(self) -> bool:
        """Does any start or stop run now?"""
        return any(slot.lock.locked() for slot in self._slots.values())

    def slot(self, view: View, live_calls: Container[str], n_live: int) -> ViewSlot:
        """The view's slot, made on first use. Slots of ended calls (``live_calls``
        holds the live Linkedids) are dropped now and then, so the map cannot grow
        without bound; a slot whose lock is held stays."""
        slot = self._slots.get(view)
        if slot is None:
            if len(self._slots) > 4 * (n_live + 64):
                self._slots = {
                    k: v for k, v in self._slots.items()
                    if k[0] in live_calls or v.lock.locked()
                }
            slot = self._slots[view] = ViewSlot()
        return slot
