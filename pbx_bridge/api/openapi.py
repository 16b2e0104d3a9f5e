"""The OpenAPI 3.1 description of every route the app serves (``GET /uapi/openapi.json``).

Every body's schema (``components.schemas``) is generated from the pydantic models that
define it, once: the PhoneCall from :mod:`pbx_bridge.calls.model`, the rest from
:mod:`pbx_bridge.api.schemas`, each field's docstring as its description. Paths,
parameters (from :mod:`pbx_bridge.api.collection`'s constants), security and responses
are built here in code and only reference those schemas. Every status a route can answer
is listed, every error lists the codes it can carry, and every object schema is closed
(``additionalProperties: false``). ``tests/unit/test_api_service.py`` checks the document
against the spec and the app's router; ``tests/unit/test_phonecall_schema.py`` checks
every rendered PhoneCall against it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema
from pydantic_core import core_schema

from pbx_bridge import __version__
from pbx_bridge.api import collection, schemas, validation
from pbx_bridge.api.routes import PREFIXES
from pbx_bridge.calls import model
from pbx_bridge.ui.routes import ui_paths

__all__ = ["OPENAPI", "build_document", "component_schemas", "openapi_handler"]

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
Schema = dict[str, Any]

_REF = "#/components/schemas/"
_UAPI_SECURITY: list[dict[str, list[str]]] = [
    {"bearer": []}, {"authenticationHeader": []}, {"accessRequestToken": []}
]

ERROR_DESCRIPTIONS = {
    "pc_recformat_invalid": "`format` present but not `wav` or `wav49`",
    "pc_phonecall_invalid": "`phoneCallId` malformed, or no such live call visible for "
    "that user/extension",
    "pc_phonecallview_invalid": "`phoneCallViewId` missing, malformed, or not a view of "
    "the call the requester may act on",
    "pc_action_invalid": "`action` missing or not one of the PhoneCallAction's actions",
    "pc_maxinparking_invalid": "`maxInParking` not a string of digits from 10 to 3600",
    "pc_sendcallto_invalid": "`sendCallTo` missing (for an action that takes it), "
    "malformed, not an extension of the view's organization, or a public number without "
    "`allowPublicTransfer=true` (TransferToVoicemail and UnPark: an extension only)",
    "body_invalid": "body not UTF-8, not a JSON object, with duplicate or unknown keys, "
    "or fields that are not strings",
    "request_invalid": "a query parameter the resource does not take (the list: "
    "`startIndex`, `count`, `filterBy`, `filterOp`, `filterValue`, `sortOrder`, `fields`; "
    "one call: `fields`; PUT: `allowPublicTransfer`; all: `accessRequestToken`), `sortOrder` not "
    "`ascending`/`descending`, or any parameter with a control character or over 1 KiB",
    "startindex_invalid": "`startIndex` not a whole number from 0 to 4999, or given twice",
    "count_invalid": "`count` not a whole number from 1 to 4999, or given twice",
    "filterby_invalid": "`filterBy` not `id`/`published`, missing while `filterOp` or "
    "`filterValue` is given, or given twice",
    "filterop_invalid": "`filterOp` not one of the operations, or given twice",
    "filtervalue_invalid": "`filterValue` missing (or given with `present`), empty, over "
    "512 characters, not an ISO 8601 date-time where `published` is compared in time, "
    "an `inArray` list with an empty item or over 100 items, or given twice",
    "fields_invalid": "`fields` names something that is not a PhoneCall field, or given twice",
    "user_invalid": "path `userId` malformed or unknown",
    "extension_invalid": "path `extension` malformed, unknown, or not the user's",
    "unauthorized": "missing, malformed, unknown or expired bearer token",
    "access_denied": "the user/extension in the path is outside the requester's context",
    "pc_recording_disabled": "the extension's phone terminal setup does not allow "
    "recording on demand (*1); or StopRecording on an extension that records always",
    "pc_phonecallview_state": "the action does not fit the view's state now (not "
    "answered or hung up; OnHold on a call on hold or parked, OffHold on a call not held "
    "by OnHold, Park on a view not talking to one other party, UnPark on a call not "
    "parked, a transfer or spy on a view not answered, PickUp of a view not ringing), or "
    "the PBX refused it",
    "body_too_large": "body over the configured limit",
    "unsupported_media_type": "`Content-Type` given and not `application/json` "
    "(parameters such as `charset` are accepted; no `Content-Type` at all is too)",
    "request_timeout": "the body did not arrive within `http.request_timeout` (the "
    "connection is closed)",
    "not_found": "no such resource",
    "rec_invalid": "`recordingId` malformed, unknown, or a recording of another extension",
    "filter_invalid": "`phoneCallId`, `state`, `since` or `until` malformed, or given twice",
    "rec_in_progress": "the recording still runs (media: unless `partial=1`)",
    "rec_unavailable": "the recording is `failed` or `missing`: there is no media to offer",
    "rec_delete_failed": "this host may not remove the recording's file (folder permissions); "
                         "the recording is kept",
    "subscription_invalid": "subscription id malformed, unknown, or another extension's",
    "url_invalid": "`url` not an absolute http/https URL, or its host is on a refused range "
    "(loopback, link-local, private, ...: `[events] allow_networks`) or does not resolve",
    "event_type_invalid": "`types` not a non-empty list of event types",
    "event_id_invalid": "`Last-Event-ID` is not an event id (`evt-` + 16 hex digits), "
                        "or given twice",
    "organization_invalid": "path `organizationId` malformed, unknown, or another organization",
    "internal_error": "an unexpected error (logged by the service)",
    "pc_nonce_invalid": "`nonce` not 1 to 64 of `A-Z a-z 0-9 . _ : -`",
    "pc_source_invalid": "`source` malformed, not the extension (`simple`), another "
    "organization's or unknown extension, or a public number without `allowPublicTransfer`",
    "pc_destination_invalid": "`destination` malformed, the source itself, another "
    "organization's or unknown extension, or a public number without `allowPublicTransfer`",
    "pc_callerid_invalid": "`callerId` not `Name <number>` (name: letters, digits, spaces, "
    "`.,'_-`, at most 64) with an extension of the organization as number",
    "pc_waitforpickup_invalid": "`waitForPickup` not whole seconds from 1 to 300 (BargeIn: "
    "the body field, a string of digits; click-to-call: the query parameter, also twice)",
    "pc_callduration_invalid": "`callDuration` not whole seconds from 1 to 86400, or twice",
    "pc_allowpublictransfer_invalid": "`allowPublicTransfer` not `true`/`false`, or twice",
    "pc_call_failed": "Asterisk could not call the first leg (a phone not registered, a "
    "number it cannot dial)",
    "pc_phonenumber_invalid": "`phoneNumber` not 1 to 20 digits and `*`, or given twice",
    "pbx_unavailable": "AMI not connected or state not yet resynced",
    "pbx_timeout": "Asterisk did not answer in time",
    "invalid_request": "OAuth: a parameter is missing, repeated or malformed",
    "unsupported_grant_type": "OAuth: `grant_type` is not `client_credentials`",
    "invalid_client": "OAuth: unknown client or wrong secret (or a disabled app)",
    "too_many_requests": "OAuth: too many failed client authentications for this client "
    "id or from this address; wait `Retry-After` seconds (the secret is not checked "
    "meanwhile)",
}


# The models behind components.schemas, each in the direction it travels: what the
# service sends is described as it serializes, what it takes as it validates.
_MODELS: tuple[tuple[type[BaseModel], JsonSchemaMode], ...] = (
    (model.PhoneCall, "serialization"),
    (model.PhoneCallFields, "serialization"),
    (schemas.PhoneCallList, "serialization"),
    (schemas.PhoneCallAction, "validation"),
    (schemas.Recording, "serialization"),
    (schemas.RecordingList, "serialization"),
    (schemas.Error, "serialization"),
    (schemas.Status, "serialization"),
    (schemas.Ready, "serialization"),
    (schemas.Token, "serialization"),
    (schemas.TokenRequest, "validation"),
    (schemas.RevokeRequest, "validation"),
    (schemas.DialRequest, "validation"),
    (schemas.HungUp, "serialization"),
)


class _ApiJsonSchema(GenerateJsonSchema):
    """pydantic's JSON Schema, spelled as the API behaves: a field without a value is
    left out of the JSON, never ``null``, so an optional field is documented as optional
    and not as nullable (an explicit ``null`` in a PUT body is refused too); no generated
    titles (the component names say it); descriptions on one line."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> Schema:
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> Schema:
        if schema.get("default", ...) is None:
            return self.generate_inner(schema["schema"])
        return super().default_schema(schema)

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def generate(self, schema: Any, mode: JsonSchemaMode = "validation") -> Schema:
        return _tidy(super().generate(schema, mode))

    def generate_definitions(self, inputs: Any) -> Any:
        keys, definitions = super().generate_definitions(inputs)
        return keys, {name: _tidy(value) for name, value in definitions.items()}


