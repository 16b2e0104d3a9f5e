from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from pbx_bridge.directory.models import (
    DirectoryFile,
    Extension,
    Organization,
    Principal,
    RecordingSetup,
    User,
    device_of_channel,
    is_extension_number,
)
from pbx_bridge.directory.store import Directory, DirectoryError
from pbx_bridge.storage import head

pytestmark = pytest.mark.unit

DEMO = Path(__file__).resolve().parents[2] / "config" / "directory.example.toml"


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "var" / "sub" / "dir.sqlite3"


@pytest.fixture
def directory(db_path: Path, clock: Clock) -> Iterator[Directory]:
    d = Directory.open(db_path, clock=clock)
    d.load_toml(DEMO)
    yield d
    d.close()


def counts(path: Path) -> tuple[int, int, int]:
    conn = sqlite3.connect(path)
    try:
        return tuple(  # type: ignore[return-value]
            conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("organizations", "users", "extensions")
        )
    finally:
        conn.close()


def all_bytes(path: Path) -> bytes:
    """The database file and its WAL/SHM sidecars, as stored on disk."""
    out = b""
    for p in path.parent.iterdir():
        if p.name.startswith(path.name):
            out += p.read_bytes()
    return out


# --------------------------------------------------------------------------- models


def test_extension_number_pattern() -> None:
    for good in ("0003*210", "1*1", "12345678*12345678", "1", "123456789012345"):
        assert is_extension_number(good)
    for bad in ("", "*1", "1*", "0003*210\n", "1234567890123456", "123456789*1", "a", "1**2"):
        assert not is_extension_number(bad)
        with pytest.raises(ValidationError):
            Extension(number=bad, owner=1, device="PJSIP/x")


def test_device_pattern_and_channel() -> None:
    Extension(number="1", owner=1, device="PJSIP/0003*210")
    for bad in ("PJSIP", "PJSIP/", "PJSIP/a b", "PJSIP/a\r\n", "/abc", "PJ1/abc", "P/" + "a" * 65):
        with pytest.raises(ValidationError):
            Extension(number="1", owner=1, device=bad)
    assert device_of_channel("PJSIP/0003*210-0000002a") == "PJSIP/0003*210"
    assert device_of_channel("PJSIP/0003*210") == "PJSIP/0003*210"
    assert device_of_channel("PJSIP/my-phone-00000001") == "PJSIP/my-phone"


def test_user_organization_required_unless_admin() -> None:
    User(id=1, name="a", role="admin")
    with pytest.raises(ValidationError, match="needs an organization"):
        User(id=2, name="u", role="user")
    with pytest.raises(ValidationError):
        User(id=2, name="u", role="superuser", organization=3)
    with pytest.raises(ValidationError):
        Organization(id=1, name="o", code="003")


def test_recording_setup_defaults() -> None:
    assert RecordingSetup() == RecordingSetup(enabled=False, trigger="star1", format="wav")
    with pytest.raises(ValidationError):
        RecordingSetup(format="mp3")


# --------------------------------------------------------------------------- open / schema


def test_open_creates_parents_and_schema(db_path: Path) -> None:
    with Directory.open(db_path) as d:
        assert db_path.is_file()
        assert d.schema_revision == head()
        assert d.all_extensions() == []
    assert (db_path.stat().st_mode & 0o777) == 0o600
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head(),)]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    with Directory.open(db_path) as d:  # reopening: no migration re-run
        assert d.schema_revision == head()


def test_newer_schema_refused(db_path: Path) -> None:
    Directory.open(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE alembic_version SET version_num = '9999'")
    conn.commit()
    conn.close()
    with pytest.raises(DirectoryError, match="newer than this pbx-bridge supports"):
        Directory.open(db_path)


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DirectoryError, match=str(path)):
        Directory.open(path)


def test_memory_database() -> None:
    with Directory.open(":memory:") as d:
        d.load_toml(DEMO)
        assert len(d.all_extensions()) == 5


# --------------------------------------------------------------------------- loading


