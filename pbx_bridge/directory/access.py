"""Who may do what (CONTRACT section 3). Pure functions over the directory.

Contexts:
- ``user``: the extensions it owns;
- ``organization``: every extension of the users of its organization;
- ``admin``: everything.

What a requester may *know exists* is wider than what it may act on: the users and
extensions of its own organization (the admin: everything). Outside that, a user or an
extension is indistinguishable from one that does not exist: the same status, code and
message (``user_invalid`` / ``extension_invalid``, "no such user" / "no such
extension", no id echoed), so a tenant cannot enumerate another tenant's extensions or
users, nor learn who owns one through ``@owner``. Inside it, ``access_denied`` (403)
says what the requester may not touch (a colleague's extension for a ``user`` token).

Path resolution for ``/uapi/phoneCalls/{userId}/{extension}``, in this order:

1. ``userId`` syntax: ``@me``, ``@viewer``, ``@owner`` or a decimal id, else ``user_invalid``.
2. ``extension`` syntax: ``@self`` or an extension number, else ``extension_invalid``;
   an unknown number, or one outside the requester's organization, is
   ``extension_invalid`` ("no such extension") too.
3. The user: ``@me``/``@viewer`` = the token's user; ``@owner`` = the owner of the
   extension in the path (``@owner`` with ``@self`` is ``user_invalid``: there is no
   extension to take the owner from); an unknown numeric id, or one outside the
   requester's organization, is ``user_invalid`` ("no such user").
4. A user outside the requester's context (but in its organization) is ``access_denied``.
5. An extension outside the requester's context (but in its organization) is
   ``access_denied``, whoever the path names (``@me/<a colleague's extension>`` is as
   forbidden as under its owner's id).
6. An extension that does not belong to that user is ``extension_invalid``.

``resolve_target`` runs all of it; the smaller functions are its parts. Who may record is
pbx_bridge/recording/rules.py's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pbx_bridge.directory.models import (
    Extension,
    Organization,
    Principal,
    User,
    is_extension_number,
)
from pbx_bridge.errors import PbxBridgeError

if TYPE_CHECKING:
    from pbx_bridge.directory.store import Directory

__all__ = [
    "NO_SUCH_EXTENSION",
    "NO_SUCH_USER",
    "SELF",
    "USER_ALIASES",
    "AccessDenied",
    "AccessError",
    "ExtensionInvalid",
    "Target",
    "UserInvalid",
    "can_act_on",
    "can_act_on_user",
    "can_delete_recordings",
    "can_know_user",
    "check_extension_of_user",
    "parse_extension_ref",
    "resolve_extension",
    "resolve_target",
    "resolve_user",
    "visible_extensions",
]

SELF = "@self"
# The answers for an unknown user or extension, and for one the requester may not know
# exists: one text each, echoing nothing, so that both are byte-identical.
NO_SUCH_USER = "no such user"
NO_SUCH_EXTENSION = "no such extension"
USER_ALIASES = ("@me", "@viewer", "@owner")
_USER_ID = re.compile(r"[0-9]{1,15}")


class AccessError(PbxBridgeError):
    """Base of the refusals below (pbx_bridge.errors' hierarchy); ``code`` and ``status``
    are the contract's, the message the client's."""

    code = "access_denied"
    status = 403


class _NoSuch(AccessError):
    """400: malformed, unknown, or not to be known to exist (the same answer)."""

    status = 400


class UserInvalid(_NoSuch):
    code = "user_invalid"


class ExtensionInvalid(_NoSuch):
    code = "extension_invalid"


class AccessDenied(AccessError):
    """Known to exist, but outside the requester's context (the base's 403 access_denied)."""


# --------------------------------------------------------------------------- policy


def can_act_on_user(principal: Principal, user: User) -> bool:
    """Is ``user`` inside the principal's context?"""
    if principal.role == "admin":
        return True
    if principal.role == "organization":
        return principal.organization_id is not None and user.organization == (
            principal.organization_id
        )
    return user.id == principal.user_id


def can_know_user(principal: Principal, user: User) -> bool:
    """May the principal know that ``user`` exists? Its own organization (and itself);
    the admin: everyone."""
    if principal.role == "admin" or user.id == principal.user_id:
        return True
    return principal.organization_id is not None and user.organization == (
        principal.organization_id
    )


def _can_know_extension(principal: Principal, extension: Extension, directory: Directory) -> bool:
    if principal.role == "admin" or extension.owner == principal.user_id:
        return True
    owner = directory.user(extension.owner)
    return owner is not None and can_know_user(principal, owner)


def can_act_on(principal: Principal, extension: Extension, directory: Directory) -> bool:
    """May the principal see and act on this extension (and its calls' views)?"""
    if principal.role == "admin":
        return True
    if principal.role == "organization":
        owner = directory.user(extension.owner)
        return (
            owner is not None
            and principal.organization_id is not None
            and owner.organization == principal.organization_id
        )
    return extension.owner == principal.user_id