def _tidy(node: Any, *, names: bool = False) -> Any:
    """No ``title``, descriptions on one line; ``names``: ``node`` maps field names (a
    ``properties``), which are kept whatever they are called."""
    if isinstance(node, list):
        return [_tidy(item) for item in node]
    if not isinstance(node, dict):
        return node
    if names:
        return {key: _tidy(value) for key, value in node.items()}
    return {
        key: " ".join(value.split()) if key == "description" else
        _tidy(value, names=key == "properties")
        for key, value in node.items()
        if key != "title"
    }


def component_schemas() -> dict[str, Schema]:
    """``components.schemas``: generated from the models, referenced where they are."""
    _keys, top = models_json_schema(
        _MODELS, ref_template=_REF + "{model}", schema_generator=_ApiJsonSchema
    )
    return dict(sorted(top["$defs"].items()))


def _error_schema(codes: list[str]) -> Schema:
    # The envelope is the Error model's; each answer narrows the codes it can carry.
    return {
        "allOf": [
            {"$ref": _REF + "Error"},
            {"properties": {"error": {"properties": {"code": {"enum": codes}}}}},
        ]
    }


def _error(description: str, *codes: str, headers: dict | None = None) -> Schema:
    text = description + ". Codes: " + "; ".join(f"`{c}`: {ERROR_DESCRIPTIONS[c]}" for c in codes)
    out: Schema = {
        "description": text,
        "content": {JSON: {"schema": _error_schema(list(codes))}},
    }
    if headers:
        out["headers"] = headers
    return out


