"""The id of the HTTP request being served, for the log and the AMI ActionIDs.

A :class:`contextvars.ContextVar`: the API's middleware sets it for the task that runs
a handler; asyncio copies it into every task that handler starts, so the AMI actions a
request causes (even from a shielded background task) carry its id, and so do the log
records written on its behalf. Nothing else in the service sets it.
"""

from __future__ import annotations

import secrets
from contextvars import ContextVar

__all__ = ["REQUEST_ID_HEADER", "current_request_id", "new_request_id"]

REQUEST_ID_HEADER = "X-Request-Id"

current_request_id: ContextVar[str | None] = ContextVar("pbx_bridge_request_id", default=None)


def new_request_id() -> str:
    """16 hex digits chosen by the service: never taken from the client, so nothing a
    client sends reaches an ActionID or the log through it."""
    return secrets.token_hex(8)
