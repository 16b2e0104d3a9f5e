from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pbx_bridge.directory.access import (
    AccessDenied,
    AccessError,
    ExtensionInvalid,
    UserInvalid,
    can_act_on,
    can_act_on_user,
    can_know_user,
    resolve_extension,
    resolve_target,
    resolve_user,
    visible_extensions,
)
from pbx_bridge.directory.models import DirectoryFile, Principal, User
from pbx_bridge.directory.store import Directory
from pbx_bridge.recording.rules import on_demand as recording_allowed

pytestmark = pytest.mark.unit

DEMO = Path(__file__).resolve().parents[2] / "config" / "directory.example.toml"

# The demo directory, plus an organization account for organization 4.
#   org 3 "0003": user 12 (0003*210, 0003*211), user 13 (0003*212, 0003*213), org account 2
#   org 4 "0004": user 20 (0004*210), org account 21
#   admin 1
JOHN = Principal(user_id=12, role="user", organization_id=3, client_id="c12")
JANE = Principal(user_id=13, role="user", organization_id=3, client_id="c13")
ORG3 = Principal(user_id=2, role="organization", organization_id=3, client_id="c2")
OTHER = Principal(user_id=20, role="user", organization_id=4, client_id="c20")
ORG4 = Principal(user_id=21, role="organization", organization_id=4, client_id="c21")
ADMIN = Principal(user_id=1, role="admin", organization_id=None, client_id="c1")

ALL = ("0003*210", "0003*211", "0003*212", "0003*213", "0004*210")


@pytest.fixture(scope="module")
def directory() -> Iterator[Directory]:
    with Directory.open(":memory:") as d:
        d.load_toml(DEMO)
        d.load(
            DirectoryFile(
                users=[User(id=21, name="Other org account", role="organization", organization=4)]
            )
        )
        yield d


# --------------------------------------------------------------------------- the matrix

# principal -> the extensions it may act on. For each: own, sibling (same organization,
# another user), other organization.
MATRIX = [
    (JOHN, {"0003*210", "0003*211"}),  # own only; not Jane's (sibling), not org 4's
    (JANE, {"0003*212", "0003*213"}),
    (OTHER, {"0004*210"}),
    (ORG3, {"0003*210", "0003*211", "0003*212", "0003*213"}),  # whole org 3, not org 4
    (ORG4, {"0004*210"}),
    (ADMIN, set(ALL)),  # everything
]


@pytest.mark.parametrize(("principal", "allowed"), MATRIX, ids=lambda v: str(v)[:30])
def test_can_act_on_matrix(principal: Principal, allowed: set[str], directory: Directory) -> None:
    for number in ALL:
        ext = directory.extension(number)
        assert can_act_on(principal, ext, directory) is (number in allowed), number


@pytest.mark.parametrize(
    ("principal", "users"),
    [
        (JOHN, {12}),
        (JANE, {13}),
        (ORG3, {2, 12, 13}),
        (ORG4, {20, 21}),
        (ADMIN, {1, 2, 12, 13, 20, 21}),
    ],
    ids=lambda v: str(v)[:30],
)
def test_can_act_on_user_matrix(principal: Principal, users: set[int], directory: Directory):
    for user in directory.all_users():
        assert can_act_on_user(principal, user) is (user.id in users), user.id


def test_org_account_without_organization_acts_on_nothing(directory: Directory) -> None:
    broken = Principal(user_id=2, role="organization", organization_id=None, client_id="x")
    assert not any(can_act_on(broken, e, directory) for e in directory.all_extensions())


# --------------------------------------------------------------------------- path resolution

OK = "ok"

