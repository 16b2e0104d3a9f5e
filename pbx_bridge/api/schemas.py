"""Every other body the API sends or takes, as pydantic models (the PhoneCall itself is
:mod:`pbx_bridge.calls.model`'s). The OpenAPI document's ``components.schemas`` are
generated from these (:mod:`pbx_bridge.api.openapi`), each field's docstring becoming its
description; :class:`PhoneCallAction` also validates the PUT body
(:func:`pbx_bridge.api.validation.parse_action`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from pbx_bridge.calls.model import PhoneCallFields
from pbx_bridge.dialing.model import DialRequest, HungUp
from pbx_bridge.holding.limits import MAX_IN_PARKING

__all__ = [
    "ActionName",
    "DialRequest",
    "Error",
    "ErrorDetail",
    "HungUp",
    "PausedInterval",
    "PhoneCallAction",
    "PhoneCallList",
    "Recording",
    "RecordingFormat",
    "RecordingLink",
    "RecordingList",
    "RevokeRequest",
    "Status",
    "Token",
    "TokenRequest",
]

ActionName = Literal[
    "StartRecording",
    "StopRecording",
    "PauseRecording",
    "ResumeRecording",
    "OnHold",
    "OffHold",
    "Park",
    "UnPark",
    # call control (pbx_bridge/callcontrol/): sending the other party elsewhere, spying
    "Transfer",
    "TransferToVoicemail",
    "PickUp",
    "BargeIn",
    "Whisper",
    "Monitor",
]
RecordingFormat = Literal["wav", "wav49"]
VIEW_ID_PATTERN = "^[0-9]{2}$"  # what a PUT names; a rendered view id may grow longer
# A number to send a call to: an extension number (``0003*210``) or a public number.
SEND_CALL_TO_PATTERN = r"^\+?[0-9*#]{1,32}$"
WAIT_FOR_PICKUP_PATTERN = "^(?:[1-9][0-9]?|[12][0-9][0-9]|300)$"  # 1 to 300
# ``Name <number>`` or a number: printable, no quote or angle bracket in the name.
CALLER_ID_PATTERN = r'^(?:[^\x00-\x1f\x7f-\x9f"<>]{0,64}<\+?[0-9*#]{1,32}>|\+?[0-9*#]{1,32})$'


class _Closed(BaseModel):
    """A JSON object with exactly the declared fields."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class PhoneCallList(_Closed):
    """A page of calls."""

    startIndex: int = Field(ge=0)
    """the index of the first call of the page (0-based)"""
    itemsPerPage: int = Field(ge=0)
    """the number of calls in this page"""
    totalResults: int = Field(ge=1)
    """the number of calls that passed the filter"""
    entry: list[PhoneCallFields]
    """the calls, oldest first unless `sortOrder=descending`"""


def _parking_range(value: str) -> str:
    low, high, _default = MAX_IN_PARKING
    if not low <= int(value) <= high:
        raise ValueError(f"maxInParking must be {low} to {high}")
    return value


ParkingSeconds = Annotated[str, Field(pattern=r"^[0-9]{1,4}$"), AfterValidator(_parking_range)]


class PhoneCallAction(_Closed):
    """What to do to one view of the call. A JSON object with these keys only, each value
    a string."""

    # Strict: a number or null is not a string. parse_action checks a body in two steps so
    # that each mistake gets the contract's code: the JSON shape first (`body_invalid`),
    # then this model, whose errors come in field order: action, format, phoneCallViewId.
    model_config = ConfigDict(strict=True)

    action: ActionName
    """case-sensitive"""
    format: RecordingFormat | None = None
    """StartRecording only (checked, then ignored, by the other actions); default: the
    service's `recordings.default_format` (`wav` unless configured)"""
    phoneCallViewId: str = Field(pattern=VIEW_ID_PATTERN)
    """the id of the view (the leg of one local extension) to act on"""
    maxInParking: ParkingSeconds | None = None
    """Park only: seconds the call waits in the parking lot before it rings the view's
    extension again: a string of digits, "10" to "3600" (default "180")"""
    sendCallTo: str | None = Field(default=None, pattern=SEND_CALL_TO_PATTERN)
    """UnPark, Transfer, TransferToVoicemail, PickUp, BargeIn, Whisper, Monitor (required
    there, refused elsewhere): where the call goes, or who is called to barge in, whisper
    or listen: an extension of the view's organization, or a public number only with the
    query parameter `allowPublicTransfer=true` (UnPark and TransferToVoicemail: an
    extension)"""
    callerId: str | None = Field(default=None, pattern=CALLER_ID_PATTERN)
    """BargeIn only: the caller id `sendCallTo`'s phone shows, `Name <number>` or a
    number; default `BargeIn <the view's extension>`"""
    waitForPickup: str | None = Field(default=None, pattern=WAIT_FOR_PICKUP_PATTERN)
    """BargeIn only: seconds `sendCallTo` may ring before the attempt is given up, a
    string of digits, 1 to 300; default 25"""
    private: Literal["0", "1"] | None = None
    """Whisper only: `"1"` = the whisperer hears nothing of the call (ChanSpy's private
    whisper, `W`); `"0"` (default) = the whisperer hears both parties (`w`). Either way
    only the view's extension hears the whisperer."""


