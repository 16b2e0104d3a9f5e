"""One exception hierarchy for every refusal the service answers with.

Each error carries the contract's ``status`` and ``code`` (CONTRACT section 2, Errors)
and a ``message``; :func:`pbx_bridge.api.errors.error_middleware` turns any of them into
the error envelope, in that one place (where the PBX errors get a fixed text for the
client: their ``message`` holds the AMI detail that only the log should see).

- :class:`ApiError`: a request refused by the HTTP layer (its status and code given);
- :class:`~pbx_bridge.directory.access.AccessError` and its kinds (UserInvalid,
  ExtensionInvalid, AccessDenied): the access policy, defined beside it;
- :class:`PbxUnavailable`, :class:`PbxTimeout`, :class:`ViewState`, :class:`PbxRefused`:
  the PBX link and the recording feature;
- :class:`RecordingDisabled`: the recording rules (``recording/rules.py``).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "ApiError",
    "PbxBridgeError",
    "PbxRefused",
    "PbxTimeout",
    "PbxUnavailable",
    "RecordingDisabled",
    "RecordingUndeletable",
    "ViewState",
]


class PbxBridgeError(Exception):
    """Base of every refusal with a place in the contract."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers: dict[str, str] = dict(headers or {})


class ApiError(PbxBridgeError):
    """An answer of the HTTP layer, its status and code given where it is raised."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, headers=headers)
        self.status = status
        self.code = code


# --------------------------------------------------------------------------- PBX
# Their message holds the AMI detail, for the log: the client reads a fixed text
# (api/errors.py).


class PbxUnavailable(PbxBridgeError):
    """AMI is not connected or the state is not resynced yet."""

    code = "pbx_unavailable"
    status = 503


class PbxTimeout(PbxBridgeError):
    """Asterisk did not answer in time."""

    code = "pbx_timeout"
    status = 504


class ViewState(PbxBridgeError):
    """The view cannot be recorded now: not answered, or already gone."""

    code = "pc_phonecallview_state"
    status = 409


class PbxRefused(ViewState):
    """Asterisk answered an action on the view with an error (409 like ViewState)."""


# --------------------------------------------------------------------------- recording


class RecordingDisabled(PbxBridgeError):
    """The extension's recording setup forbids the action (recording/rules.py)."""

    status = 403
    code = "pc_recording_disabled"


class RecordingUndeletable(PbxBridgeError):
    """The recording's file exists but this host may not remove it (the bridge's user
    lacks write permission on its folder): the row is kept, nothing is half-deleted."""

    status = 500
    code = "rec_delete_failed"
