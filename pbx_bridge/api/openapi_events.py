"""The OpenAPI description of the webhook subscription routes (api/webhooks.py)."""

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


def event_paths() -> dict[str, Any]:
    return {
        **_routes("/uapi/extensions/{userId}/{extension}/phoneCallEvents", _PATH_PARAMS,
                  ("user_invalid", "extension_invalid"), "PhoneCallEvents"),
        **_routes("/uapi/organizations/{organizationId}/phoneCallEvents", [_ORG_PARAM],
                  ("organization_invalid",), "OrganizationPhoneCallEvents"),
    }
