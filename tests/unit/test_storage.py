"""The storage layer (issue 10, item 7) on both backends: SQLite and a real PostgreSQL
server started by the test session (tests/support/postgres.py). Migrations from an empty
database, adoption of a pre-Alembic SQLite file, who may migrate (`db upgrade`, the
administration commands, `serve`), the directory and its caches across processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect

from pbx_bridge.cli import main
from pbx_bridge.config import Settings
from pbx_bridge.directory.models import (
    DirectoryFile,
    Extension,
    RecordingPolicy,
    RecordingSetup,
)
from pbx_bridge.directory.store import Directory, DirectoryError, Migrate, token_id
from pbx_bridge.recordings.catalog import RecordingRow
from pbx_bridge.recordings.store import RecordingQuery, RecordingStore
from pbx_bridge.storage import Database, display_url, head, parse_url, schema_state
from tests.support.legacy_schema import make_legacy_file
from tests.support.postgres import PostgresServer

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "config" / "directory.example.toml"
TABLES = {"organizations", "users", "extensions", "apps", "tokens"}
LEGACY_ROWS = (
    "INSERT INTO organizations VALUES (3, 'Org', '0003');"
    "INSERT INTO users VALUES (12, 'John', 'user', 3);"
    "INSERT INTO extensions VALUES ('0003*210', 12, 'PJSIP/0003*210', 1, 'star1', 'wav');"
    "INSERT INTO apps (client_id, name, user_id, secret_hash, created) "
    "VALUES ('c1', 'CRM', 12, 'x', 0);"
    # the token "tok"
    "INSERT INTO tokens VALUES "
    "('1a7674eb4ee78df7e1ac439a93c3fa8e3c945784d4dec9fd8e3011738b2f1d62', 'c1', 0, 9e9);"
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.upper().startswith("PBX_BRIDGE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def config_for(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "pbx.toml"
    path.write_text(f'[database]\nurl = "{url}"\n')
    return path


def cli(capsys: pytest.CaptureFixture[str], config: Path, *argv: str) -> tuple[int, str, str]:
    rc = main([*argv, "--config", str(config)])
    out, err = capsys.readouterr()
    return rc, out, err


def run_process(config: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """A command in another process, as an operator runs it next to the service."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("PBX_BRIDGE_")}
    # A secret `serve` accepts, so that it gets as far as the database.
    env["PBX_BRIDGE_AMI__SECRET"] = "storage-test-secret-0123456789"
    return subprocess.run(
        [sys.executable, "-m", "pbx_bridge.cli", *argv, "--config", str(config)],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=60, check=False,
    )  # fmt: skip


def make_outdated(url: str) -> None:
    """A database whose schema is at 0002, as a pbx-bridge before 0003 left it."""
    db = Database.open(url)
    try:
        with db.transaction(write=True) as conn:
            conn.exec_driver_sql("ALTER TABLE extensions DROP COLUMN node")  # 0008
            for table in ("events", "webhook_subscriptions", "webhook_deliveries"):  # 0006
                conn.exec_driver_sql(f"DROP TABLE {table}")
            conn.exec_driver_sql("DROP TABLE recording_policies")  # 0005
            conn.exec_driver_sql("DROP TABLE recordings")  # 0004
            conn.exec_driver_sql("DROP TABLE cache_versions")
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0002'")
    finally:
        db.close()


def tables(url: str) -> set[str]:
    db = Database.open(url)
    try:
        with db.transaction() as conn:
            return set(inspect(conn).get_table_names())
    finally:
        db.close()


# --------------------------------------------------------------------------- migrations


