"""GET delivery with VoipNow's Call Events query fields, so that an app written for
VoipNow's Call Events works unchanged: CallID, CallerIDNum, CallerIDName, CalledDID,
CalledExtension, CallStatus (CALLING on Dial-In/Dial-Out, ANSWER once answered, on a
hangup ANSWER or UNKNOWN), CallFlow (IN: received by the extension, OUT: made by it),
CallerExtension, CalledNumber; plus ours: EventId, EventType, and for a recording
event RecordingId, RecordingState and RecordingUrl (its media link)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlencode

__all__ = ["query_fields", "query_string"]

_CALLER = re.compile(r"(?:(.*?) )?<([^<>]*)>")
_LOCAL, _INCOMING = "2", "8"
_OUT_TYPES = (1, 4)


def _caller(call: dict[str, Any]) -> tuple[str, str]:
    text = call.get("callerId") or ""
    m = _CALLER.fullmatch(text)
    if m is None:
        return "", text
    return m.group(2), m.group(1) or ""


def _view(call: dict[str, Any], extension: str) -> dict[str, Any]:
    views = [v for v in call.get("phoneCallView", []) if v.get("extension") == extension]
    return views[0] if views else {}


def _first(values: Any) -> str:
    return str(values[0]) if isinstance(values, list) and values else ""


def _status(event: dict[str, Any], call: dict[str, Any]) -> str:
    if event["type"] == "call.ringing":
        return "CALLING"
    if event["type"] == "call.answered" or call.get("answered"):
        return "ANSWER"
    return "UNKNOWN"


def query_fields(event: dict[str, Any]) -> dict[str, str]:
    """The query fields for one Event (its JSON, as stored)."""
    data = event.get("data", {})
    ext = event.get("extension", "")
    fields = {"EventId": event["id"], "EventType": event["type"],
              "CallID": event.get("phoneCallId", "")}
    if event["type"].startswith("recording."):
        fields.update(RecordingId=data.get("id", ""), RecordingState=data.get("state", ""),
                      RecordingUrl=data.get("link", {}).get("media", ""),
                      CalledExtension=ext)
        return fields
    view = _view(data, ext)
    outgoing = data.get("direction") == "out" or data.get("callEventType") in _OUT_TYPES
    num, name = _caller(view)
    called = _first(view.get("destination"))
    fields.update(
        CallerIDNum=num, CallerIDName=name,
        CalledDID=called if view.get("flow") == _INCOMING else "",
        CalledExtension="" if outgoing and view.get("flow") != _LOCAL else (
            called if outgoing else ext),
        CallStatus=_status(event, data), CallFlow="OUT" if outgoing else "IN",
        CallerExtension=ext if outgoing else (num if view.get("flow") == _LOCAL else ""),
        CalledNumber=called,
    )
    return fields


def query_string(event: dict[str, Any]) -> str:
    """Percent-encoded (RFC 3986), exactly as sent and signed."""
    return urlencode(query_fields(event), quote_via=quote, safe="")