def _json(description: str, schema: Schema) -> Schema:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _header(name: str, description: str, pattern: str) -> dict[str, Schema]:
    """A response header that is always sent."""
    schema = {"type": "string", "pattern": pattern}
    return {name: {"description": description, "required": True, "schema": schema}}


_BEARER_HEADERS = _header(
    "WWW-Authenticate",
    '`Bearer realm="pbx-bridge"`, with `error="invalid_token"` when a token was given',
    "^Bearer ",
)


_LIST_QUERY_CODES = ["startindex_invalid", "count_invalid", "filterby_invalid",
                     "filterop_invalid", "filtervalue_invalid", "fields_invalid"]


def _uapi_errors(*, put: bool = False, one: bool = False) -> dict[str, Schema]:
    bad = ["user_invalid", "extension_invalid", "request_invalid"]
    if not (one or put):
        bad += _LIST_QUERY_CODES
    elif one and not put:
        bad.append("fields_invalid")
    if one or put:
        bad.append("pc_phonecall_invalid")
    if put:
        bad += [
            "body_invalid",
            "pc_action_invalid",
            "pc_recformat_invalid",
            "pc_phonecallview_invalid",
            "pc_maxinparking_invalid",
            "pc_sendcallto_invalid",
            "pc_waitforpickup_invalid",
        ]
    out = {
        "400": _error("Invalid request", *bad),
        "401": _error("Not authenticated", "unauthorized", headers=_BEARER_HEADERS),
        "403": _error(
            "Forbidden",
            *(["access_denied", "pc_recording_disabled"] if put else ["access_denied"]),
        ),
        "404": _error("No such resource (e.g. an empty path segment)", "not_found"),
    }
    if put:
        out["408"] = _error("The body arrived too slowly", "request_timeout")
        out["409"] = _error("Conflict with the view's state", "pc_phonecallview_state")
        out["413"] = _error("Body too large", "body_too_large")
        out["415"] = _error("The body is declared as something else than JSON",
                            "unsupported_media_type")
    out["500"] = _error("Internal error", "internal_error")
    out["503"] = _error("The PBX is not available", "pbx_unavailable")
    if put:
        out["504"] = _error("The PBX did not answer in time", "pbx_timeout")
    return out