def test_load_demo(directory: Directory, db_path: Path) -> None:
    assert counts(db_path) == (2, 5, 5)
    assert directory.organization(3) == Organization(id=3, name="Default Organization", code="0003")
    assert directory.user(1) == User(id=1, name="Admin", role="admin", organization=None)
    assert directory.user(2).role == "organization"
    assert directory.user(99) is None
    ext = directory.extension("0003*211")
    assert ext == Extension(
        number="0003*211",
        owner=12,
        device="PJSIP/0003*211",
        recording=RecordingSetup(enabled=True, trigger="star1", format="wav49"),
    )
    assert directory.extension("0003*299") is None
    assert [e.number for e in directory.extensions_of_user(12)] == ["0003*210", "0003*211"]
    assert directory.extensions_of_user(1) == []
    assert [e.number for e in directory.all_extensions()] == [
        "0003*210",
        "0003*211",
        "0003*212",
        "0003*213",
        "0004*210",
    ]
    by_device = directory.extensions_by_device()
    assert by_device["PJSIP/0004*210"].number == "0004*210"
    assert len(by_device) == 5
    assert directory.extension_for_channel("PJSIP/0003*212-00000001").number == "0003*212"
    assert directory.extension_for_channel("PJSIP/9999-00000001") is None
    assert directory.organization_of_extension(ext).id == 3
    assert [u.id for u in directory.all_users()] == [1, 2, 12, 13, 20]
    assert [o.id for o in directory.all_organizations()] == [3, 4]


def test_load_is_an_idempotent_upsert(directory: Directory, db_path: Path, tmp_path: Path) -> None:
    directory.load_toml(DEMO)
    assert counts(db_path) == (2, 5, 5)
    extra = tmp_path / "more.toml"
    extra.write_text(
        """
        [[users]]
        id = 12
        name = "John Doe Jr."
        role = "user"
        organization = 3

        [[extensions]]
        number = "0003*214"
        owner = 13
        device = "PJSIP/0003*214"

        [[extensions]]
        number = "0003*210"
        owner = 12
        device = "PJSIP/0003*210"
        recording = { enabled = false, trigger = "always", format = "wav49" }
        """
    )
    summary = directory.load_toml(extra)
    assert tuple(summary) == (0, 1, 2)
    assert counts(db_path) == (2, 5, 6)  # nothing removed
    assert directory.user(12).name == "John Doe Jr."  # cache invalidated
    assert directory.extension("0003*210").recording.trigger == "always"
    assert directory.extension("0003*214").recording == RecordingSetup()
    assert [e.number for e in directory.extensions_of_user(13)][-1] == "0003*214"


def test_devices_may_swap_in_one_load(directory: Directory) -> None:
    directory.load(
        DirectoryFile(
            extensions=[
                Extension(number="0003*210", owner=12, device="PJSIP/0003*211"),
                Extension(number="0003*211", owner=12, device="PJSIP/0003*210"),
            ]
        )
    )
    assert directory.extensions_by_device()["PJSIP/0003*210"].number == "0003*211"