def can_delete_recordings(principal: Principal, organization: Organization | None) -> bool:
    """May the principal delete the recordings of an extension it may act on?
    Organization and admin contexts always; a user only where its organization's
    recording policy lets users delete their own (``users_may_delete``)."""
    if principal.role != "user":
        return True
    return organization is not None and organization.recordings.users_may_delete


# --------------------------------------------------------------------------- path parts


def _check_user_ref(user_ref: str) -> None:
    if user_ref in USER_ALIASES:
        return
    if _USER_ID.fullmatch(user_ref) is None:
        raise UserInvalid(f"user {user_ref[:40]!r} is not @me, @viewer, @owner or a user id")


def parse_extension_ref(extension_ref: str) -> str | None:
    """``@self`` -> None; a well-formed number -> itself; else ExtensionInvalid.

    The caller URL-decodes first (``0003%2A210`` -> ``0003*210``).
    """
    if extension_ref == SELF:
        return None
    if not is_extension_number(extension_ref):
        raise ExtensionInvalid(f"extension {extension_ref[:40]!r} is not an extension number")
    return extension_ref


def resolve_extension(
    extension_ref: str, directory: Directory, principal: Principal | None = None
) -> Extension | None:
    """``@self`` -> None; a known extension -> it; malformed or unknown -> ExtensionInvalid.

    With a ``principal``, an extension it may not know exists (outside its organization)
    is unknown, with the very same message.
    """
    number = parse_extension_ref(extension_ref)
    if number is None:
        return None
    extension = directory.extension(number)
    if extension is None or (
        principal is not None and not _can_know_extension(principal, extension, directory)
    ):
        raise ExtensionInvalid(NO_SUCH_EXTENSION)
    return extension


def resolve_user(
    principal: Principal,
    user_ref: str,
    extension: Extension | None,
    directory: Directory,
) -> User:
    """The user a path ``userId`` names, checked against the principal's context.

    ``extension`` is the resolved path extension (None for ``@self``). Raises
    UserInvalid (malformed, unknown, or ``@owner`` without an extension) or AccessDenied
    (user outside the principal's context, inside its organization); a user outside the
    organization is UserInvalid like an unknown one. Does not check that the extension belongs to
    the user: see :func:`check_extension_of_user` / :func:`resolve_target`.
    """
    _check_user_ref(user_ref)
    if user_ref in ("@me", "@viewer"):
        user = directory.user(principal.user_id)
        if user is None:  # the token's user vanished from the directory
            raise UserInvalid(NO_SUCH_USER)
    elif user_ref == "@owner":
        if extension is None:
            raise UserInvalid("@owner needs an extension number, not @self")
        user = directory.user(extension.owner)
        if user is None:
            raise UserInvalid(NO_SUCH_USER)
    else:
        user = directory.user(int(user_ref))
        if user is None or not can_know_user(principal, user):
            raise UserInvalid(NO_SUCH_USER)
    if not can_act_on_user(principal, user):
        # Inside the organization only (see above); @owner names no id it was not given.
        shown = "the owner of that extension" if user_ref == "@owner" else f"user {user.id}"
        raise AccessDenied(f"{shown} is outside your context")
    return user


def check_extension_of_user(
    principal: Principal, user: User, extension: Extension, directory: Directory
) -> None:
    """AccessDenied if the extension is outside the principal's context (whoever the path
    names: ``@me/<a foreign extension>`` is as forbidden as ``<its owner>/<it>``);
    otherwise ExtensionInvalid if it is not the user's."""
    if not can_act_on(principal, extension, directory):
        raise AccessDenied(f"extension {extension.number!r} is outside your context")
    if extension.owner != user.id:
        raise ExtensionInvalid(f"extension {extension.number!r} does not belong to user {user.id}")


def visible_extensions(principal: Principal, user: User, directory: Directory) -> list[Extension]:
    """``@self``: the user's extensions the principal may act on, sorted by number."""
    return [
        ext
        for ext in directory.extensions_of_user(user.id)
        if can_act_on(principal, ext, directory)
    ]


@dataclass(frozen=True)
class Target:
    """A resolved ``{userId}/{extension}`` path."""

    user: User
    extension: Extension | None  # None for @self
    extensions: tuple[Extension, ...]  # [extension], or every visible one for @self

    @property
    def is_self(self) -> bool:
        return self.extension is None


def resolve_target(
    principal: Principal, user_ref: str, extension_ref: str, directory: Directory
) -> Target:
    """Resolve and authorize a ``{userId}/{extension}`` path, in the module doc's order.

    ``extension_ref`` must already be URL-decoded. Raises UserInvalid, ExtensionInvalid
    or AccessDenied. With ``@self`` the tuple may be empty (a user with no extension).
    """
    _check_user_ref(user_ref)
    extension = resolve_extension(extension_ref, directory, principal)
    user = resolve_user(principal, user_ref, extension, directory)
    if extension is None:
        return Target(user, None, tuple(visible_extensions(principal, user, directory)))
    check_extension_of_user(principal, user, extension, directory)
    return Target(user, extension, (extension,))