_PATH_PARAMS = [
    {
        "name": "userId",
        "in": "path",
        "required": True,
        "description": "`@me` / `@viewer` (the token's user), `@owner` (the owner of the "
        "extension in the path) or a numeric user id",
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": validation.MAX_SEGMENT,
            "pattern": "^(@me|@viewer|@owner|[0-9]{1,15})$",
        },
    },
    {
        "name": "extension",
        "in": "path",
        "required": True,
        "description": "an extension number such as `0003*210` (`0003%2A210` URL-encoded) "
        "or `@self` (every extension of the user)",
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": validation.MAX_SEGMENT,
            "pattern": r"^(@self|[0-9]{1,8}\*[0-9]{1,8}|[0-9]{1,15})$",
        },
    },
]
_CALL_ID_PARAM = {
    "name": "phoneCallId",
    "in": "path",
    "required": True,
    "description": "the `id` of a PhoneCall",
    "schema": {"type": "string", "pattern": model.CALL_ID_PATTERN},
}
_FIELD_NAMES = "|".join(collection.FIELDS)
_FIELDS_PARAM = {
    "name": "fields",
    "in": "query",
    "required": False,
    "description": "a comma-separated list (no spaces) of the PhoneCall fields to return; "
    "`id` is always returned; a view's fields cannot be named (`phoneCallView` comes "
    "whole). Default: every field",
    "schema": {"type": "string", "pattern": f"^({_FIELD_NAMES})(,({_FIELD_NAMES}))*$"},
}
_LIST_PARAMS = [
    {
        "name": "startIndex",
        "in": "query",
        "required": False,
        "description": "index of the first call of the page (0-based)",
        "schema": {
            "type": "integer",
            "minimum": 0,
            "maximum": collection.MAX_START_INDEX,
            "default": 0,
        },
    },
    {
        "name": "count",
        "in": "query",
        "required": False,
        "description": "largest number of calls in the page",
        "schema": {
            "type": "integer",
            "minimum": collection.MIN_COUNT,
            "maximum": collection.MAX_COUNT,
            "default": collection.DEFAULT_COUNT,
        },
    },
    {
        "name": "filterBy",
        "in": "query",
        "required": False,
        "description": "the field to filter on; required with `filterOp` / `filterValue`",
        "schema": {"type": "string", "enum": list(collection.FILTER_FIELDS)},
    },
    {
        "name": "filterOp",
        "in": "query",
        "required": False,
        "description": "how to compare (default `contains`). `published` with `equals`, "
        "`greaterThan`, `lessThan`, `inArray`: in time (whole seconds); otherwise on the "
        "text. `present` takes no `filterValue`",
        "schema": {"type": "string", "enum": list(collection.FILTER_OPS), "default": "contains"},
    },
    {
        "name": "filterValue",
        "in": "query",
        "required": False,
        "description": "the value to compare with; `inArray`: comma-separated values; "
        "`published` in time: an ISO 8601 date-time (UTC without an offset)",
        "schema": {"type": "string", "minLength": 1, "maxLength": collection.VALUE_MAX},
    },
    {
        "name": "sortOrder",
        "in": "query",
        "required": False,
        "description": "by `published`: `ascending` (oldest first) or `descending`",
        "schema": {"type": "string", "enum": list(collection.SORT_ORDERS),
                   "default": "ascending"},
    },
    _FIELDS_PARAM,
]

def prefix_variants() -> Iterator[tuple[str, str, str, str]]:
    """(prefix, operationId suffix, summary note, tag) of `/uapi/phoneCalls` and its
    singular alias, for every document part that lists both."""
    for prefix in PREFIXES:
        alias = prefix != PREFIXES[0]
        note = " (singular alias of `/uapi/phoneCalls/...`)" if alias else ""
        tag = "phoneCall (alias)" if alias else "phoneCalls"
        yield prefix, "Alias" if alias else "", note, tag


