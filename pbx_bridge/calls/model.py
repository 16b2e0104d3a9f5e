"""The PhoneCall resource as the API shows it (CONTRACT.md section 2).

These pydantic models are built on demand from the tracker's state; the tracker itself
keeps plain slotted objects so that ingesting events stays cheap.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field

STATUS_UNKNOWN = "0"
STATUS_OFF_HOOK = "1"
STATUS_TRYING = "2"
STATUS_RINGING = "3"
STATUS_OTHER_SIDE_RINGING = "4"
STATUS_ON_CALL = "5"

FLOW_LOCAL = "2"
FLOW_OUTGOING = "4"
FLOW_INCOMING = "8"


def iso(ts: float | None) -> str | None:
    """Epoch seconds -> ISO 8601 with a UTC offset, whole seconds."""
    if ts is None:
        return None
    return _iso_second(int(ts))


@lru_cache(maxsize=16384)
def _iso_second(second: int) -> str:
    # Memoized: a list renders the same few start/answer seconds over and over.
    return datetime.fromtimestamp(second, UTC).isoformat()


class _Out(BaseModel):
    # Fields with no value are omitted, never null: callers dump with exclude_none.
    model_config = ConfigDict(populate_by_name=True, frozen=True)


class PhoneCallView(_Out):
    id: str
    extension: str
    status: str
    flow: str | None = None
    callerId: str | None = None
    source: list[str] | None = None
    destination: list[str] | None = None
    answered: str | None = None
    recording: str | None = None


class Link(_Out):
    self_: str = Field(alias="self")


class PhoneCall(_Out):
    id: str
    extension: str
    ownerId: str | None = None
    ownerName: str | None = None
    published: str | None = None
    answered: str | None = None
    phoneCallView: list[PhoneCallView]
    link: Link | None = None

    def to_json(self) -> dict:
        return self.model_dump(by_alias=True, exclude_none=True)
