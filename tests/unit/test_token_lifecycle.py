"""Tokens can be listed, revoked and go away; apps can be disabled, enabled and deleted
(issue 9, item 4): the store and the `pbx-bridge token|app` commands."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from sqlalchemy import insert

from pbx_bridge.cli import main
from pbx_bridge.directory.store import TOKEN_ID_LEN, Directory, DirectoryError, token_id
from pbx_bridge.storage import head
from pbx_bridge.storage.schema import tokens
from tests.support.legacy_schema import make_legacy_file
from tests.support.workdir import workdir  # noqa: F401 (autouse)

DEMO = Path(__file__).resolve().parents[2] / "config" / "directory.example.toml"


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Path:
    """Settings naming a fresh database, on SQLite and on PostgreSQL (tests/support/postgres.py)."""
    path = tmp_path / "pbx.toml"
    path.write_text(f'[database]\nurl = "{database_url}"\n')
    return path


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def directory(config: Path, database_url: str, clock: Clock) -> Directory:
    d = Directory.open(database_url, clock=clock)
    d.load_toml(DEMO)
    return d


def cli(capsys: pytest.CaptureFixture[str], config: Path, *argv: str) -> tuple[int, str, str]:
    rc = main([*argv, "--config", str(config)])
    out, err = capsys.readouterr()
    return rc, out, err


# --------------------------------------------------------------------------- store


def test_list_shows_ids_never_tokens(directory: Directory, clock: Clock) -> None:
    john, _ = directory.create_app(12, "CRM")
    jane, _ = directory.create_app(13, "Dialer")
    t1, _ = directory.issue_token(john, ttl=100)
    clock.now += 1  # listed oldest first
    t2, _ = directory.issue_token(jane, ttl=200)
    expired, _ = directory.issue_token(john, ttl=1)
    clock.now += 10
    listed = directory.list_tokens()
    assert [t.id for t in listed] == [token_id(t1), token_id(t2)]  # not the expired one
    assert len(listed[0].id) == TOKEN_ID_LEN
    assert (listed[0].client_id, listed[0].user_id, listed[0].app_name) == (john, 12, "CRM")
    assert listed[1].expires.timestamp() - listed[1].issued.timestamp() == pytest.approx(200)
    assert [t.id for t in directory.list_tokens(jane)] == [token_id(t2)]
    for info in listed:
        assert t1 not in info.model_dump_json() and t2 not in info.model_dump_json()
    assert token_id(expired) not in {t.id for t in listed}


def test_revoke_by_id_or_prefix(directory: Directory) -> None:
    client_id, _ = directory.create_app(12, "CRM")
    token, _ = directory.issue_token(client_id)
    other, _ = directory.issue_token(client_id)
    with pytest.raises(DirectoryError, match="hex digits"):
        directory.revoke_token_id(token_id(token)[:5])  # too short to be safe
    with pytest.raises(DirectoryError, match="hex digits"):
        directory.revoke_token_id(token)  # the token itself is not an id
    with pytest.raises(DirectoryError, match="no token"):
        directory.revoke_token_id("f" * TOKEN_ID_LEN if token_id(token)[0] != "f" else "0" * 12)
    info = directory.revoke_token_id(token_id(token)[:8].upper())
    assert info.id == token_id(token) and info.client_id == client_id
    assert directory.authenticate(token) is None
    assert directory.authenticate(other) is not None
    with pytest.raises(DirectoryError, match="no token"):
        directory.revoke_token_id(token_id(token))


def test_an_ambiguous_prefix_is_refused(directory: Directory) -> None:
    client_id, _ = directory.create_app(12, "CRM")
    with directory.database.transaction(write=True) as conn:  # two hashes sharing 8 digits
        conn.execute(
            insert(tokens),
            [
                {"token_hash": "abcdef01" + d * 56, "client_id": client_id, "created": 0.0,
                 "expires_at": 9e9}
                for d in "01"
            ],
        )  # fmt: skip
    with pytest.raises(DirectoryError, match="ambiguous"):
        directory.revoke_token_id("abcdef01")
    assert len(directory.list_tokens()) == 2  # nothing revoked
    assert directory.revoke_token_id("abcdef011").id == "abcdef011111"
    assert [t.id for t in directory.list_tokens()] == ["abcdef010000"]


def test_a_client_revokes_only_its_own_tokens(directory: Directory) -> None:
    john, _ = directory.create_app(12, "CRM")
    jane, _ = directory.create_app(13, "Dialer")
    johns, _ = directory.issue_token(john)
    assert directory.revoke_token(johns, client_id=jane) is False
    assert directory.authenticate(johns) is not None
    assert directory.revoke_token(johns, client_id=john) is True
    assert directory.authenticate(johns) is None


def test_disable_enable_delete(directory: Directory) -> None:
    client_id, secret = directory.create_app(12, "CRM")
    tokens = [directory.issue_token(client_id)[0] for _ in range(3)]
    keep, _ = directory.issue_token(directory.create_app(12, "other")[0])

    assert directory.set_app_disabled(client_id, True) == 3
    assert all(directory.authenticate(t) is None for t in tokens)
    assert directory.authenticate(keep) is not None
    app = directory.verify_client(client_id, secret)
    assert app is not None and app.disabled
    with pytest.raises(DirectoryError, match="disabled"):
        directory.issue_token(client_id)

    assert directory.set_app_disabled(client_id, False) == 0
    assert all(directory.authenticate(t) is None for t in tokens)  # revoked stays revoked
    fresh, _ = directory.issue_token(client_id)
    assert directory.authenticate(fresh) is not None

    assert directory.delete_app(client_id) == 1
    assert directory.app(client_id) is None
    assert directory.authenticate(fresh) is None
    assert directory.verify_client(client_id, secret) is None
    for refused in (
        lambda: directory.delete_app(client_id),
        lambda: directory.set_app_disabled(client_id, True),
        lambda: directory.revoke_app_tokens(client_id),
    ):
        with pytest.raises(DirectoryError, match="no app"):
            refused()


def test_a_version_1_database_is_upgraded(tmp_path: Path) -> None:
    """Databases made before apps could be disabled keep their apps and tokens."""
    path = tmp_path / "old.sqlite3"
    make_legacy_file(
        path,
        1,
        "INSERT INTO organizations VALUES (3, 'Org', '0003');"
        "INSERT INTO users VALUES (12, 'John', 'user', 3);"
        "INSERT INTO apps VALUES ('c1', 'CRM', 12, 'x', 0);"
        f"INSERT INTO tokens VALUES ('{hashlib.sha256(b'tok').hexdigest()}', 'c1', 0, 9e9);",
    )
    with Directory.open(path) as d:
        assert d.schema_revision == head()
        app = d.app("c1")
        assert app is not None and not app.disabled
        assert d.authenticate("tok") is not None
        assert d.set_app_disabled("c1", True) == 1
        assert d.authenticate("tok") is None


# --------------------------------------------------------------------------- CLI


def _app(capsys: pytest.CaptureFixture[str], config: Path, user: str = "12") -> str:
    rc, out, err = cli(capsys, config, "app", "create", "--user", user, "--name", "CRM")
    assert rc == 0, err
    return out.splitlines()[0].split(": ", 1)[1]


def _issue(capsys: pytest.CaptureFixture[str], config: Path, client_id: str, *extra: str) -> str:
    rc, out, err = cli(capsys, config, "token", "issue", "--app", client_id, *extra)
    assert rc == 0, err
    assert f"token {token_id(out.strip())} expires at" in err
    return out.strip()


def test_cli_token_list_and_revoke(
    capsys: pytest.CaptureFixture[str], config: Path, database_url: str, monkeypatch
) -> None:
    assert cli(capsys, config, "directory", "load", str(DEMO))[0] == 0
    john, jane = _app(capsys, config), _app(capsys, config, "13")
    t1, t2 = _issue(capsys, config, john), _issue(capsys, config, john)
    t3 = _issue(capsys, config, jane)

    rc, out, err = cli(capsys, config, "token", "list")
    assert rc == 0, err
    header, *rows = out.splitlines()
    assert header.split() == ["ID", "CLIENT_ID", "USER", "ISSUED", "EXPIRES", "APP"]
    assert [r.split()[0] for r in rows] == [token_id(t) for t in (t1, t2, t3)]
    assert rows[0].split()[1:3] == [john, "12"] and rows[2].split()[1:3] == [jane, "13"]
    for token in (t1, t2, t3):
        assert token not in out and token not in err

    rc, out, _ = cli(capsys, config, "token", "list", "--app", jane)
    assert [r.split()[0] for r in out.splitlines()[1:]] == [token_id(t3)]
    rc, _, err = cli(capsys, config, "token", "list", "--app", "nope")
    assert rc == 1 and "no app" in err

    # by id (a prefix of it will do)
    rc, out, err = cli(capsys, config, "token", "revoke", token_id(t1)[:8])
    assert rc == 0, err
    assert f"token {token_id(t1)} of app {john} (user 12) revoked" in out
    # by the token itself, on stdin
    monkeypatch.setattr("sys.stdin", io.StringIO(t2 + "\n"))
    rc, out, err = cli(capsys, config, "token", "revoke", "--token-stdin")
    assert rc == 0, err
    assert t2 not in out and token_id(t2) in out
    monkeypatch.setattr("sys.stdin", io.StringIO(t2 + "\n"))
    rc, _, err = cli(capsys, config, "token", "revoke", "--token-stdin")
    assert rc == 1 and "no such token" in err and t2 not in err
    # every token of an app
    rc, out, err = cli(capsys, config, "token", "revoke", "--app", jane)
    assert rc == 0 and "1 tokens" in out
    with Directory.open(database_url) as d:
        assert [d.authenticate(t) for t in (t1, t2, t3)] == [None, None, None]
    rc, out, _ = cli(capsys, config, "token", "list")
    assert out.splitlines()[1:] == []

    rc, _, err = cli(capsys, config, "token", "revoke", "not-an-id")
    assert rc == 1 and "hex digits" in err
    with pytest.raises(SystemExit):  # one way of naming tokens at a time
        main(["token", "revoke", token_id(t3), "--app", jane])


def test_cli_app_disable_enable_delete(
    capsys: pytest.CaptureFixture[str], config: Path, database_url: str
) -> None:
    assert cli(capsys, config, "directory", "load", str(DEMO))[0] == 0
    client_id = _app(capsys, config)
    token = _issue(capsys, config, client_id)

    rc, out, _ = cli(capsys, config, "app", "list")
    assert rc == 0 and client_id in out and "enabled" in out
    rc, out, err = cli(capsys, config, "app", "disable", "--app", client_id)
    assert rc == 0, err
    assert out.strip() == f"app {client_id} disabled; 1 tokens revoked"
    rc, out, _ = cli(capsys, config, "app", "list", "--user", "12")
    assert "disabled" in out
    rc, _, err = cli(capsys, config, "token", "issue", "--app", client_id)
    assert rc == 1 and "disabled" in err

    assert cli(capsys, config, "app", "enable", "--app", client_id)[0] == 0
    fresh = _issue(capsys, config, client_id)
    rc, out, _ = cli(capsys, config, "app", "delete", "--app", client_id)
    assert rc == 0 and "1 tokens revoked" in out
    with Directory.open(database_url) as d:
        assert d.authenticate(token) is None and d.authenticate(fresh) is None
        assert d.app(client_id) is None
    rc, _, err = cli(capsys, config, "app", "delete", "--app", client_id)
    assert rc == 1 and "no app" in err


def test_cli_tokens_are_short_lived_by_default(
    capsys: pytest.CaptureFixture[str], config: Path, database_url: str
) -> None:
    """`token issue` without --ttl: auth.cli_token_ttl (900 s), not the 1 h of OAuth
    tokens; --ttl still goes up to auth.max_token_ttl."""
    assert cli(capsys, config, "directory", "load", str(DEMO))[0] == 0
    client_id = _app(capsys, config)
    _issue(capsys, config, client_id)
    _issue(capsys, config, client_id, "--ttl", "86400")
    with Directory.open(database_url) as d:
        lifetimes = [
            (t.expires - t.issued).total_seconds() for t in d.list_tokens(client_id)
        ]
    assert lifetimes == [pytest.approx(900), pytest.approx(86400)]
