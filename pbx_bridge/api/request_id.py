"""Every HTTP request gets an id of the service's own (docs/contract.md, "Request ids").

The id is answered in ``X-Request-Id`` (errors included), written in the access log and
in every log record of the request, and put at the end of the ActionID of each AMI
action the request causes (pbx_bridge/request_context.py), so one failed request can
be followed from the client's answer to the service's log to Asterisk's.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from pbx_bridge.request_context import REQUEST_ID_HEADER, current_request_id, new_request_id

__all__ = ["REQUEST_ID", "request_id_header", "request_id_middleware"]

REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id")  # the id, in the request


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = new_request_id()
    request[REQUEST_ID] = request_id
    # Requests of one kept-alive connection run one after the other in the same task:
    # reset, so the next one does not start with this one's id.
    token = current_request_id.set(request_id)
    try:
        return await handler(request)
    finally:
        current_request_id.reset(token)


async def request_id_header(request: web.Request, response: web.StreamResponse) -> None:
    request_id = request.get(REQUEST_ID)
    if request_id is not None:
        response.headers[REQUEST_ID_HEADER] = request_id
