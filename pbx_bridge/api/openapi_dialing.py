"""The OpenAPI description of click-to-call and hang-up (api/dialing.py, issue 14)."""

from __future__ import annotations

from typing import Any

from pbx_bridge.api.openapi import (
    _BEARER_HEADERS,
    _CALL_ID_PARAM,
    _PATH_PARAMS,
    _REF,
    _UAPI_SECURITY,
    JSON,
    Schema,
    _error,
    _json,
    prefix_variants,
)
from pbx_bridge.dialing import rules

__all__ = ["dialing_paths"]

_DIAL_QUERY = [
    {"name": "waitForPickup", "in": "query", "required": False,
     "description": "seconds the first leg may ring before the call is given up",
     "schema": {"type": "integer", "minimum": rules.WAIT_MIN, "maximum": rules.WAIT_MAX,
                "default": rules.WAIT_DEFAULT}},
    {"name": "callDuration", "in": "query", "required": False,
     "description": "seconds after the first leg answered when the call is hung up "
     "(default: no limit)",
     "schema": {"type": "integer", "minimum": rules.DURATION_MIN,
                "maximum": rules.DURATION_MAX}},
    {"name": "allowPublicTransfer", "in": "query", "required": False,
     "description": "whether a public number may be dialled (source of a callback, "
     "destination)", "schema": {"type": "boolean", "default": False}},
]
_PHONE_NUMBER = {
    "name": "phoneNumber", "in": "query", "required": False,
    "description": "hang up only the calls this number takes part in",
    "schema": {"type": "string", "pattern": r"^[0-9*]{1,20}$"},
}
_COMMON = {
    "401": _error("Not authenticated", "unauthorized", headers=_BEARER_HEADERS),
    "403": _error("Forbidden", "access_denied"),
    "500": _error("Internal error", "internal_error"),
    "503": _error("The PBX is not available", "pbx_unavailable"),
    "504": _error("The PBX did not answer in time", "pbx_timeout"),
}


def _post(mode: str, suffix: str, note: str, tag: str) -> Schema:
    what = ("ring the extension's phone, then dial the destination" if mode == "simple"
            else "call the source, then dial the destination and join them")
    return {
        "operationId": f"{mode}PhoneCall{suffix}",
        "tags": [tag],
        "summary": f"Place a call: {what}" + note,
        "security": _UAPI_SECURITY,
        "parameters": [_PATH_PARAMS[0], *_DIAL_QUERY],
        "requestBody": {"required": True,
                        "content": {JSON: {"schema": {"$ref": _REF + "DialRequest"}}}},
        "responses": {
            "201": {**_json("The new call (as Asterisk shows it so far)",
                            {"$ref": _REF + "PhoneCall"}),
                    "headers": {"Location": {"description": "the new call's URL",
                                             "required": True,
                                             "schema": {"type": "string"}}}},
            "400": _error("Invalid request", "user_invalid", "extension_invalid",
                          "request_invalid", "body_invalid", "pc_nonce_invalid",
                          "pc_source_invalid", "pc_destination_invalid",
                          "pc_callerid_invalid", "pc_waitforpickup_invalid",
                          "pc_callduration_invalid", "pc_allowpublictransfer_invalid"),
            "408": _error("The body arrived too slowly", "request_timeout"),
            "409": _error("The PBX could not place the call", "pc_call_failed"),
            "413": _error("Body too large", "body_too_large"),
            "415": _error("The body is declared as something else than JSON",
                          "unsupported_media_type"),
            **_COMMON,
        },
    }


def _delete(suffix: str, note: str, tag: str, one: bool) -> Schema:
    params = [*_PATH_PARAMS, *([_CALL_ID_PARAM] if one else []), _PHONE_NUMBER]
    bad = ["user_invalid", "extension_invalid", "request_invalid", "pc_phonenumber_invalid"]
    return {
        "operationId": f"hangUpPhoneCall{'' if one else 's'}{suffix}",
        "tags": [tag],
        "summary": ("Hang up the extension's leg of this call" if one else
                    "Hang up every call of the extension") + note,
        "security": _UAPI_SECURITY,
        "parameters": params,
        "responses": {
            "200": _json("Hung up, as Asterisk confirmed", {"$ref": _REF + "HungUp"}),
            "204": {"description": "No call matched: nothing hung up"},
            "400": _error("Invalid request", *bad, *(["pc_phonecall_invalid"] if one else [])),
            **_COMMON,
        },
    }


def dialing_paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for prefix, suffix, note, tag in prefix_variants():
        for mode in ("simple", "callback"):
            paths[f"{prefix}/{{userId}}/{mode}"] = {"post": _post(mode, suffix, note, tag)}
        paths[f"{prefix}/{{userId}}/{{extension}}"] = {"delete": _delete(suffix, note, tag,
                                                                         False)}
        paths[f"{prefix}/{{userId}}/{{extension}}/{{phoneCallId}}"] = {
            "delete": _delete(suffix, note, tag, True)}
    return paths
