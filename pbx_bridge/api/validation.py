"""Everything a request brings is checked here before anything else looks at it.

Nothing from a request reaches AMI unless it matched one of the whitelists below, so a
CR, LF, NUL or any other control character is always a 400 (CONTRACT section 2).

- Path segments arrive decoded exactly once (aiohttp's router percent-decodes each
  segment: ``0003%2A210`` is ``0003*210``; ``0003%252A210`` is the literal ``0003%2A210``,
  which is not an extension number).
- The PhoneCallAction body: UTF-8 JSON object, no duplicate keys, no unknown keys, every
  field a string (``body_invalid``); then ``action`` (``pc_action_invalid``), ``format``
  (``pc_recformat_invalid``), ``phoneCallViewId`` (``pc_phonecallview_invalid``), in this
  order. The rules are :class:`pbx_bridge.api.schemas.PhoneCallAction`'s, the model the
  OpenAPI document shows.
- Query parameters: no control character and nothing absurdly long in any of them
  (``request_invalid``), checked before their meaning; what each parameter means, and
  which ones a route takes, is :mod:`pbx_bridge.api.collection`'s.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Annotated, Any, get_args

from aiohttp import web
from multidict import MultiMapping
from pydantic import ConfigDict, Field, Strict, ValidationError, create_model

from pbx_bridge.api.errors import ApiError
from pbx_bridge.api.schemas import ActionName, PhoneCallAction, RecordingFormat
from pbx_bridge.calls.model import CALL_ID_PATTERN
from pbx_bridge.directory import access

__all__ = [
    "ACTIONS",
    "FIELD_ERRORS",
    "FORMATS",
    "MAX_SEGMENT",
    "PHONE_CALL_ID_RE",
    "Action",
    "check_query",
    "extension_segment",
    "parse_action",
    "phone_call_id",
    "read_body",
    "user_segment",
]

MAX_SEGMENT = 64  # longer path segments are refused before any lookup
PHONE_CALL_ID_RE = re.compile(CALL_ID_PATTERN)  # anchored: fullmatch as before
ACTIONS: tuple[str, ...] = get_args(ActionName)
FORMATS: tuple[str, ...] = get_args(RecordingFormat)
_ACTION_MESSAGE = "action must be " + ", ".join(ACTIONS[:-1]) + " or " + ACTIONS[-1]
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_QUERY_MAX = 1024


def has_control(value: str) -> bool:
    return _CONTROL.search(value) is not None


def _shown(value: str) -> str:
    """A request value made safe to echo in an error message (repr, truncated)."""
    return repr(value[:40])


# --------------------------------------------------------------------------- path


def user_segment(value: str) -> str:
    """The ``userId`` path segment, syntax only (the directory lookup is access's)."""
    if has_control(value) or len(value) > MAX_SEGMENT:
        raise access.UserInvalid("the user id is malformed")
    return value


def extension_segment(value: str) -> str:
    """The ``extension`` path segment, syntax only."""
    if has_control(value) or len(value) > MAX_SEGMENT:
        raise access.ExtensionInvalid("the extension is malformed")
    return value


def phone_call_id(value: str) -> str:
    if PHONE_CALL_ID_RE.fullmatch(value) is None:
        raise ApiError(
            400,
            "pc_phonecall_invalid",
            "phoneCallId must be 1 to 40 lower-case hexadecimal digits",
        )
    return value


# --------------------------------------------------------------------------- query


def check_query(query: MultiMapping[str]) -> None:
    """No control character, and nothing absurdly long, in any query parameter."""
    for key, value in query.items():
        if has_control(key) or has_control(value) or len(key) + len(value) > _QUERY_MAX:
            raise ApiError(400, "request_invalid", "a query parameter is malformed")


# --------------------------------------------------------------------------- body


async def read_body(request: web.Request, timeout: float) -> bytes:
    """The request body, which must arrive within ``timeout`` seconds (``http.
    request_timeout``): a client that sends its headers and then trickles the body gets
    408 ``request_timeout`` and is disconnected, instead of holding a handler for ever.
    Above the size limit, aiohttp's ``read()`` raises 413 (``body_too_large``)."""
    try:
        async with asyncio.timeout(timeout):
            return await request.read()
    except TimeoutError:
        raise ApiError(408, "request_timeout", "the request body did not arrive in time") from None


StrictText = Annotated[str, Strict()]

# The PhoneCallAction's keys as sent, types only (``body_invalid``), derived from the
# model. Absent fields stay None; an explicit ``null`` is a wrong type (defaults are not
# validated, values are).
_SHAPE_FIELDS: dict[str, Any] = {
    name: (StrictText, Field(default=None)) for name in PhoneCallAction.model_fields
}
_BodyShape = create_model(
    "_BodyShape", __config__=ConfigDict(extra="forbid", strict=True, frozen=True), **_SHAPE_FIELDS
)


@dataclass(frozen=True)
class Action:
    """A checked PhoneCallAction body, and which of its keys the request gave."""

    body: PhoneCallAction
    given: frozenset[str]

    @property
    def action(self) -> ActionName:
        return self.body.action

    @property
    def format(self) -> RecordingFormat | None:  # None: not given
        return self.body.format

    @property
    def view_id(self) -> str:
        return self.body.phoneCallViewId

    # call control (pbx_bridge/api/callcontrol_actions.py says which action takes which)
    @property
    def send_call_to(self) -> str | None:
        return self.body.sendCallTo

    @property
    def caller_id(self) -> str | None:
        return self.body.callerId

    @property
    def wait_for_pickup(self) -> str | None:
        return self.body.waitForPickup

    @property
    def private(self) -> str | None:
        return self.body.private


# The contract's error for each PhoneCallAction field whose value is wrong (the model
# reports its fields in declaration order, so the first error is the one answered). A
# field added to PhoneCallAction adds its code here.
FIELD_ERRORS = {
    "action": ("pc_action_invalid", _ACTION_MESSAGE),
    "format": ("pc_recformat_invalid", "format must be wav or wav49"),
    "phoneCallViewId": (
        "pc_phonecallview_invalid", 'phoneCallViewId is required: two digits, e.g. "01"'
    ),
    "maxInParking": ("pc_maxinparking_invalid", 'maxInParking must be "10" to "3600" (seconds)'),
    "sendCallTo": ("pc_sendcallto_invalid", "sendCallTo must be an extension or a phone number"),
    "callerId": ("body_invalid", 'callerId must be "Name <number>" or a number'),
    "waitForPickup": ("pc_waitforpickup_invalid", 'waitForPickup must be "1" to "300" (seconds)'),
    "private": ("body_invalid", 'private must be "0" or "1"'),
}


def _body_invalid(message: str) -> ApiError:
    return ApiError(400, "body_invalid", message)


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise _body_invalid(f"the key {_shown(key)} appears more than once")
        out[key] = value
    return out


def _no_constant(name: str) -> object:
    raise _body_invalid(f"{name} is not valid JSON")


def parse_action(raw: bytes) -> Action:
    """The PhoneCallAction body, fully checked; ApiError 400 with the contract's code."""
    try:
        text = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise _body_invalid("the body is not valid UTF-8") from None
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except ApiError:
        raise
    except (ValueError, RecursionError):
        raise _body_invalid("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _body_invalid("the body must be a JSON object")
    try:
        _BodyShape.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in err["loc"]) or "body"
        if err["type"] == "extra_forbidden":
            raise _body_invalid(f"unknown field {_shown(field)}") from None
        raise _body_invalid(f"the field {_shown(field)} must be a string") from None
    return _action(data)


def _action(data: dict[str, Any]) -> Action:
    """A body of known keys and string values, checked against the PhoneCallAction."""
    try:
        body = PhoneCallAction.model_validate(data)
    except ValidationError as exc:
        field = str(exc.errors(include_url=False)[0]["loc"][0])
        code, message = FIELD_ERRORS.get(field, ("body_invalid", f"{field} is malformed"))
        raise ApiError(400, code, message) from None
    return Action(body=body, given=frozenset(data))