def test_db_upgrade_from_empty_and_status(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, database_url: str
) -> None:
    config = config_for(tmp_path, database_url)
    rc, out, _ = cli(capsys, config, "db", "status")
    assert rc == 1
    assert "current: none (empty database)" in out and f"head:    {head()}" in out
    assert "pbx-bridge db upgrade" in out

    rc, out, err = cli(capsys, config, "db", "upgrade")
    assert rc == 0, err
    assert f"upgraded from none (empty database) to {head()}" in out
    assert tables(database_url) >= TABLES | {"cache_versions", "alembic_version"}

    rc, out, _ = cli(capsys, config, "db", "status")
    assert rc == 0 and f"current: {head()}" in out and "up to date" in out
    rc, out, _ = cli(capsys, config, "db", "upgrade")
    assert rc == 0 and "nothing to do" in out


def test_db_upgrade_applies_what_is_missing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, database_url: str
) -> None:
    config = config_for(tmp_path, database_url)
    with Directory.open(database_url) as d:
        d.load_toml(DEMO)
    make_outdated(database_url)
    rc, out, _ = cli(capsys, config, "db", "status")
    assert rc == 1 and "current: 0002" in out
    rc, out, err = cli(capsys, config, "db", "upgrade")
    assert rc == 0, err
    assert f"upgraded from 0002 to {head()}" in out
    with Directory.open(database_url, migrate=Migrate.NOTHING) as d:
        assert d.extension("0003*210") is not None  # the data went along


def test_a_newer_schema_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, database_url: str
) -> None:
    Directory.open(database_url).close()
    db = Database.open(database_url)
    with db.transaction(write=True) as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    db.close()
    for migrate in Migrate:
        with pytest.raises(DirectoryError, match="newer than this pbx-bridge supports"):
            Directory.open(database_url, migrate=migrate)
    rc, _, err = cli(capsys, config_for(tmp_path, database_url), "db", "upgrade")
    assert rc == 1 and "upgrade pbx-bridge" in err


# --------------------------------------------------------------------------- who migrates


def _serve_error(config: Path) -> str:
    done = run_process(config, "serve")
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # one clear line, no traceback
    return lines[0]


def test_serve_refuses_an_unmigrated_or_outdated_database(
    tmp_path: Path, database_url: str
) -> None:
    config = config_for(tmp_path, database_url)
    line = _serve_error(config)
    assert line.startswith("pbx-bridge: error: database ")
    assert "schema at revision none (empty database)" in line
    assert line.endswith("run `pbx-bridge db upgrade`")
    assert tables(database_url) == set()  # serve migrated nothing

    Directory.open(database_url).close()
    make_outdated(database_url)
    line = _serve_error(config)
    assert f"schema at revision 0002, this pbx-bridge needs {head()}" in line
    assert line.endswith("run `pbx-bridge db upgrade`")


def test_admin_commands_create_a_schema_but_leave_upgrades_to_db_upgrade(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, database_url: str
) -> None:
    config = config_for(tmp_path, database_url)
    rc, out, err = cli(capsys, config, "directory", "load", str(DEMO))  # a fresh demo
    assert rc == 0, err
    assert "2 organizations, 5 users, 5 extensions" in out
    make_outdated(database_url)  # another process may be serving from it: hands off
    rc, _, err = cli(capsys, config, "app", "create", "--user", "12", "--name", "CRM")
    assert rc == 1 and "run `pbx-bridge db upgrade`" in err
    assert cli(capsys, config, "db", "upgrade")[0] == 0
    rc, _, err = cli(capsys, config, "app", "create", "--user", "12", "--name", "CRM")
    assert rc == 0, err


# --------------------------------------------------------------------------- pre-Alembic files