# (principal, userId, extension, expected: list of extension numbers, or an error class)
CASES = [
    # --- a user: own extension, sibling's, other organization's
    (JOHN, "@me", "0003*210", ["0003*210"]),
    (JOHN, "@viewer", "0003*211", ["0003*211"]),
    (JOHN, "12", "0003*210", ["0003*210"]),
    (JOHN, "@owner", "0003*210", ["0003*210"]),
    (JOHN, "@me", "@self", ["0003*210", "0003*211"]),
    (JOHN, "12", "@self", ["0003*210", "0003*211"]),
    (JOHN, "@me", "0003*212", AccessDenied),  # sibling's extension: outside the context
    (JOHN, "@owner", "0003*212", AccessDenied),  # owner 13 is outside the context
    (JOHN, "13", "0003*212", AccessDenied),
    (JOHN, "13", "@self", AccessDenied),
    (JOHN, "12", "0003*212", AccessDenied),
    # another organization's extension or user: as if it did not exist
    (JOHN, "@me", "0004*210", ExtensionInvalid),
    (JOHN, "@owner", "0004*210", ExtensionInvalid),  # and its owner's id does not leak
    (JOHN, "20", "0004*210", ExtensionInvalid),
    (JOHN, "20", "@self", UserInvalid),
    (JOHN, "20", "0003*210", UserInvalid),
    (JOHN, "2", "@self", AccessDenied),  # the organization account is not John's to see
    (JOHN, "1", "@self", UserInvalid),  # the admin belongs to no organization
    # --- an organization account: its organization, another organization
    (ORG3, "@owner", "0003*210", ["0003*210"]),
    (ORG3, "12", "0003*210", ["0003*210"]),
    (ORG3, "13", "0003*213", ["0003*213"]),
    (ORG3, "13", "@self", ["0003*212", "0003*213"]),
    (ORG3, "@me", "@self", []),  # owns no extension itself
    (ORG3, "@me", "0003*210", ExtensionInvalid),  # 0003*210 is user 12's, not @me's
    (ORG3, "12", "0003*212", ExtensionInvalid),  # within the context, not user 12's
    (ORG3, "@owner", "0004*210", ExtensionInvalid),
    (ORG3, "20", "0004*210", ExtensionInvalid),
    (ORG3, "20", "@self", UserInvalid),
    (ORG3, "1", "@self", UserInvalid),
    (ORG4, "@owner", "0004*210", ["0004*210"]),
    (ORG4, "@owner", "0003*210", ExtensionInvalid),
    (ORG4, "12", "@self", UserInvalid),
    # --- an admin: everything
    (ADMIN, "@owner", "0003*210", ["0003*210"]),
    (ADMIN, "@owner", "0004*210", ["0004*210"]),
    (ADMIN, "20", "@self", ["0004*210"]),
    (ADMIN, "13", "0003*212", ["0003*212"]),
    (ADMIN, "2", "@self", []),
    (ADMIN, "@me", "@self", []),
    (ADMIN, "@me", "0003*210", ExtensionInvalid),
    (ADMIN, "20", "0003*210", ExtensionInvalid),
    # --- malformed or unknown
    (JOHN, "99", "0003*210", UserInvalid),  # unknown user
    (ADMIN, "99", "@self", UserInvalid),
    (JOHN, "@owner", "@self", UserInvalid),  # no extension to take the owner from
    (JOHN, "me", "0003*210", UserInvalid),
    (JOHN, "@ME", "0003*210", UserInvalid),
    (JOHN, "", "0003*210", UserInvalid),
    (JOHN, "-12", "0003*210", UserInvalid),
    (JOHN, "12.0", "0003*210", UserInvalid),
    (JOHN, "\u0661\u0662", "0003*210", UserInvalid),  # Arabic-Indic digits
    (JOHN, "12\n", "0003*210", UserInvalid),
    (JOHN, "9" * 40, "0003*210", UserInvalid),
    (JOHN, "@me", "0003*299", ExtensionInvalid),  # unknown extension
    (JOHN, "@me", "0003*210\n", ExtensionInvalid),
    (JOHN, "@me", "0003%2A210", ExtensionInvalid),  # the API URL-decodes first
    (JOHN, "@me", "@SELF", ExtensionInvalid),
    (JOHN, "@me", "", ExtensionInvalid),
    (ADMIN, "@me", "0003*2a0", ExtensionInvalid),
    # malformed user wins over a bad extension (checked first)
    (JOHN, "x", "y", UserInvalid),
    # an unknown extension is extension_invalid even with an unknown user
    (JOHN, "99", "0003*299", ExtensionInvalid),
]


@pytest.mark.parametrize(("principal", "user_ref", "ext_ref", "expected"), CASES)
def test_resolve_target(
    principal: Principal,
    user_ref: str,
    ext_ref: str,
    expected: list[str] | type[AccessError],
    directory: Directory,
) -> None:
    if isinstance(expected, list):
        target = resolve_target(principal, user_ref, ext_ref, directory)
        assert [e.number for e in target.extensions] == expected
        assert target.is_self is (ext_ref == "@self")
        if not target.is_self:
            assert target.extension.owner == target.user.id
    else:
        with pytest.raises(expected) as err:
            resolve_target(principal, user_ref, ext_ref, directory)
        assert type(err.value) is expected
        assert err.value.message == str(err.value)


# --------------------------------------------------------------------------- unknown = foreign

NON_ADMINS = (JOHN, JANE, ORG3, OTHER, ORG4)
UNKNOWN_USER = "99"
UNKNOWN_EXTENSION = "0003*299"


def _refusal(principal: Principal, user_ref: str, ext_ref: str, directory: Directory):
    """What resolve_target refuses with, all of it: (class, status, code, message)."""
    with pytest.raises(AccessError) as err:
        resolve_target(principal, user_ref, ext_ref, directory)
    e = err.value
    return type(e), e.status, e.code, e.message