def _uapi_paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for prefix, suffix, note, tag in prefix_variants():
        paths[f"{prefix}/{{userId}}/{{extension}}"] = {
            "get": {
                "operationId": f"listPhoneCalls{suffix}",
                "tags": [tag],
                "summary": "List the live calls of an extension (or of every extension of "
                "the user with `@self`)" + note,
                "security": _UAPI_SECURITY,
                "parameters": [*_PATH_PARAMS, *_LIST_PARAMS],
                "responses": {
                    "200": _json("A page of calls", {"$ref": _REF + "PhoneCallList"}),
                    "204": {"description": "No live calls"},
                    **_uapi_errors(),
                },
            }
        }
        paths[f"{prefix}/{{userId}}/{{extension}}/{{phoneCallId}}"] = {
            "get": {
                "operationId": f"getPhoneCall{suffix}",
                "tags": [tag],
                "summary": "One live call" + note,
                "security": _UAPI_SECURITY,
                "parameters": [*_PATH_PARAMS, _CALL_ID_PARAM, _FIELDS_PARAM],
                "responses": {
                    "200": _json("The call", {"$ref": _REF + "PhoneCallFields"}),
                    **_uapi_errors(one=True),
                },
            },
            "put": {
                "operationId": f"updatePhoneCall{suffix}",
                "tags": [tag],
                "summary": "A PhoneCallAction: Start, Stop, Pause or ResumeRecording "
                           "(idempotent); Transfer, TransferToVoicemail, PickUp, BargeIn, "
                           "Whisper, Monitor" + note,
                "security": _UAPI_SECURITY,
                "parameters": [*_PATH_PARAMS, _CALL_ID_PARAM, _ALLOW_PUBLIC_PARAM],
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": {"$ref": _REF + "PhoneCallAction"}}},
                },
                "responses": {
                    "200": _json("The updated call", {"$ref": _REF + "PhoneCall"}),
                    **_uapi_errors(put=True),
                },
            },
        }
    return paths


_ALLOW_PUBLIC_PARAM = {
    "name": collection.ALLOW_PUBLIC_PARAM, "in": "query", "required": False,
    "description": "call control: `sendCallTo` may be a public number (`true`/`1`; "
    "default `false`)",
    "schema": {"type": "string", "enum": ["true", "false", "1", "0"]},
}
_REC_ID_PARAM = {
    "name": "recordingId", "in": "path", "required": True,
    "description": "the `id` of a Recording", "schema": {"type": "string"},
}
_REC_LIST_PARAMS = [
    {"name": "startIndex", "in": "query", "required": False,
     "description": "index of the first recording of the page (0-based)",
     "schema": {"type": "integer", "minimum": 0, "maximum": collection.MAX_START_INDEX,
                "default": 0}},
    {"name": "count", "in": "query", "required": False,
     "description": "largest number of recordings in the page",
     "schema": {"type": "integer", "minimum": collection.MIN_COUNT,
                "maximum": collection.MAX_COUNT, "default": collection.DEFAULT_COUNT}},
    {"name": "phoneCallId", "in": "query", "required": False,
     "description": "only the recordings of this call", "schema": {"type": "string"}},
    {"name": "state", "in": "query", "required": False, "description": "only in this state",
     "schema": {"type": "string",
                "enum": ["recording", "paused", "completed", "missing", "failed"]}},
    {"name": "since", "in": "query", "required": False,
     "description": "started at or after (ISO 8601)", "schema": {"type": "string"}},
    {"name": "until", "in": "query", "required": False,
     "description": "started before (ISO 8601)", "schema": {"type": "string"}},
]


def _rec_errors(*bad: str, conflict: bool = False, delete: bool = False) -> dict[str, Schema]:
    out = {
        "400": _error("Invalid request", "user_invalid", "extension_invalid",
                      "request_invalid", *bad),
        "401": _error("Not authenticated", "unauthorized", headers=_BEARER_HEADERS),
        "403": _error("Forbidden (DELETE: a user token where the organization does not let "
                      "users delete)" if delete else "Forbidden",
                      "access_denied"),
        "404": _error("No such resource (e.g. an empty path segment)", "not_found"),
    }
    if conflict:
        out["409"] = _error("The recording still runs, or has no media",
                            "rec_in_progress", *([] if delete else ["rec_unavailable"]))
    out["500"] = _error("Internal error", *(["rec_delete_failed"] if delete else []),
                        "internal_error")
    return out


