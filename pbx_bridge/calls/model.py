"""The PhoneCall resource as the API shows it (CONTRACT.md section 2), written once.

These models are the shape's single source: the OpenAPI document's schemas are generated
from them (:mod:`pbx_bridge.api.openapi`), with each field's docstring as its description,
and the tests validate every rendered PhoneCall against that generated schema. The
renderer itself builds plain dicts (cheaper on the hot path than building and dumping
models); the tracker keeps plain slotted objects so that ingesting events stays cheap.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

ViewStatus = Literal["0", "1", "2", "3", "4", "5"]
STATUS_UNKNOWN: Final[ViewStatus] = "0"
STATUS_OFF_HOOK: Final[ViewStatus] = "1"
STATUS_TRYING: Final[ViewStatus] = "2"
STATUS_RINGING: Final[ViewStatus] = "3"
STATUS_OTHER_SIDE_RINGING: Final[ViewStatus] = "4"
STATUS_ON_CALL: Final[ViewStatus] = "5"

ViewFlow = Literal["2", "4", "8"]
FLOW_LOCAL: Final[ViewFlow] = "2"
FLOW_OUTGOING: Final[ViewFlow] = "4"
FLOW_INCOMING: Final[ViewFlow] = "8"

# Anchored for JSON Schema (a ``pattern`` matches anywhere unless anchored).
CALL_ID_PATTERN = "^[0-9a-f]{1,40}$"
VIEW_ID_PATTERN = "^[0-9]{2,}$"

# Times are rendered as text (see :func:`iso`) and kept as text here, so that a rendered
# PhoneCall validates and dumps back unchanged.
DateTime = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


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
    # Fields with no value are omitted, never null: callers dump with exclude_none, and
    # the OpenAPI generator documents such fields as optional, not as nullable.
    model_config = ConfigDict(
        populate_by_name=True, frozen=True, extra="forbid", use_attribute_docstrings=True
    )


class PhoneCallView(_Out):
    """The leg of one local extension in a call."""

    id: str = Field(pattern=VIEW_ID_PATTERN)
    """`01`, `02`, ... in the order the extensions joined the call"""
    extension: str
    """the local extension of this leg"""
    status: ViewStatus
    """0 unknown, 1 off hook, 2 trying, 3 ringing, 4 other side ringing, 5 on call"""
    flow: ViewFlow | None = None
    """2 local, 4 outgoing to the public network, 8 incoming from the public network"""
    callerId: str | None = None
    """`Name <number>`"""
    source: list[str] | None = None
    """the numbers at the calling end"""
    destination: list[str] | None = None
    """the numbers at the called end"""
    answered: DateTime | None = None
    """when this leg was answered (omitted while unanswered)"""
    recording: DateTime | None = None
    """when the current recording started"""
    recordingPaused: DateTime | None = None
    """while the current recording is paused (PauseRecording): when it was paused; the
    file keeps running with silence until ResumeRecording"""
    recordingId: str | None = Field(default=None, pattern=r"^r-[0-9a-f]{16}$")
    """while recording: the recording's id in the recordings catalog
    (`/uapi/recordings/...`), once the catalog has seen it start"""
    ringing: Literal[True] | None = None
    """present (true) while this extension's phone rings (status 3)"""
    onHold: Literal[True] | None = None
    """present (true) while the call is on hold: a phone put it on hold (SIP re-INVITE,
    Asterisk's `Hold`) or OnHold did, and the other party hears music on hold"""
    holder: str | None = None
    """while on hold: the extension (or, for an outside phone, the number) holding it"""
    parked: Literal[True] | None = None
    """present (true) while a party of the call waits in a parking lot (Park, or a
    phone's own park)"""
    parkedPos: str | None = None
    """while parked: the parking space; dialling it answers the parked call"""
    parkedBy: str | None = None
    """while parked: the extension that parked it (the call returns to it on timeout)"""


class Link(_Out):
    self_: str = Field(alias="self", json_schema_extra={"format": "uri"})
    """this call's absolute URL, from the configured public base URL"""


class PhoneCall(_Out):
    """A live call as one extension sees it."""

    id: str = Field(pattern=CALL_ID_PATTERN)
    """stable for the whole life of the call, derived from Asterisk's `Linkedid`"""
    extension: str
    """the extension the request was made for"""
    ownerId: str | None = None
    """the organization that owns the extension"""
    ownerName: str | None = None
    """the name of that organization"""
    published: DateTime | None = None
    """when the call started"""
    answered: DateTime | None = None
    """when the call was answered (omitted while unanswered)"""
    nonce: str | None = None
    """a call the API placed (click-to-call): the `nonce` its request gave, as Asterisk
    reports it on the call's first leg (channel variable `PBX_CTC`)"""
    phoneCallView: list[PhoneCallView]
    """one view per local extension taking part that the requester may see"""
    link: Link | None = None

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


def _partial(model: type[_Out], name: str, doc: str, keep: tuple[str, ...]) -> type[_Out]:
    """``model`` with every field optional but ``keep``: same types, patterns and docs."""
    fields: dict[str, Any] = {}
    for field_name, info in model.model_fields.items():
        if field_name in keep or not info.is_required():
            fields[field_name] = (info.annotation, info)
        else:  # the same type, constraints and description; absent allowed
            typ: Any = info.annotation
            if info.metadata:
                typ = Annotated[(typ, *info.metadata)]
            fields[field_name] = (
                typ | None,
                Field(None, alias=info.alias, description=info.description,
                      json_schema_extra=info.json_schema_extra),
            )
    return create_model(name, __base__=_Out, __doc__=doc, **fields)


# A PhoneCall as GET answers it: with ``fields``, only the named fields (and ``id``).
if TYPE_CHECKING:
    PhoneCallFields = PhoneCall  # to a type checker: the same fields, fewer required
else:
    PhoneCallFields = _partial(
        PhoneCall,
        "PhoneCallFields",
        "A PhoneCall; every field of it unless the request's `fields` named some (`id` "
        "is always there)",
        keep=("id",),
    )
