"""Click-to-call rules (pure): a request -> a checked AMI ``Originate`` plan.

Nothing here talks to Asterisk. Every value that ends up in the ``Originate`` comes out
of a check below (whitelisted characters, bounded lengths, numbers the requester may
dial), so a CR, LF or anything else outside them never reaches AMI; pbx/framing.py
refuses control characters once more at the socket.

Numbers: an extension of the extension's own organization, or (only with
``allowPublicTransfer=true``) a public number: digits only, not a directory extension.
A number of another organization is refused exactly as an unknown one.

The call: the first leg (``simple``: the extension's own device; ``callback``: the
source, an extension's device or a public number through ``Local/<n>@<context>``) is
originated asynchronously with the bridge's own Uniqueid (``ChannelId``), so the new
call's id is known at once (its Linkedid is that Uniqueid). When it answers, Asterisk
runs ``[pbx-bridge-ctc]`` (asterisk-conf/extensions.conf) with the destination as
extension: it arms ``callDuration`` (``TIMEOUT(absolute)``) and dials the destination
through the configured context, as the extension's own phone would.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from pbx_bridge.calls.clicktocall import CTC_VAR, CtcTag, format_tag
from pbx_bridge.dialing.model import DialRequest
from pbx_bridge.directory.models import Extension
from pbx_bridge.errors import ApiError

__all__ = [
    "DIAL_CONTEXT",
    "QUERY_PARAMS",
    "DialQuery",
    "Mode",
    "OriginatePlan",
    "parse_query",
    "parse_request",
    "plan_call",
]

Mode = Literal["simple", "callback"]
DIAL_CONTEXT = "pbx-bridge-ctc"  # asterisk-conf/extensions.conf
WAIT_DEFAULT, WAIT_MIN, WAIT_MAX = 25, 1, 300
DURATION_MIN, DURATION_MAX = 1, 86400
QUERY_PARAMS = ("waitForPickup", "callDuration", "allowPublicTransfer", "accessRequestToken")
_NAME_MAX = 64
_NAME_PUNCTUATION = frozenset(" .,'_-")
_TRUE, _FALSE = ("true", "1"), ("false", "0")

OrgOf = Callable[[str], "int | None"]  # number -> organization of that extension, or None
DeviceOf = Callable[[str], "str | None"]  # extension number -> its device


def _bad(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)


# --------------------------------------------------------------------------- query


@dataclass(frozen=True)
class DialQuery:
    wait_for_pickup: int = WAIT_DEFAULT  # seconds the first leg may ring
    call_duration: int | None = None  # seconds from the first leg's answer, None: no limit
    allow_public: bool = False


def _one(query: Mapping[str, str] | Any, name: str, code: str) -> str | None:
    values = query.getall(name, []) if hasattr(query, "getall") else (
        [query[name]] if name in query else [])
    if len(values) > 1:
        raise _bad(code, f"{name} is given more than once")
    return values[0] if values else None


def _seconds(raw: str | None, name: str, code: str, low: int, high: int) -> int | None:
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 6 or not low <= int(raw) <= high:
        raise _bad(code, f"{name} must be whole seconds from {low} to {high}")
    return int(raw)


def parse_query(query: Mapping[str, str]) -> DialQuery:
    """The POST's query (control characters were refused before)."""
    for name in query:
        if name not in QUERY_PARAMS:
            raise _bad("request_invalid", "unknown query parameter; this resource takes "
                       + ", ".join(QUERY_PARAMS))
    wait = _seconds(_one(query, "waitForPickup", "pc_waitforpickup_invalid"), "waitForPickup",
                    "pc_waitforpickup_invalid", WAIT_MIN, WAIT_MAX)
    duration = _seconds(_one(query, "callDuration", "pc_callduration_invalid"), "callDuration",
                        "pc_callduration_invalid", DURATION_MIN, DURATION_MAX)
    public = _one(query, "allowPublicTransfer", "pc_allowpublictransfer_invalid")
    if public is not None and public not in _TRUE + _FALSE:
        raise _bad("pc_allowpublictransfer_invalid", "allowPublicTransfer must be true or false")
    return DialQuery(wait if wait is not None else WAIT_DEFAULT, duration, public in _TRUE)


# --------------------------------------------------------------------------- body

# The first error pydantic reports -> the contract's code; a wrong type, an unknown or
# missing key is the body's shape (body_invalid), whatever the field.
_FIELD_CODES = {
    "nonce": "pc_nonce_invalid",
    "extension": "extension_invalid",
    "source": "pc_source_invalid",
    "destination": "pc_destination_invalid",
    "callerId": "pc_callerid_invalid",
}
_SHAPE_ERRORS = frozenset({"extra_forbidden", "missing", "string_type", "list_type",
                           "model_type", "model_attributes_type", "dict_type"})


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise _bad("body_invalid", "a key appears more than once")
        out[key] = value
    return out


def _no_constant(name: str) -> object:
    raise _bad("body_invalid", f"{name} is not valid JSON")