def recording_paths() -> dict[str, Any]:
    base = "/uapi/recordings/{userId}/{extension}"
    common = {"tags": ["recordings"], "security": _UAPI_SECURITY}
    one_params = [*_PATH_PARAMS, _REC_ID_PARAM]
    audio = {"schema": {"type": "string", "contentMediaType": "audio/wav"}}
    return {
        base: {"get": {
            **common, "operationId": "listRecordings",
            "summary": "The recordings of an extension, newest first",
            "parameters": [*_PATH_PARAMS, *_REC_LIST_PARAMS],
            "responses": {
                "200": _json("A page of recordings", {"$ref": _REF + "RecordingList"}),
                "204": {"description": "No recording"},
                **_rec_errors("startindex_invalid", "count_invalid", "filter_invalid"),
            },
        }},
        base + "/{recordingId}": {
            "get": {
                **common, "operationId": "getRecording", "summary": "One recording",
                "parameters": one_params,
                "responses": {"200": _json("The recording", {"$ref": _REF + "Recording"}),
                              **_rec_errors("rec_invalid")},
            },
            "delete": {
                **common, "operationId": "deleteRecording",
                "summary": "Remove the file and the row (organization and admin contexts; "
                           "users where their organization allows it)",
                "parameters": one_params,
                "responses": {"204": {"description": "Deleted"},
                              **_rec_errors("rec_invalid", conflict=True, delete=True)},
            },
        },
        base + "/{recordingId}/media": {"get": {
            **common, "operationId": "getRecordingMedia",
            "summary": "The audio file: Range, ETag, Last-Modified, If-None-Match",
            "parameters": [*one_params, {
                "name": "partial", "in": "query", "required": False,
                "description": "`1`: the file as it is while still recording",
                "schema": {"type": "string", "enum": ["1"]}}],
            "responses": {
                "200": {"description": "The file (`audio/wav` for wav, `audio/x-wav` for "
                        "wav49)", "content": {"audio/wav": audio, "audio/x-wav": audio}},
                "206": {"description": "The requested byte range",
                        "content": {"audio/wav": audio, "audio/x-wav": audio}},
                "304": {"description": "Not modified (`If-None-Match`)"},
                "416": {"description": "The range is not satisfiable"},
                **_rec_errors("rec_invalid", conflict=True),
            },
        }},
    }


