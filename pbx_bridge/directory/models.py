"""The directory's data: organizations, users, extensions, apps, and the authenticated
principal. All models are immutable; validation here is the only gate into the store."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "DEVICE_RE",
    "EXTENSION_NUMBER_RE",
    "App",
    "DirectoryFile",
    "Extension",
    "Organization",
    "Principal",
    "RecordingFormat",
    "RecordingPolicy",
    "RecordingSetup",
    "RecordingTrigger",
    "Role",
    "TokenInfo",
    "User",
    "device_of_channel",
    "is_extension_number",
]

# Python's `$` also matches before a final "\n": always use fullmatch() with these.
EXTENSION_NUMBER_RE = re.compile(r"[0-9]{1,8}\*[0-9]{1,8}|[0-9]{1,15}")
# <technology>/<resource>, and for Local channels an optional "@<context>"
# (Local/600@from-internal, as the benchmarks use); never ";", blanks or controls.
DEVICE_RE = re.compile(r"[A-Za-z]+/[A-Za-z0-9*#_.+-]{1,64}(?:@[A-Za-z0-9_.+-]{1,64})?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# The unique suffix Asterisk appends to a device to name a channel: "-0000002a"
# (a Local channel adds its half, "-0000002a;1").
_CHANNEL_SUFFIX = re.compile(r"-[0-9a-fA-F]{8,}(?:;[12])?\Z")

Role = Literal["user", "organization", "admin"]
RecordingTrigger = Literal["star1", "always"]
RecordingFormat = Literal["wav", "wav49"]


def is_extension_number(value: str) -> bool:
    return EXTENSION_NUMBER_RE.fullmatch(value) is not None


def device_of_channel(channel: str) -> str:
    """``PJSIP/0003*210-0000002a`` -> ``PJSIP/0003*210`` (unchanged if there is no suffix)."""
    return _CHANNEL_SUFFIX.sub("", channel)


def _extension_number(value: str) -> str:
    if not is_extension_number(value):
        raise ValueError(
            "must be digits (up to 15) or <digits>*<digits> (up to 8 each), e.g. 0003*210"
        )
    return value


def _device(value: str) -> str:
    if DEVICE_RE.fullmatch(value) is None:
        raise ValueError("must be <technology>/<resource>[@<context>], e.g. PJSIP/0003*210")
    return value


def _name(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    if not value.strip():
        raise ValueError("must not be empty")
    return value


Id = Annotated[int, Field(ge=1, le=2**53)]  # also safe as a JSON number
Name = Annotated[str, Field(max_length=200), AfterValidator(_name)]
ExtensionNumber = Annotated[str, AfterValidator(_extension_number)]
Device = Annotated[str, AfterValidator(_device)]
# The same shape as config.NodeName (the directory does not import the config's types).
NodeRef = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class RecordingPolicy(_Model):
    """An organization's recordings policy (``recordings = {...}`` in the directory file)."""

    # Days a finished recording (completed, failed, missing) is kept after it stopped
    # before the sweeper deletes its file and row; None: kept for ever.
    retention_days: Annotated[int, Field(ge=1, le=36500)] | None = None
    # Whether the organization's users (``user`` context) may DELETE their own
    # recordings; organization and admin contexts always may, within their scope.
    users_may_delete: bool = False


class Organization(_Model):
    id: Id
    name: Name
    # The 4-digit code that prefixes the organization's extension numbers ("0003*210").
    code: Annotated[str, Field(pattern=r"^[0-9]{4}$")]
    recordings: RecordingPolicy = RecordingPolicy()


class User(_Model):
    id: Id
    name: Name
    role: Role
    # Required for "user" and "organization"; optional (and without effect) for "admin".
    organization: Id | None = None

    @model_validator(mode="after")
    def _organization_required(self) -> User:
        if self.role != "admin" and self.organization is None:
            raise ValueError(f"a user with role {self.role!r} needs an organization")
        return self


class RecordingSetup(_Model):
    """The extension's phone terminal setup, call recording part."""

    enabled: bool = False
    trigger: RecordingTrigger = "star1"
    format: RecordingFormat = "wav"


class Extension(_Model):
    number: ExtensionNumber
    owner: Id  # user id
    device: Device  # the Asterisk device the extension's phone registers as
    recording: RecordingSetup = RecordingSetup()
    # The PBX node (a [[pbx]] name of the serve config) the device lives on; None: the
    # first node. Checked against the config by `serve` (docs/deployment-nodes.md).
    node: NodeRef | None = None


class App(_Model):
    client_id: str
    name: Name
    user_id: int
    created: datetime  # UTC, timezone-aware
    # A disabled app gets no token (its tokens were revoked when it was disabled).
    disabled: bool = False


class TokenInfo(_Model):
    """What may be shown of a stored bearer token: never the token itself.

    ``id`` is the start of the token's SHA-256 (what the store keeps): it names the token
    in ``pbx-bridge token list`` / ``token revoke`` and in logs, and cannot be turned back
    into the token.
    """

    id: str
    client_id: str
    app_name: str
    user_id: int
    issued: datetime  # UTC
    expires: datetime  # UTC


class Principal(_Model):
    """Who is making a request: the user a token's app is registered to."""

    user_id: int
    role: Role
    organization_id: int | None  # None only for admins
    client_id: str


class DirectoryFile(_Model):
    """The content of a directory TOML file (see config/directory.example.toml)."""

    organizations: list[Organization] = []
    users: list[User] = []
    extensions: list[Extension] = []

    @model_validator(mode="after")
    def _no_duplicates(self) -> DirectoryFile:
        for what, keys in (
            ("organization id", [o.id for o in self.organizations]),
            ("organization code", [o.code for o in self.organizations]),
            ("user id", [u.id for u in self.users]),
            ("extension number", [e.number for e in self.extensions]),
            ("extension device", [e.device for e in self.extensions]),
        ):
            seen: set[object] = set()
            for key in keys:
                if key in seen:
                    raise ValueError(f"duplicate {what} {key!r} in the file")
                seen.add(key)
        return self
