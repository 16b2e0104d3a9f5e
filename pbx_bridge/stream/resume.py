"""Where a stream starts, and the history it replays first (blocking: called through
``asyncio.to_thread``).

Event ids are ``evt-`` + the sequence in hex (events/model.py) and the sequence has no
holes but those the history's pruning makes, so "did the client miss anything kept no
more?" is a count: the events kept after its id against the events numbered after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pbx_bridge.events.model import event_id
from pbx_bridge.events.store import EventStore

__all__ = ["Start", "plan"]


@dataclass(frozen=True)
class Start:
    """Replay the history after ``after``; ``gap``: what to tell a client that missed
    events the history no longer keeps (None: it missed nothing); ``top``: the last
    event stored when the stream started."""

    after: int
    top: int
    gap: dict[str, Any] | None


def plan(store: EventStore, last_seen: int | None) -> Start:
    """``last_seen``: the sequence of the client's ``Last-Event-ID``, or None (live only)."""
    if last_seen is None:
        _kept, top = store.span_after(0)
        return Start(after=top, top=top, gap=None)
    kept, top = store.span_after(last_seen)
    if last_seen > top:  # not an id of this bridge's history (another bridge, a reset one)
        return Start(after=0, top=top, gap={
            "lastEventId": event_id(last_seen), "reason": "unknown",
            "missed": None, "lastKept": event_id(top) if top else None,
        })
    missed = top - last_seen - kept
    if missed > 0:
        return Start(after=last_seen, top=top, gap={
            "lastEventId": event_id(last_seen), "reason": "expired",
            "missed": missed, "lastKept": event_id(top),
        })
    return Start(after=last_seen, top=top, gap=None)


def history_page(store: EventStore, after: int, limit: int) -> list[dict[str, Any]]:
    return store.after(after, limit)
