"""The OpenAPI description of the webhook subscription routes (api/webhooks.py) and of
the event stream (api/stream.py)."""

from __future__ import annotations

from typing import Any

from pbx_bridge.api.openapi import (
    _PATH_PARAMS,
    _REC_LIST_PARAMS,
    _UAPI_SECURITY,
    JSON,
    Schema,
    _error,
    _json,
)
from pbx_bridge.api.stream import EVENTS_PATH
from pbx_bridge.events.model import EVENT_TYPES

__all__ = ["event_paths"]

_SUBSCRIPTION: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": "^sub-[0-9a-f]{16}$"},
        "url": {"type": "string", "format": "uri"},
        "method": {"type": "string", "enum": ["GET", "POST"]},
        "types": {"type": "array", "items": {"type": "string", "enum": list(EVENT_TYPES)}},
        "active": {"type": "boolean"},
        "extension": {"type": "string"},
        "ownerId": {"type": "string"},
        "created": {"type": "string", "format": "date-time"},
        "secret": {"type": "string", "description": "`whsec_...`, in the answer to POST only"},
        "link": {"type": "object", "properties": {"self": {"type": "string"}}},
    },
    "required": ["id", "url", "method", "types", "active", "ownerId", "created", "link"],
}
_LIST: Schema = {
    "type": "object",
    "properties": {"startIndex": {"type": "integer"}, "itemsPerPage": {"type": "integer"},
                   "totalResults": {"type": "integer"},
                   "entry": {"type": "array", "items": _SUBSCRIPTION}},
    "required": ["startIndex", "itemsPerPage", "totalResults", "entry"],
}
_BODY: Schema = {
    "required": True,
    "content": {JSON: {"schema": {
        "type": "object", "additionalProperties": False,
        "properties": {k: v for k, v in _SUBSCRIPTION["properties"].items()
                       if k in ("url", "method", "types", "active")},
    }}},
}
_ID_PARAM = {"name": "subscriptionId", "in": "path", "required": True,
             "description": "the `id` of a subscription", "schema": {"type": "string"}}
_ORG_PARAM = {"name": "organizationId", "in": "path", "required": True,
              "description": "an organization id, or `@me` (the token's organization)",
              "schema": {"type": "string"}}


def _errors(path_codes: tuple[str, ...], *bad: str) -> dict[str, Schema]:
    return {
        "400": _error("Invalid request", *path_codes, "request_invalid", *bad),
        "401": _error("Not authenticated", "unauthorized"),
        "403": _error("Forbidden", "access_denied"),
        "500": _error("Internal error", "internal_error"),
    }


def _routes(base: str, params: list[Any], path_codes: tuple[str, ...], tag: str) -> dict[str, Any]:
    common = {"tags": ["events"], "security": _UAPI_SECURITY}
    one = [*params, _ID_PARAM]
    body_codes = ("body_invalid", "url_invalid", "event_type_invalid")
    item = _json("The subscription", _SUBSCRIPTION)
    return {
        base: {
            "get": {**common, "operationId": f"list{tag}", "summary": "The subscriptions",
                    "parameters": [*params, *_REC_LIST_PARAMS[:2]],
                    "responses": {"200": _json("A page", _LIST),
                                  "204": {"description": "No subscription"},
                                  **_errors(path_codes, "startindex_invalid",
                                            "count_invalid")}},
            "post": {**common, "operationId": f"create{tag}",
                     "summary": "Subscribe (the answer shows the secret once)",
                     "parameters": params, "requestBody": _BODY,
                     "responses": {"201": _json("Created", _SUBSCRIPTION),
                                   **_errors(path_codes, *body_codes)}},
        },
        base + "/{subscriptionId}": {
            "get": {**common, "operationId": f"get{tag}", "summary": "One subscription",
                    "parameters": one,
                    "responses": {"200": item, **_errors(path_codes, "subscription_invalid")}},
            "put": {**common, "operationId": f"update{tag}",
                    "summary": "Change url, method, types or active", "parameters": one,
                    "requestBody": _BODY,
                    "responses": {"200": item, **_errors(path_codes, "subscription_invalid",
                                                         *body_codes)}},
            "delete": {**common, "operationId": f"delete{tag}",
                       "summary": "Unsubscribe (its pending deliveries are dropped)",
                       "parameters": one,
                       "responses": {"204": {"description": "Deleted"},
                                     **_errors(path_codes, "subscription_invalid")}},
        },
    }


# The Event (events/model.py Event.to_json): what each stream message's data holds.
_EVENT: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": "^evt-[0-9a-f]{16}$"},
        "seq": {"type": "integer", "minimum": 1},
        "type": {"type": "string", "enum": list(EVENT_TYPES)},
        "time": {"type": "string", "format": "date-time"},
        "ownerId": {"type": "string"},
        "extension": {"type": "string"},
        "phoneCallId": {"type": "string"},
        "data": {"type": "object", "description": "the PhoneCall (call.*, with "
                 "`callEventType` and `direction`) or the Recording (recording.*)"},
    },
    "required": ["id", "seq", "type", "time", "extension", "data"],
}
_STREAM_TEXT = (
    "Server-Sent Events. Each message: `id:` the event id, `event:` its type, `data:` the "
    "Event (schema below) as JSON. A `history.gap` message (no `id:`; data "
    "`{lastEventId, reason: expired|unknown, missed, lastKept}`) first when the "
    "`Last-Event-ID` names events the history no longer keeps; a bare `id:` line names "
    "where the stream stands; `: ping` comment lines are heartbeats."
)


def _stream_path() -> dict[str, Any]:
    return {EVENTS_PATH: {"get": {
        "tags": ["events"], "security": _UAPI_SECURITY, "operationId": "streamEvents",
        "summary": "The live event stream of the token's extensions (Server-Sent Events)",
        "parameters": [
            {"name": "types", "in": "query", "required": False,
             "description": "only these event types (comma-separated, or repeated)",
             "schema": {"type": "string"}},
            {"name": "Last-Event-ID", "in": "header", "required": False,
             "description": "resume after this event id, from the kept history",
             "schema": {"type": "string", "pattern": "^evt-[0-9a-f]{16}$"}},
        ],
        "responses": {
            "200": {"description": _STREAM_TEXT,
                    "content": {"text/event-stream": {"schema": {"type": "string"},
                                                      "x-event-data": _EVENT}}},
            "400": _error("Invalid request", "request_invalid", "event_type_invalid",
                          "event_id_invalid"),
            "401": _error("Not authenticated", "unauthorized"),
            "500": _error("Internal error", "internal_error"),
        },
    }}}


def event_paths() -> dict[str, Any]:
    return {
        **_stream_path(),
        **_routes("/uapi/extensions/{userId}/{extension}/phoneCallEvents", _PATH_PARAMS,
                  ("user_invalid", "extension_invalid"), "PhoneCallEvents"),
        **_routes("/uapi/organizations/{organizationId}/phoneCallEvents", [_ORG_PARAM],
                  ("organization_invalid",), "OrganizationPhoneCallEvents"),
    }
