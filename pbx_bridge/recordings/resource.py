"""The Recording resource (CONTRACT section 6), written once: the API's routes and the
events' ``data`` both render a catalog row through :func:`recording_json`."""

from __future__ import annotations

from typing import Any

from pbx_bridge.calls.model import iso
from pbx_bridge.recordings.catalog import RecordingRow

__all__ = ["PREFIX", "recording_json"]

PREFIX = "/uapi/recordings"


def recording_json(row: RecordingRow, base_url: str, user_id: int | None) -> dict[str, Any]:
    """The row as JSON; its links are under ``user_id`` (the user of the request's path,
    or for an event the extension's owner). Absent fields are left out."""
    self_link = f"{base_url}{PREFIX}/{user_id}/{row.extension}/{row.id}"
    data: dict[str, Any] = {
        "id": row.id, "phoneCallId": row.call_id, "phoneCallViewId": row.view_id,
        "extension": row.extension, "ownerId": str(row.organization) if row.organization else None,
        "format": row.format, "state": row.state, "reason": row.reason,
        "startedBy": row.started_by, "appId": row.app_id,
        "started": iso(row.started), "stopped": iso(row.stopped),
        "paused": [{"from": iso(a), "to": iso(b)} if b is not None else {"from": iso(a)}
                   for a, b in row.paused],
        "duration": row.duration, "size": row.size, "sha256": row.sha256,
        "link": {"self": self_link, "media": f"{self_link}/media"},
    }
    return {k: v for k, v in data.items() if v is not None}