def _has_null(value: object, depth: int = 0) -> bool:
    if value is None:
        return True
    if depth > 3:  # deeper than the model: its validation refuses the shape anyway
        return False
    if isinstance(value, dict):
        return any(_has_null(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return any(_has_null(v, depth + 1) for v in value)
    return False


def parse_request(raw: bytes) -> DialRequest:
    """The POST body, its shape and every field's syntax checked."""
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates,
                          parse_constant=_no_constant)
    except ApiError:
        raise
    except (ValueError, RecursionError):
        raise _bad("body_invalid", "the body is not valid UTF-8 JSON") from None
    if not isinstance(data, dict):
        raise _bad("body_invalid", "the body must be a JSON object")
    if _has_null(data):  # absent is allowed, null is a wrong type (as in a PUT)
        raise _bad("body_invalid", "null is not a value of any field")
    try:
        return DialRequest.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        names = [str(p) for p in err["loc"] if isinstance(p, str)]
        field = names[-1] if names else ""
        if err["type"] in _SHAPE_ERRORS or field not in _FIELD_CODES:
            raise _bad("body_invalid", f"the body's {'.'.join(names) or 'shape'} is "
                       "missing, unknown or of the wrong type") from None
        raise _bad(_FIELD_CODES[field], f"{field} is malformed") from None


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class OriginatePlan:
    """One ``Originate`` (always ``Async``), every value checked."""

    channel: str  # the first leg
    exten: str  # the destination, run in DIAL_CONTEXT once the first leg answered
    timeout_ms: int
    caller_id: str
    channel_id: str  # the first leg's Uniqueid, so the call's Linkedid
    other_channel_id: str | None  # a Local first leg's second half
    variables: tuple[str, ...]
    tag: CtcTag

    def headers(self) -> dict[str, str | list[str]]:
        headers: dict[str, str | list[str]] = {
            "Channel": self.channel,
            "Context": DIAL_CONTEXT,
            "Exten": self.exten,
            "Priority": "1",
            "Timeout": str(self.timeout_ms),
            "CallerID": self.caller_id,
            "Async": "true",
            "ChannelId": self.channel_id,
            "Variable": list(self.variables),
        }
        if self.other_channel_id is not None:
            headers["OtherChannelId"] = self.other_channel_id
        return headers


@dataclass(frozen=True)
class Numbers:
    """What the plan needs of the directory, for one organization."""

    organization: int | None  # the extension's organization
    org_of: OrgOf
    device_of: DeviceOf
    allow_public: bool

    def kind(self, number: str, code: str, what: str) -> Literal["extension", "public"]:
        org = self.org_of(number)
        if org is not None and org == self.organization:
            return "extension"
        if org is not None or "*" in number:  # another tenant's is unknown, as unknown ones
            raise _bad(code, f"{what} is not an extension of this organization")
        if not self.allow_public:
            raise _bad(code, f"{what} is a public number: it needs allowPublicTransfer=true")
        return "public"


def _caller_id(value: str | None, default: str, numbers: Numbers) -> str:
    """``Name <number>`` -> the CallerID header; the number an extension of the
    organization (never a public number the requester could spoof)."""
    if value is None:
        return f"<{default}>"
    head, sep, number = value.removesuffix(">").rpartition("<")
    name = head.strip()
    ok = (sep and value.endswith(">") and len(name) <= _NAME_MAX
          and all(c.isalnum() or c in _NAME_PUNCTUATION for c in name))
    if not ok or numbers.org_of(number) is None:
        raise _bad("pc_callerid_invalid", "callerId must be 'Name <extension>'")
    numbers.kind(number, "pc_callerid_invalid", "the callerId number")
    return f'"{name}" <{number}>' if name else f"<{number}>"


def plan_call(
    mode: Mode,
    request: DialRequest,
    query: DialQuery,
    extension: Extension,
    numbers: Numbers,
    *,
    channel_id: str,
    dial_context: str,
) -> OriginatePlan:
    """The Originate for a checked request, on behalf of ``extension`` (the path's user
    owns it; the access policy was applied before)."""
    leg = request.phoneCallView[0]
    source = leg.source[0] if leg.source else extension.number
    destination = leg.destination[0]
    other_id = None
    if mode == "simple" or source == extension.number:
        if source != extension.number:
            raise _bad("pc_source_invalid", "a simple call's source is its extension")
        channel = extension.device
    elif numbers.kind(source, "pc_source_invalid", "source") == "extension":
        device = numbers.device_of(source)
        if device is None:
            raise _bad("pc_source_invalid", "source is not an extension of this organization")
        channel = device
    else:
        channel, other_id = f"Local/{source}@{dial_context}", f"{channel_id};2"
    numbers.kind(destination, "pc_destination_invalid", "destination")
    if destination == source:
        raise _bad("pc_destination_invalid", "destination is the source")
    tag = CtcTag(channel_id, source, destination, request.nonce or "")
    variables = [f"{CTC_VAR}={format_tag(tag)}", f"PBX_DIALCTX={dial_context}"]
    if query.call_duration is not None:
        variables.append(f"PBX_DIALLIMIT={query.call_duration}")
    return OriginatePlan(
        channel=channel,
        exten=destination,
        timeout_ms=query.wait_for_pickup * 1000,
        caller_id=_caller_id(leg.callerId, source, numbers),
        channel_id=channel_id,
        other_channel_id=other_id,
        variables=tuple(variables),
        tag=tag,
    )
