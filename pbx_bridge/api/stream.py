"""``GET /uapi/events``: the live event stream as Server-Sent Events (CONTRACT section 7,
"Stream"), written with aiohttp-sse.

Each event: ``id:`` the event id, ``event:`` its type, ``data:`` the Event JSON. Only
events of extensions the token may act on (a user its own, an organization account its
organization's, the admin all), of the ``?types=`` asked for. ``Last-Event-ID`` resumes
from the kept history; an id whose events the history no longer keeps (or that is not
of this history) first gets a ``history.gap`` message. A stream without one starts with
a bare ``id:`` line naming where it starts, so that a client that reconnects misses
nothing even if it saw no event. A heartbeat comment every ``[events]
stream_heartbeat`` seconds (aiohttp-sse's ping); the token is checked again as often,
and a revoked or expired one ends the stream.

Order: auth (401) -> query (request_invalid, event_type_invalid) -> Last-Event-ID
(event_id_invalid) -> 200 and the stream. Back-pressure: stream/hub.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time

import orjson
from aiohttp import web
from aiohttp_sse import EventSourceResponse

from pbx_bridge.api import validation
from pbx_bridge.api.auth import QUERY_TOKEN, authenticate, extract_token
from pbx_bridge.api.context import DIRECTORY, SETTINGS, STREAM
from pbx_bridge.api.errors import ApiError
from pbx_bridge.events.model import EVENT_TYPES, event_id
from pbx_bridge.events.store import EventStore
from pbx_bridge.stream.hub import Ended, Subscriber
from pbx_bridge.stream.resume import Start, history_page, plan
from pbx_bridge.stream.view import StreamView

__all__ = ["EVENTS_PATH", "add_stream_routes"]

EVENTS_PATH = "/uapi/events"
_ID = re.compile(r"evt-[0-9a-f]{16}")
_PAGE = 500  # history events read per query while replaying
_TICK = 1.0  # seconds between two looks at a client that may have gone away
_LOST = (ConnectionError, RuntimeError)  # a write to a closed or aborted connection


def _types(request: web.Request) -> frozenset[str] | None:
    query = request.rel_url.query
    validation.check_query(query)
    for name in query:
        if name not in ("types", QUERY_TOKEN):
            raise ApiError(400, "request_invalid", f"unknown query parameter {name[:40]!r}")
    asked = [t.strip() for value in query.getall("types", []) for t in value.split(",")]
    if not asked:
        return None
    bad = [t for t in asked if t not in EVENT_TYPES]
    if bad:
        raise ApiError(400, "event_type_invalid", f"unknown event type {bad[0][:40]!r}")
    return frozenset(asked)


def _last_seen(request: web.Request) -> int | None:
    values = request.headers.getall("Last-Event-ID", [])
    if len(values) > 1:
        raise ApiError(400, "event_id_invalid", "more than one Last-Event-ID header")
    raw = values[0].strip() if values else ""
    if not raw:
        return None
    if _ID.fullmatch(raw) is None:
        raise ApiError(400, "event_id_invalid", "Last-Event-ID is not an event id")
    return int(raw[4:], 16)


async def stream_events(request: web.Request) -> web.StreamResponse:
    directory = request.app[DIRECTORY]
    principal = authenticate(request, directory)
    view = StreamView(principal, _types(request), directory)
    last_seen = _last_seen(request)
    settings = request.app[SETTINGS].events
    hub = request.app[STREAM]
    resp = EventSourceResponse(ping_interval=settings.stream_heartbeat,
                               send_timeout=settings.stream_send_timeout)
    await hub.start()  # follows the history (what any replica stored) from now on
    sub = hub.subscribe(view.wants, on_cut=lambda: _abort(request))
    try:  # subscribed before the history is read: nothing falls between the two
        start = await asyncio.to_thread(plan, hub.store, last_seen)
        await resp.prepare(request)
        position = await _replay(resp, hub.store, view, start,
                                 settings.stream_send_timeout)
        await _live(request, resp, sub, view, position)
    except (Ended, *_LOST):
        pass  # cut, shut down, or gone: the client resumes with Last-Event-ID
    finally:
        hub.unsubscribe(sub)
        if resp.prepared:
            with contextlib.suppress(*_LOST):
                resp.stop_streaming()
    return resp


def _abort(request: web.Request) -> None:
    """Cut: drop the connection now, and with it whatever waits for its socket."""
    if request.transport is not None:
        request.transport.abort()


async def _send_id(resp: EventSourceResponse, seq: int, timeout: float) -> None:
    """A bare ``id:`` line: moves the client's last event id, dispatches nothing."""
    async with asyncio.timeout(timeout):
        await resp.write(f"id: {event_id(seq)}\r\n\r\n".encode())


async def _replay(resp: EventSourceResponse, store: EventStore, view: StreamView,
                  start: Start, timeout: float) -> int:
    """Send the gap notice, the kept history after ``start.after`` that the view wants,
    and the position read up to (a bare ``id:``); returns that position."""
    if start.gap is not None:
        await resp.send(orjson.dumps(start.gap).decode(), event="history.gap")
    position = sent = start.after if start.gap is None else 0
    while position < start.top:
        page = await asyncio.to_thread(history_page, store, position, _PAGE)
        if not page:
            break
        for doc in page:
            position = int(doc["seq"])
            if view.wants_stored(doc):
                await resp.send(orjson.dumps(doc).decode(), id=str(doc["id"]),
                                event=str(doc["type"]))
                sent = position
    if position and (position != sent or position == start.after):  # nothing sent names it
        await _send_id(resp, position, timeout)
    return position


async def _live(request: web.Request, resp: EventSourceResponse, sub: Subscriber,
                view: StreamView, position: int) -> None:
    settings = request.app[SETTINGS].events
    next_check = time.monotonic() + settings.stream_heartbeat
    while True:
        try:
            async with asyncio.timeout(_TICK):
                event = await sub.next()
        except TimeoutError:
            if not resp.is_connected() or request.transport is None or \
                    request.transport.is_closing():
                return  # the client went away (aiohttp does not cancel the handler)
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + settings.stream_heartbeat
                if not _still_valid(request, view):
                    return
            continue
        if event.seq <= position:
            continue  # already sent from the history
        await resp.send(orjson.dumps(event.to_json()).decode(), id=event.id,
                        event=event.type)
        position = event.seq


def _still_valid(request: web.Request, view: StreamView) -> bool:
    """The token again: revoked, expired or its user gone ends the stream."""
    token = extract_token(request)
    principal = request.app[DIRECTORY].authenticate(token) if token else None
    if principal is None:
        return False
    view.principal = principal
    return True


async def _end_streams(app: web.Application) -> None:
    app[STREAM].close()


def add_stream_routes(app: web.Application) -> None:
    app.router.add_get(EVENTS_PATH, stream_events, allow_head=False, name="events.stream")
    app.on_shutdown.append(_end_streams)
