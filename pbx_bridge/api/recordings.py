"""The recordings catalog routes (CONTRACT section 6, "Recording resource"), under
``/uapi/recordings/{userId}/{extension}``: same auth, contexts and access rules as the
PhoneCalls routes (a foreign or unknown path answers like PhoneCalls; a foreign or
unknown recording id is 400 ``rec_invalid``, one answer for both).

Order: auth (401) -> path (user_invalid, extension_invalid, access_denied) -> query
(request_invalid, startindex_invalid, count_invalid, filter_invalid) -> recording id
(rec_invalid) -> state (409 rec_in_progress) -> the answer. The media is served by
aiohttp's FileResponse: Range (206, 416), ETag, Last-Modified, If-None-Match (304),
streamed with sendfile, never read whole.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiohttp import web
from multidict import MultiDict, MultiMapping

from pbx_bridge.api import collection, validation
from pbx_bridge.api.auth import authenticate
from pbx_bridge.api.context import DIRECTORY, RECORDINGS, SETTINGS
from pbx_bridge.api.errors import ApiError
from pbx_bridge.directory import access
from pbx_bridge.directory.access import AccessDenied
from pbx_bridge.directory.models import Principal
from pbx_bridge.recordings.catalog import RecordingRow
from pbx_bridge.recordings.resource import PREFIX, recording_json
from pbx_bridge.recordings.store import RecordingQuery

__all__ = ["add_recording_routes", "render"]

_ID = re.compile(r"r-[0-9a-f]{16}")
_STATES = ("recording", "paused", "completed", "missing", "failed")
_LIST_PARAMS = ("startIndex", "count", "phoneCallId", "state", "since", "until",
                collection.TOKEN_PARAM)
_MEDIA_TYPES = {"wav": "audio/wav", "wav49": "audio/x-wav"}


def _target(request: web.Request, principal: Principal) -> access.Target:
    user_ref = validation.user_segment(request.match_info["userId"])
    extension_ref = validation.extension_segment(request.match_info["extension"])
    return access.resolve_target(principal, user_ref, extension_ref, request.app[DIRECTORY])


def _only(query: MultiMapping[str], allowed: tuple[str, ...]) -> None:
    validation.check_query(query)
    for name in query:
        if name not in allowed:
            raise ApiError(400, "request_invalid", f"unknown query parameter {name[:40]!r}")


def _filter(query: MultiMapping[str], name: str) -> str | None:
    values = query.getall(name, [])
    if len(values) > 1:
        raise ApiError(400, "filter_invalid", f"{name} is given more than once")
    return values[0] if values else None


def _time(query: MultiMapping[str], name: str) -> float | None:
    raw = _filter(query, name)
    if raw is None:
        return None
    when = collection.parse_time(raw)
    if when is None:
        raise ApiError(400, "filter_invalid", f"{name} must be an ISO 8601 date-time")
    return when


def _list_query(query: MultiMapping[str], target: access.Target) -> RecordingQuery:
    call_id = _filter(query, "phoneCallId")
    if call_id is not None and not re.fullmatch(r"[0-9a-f]{20}", call_id):
        raise ApiError(400, "filter_invalid", "phoneCallId is a PhoneCall id (20 hex)")
    state = _filter(query, "state")
    if state is not None and state not in _STATES:
        raise ApiError(400, "filter_invalid", "state is one of " + ", ".join(_STATES))
    return RecordingQuery(
        extensions=tuple(e.number for e in target.extensions), call_id=call_id, state=state,
        since=_time(query, "since"), until=_time(query, "until"),
    )


def render(request: web.Request, target: access.Target, row: RecordingRow) -> dict[str, Any]:
    return recording_json(row, request.app[SETTINGS].http.public_base_url, target.user.id)


def _json(data: Any) -> web.Response:
    return web.Response(body=orjson.dumps(data), content_type="application/json")


async def _find(request: web.Request, target: access.Target) -> RecordingRow:
    raw = request.match_info["recordingId"]
    row = await request.app[RECORDINGS].get(raw) if _ID.fullmatch(raw) else None
    if row is None or row.extension not in {e.number for e in target.extensions}:
        raise ApiError(400, "rec_invalid", "no such recording")
    return row


def _in_progress() -> ApiError:
    return ApiError(409, "rec_in_progress", "the recording is still running")


async def list_recordings(request: web.Request) -> web.StreamResponse:
    principal = authenticate(request, request.app[DIRECTORY])
    target = _target(request, principal)
    query = request.rel_url.query
    _only(query, _LIST_PARAMS)
    start = collection.parse_list_query(
        MultiDict((k, v) for k, v in query.items() if k in ("startIndex", "count"))
    )
    total, window = await request.app[RECORDINGS].page(
        _list_query(query, target), start.start_index, start.count)
    if not window:
        return web.Response(status=204)
    entries = [render(request, target, row) for row in window]
    return _json({"startIndex": start.start_index, "itemsPerPage": len(entries),
                  "totalResults": total, "entry": entries})


async def get_recording(request: web.Request) -> web.StreamResponse:
    principal = authenticate(request, request.app[DIRECTORY])
    target = _target(request, principal)
    _only(request.rel_url.query, (collection.TOKEN_PARAM,))
    return _json(render(request, target, await _find(request, target)))


async def get_media(request: web.Request) -> web.StreamResponse:
    principal = authenticate(request, request.app[DIRECTORY])
    target = _target(request, principal)
    query = request.rel_url.query
    _only(query, ("partial", collection.TOKEN_PARAM))
    row = await _find(request, target)
    if row.state in ("recording", "paused") and query.get("partial") != "1":
        raise _in_progress()
    path = request.app[RECORDINGS].path_of(row)
    if row.state in ("missing", "failed") or path is None:
        raise ApiError(409, "rec_unavailable", f"the recording is {row.state}")
    headers = {"Content-Type": _MEDIA_TYPES.get(row.format, "application/octet-stream")}
    return web.FileResponse(path, headers=headers)


async def delete_recording(request: web.Request) -> web.StreamResponse:
    principal = authenticate(request, request.app[DIRECTORY])
    target = _target(request, principal)
    _only(request.rel_url.query, (collection.TOKEN_PARAM,))
    row = await _find(request, target)  # first: a foreign id answers as an unknown one
    directory = request.app[DIRECTORY]
    org = directory.organization(principal.organization_id or 0)
    if not access.can_delete_recordings(principal, org):
        raise AccessDenied("your organization does not let users delete recordings")
    if row.state in ("recording", "paused"):
        raise _in_progress()
    await request.app[RECORDINGS].delete(row)
    return web.Response(status=204)


def add_recording_routes(app: web.Application) -> None:
    listing = app.router.add_resource(f"{PREFIX}/{{userId}}/{{extension}}", name="rec.list")
    listing.add_route("GET", list_recordings)
    one = app.router.add_resource(f"{PREFIX}/{{userId}}/{{extension}}/{{recordingId}}",
                                  name="rec.one")
    one.add_route("GET", get_recording)
    one.add_route("DELETE", delete_recording)
    media = app.router.add_resource(
        f"{PREFIX}/{{userId}}/{{extension}}/{{recordingId}}/media", name="rec.media")
    media.add_route("GET", get_media)