@pytest.mark.parametrize("version", [1, 2])
def test_a_pre_alembic_file_is_adopted_by_db_upgrade(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, version: int
) -> None:
    path = tmp_path / "old.sqlite3"
    make_legacy_file(path, version, LEGACY_ROWS)
    config = config_for(tmp_path, f"sqlite:///{path}")
    rc, out, _ = cli(capsys, config, "db", "status")
    assert rc == 1 and f"pre-Alembic schema version {version}" in out
    line = _serve_error(config)
    assert line.endswith("run `pbx-bridge db upgrade`")

    rc, out, err = cli(capsys, config, "db", "upgrade")
    assert rc == 0, err
    assert f"from none (pre-Alembic schema version {version}) to {head()}" in out
    with Directory.open(path, migrate=Migrate.NOTHING) as d:
        assert d.extension("0003*210").recording == RecordingSetup(enabled=True)
        assert d.organization(3).recordings == RecordingPolicy()  # no row: the defaults
        app = d.app("c1")
        assert app is not None and not app.disabled
        assert d.authenticate("tok") is not None


def test_a_pre_alembic_file_is_adopted_by_the_admin_commands(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "old.sqlite3"
    make_legacy_file(path, 2, LEGACY_ROWS)
    config = config_for(tmp_path, f"sqlite:///{path}")
    rc, out, err = cli(capsys, config, "token", "list")
    assert rc == 0, err
    assert token_id("tok") in out
    assert schema_state(Database.open(path)).current


def _affinity(declared: str) -> str:
    """SQLite's type affinity of a declared type (https://sqlite.org/datatype3.html)."""
    t = declared.upper()
    if "INT" in t:
        return "INTEGER"
    if any(s in t for s in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if any(s in t for s in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


# Columns later revisions add to the baseline tables (not in a legacy file).
_ADDED_LATER = {("extensions", "node")}  # 0008


def _describe(path: Path) -> dict[str, object]:
    db = Database.open(path)
    try:
        with db.transaction() as conn:
            insp = inspect(conn)
            out: dict[str, object] = {}
            for table in sorted(TABLES):
                pk = set(insp.get_pk_constraint(table)["constrained_columns"])
                out[table] = {
                    "columns": [
                        (c["name"], _affinity(str(c["type"])),
                         # a legacy TEXT PRIMARY KEY took NULL (an SQLite quirk); ours not
                         c["nullable"] if c["name"] not in pk else None,
                         str(c.get("default")).strip("'") if c.get("default") else None)
                        for c in insp.get_columns(table)
                        if (table, c["name"]) not in _ADDED_LATER
                    ],
                    "pk": pk,
                    # (from, table, to, on_delete): SQLAlchemy does not parse a column
                    # constraint's ON DELETE, SQLite's own list has it
                    "fks": sorted(
                        (row[3], row[2], row[4], row[6])
                        for row in conn.exec_driver_sql(f"PRAGMA foreign_key_list({table})")
                    ),
                    "unique": sorted(
                        tuple(u["column_names"]) for u in insp.get_unique_constraints(table)
                    ),
                    "indexes": sorted(
                        (i["name"], tuple(i["column_names"])) for i in insp.get_indexes(table)
                    ),
                    "checks": sorted(
                        " ".join(c["sqltext"].split()) for c in insp.get_check_constraints(table)
                    ),
                }
            return out
    finally:
        db.close()


def test_the_baseline_revisions_reproduce_the_pre_alembic_schema(tmp_path: Path) -> None:
    legacy = tmp_path / "legacy.sqlite3"
    make_legacy_file(legacy, 2)
    fresh = tmp_path / "fresh.sqlite3"
    Directory.open(fresh).close()
    assert _describe(fresh) == _describe(legacy)


# --------------------------------------------------------------------------- the directory


def test_directory_load_and_look_ups(database_url: str) -> None:
    with Directory.open(database_url) as d:
        assert d.load_toml(DEMO) == (2, 5, 5)
        ext = d.extension("0003*210")
        assert ext is not None and ext.owner == 12 and ext.device == "PJSIP/0003*210"
        assert d.extension_for_channel("PJSIP/0003*210-0000002a") == ext
        assert [e.number for e in d.extensions_of_user(12)] == ["0003*210", "0003*211"]
        org = d.organization_of_extension(ext)
        assert org is not None and (org.id, org.code) == (3, "0003")
        assert d.user(1).role == "admin"
        assert len(d.all_extensions()) == 5 and len(d.all_organizations()) == 2
        # devices may move between extensions within one load (unique on both backends)
        a, b = d.extension("0003*210"), d.extension("0003*211")
        assert a is not None and b is not None
        d.load(DirectoryFile(extensions=[
            a.model_copy(update={"device": b.device}), b.model_copy(update={"device": a.device})
        ]))  # fmt: skip
        assert d.extension("0003*210").device == b.device
        # an inconsistent load writes nothing
        with pytest.raises(DirectoryError, match="owner 999 is not a known user"):
            d.load(DirectoryFile(extensions=[
                Extension(number="0003*299", owner=12, device="PJSIP/new"),
                Extension(number="0003*298", owner=999, device="PJSIP/other"),
            ]))  # fmt: skip
        assert d.extension("0003*299") is None


def test_apps_tokens_and_purge(database_url: str) -> None:
    now = [1_800_000_000.0]
    with Directory.open(database_url, clock=lambda: now[0]) as d:
        d.load_toml(DEMO)
        client_id, secret = d.create_app(12, "CRM")
        assert d.verify_client(client_id, secret) is not None
        assert d.verify_client(client_id, secret + "x") is None
        short, _ = d.issue_token(client_id, ttl=10)
        lasting, _ = d.issue_token(client_id, ttl=1000)
        principal = d.authenticate(short)
        assert principal is not None and (principal.user_id, principal.organization_id) == (12, 3)
        now[0] += 60
        assert d.authenticate(short) is None  # expired, even though remembered
        assert d.purge_expired() == 1
        assert [t.id for t in d.list_tokens()] == [token_id(lasting)]
        assert d.set_app_disabled(client_id, True) == 1
        assert d.authenticate(lasting) is None
        with pytest.raises(DirectoryError, match="disabled"):
            d.issue_token(client_id)
        d.set_app_disabled(client_id, False)
        assert d.delete_app(client_id) == 0
        assert d.app(client_id) is None


def test_revocation_in_another_process_is_honoured_on_the_next_call(
    tmp_path: Path, database_url: str
) -> None:
    """The service remembers tokens and the directory; what a command in another process
    changes counts from the very next call, on both backends."""
    config = config_for(tmp_path, database_url)
    with Directory.open(database_url) as service:
        service.load_toml(DEMO)
        client_id, _ = service.create_app(12, "CRM")
        token, _ = service.issue_token(client_id)
        other, _ = service.issue_token(client_id)
        assert service.authenticate(token) is not None  # now remembered
        assert service.extension("0003*210").recording.enabled

        done = run_process(config, "token", "revoke", token_id(token))
        assert done.returncode == 0, done.stderr
        assert service.authenticate(token) is None
        assert service.authenticate(other) is not None

        changed = tmp_path / "changed.toml"
        changed.write_text(
            DEMO.read_text().replace("trigger = \"star1\"", "trigger = \"always\"", 1)
        )
        done = run_process(config, "directory", "load", str(changed))
        assert done.returncode == 0, done.stderr
        assert service.authenticate(other) is not None  # a request: the strict check
        assert service.extension("0003*210").recording.trigger == "always"

        done = run_process(config, "app", "disable", "--app", client_id)
        assert done.returncode == 0, done.stderr
        assert service.authenticate(other) is None


def test_a_lookup_outside_requests_sees_other_writers_too(database_url: str) -> None:
    with Directory.open(database_url, check_interval=0.001) as service, Directory.open(
        database_url
    ) as admin:
        assert service.extension("0003*210") is None
        admin.load_toml(DEMO)
        for _ in range(1000):  # PostgreSQL: within check_interval; SQLite: at once
            if service.extension("0003*210") is not None:
                break
        assert service.extension("0003*210") is not None


_ORG3 = '[[organizations]]\nid = 3\nname = "Default Organization"\ncode = "0003"\n'


def test_an_organizations_recording_policy(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, database_url: str
) -> None:
    """Revision 0005: stored by `directory load`, read back with the organization, the
    defaults where none was given; an organization in a file is all of it."""
    config = config_for(tmp_path, database_url)
    assert cli(capsys, config, "directory", "load", str(DEMO))[0] == 0
    policy = tmp_path / "policy.toml"
    policy.write_text(_ORG3 + "recordings = { retention_days = 30, users_may_delete = true }\n")
    # check_interval 0: every look-up asks PostgreSQL whether the directory changed
    with Directory.open(database_url, check_interval=0) as service:
        assert service.organization(3).recordings == RecordingPolicy()
        rc, _, err = cli(capsys, config, "directory", "load", str(policy))
        assert rc == 0, err
        assert service.organization(3).recordings == RecordingPolicy(
            retention_days=30, users_may_delete=True
        )
        demo_org4 = RecordingPolicy(retention_days=365, users_may_delete=True)
        assert service.organization(4).recordings == demo_org4  # untouched
        policy.write_text(_ORG3)
        assert cli(capsys, config, "directory", "load", str(policy))[0] == 0
        assert service.organization(3).recordings == RecordingPolicy()
        for bad in ("retention_days = 0", "retention_days = -1", "retention_days = 1.5",
                    "users_may_delete = 1.5", "keep = 3"):
            policy.write_text(_ORG3 + f"recordings = {{ {bad} }}\n")
            rc, out, err = cli(capsys, config, "directory", "load", str(policy))
            assert rc == 1 and out == "" and "organizations[0].recordings" in err, (bad, err)
            assert len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------- the setting


def test_the_url_setting_and_its_password(postgres_server: PostgresServer) -> None:
    url = "postgresql://bridge:s3cr3t-pw@db.example.com:5433/pbx"
    settings = Settings(database={"url": url})
    assert "s3cr3t-pw" not in repr(settings) and "s3cr3t-pw" not in str(settings.model_dump())
    assert settings.database.display_url == "postgresql://bridge:***@db.example.com:5433/pbx"
    assert display_url(parse_url(url)) == "postgresql://bridge:***@db.example.com:5433/pbx"
    assert parse_url(url).drivername == "postgresql+psycopg"
    assert parse_url("sqlite:///var/x.sqlite3").database == "var/x.sqlite3"
    with pytest.raises(ValueError, match="not supported"):
        parse_url("mysql://u@h/db")
    # A refused connection names the database, never the password.
    bad = f"postgresql://nobody:s3cr3t-pw@/no_such_db?host={postgres_server.root}"
    with pytest.raises(DirectoryError) as refused:
        Directory.open(bad)
    assert "s3cr3t-pw" not in str(refused.value) and "***" in str(refused.value)


def test_a_recordings_page_is_find_cut_by_the_database(database_url: str) -> None:
    """``RecordingStore.page`` on both backends: the total and the rows ``find`` answers
    from ``start`` (newest first, ties by id), with the filters."""
    with Directory.open(database_url) as d:
        store = RecordingStore(d.database)
        for i in range(12):  # pairs started in the same second: the tie is broken by id
            store.save(RecordingRow(
                id=f"r-{i:016x}", extension="0003*210" if i != 5 else "0003*211",
                call_id=f"{i % 3:020x}", view_id="01", started=1000.0 + i // 2,
                state="failed" if i % 4 == 0 else "completed"))
        for query in (RecordingQuery(("0003*210",)), RecordingQuery(("0003*210",), state="failed"),
                      RecordingQuery(("0003*210", "0003*211"), call_id=f"{1:020x}", since=1001.0),
                      RecordingQuery(("0003*210",), until=1002.0)):
            every = store.find(query)
            assert every == sorted(every, key=lambda r: (-r.started, r.id))
            for start, count in ((0, 20), (0, 3), (2, 4), (len(every), 5)):
                assert store.page(query, start, count) == (len(every),
                                                          every[start:start + count])
