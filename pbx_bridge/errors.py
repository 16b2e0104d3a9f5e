"""One exception hierarchy for every refusal the service answers with.

Each error carries the contract's ``status`` and ``code`` (CONTRACT section 2, Errors)
and a ``message``; :func:`pbx_bridge.api.errors.error_middleware` turns any of them into
the error envelope, in that one place. ``public_message`` is what the client reads: for
the PBX errors it is a fixed text, because their ``message`` holds the AMI detail that
only the log should see.

- :class:`ApiError`: a request refused by the HTTP layer (its status and code given);
- :class:`AccessError` and its kinds: the access policy (``directory/access.py``);
- :class:`PbxUnavailable`, :class:`PbxTimeout`, :class:`ViewState`, :class:`PbxRefused`:
  the PBX link and the recording feature;
- :class:`RecordingDisabled`: the recording rules (``recording/rules.py``).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "AccessDenied",
    "AccessError",
    "ApiError",
    "ExtensionInvalid",
    "PbxBridgeError",
    "PbxRefused",
    "PbxTimeout",
    "PbxUnavailable",
    "RecordingDisabled",
    "UserInvalid",
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

    @property
    def public_message(self) -> str:
        """The envelope's message (the client's); ``message`` may say more, for the log."""
        return self.message


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


# --------------------------------------------------------------------------- access


class AccessError(PbxBridgeError):
    """Base of the access policy's refusals."""

    code = "access_denied"
    status = 403


class UserInvalid(AccessError):
    code = "user_invalid"
    status = 400


class ExtensionInvalid(AccessError):
    code = "extension_invalid"
    status = 400


class AccessDenied(AccessError):
    code = "access_denied"
    status = 403


# --------------------------------------------------------------------------- PBX


class PbxUnavailable(PbxBridgeError):
    """AMI is not connected or the state is not resynced yet."""

    status = 503
    code = "pbx_unavailable"

    @property
    def public_message(self) -> str:
        return "the PBX is not available right now"


class PbxTimeout(PbxBridgeError):
    """Asterisk did not answer in time."""

    status = 504
    code = "pbx_timeout"

    @property
    def public_message(self) -> str:
        return "the PBX did not answer in time"


class ViewState(PbxBridgeError):
    """The view cannot be recorded now: not answered, or already gone."""

    status = 409
    code = "pc_phonecallview_state"

    @property
    def public_message(self) -> str:
        return f"the view cannot be changed: {self.message}"


class PbxRefused(PbxBridgeError):
    """Asterisk answered an action with an error."""

    status = 409
    code = "pc_phonecallview_state"

    @property
    def public_message(self) -> str:
        return "the PBX refused the action on this view"


# --------------------------------------------------------------------------- recording


class RecordingDisabled(PbxBridgeError):
    """The extension's recording setup forbids the action (recording/rules.py)."""

    status = 403
    code = "pc_recording_disabled"