BAD_FILES = [
    ("[[users]\nid = 1\n", "invalid TOML"),
    (b"\xff\xfe".decode("latin-1"), "invalid TOML"),
    ('[[users]]\nid = 5\nname = "x"\nrole = "user"\norganization = 77\n', "organization 77"),
    ('[[users]]\nid = 5\nname = "x"\nrole = "user"\n', "needs an organization"),
    (
        '[[extensions]]\nnumber = "0003*299"\nowner = 99\ndevice = "PJSIP/0003*299"\n',
        "owner 99 is not a known user",
    ),
    (
        '[[extensions]]\nnumber = "0003*299"\nowner = 1\ndevice = "PJSIP/0003*299"\n',
        "belongs to no organization",
    ),
    (
        '[[extensions]]\nnumber = "0004*299"\nowner = 12\ndevice = "PJSIP/0004*299"\n',
        "prefix '0004' is not the code '0003'",
    ),
    (
        '[[extensions]]\nnumber = "0003*299"\nowner = 12\ndevice = "PJSIP/0003*210"\n',
        "already used by extension '0003*210'",
    ),
    ('[[organizations]]\nid = 9\nname = "x"\ncode = "0003"\n', "already used by organization 3"),
    ('[[extensions]]\nnumber = "03-210"\nowner = 12\ndevice = "PJSIP/x"\n', "extensions[0].number"),
    ('[[extensions]]\nnumber = "0003*299"\nowner = 12\ndevice = "SIP 1"\n', "extensions[0].device"),
    ('[[extensions]]\nnumber = "0003*299"\nowner = 12\n', "extensions[0].device: required"),
    ("[[phones]]\nid = 1\n", "phones: unknown key"),
    (
        '[[organizations]]\nid = 8\nname = "A"\ncode = "0008"\n'
        '[[organizations]]\nid = 8\nname = "B"\ncode = "0009"\n',
        "duplicate organization id 8",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_bad_file_rejected_and_nothing_written(
    directory: Directory, db_path: Path, tmp_path: Path, text: str, message: str
) -> None:
    # Every bad file also carries a valid new organization, user and extension, to show
    # that nothing at all is written.
    good = (
        '[[organizations]]\nid = 50\nname = "New"\ncode = "0050"\n'
        '[[users]]\nid = 51\nname = "N"\nrole = "user"\norganization = 50\n'
        '[[extensions]]\nnumber = "0050*1"\nowner = 51\ndevice = "PJSIP/0050*1"\n'
    )
    bad = tmp_path / "bad.toml"
    bad.write_text(text + "\n" + good if "TOML" not in message else text)
    with pytest.raises(DirectoryError) as err:
        directory.load_toml(bad)
    msg = str(err.value)
    assert msg.startswith(f"{bad}: "), msg
    assert message in msg
    assert "\n" not in msg
    assert counts(db_path) == (2, 5, 5)
    assert directory.organization(50) is None
    assert directory.extension("0050*1") is None


def test_missing_file(directory: Directory, tmp_path: Path) -> None:
    with pytest.raises(DirectoryError, match="not found"):
        directory.load_toml(tmp_path / "nope.toml")


def test_references_to_stored_rows_are_fine(tmp_path: Path) -> None:
    with Directory.open(tmp_path / "d.sqlite3") as d:
        d.load(DirectoryFile(organizations=[Organization(id=7, name="Seven", code="0007")]))
        d.load(DirectoryFile(users=[User(id=70, name="U", role="user", organization=7)]))
        d.load(DirectoryFile(extensions=[Extension(number="0007*1", owner=70, device="PJSIP/a")]))
        assert d.extension("0007*1").owner == 70
        # Moving a user to an organization whose code no longer matches its extensions
        d.load(DirectoryFile(organizations=[Organization(id=8, name="Eight", code="0008")]))
        with pytest.raises(DirectoryError, match="prefix '0007'"):
            d.load(DirectoryFile(users=[User(id=70, name="U", role="user", organization=8)]))
        assert d.user(70).organization == 7


def test_cache_sees_other_connections(db_path: Path) -> None:
    with Directory.open(db_path) as server, Directory.open(db_path) as cli:
        assert server.extension("0003*210") is None
        cli.load_toml(DEMO)  # e.g. `pbx-bridge directory load` while the service runs
        assert server.extension("0003*210").owner == 12


# --------------------------------------------------------------------------- apps & tokens


def test_app_create_and_verify(directory: Directory, db_path: Path) -> None:
    client_id, secret = directory.create_app(12, "CRM")
    assert client_id and secret and client_id != secret
    app = directory.verify_client(client_id, secret)
    assert app is not None
    assert (app.client_id, app.name, app.user_id) == (client_id, "CRM", 12)
    assert app.created.tzinfo is not None
    assert directory.app(client_id) == app
    assert directory.apps_of_user(12) == [app]
    assert directory.verify_client(client_id, secret + "x") is None
    assert directory.verify_client(client_id, "") is None
    assert directory.verify_client("unknown", secret) is None
    assert directory.verify_client(client_id, "x" * 10_000) is None
    data = all_bytes(db_path)
    assert secret.encode() not in data
    assert hashlib.sha256(secret.encode()).hexdigest().encode() in data


def test_client_ids_are_safe_on_a_command_line(directory: Directory) -> None:
    # `token issue --app ID` must parse: an id beginning with "-" reads as an option
    # (CI once drew such an id from urlsafe base64, where 1 id in 64 begins with "-").
    for _ in range(300):
        client_id, _ = directory.create_app(12, "CRM")
        assert re.fullmatch(r"[0-9a-f]{32}", client_id), client_id


def test_app_create_refused(directory: Directory) -> None:
    with pytest.raises(DirectoryError, match="no user with id 99"):
        directory.create_app(99, "x")
    with pytest.raises(DirectoryError, match="name"):
        directory.create_app(12, "bad\nname")
    with pytest.raises(DirectoryError, match="name"):
        directory.create_app(12, "  ")


def test_tokens_are_stored_hashed(directory: Directory, db_path: Path, clock: Clock) -> None:
    client_id, _ = directory.create_app(12, "CRM")
    token, expires_at = directory.issue_token(client_id)
    assert len(token) >= 40
    assert expires_at == datetime.fromtimestamp(clock.now + 3600, UTC)
    token_hash = hashlib.sha256(token.encode()).hexdigest()
    data = all_bytes(db_path)  # while open: file + WAL
    assert token.encode() not in data
    assert token_hash.encode() in data
    directory.close()
    data = all_bytes(db_path)  # after the WAL was checkpointed
    assert token.encode() not in data
    assert token_hash.encode() in data
    conn = sqlite3.connect(db_path)
    stored = [r[0] for r in conn.execute("SELECT token_hash FROM tokens")]
    conn.close()
    assert stored == [token_hash]


def test_authenticate(directory: Directory) -> None:
    cid_user, _ = directory.create_app(12, "u")
    cid_org, _ = directory.create_app(2, "o")
    cid_admin, _ = directory.create_app(1, "a")
    t_user, _ = directory.issue_token(cid_user)
    t_org, _ = directory.issue_token(cid_org)
    t_admin, _ = directory.issue_token(cid_admin)
    assert directory.authenticate(t_user) == Principal(
        user_id=12, role="user", organization_id=3, client_id=cid_user
    )
    assert directory.authenticate(t_org) == Principal(
        user_id=2, role="organization", organization_id=3, client_id=cid_org
    )
    assert directory.authenticate(t_admin) == Principal(
        user_id=1, role="admin", organization_id=None, client_id=cid_admin
    )
    for bad in ("", "nope", t_user + "x", t_user[:-1], "x" * 100_000, "\udcff", t_user.upper()):
        assert directory.authenticate(bad) is None


def test_expired_token_rejected_and_purged(directory: Directory, clock: Clock) -> None:
    client_id, _ = directory.create_app(12, "CRM")
    short, _ = directory.issue_token(client_id, ttl=10)
    long_, _ = directory.issue_token(client_id, ttl=100)
    clock.now += 9
    assert directory.authenticate(short) is not None
    clock.now += 1  # expiry instant: no longer valid
    assert directory.authenticate(short) is None
    assert directory.authenticate(long_) is not None
    assert directory.purge_expired() == 1
    assert directory.purge_expired() == 0
    assert directory.authenticate(long_) is not None
    clock.now += 1000
    assert directory.authenticate(long_) is None


def test_token_ttl_rules(db_path: Path, clock: Clock) -> None:
    with Directory.open(db_path, clock=clock, token_ttl=60, max_token_ttl=600) as d:
        d.load_toml(DEMO)
        client_id, _ = d.create_app(12, "CRM")
        _, exp = d.issue_token(client_id)
        assert exp.timestamp() == clock.now + 60
        _, exp = d.issue_token(client_id, ttl=10_000)
        assert exp.timestamp() == clock.now + 600  # capped
        for bad in (0, -5, 1.5, True, "60"):
            with pytest.raises(DirectoryError, match="positive"):
                d.issue_token(client_id, ttl=bad)  # type: ignore[arg-type]
        with pytest.raises(DirectoryError, match="no app"):
            d.issue_token("unknown")


def test_revoke(directory: Directory) -> None:
    client_id, _ = directory.create_app(12, "CRM")
    token, _ = directory.issue_token(client_id)
    assert directory.revoke_token(token) is True
    assert directory.authenticate(token) is None
    assert directory.revoke_token(token) is False


def test_shared_between_threads(directory: Directory) -> None:
    client_id, _ = directory.create_app(12, "CRM")
    tokens = [directory.issue_token(client_id)[0] for _ in range(20)]
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for t in tokens:
                assert directory.authenticate(t).user_id == 12
                assert directory.extension("0003*210") is not None
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
