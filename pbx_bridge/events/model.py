"""The Event as receivers and the stream see it (CONTRACT section 7, "Event")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from pbx_bridge.calls.model import iso

__all__ = [
    "CALL_ANSWER_IN",
    "CALL_ANSWER_OUT",
    "CALL_DIAL_IN",
    "CALL_DIAL_OUT",
    "CALL_HANGUP",
    "CALL_TYPES",
    "EVENT_TYPES",
    "RECORDING_TYPES",
    "Draft",
    "Event",
    "event_id",
]

CALL_TYPES: Final = ("call.ringing", "call.answered", "call.hangup")
RECORDING_TYPES: Final = tuple(
    f"recording.{what}"
    for what in ("started", "paused", "resumed", "stopped", "completed", "failed")
)
EVENT_TYPES: Final = CALL_TYPES + RECORDING_TYPES

# VoipNow's Call Events types (data.callEventType).
CALL_DIAL_IN: Final = 0
CALL_DIAL_OUT: Final = 1
CALL_HANGUP: Final = 2
CALL_ANSWER_IN: Final = 3
CALL_ANSWER_OUT: Final = 4


def event_id(seq: int) -> str:
    """Stable and ordered like the sequence: ``evt-`` and 16 hex digits. The sequence is
    the history's (events/store.py numbers an event when it stores it), so every
    replica gives an event the same id."""
    return f"evt-{seq:016x}"


@dataclass(frozen=True, slots=True)
class Draft:
    """An event as a producer made it, before the database numbers it. ``key``: what
    the event is, from what Asterisk sent, the same in every bridge that hears it
    (events/keys.py); the history stores each key once."""

    type: str
    time: float
    extension: str
    phone_call_id: str | None
    data: dict[str, Any] = field(default_factory=dict)
    key: str = ""


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    id: str
    type: str
    time: float
    organization: int | None
    extension: str
    phone_call_id: str | None
    data: dict[str, Any]
    key: str = ""  # not shown: the history's de-duplication (events/keys.py)
    node: str | None = None  # not shown: the PBX node whose events made it (None: first)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "seq": self.seq, "type": self.type, "time": iso(self.time),
            "ownerId": str(self.organization) if self.organization is not None else None,
            "extension": self.extension, "phoneCallId": self.phone_call_id,
            "data": self.data,
        }
        return {k: v for k, v in out.items() if v is not None}