@pytest.mark.parametrize("principal", NON_ADMINS, ids=lambda p: f"{p.role}{p.user_id}")
def test_a_foreign_extension_is_answered_like_an_unknown_one(
    principal: Principal, directory: Directory
) -> None:
    """Outside the requester's organization an extension is unknown, whatever the path's
    user (@me, @viewer, @owner, its owner's id, the requester's own id)."""
    foreign = [
        e for e in directory.all_extensions()
        if directory.user(e.owner).organization != principal.organization_id
    ]
    assert foreign
    for ext in foreign:
        for user_ref in ("@me", "@viewer", "@owner", str(ext.owner), str(principal.user_id)):
            unknown = _refusal(principal, user_ref, UNKNOWN_EXTENSION, directory)
            assert unknown[:3] == (ExtensionInvalid, 400, "extension_invalid")
            assert _refusal(principal, user_ref, ext.number, directory) == unknown, (
                user_ref, ext.number)


@pytest.mark.parametrize("principal", NON_ADMINS, ids=lambda p: f"{p.role}{p.user_id}")
def test_a_foreign_user_is_answered_like_an_unknown_one(
    principal: Principal, directory: Directory
) -> None:
    """Outside the requester's organization a user is unknown, with @self and with an
    extension of the requester's own organization."""
    foreign = [u for u in directory.all_users() if u.organization != principal.organization_id]
    assert foreign
    own_org_ext = next(
        e.number for e in directory.all_extensions()
        if directory.user(e.owner).organization == principal.organization_id
    )
    for user in foreign:
        for ext_ref in ("@self", own_org_ext):
            unknown = _refusal(principal, UNKNOWN_USER, ext_ref, directory)
            assert unknown[:3] == (UserInvalid, 400, "user_invalid")
            assert _refusal(principal, str(user.id), ext_ref, directory) == unknown, (
                user.id, ext_ref)


def test_inside_the_organization_refusals_stay_access_denied(directory: Directory) -> None:
    """What a user may know exists (a colleague, a colleague's extension) is 403; through
    @owner the colleague's id is not named."""
    for user_ref in ("@me", "@owner", "13", "12"):
        assert _refusal(JOHN, user_ref, "0003*212", directory)[:3] == (
            AccessDenied, 403, "access_denied")
    assert "13" not in _refusal(JOHN, "@owner", "0003*212", directory)[3]


def test_the_admin_knows_everyone(directory: Directory) -> None:
    for user in directory.all_users():
        assert can_know_user(ADMIN, user)
    assert _refusal(ADMIN, UNKNOWN_USER, "@self", directory)[:3] == (
        UserInvalid, 400, "user_invalid")


def test_error_codes() -> None:
    assert (UserInvalid.code, UserInvalid.status) == ("user_invalid", 400)
    assert (ExtensionInvalid.code, ExtensionInvalid.status) == ("extension_invalid", 400)
    assert (AccessDenied.code, AccessDenied.status) == ("access_denied", 403)
    assert issubclass(UserInvalid, AccessError)


def test_resolve_user_parts(directory: Directory) -> None:
    ext = directory.extension("0003*212")
    assert resolve_user(JOHN, "@me", None, directory).id == 12
    assert resolve_user(JOHN, "@viewer", ext, directory).id == 12  # extension not checked here
    assert resolve_user(ORG3, "@owner", ext, directory).id == 13
    with pytest.raises(AccessDenied):
        resolve_user(JOHN, "@owner", ext, directory)
    assert resolve_extension("@self", directory) is None
    assert resolve_extension("0003*212", directory) == ext


def test_resolve_user_token_user_gone(directory: Directory) -> None:
    ghost = Principal(user_id=777, role="user", organization_id=3, client_id="g")
    with pytest.raises(UserInvalid):
        resolve_user(ghost, "@me", None, directory)


def test_visible_extensions(directory: Directory) -> None:
    jane = directory.user(13)
    assert [e.number for e in visible_extensions(ORG3, jane, directory)] == [
        "0003*212",
        "0003*213",
    ]
    assert visible_extensions(JOHN, jane, directory) == []
    assert visible_extensions(ORG4, jane, directory) == []


def test_recording_allowed(directory: Directory) -> None:
    allowed = {n: recording_allowed(directory.extension(n)) for n in ALL}
    assert allowed == {
        "0003*210": True,  # enabled, *1
        "0003*211": True,  # enabled, *1 (wav49)
        "0003*212": False,  # recording off
        "0003*213": False,  # enabled but "always", not on demand
        "0004*210": True,
    }