class ErrorDetail(_Closed):
    code: str
    """the error code (the answer's description lists the codes it can carry)"""
    message: str
    """human text"""


class Error(_Closed):
    """The body of every 4xx/5xx answer."""

    error: ErrorDetail


class Status(_Closed):
    status: Literal["ok"]


class Ready(_Closed):
    status: Literal["ok"]
    degraded: str | None = None
    """Ready, at less than the configured strength: what is down (AMI action sessions,
    whose actions then go through the event session)."""


class Token(_Closed):
    """A bearer token for an app."""

    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int = Field(ge=1)
    """seconds until the token expires"""


class _Form(BaseModel):
    # Unknown form parameters are ignored (RFC 6749 3.2), but every value is text.
    model_config = ConfigDict(extra="allow", frozen=True, use_attribute_docstrings=True)
    __pydantic_extra__: dict[str, str] = Field(init=False)


class TokenRequest(_Form):
    """Unknown parameters are ignored (RFC 6749 3.2); a control character in any
    parameter is refused (400 `invalid_request`)"""

    grant_type: Literal["client_credentials"]
    client_id: str | None = None
    client_secret: str | None = None


class RevokeRequest(_Form):
    """Unknown parameters are ignored; a control character in any parameter is refused
    (400 `invalid_request`)"""

    token: str
    token_type_hint: str | None = None
    """accepted and ignored (there is one kind of token)"""
    client_id: str | None = None
    client_secret: str | None = None


RecordingState = Literal["recording", "paused", "completed", "missing", "failed"]


class PausedInterval(_Closed):
    # "from" is a keyword: the field is named by its alias.
    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from")
    """when the recording was paused (ISO 8601)"""
    to: str | None = None
    """when it was resumed or ended (absent while still paused)"""


class RecordingLink(_Closed):
    self: str
    """this recording"""
    media: str
    """its audio file"""


class Recording(_Closed):
    """One MixMonitor run on an extension's channel (the recordings catalog)."""

    id: str = Field(pattern=r"^r-[0-9a-f]{16}$")
    phoneCallId: str
    """the PhoneCall it recorded"""
    phoneCallViewId: str
    """the view (leg of the extension) it recorded"""
    extension: str
    ownerId: str | None = None
    """the organization owning the extension (as a PhoneCall's `ownerId`)"""
    format: str
    """`wav` (16-bit PCM, `audio/wav`) or `wav49` (GSM 6.10, `audio/x-wav`)"""
    state: RecordingState
    """`recording`/`paused` while it runs (and until its file is finished)"""
    reason: str | None = None
    """why it `failed` (`no audio`, `shorter than its header`, `outside the recordings
    folders`, ...), or why a `completed` one ended before its call: `transferred` (its
    channel transferred the call and left at `stopped`), `rearm failed` (re-armed after a
    transfer, its MixMonitor did not start again: the file ends at `stopped`)"""
    startedBy: Literal["api", "always", "star1", "pbx"]
    appId: str | None = None
    """the app that started it (`startedBy` `api`)"""
    started: str
    stopped: str | None = None
    paused: list[PausedInterval]
    duration: float | None = None
    """seconds of audio in the finished file"""
    size: int | None = None
    """bytes of the finished file"""
    sha256: str | None = None
    """of the finished file"""
    link: RecordingLink


class RecordingList(_Closed):
    """A page of recordings, newest first."""

    startIndex: int = Field(ge=0)
    itemsPerPage: int = Field(ge=0)
    totalResults: int = Field(ge=1)
    entry: list[Recording]