def _service_paths() -> dict[str, Any]:
    internal = {"500": _error("Internal error", "internal_error")}
    return {
        "/uapi/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "tags": ["service"],
                "summary": "This document",
                "security": [],
                "responses": {
                    "200": _json("The OpenAPI 3.1 document", {"type": "object"}),
                    **internal,
                },
            }
        },
        "/healthz": {
            "get": {
                "operationId": "getHealth",
                "tags": ["service"],
                "summary": "The process is alive",
                "security": [],
                "responses": {"200": _json("Alive", {"$ref": _REF + "Status"}), **internal},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "getReady",
                "tags": ["service"],
                "summary": "AMI is logged in and the call state resynced",
                "security": [],
                "responses": {
                    "200": _json("Ready", {"$ref": _REF + "Ready"}),
                    **internal,
                    "503": _error("Not ready", "pbx_unavailable"),
                },
            }
        },
        "/readyz/{node}": {
            "get": {
                "operationId": "getNodeReady",
                "tags": ["service"],
                "summary": "One PBX node ([[pbx]] name) is connected and resynced (with "
                "several nodes: and its Asterisk has a systemname of its own)",
                "security": [],
                "parameters": [{"name": "node", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {
                    "200": _json("Ready", {"type": "object", "properties": {
                        "status": {"const": "ok"}, "node": {"type": "string"}},
                        "required": ["status", "node"]}),
                    "404": _error("No such node", "not_found"),
                    **internal,
                    "503": _error("Not ready (the message says why)", "pbx_unavailable"),
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "getMetrics",
                "tags": ["service"],
                "summary": "Prometheus metrics (every tenant's figures): a token of an admin "
                "user's app, unless the service runs with `[metrics] auth = \"none\"`",
                "security": _UAPI_SECURITY,
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "401": _error("Not authenticated", "unauthorized", headers=_BEARER_HEADERS),
                    "403": _error("Not an admin token", "access_denied"),
                    **internal,
                },
            }
        },
        **_oauth_paths(internal),
    }


def _oauth_paths(internal: dict[str, Schema]) -> dict[str, Any]:
    """The OAuth 2.0 endpoints: the token grant, at two paths, and token revocation."""
    return {
        "/oauth/token": _oauth_token_path("issueToken", "", internal),
        "/oauth/token.php": _oauth_token_path(
            "issueTokenVoipNow",
            ". VoipNow's path of the same endpoint; the `type` and `redirect_uri` its "
            "clients send are ignored",
            internal,
        ),
        "/oauth/revoke": _oauth_revoke_path(internal),
    }


_NO_STORE = {
    "Cache-Control": {
        "description": "`no-store`",
        "schema": {"type": "string", "enum": ["no-store"]},
    }
}


def _oauth_token_path(operation_id: str, note: str, internal: dict[str, Schema]) -> Schema:
    return _oauth_post(
        operation_id,
        "OAuth 2.0 client credentials grant: a bearer token for an app. "
        "The client authenticates with HTTP Basic or with `client_id` and "
        "`client_secret` in the form, not both" + note,
        "TokenRequest",
        {
            "200": {
                **_json("A bearer token", {"$ref": _REF + "Token"}),
                "headers": _NO_STORE,
            },
            "400": _error("Invalid request", "invalid_request", "unsupported_grant_type"),
            **_oauth_errors(internal),
        },
    )


def _oauth_revoke_path(internal: dict[str, Schema]) -> Schema:
    return _oauth_post(
        "revokeToken",
        "OAuth 2.0 token revocation (RFC 7009). The client authenticates "
        "as at `/oauth/token`; its own token named in `token` is revoked at once. "
        "200 also when the token is unknown, expired or another client's (then it "
        "is left alone)",
        "RevokeRequest",
        {
            "200": {"description": "Done (empty body)", "headers": _NO_STORE},
            "400": _error("Invalid request", "invalid_request"),
            **_oauth_errors(internal),
        },
    )


def _oauth_post(operation_id: str, summary: str, form: str, responses: Schema) -> Schema:
    """An OAuth endpoint: a form (the ``form`` model) POSTed by an app's client, which
    authenticates with HTTP Basic or in the form."""
    return {
        "post": {
            "operationId": operation_id,
            "tags": ["service"],
            "summary": summary,
            "security": [{"clientBasic": []}, {}],
            "requestBody": {
                "required": True,
                "content": {FORM: {"schema": {"$ref": _REF + form}}},
            },
            "responses": responses,
        }
    }


def _oauth_errors(internal: dict[str, Schema]) -> dict[str, Schema]:
    """The error answers both OAuth endpoints share, from 401 on."""
    return {
        "401": _error(
            "Client authentication failed",
            "invalid_client",
            headers=_header("WWW-Authenticate", '`Basic realm="pbx-bridge"`', "^Basic "),
        ),
        "408": _error("The body arrived too slowly", "request_timeout"),
        "413": _error("Body too large", "body_too_large"),
        "429": _error(
            "Too many failed client authentications for this client id or from this address",
            "too_many_requests",
            headers=_header("Retry-After", "seconds until the lockout ends", "^[0-9]+$"),
        ),
        **internal,
    }


def _event_paths() -> dict[str, Any]:
    from pbx_bridge.api.openapi_events import event_paths  # it uses this module's helpers

    return event_paths()


def _dialing_paths() -> dict[str, Any]:
    from pbx_bridge.api.openapi_dialing import dialing_paths  # it uses this module's helpers

    return dialing_paths()


def build_document(public_base_url: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "pbx-bridge UAPI PhoneCalls",
            "version": __version__,
            "description": (
                "VoipNow-style UAPI PhoneCalls served next to an Asterisk PBX. Every 4xx/5xx "
                'answer has the body `{"error": {"code", "message"}}`. Any path not listed '
                "here answers 404 `not_found`; a listed path with another method answers "
                "405 `method_not_allowed` with an `Allow` header. Every path is served "
                "with and without a trailing `/` (no redirect)."
            ),
        },
        "paths": {**_uapi_paths(), **recording_paths(), **_event_paths(), **_service_paths(),
                  **ui_paths()},
        "components": {
            "schemas": component_schemas(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`Authorization: Bearer <token>`",
                },
                "authenticationHeader": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authentication",
                    "description": "`Authentication: Bearer <token>` (the header of the "
                    "original VoipNow documentation)",
                },
                "accessRequestToken": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "accessRequestToken",
                    "description": "the token as a query parameter",
                },
                "clientBasic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "client_id / client_secret of an app (RFC 6749 2.3.1)",
                },
            },
        },
    }
    for path, operations in _dialing_paths().items():  # beside GET/PUT on shared paths
        doc["paths"].setdefault(path, {}).update(operations)
    if public_base_url:
        doc["servers"] = [{"url": public_base_url}]
    return doc


OPENAPI = web.AppKey("openapi_document", dict)


async def openapi_handler(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])
