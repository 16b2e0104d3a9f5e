from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pbx_bridge.cli import main
from pbx_bridge.config import default_database_url
from pbx_bridge.directory.store import Directory
from tests.support.workdir import workdir  # noqa: F401 (autouse)

pytestmark = pytest.mark.unit

DEMO = Path(__file__).resolve().parents[2] / "config" / "directory.example.toml"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "pbx.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "db" / "d.sqlite3"}"\n')
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_full_flow(capsys: pytest.CaptureFixture[str], config: Path, tmp_path: Path) -> None:
    rc, out, err = run(capsys, "directory", "load", str(DEMO), "--config", str(config))
    assert rc == 0, err
    assert "2 organizations, 5 users, 5 extensions" in out

    rc, out, err = run(
        capsys, "app", "create", "--user", "12", "--name", "CRM", "--config", str(config)
    )
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("client_id: ") and lines[1].startswith("client_secret: ")
    client_id = lines[0].split(": ", 1)[1]
    client_secret = lines[1].split(": ", 1)[1]

    rc, out, err = run(capsys, "token", "issue", "--app", client_id, "--config", str(config))
    assert rc == 0, err
    token = out.strip()
    assert out == token + "\n"  # only the token on stdout
    assert "expires" in err

    db = tmp_path / "db" / "d.sqlite3"
    with Directory.open(db) as d:
        principal = d.authenticate(token)
        assert principal is not None
        assert (principal.user_id, principal.role, principal.client_id) == (12, "user", client_id)
        assert d.verify_client(client_id, client_secret) is not None
    data = b"".join(p.read_bytes() for p in db.parent.iterdir())
    assert token.encode() not in data
    assert client_secret.encode() not in data


def test_default_database_is_one_absolute_file_whatever_the_working_folder(
    capsys: pytest.CaptureFixture[str], workdir: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    rc, _, err = run(capsys, "directory", "load", str(DEMO))
    assert rc == 0, err
    assert (workdir / "state" / "pbx_bridge.sqlite3").is_file()
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # from another folder: user 12 is found, the same database
    rc, _, err = run(capsys, "app", "create", "--user", "12", "--name", "x")
    assert rc == 0, err
    assert not (elsewhere / "var").exists() and not (workdir / "var").exists()
    monkeypatch.delenv("STATE_DIRECTORY")
    assert default_database_url() == "sqlite:////var/lib/pbx-bridge/pbx_bridge.sqlite3"


def test_config_from_environment(
    capsys: pytest.CaptureFixture[str],
    config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PBX_BRIDGE_CONFIG", str(config))
    assert run(capsys, "directory", "load", str(DEMO))[0] == 0
    assert (tmp_path / "db" / "d.sqlite3").is_file()
    monkeypatch.setenv("PBX_BRIDGE_DATABASE__URL", f"sqlite:///{tmp_path / 'env.sqlite3'}")
    assert run(capsys, "directory", "load", str(DEMO))[0] == 0
    assert (tmp_path / "env.sqlite3").is_file()  # env key wins over the file


def test_ttl_capped(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[auth]\ntoken_ttl = 60\nmax_token_ttl = 120\n")
    run(capsys, "directory", "load", str(DEMO), "--config", str(config))
    _, out, _ = run(capsys, "app", "create", "--user", "2", "--name", "x", "--config", str(config))
    client_id = out.splitlines()[0].split(": ", 1)[1]
    rc, out, err = run(
        capsys, "token", "issue", "--app", client_id, "--ttl", "5000", "--config", str(config)
    )
    assert rc == 0
    assert "capped" in err and "120" in err
    conn = sqlite3.connect(tmp_path / "state" / "pbx_bridge.sqlite3")
    (lifetime,) = conn.execute("SELECT expires_at - created FROM tokens").fetchone()
    conn.close()
    assert lifetime == pytest.approx(120)


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("pbx-bridge: error: ")
    return lines[0]


def test_bad_directory_file(capsys: pytest.CaptureFixture[str], config: Path, tmp_path: Path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[organizations]]\nid = 9\nname = "N"\ncode = "0009"\n'
        '[[extensions]]\nnumber = "0009*1"\nowner = 404\ndevice = "PJSIP/0009*1"\n'
    )
    rc, out, err = run(capsys, "directory", "load", str(bad), "--config", str(config))
    assert rc == 1 and out == ""
    line = one_error_line(err)
    assert str(bad) in line and "owner 404" in line
    conn = sqlite3.connect(tmp_path / "db" / "d.sqlite3")
    assert conn.execute("SELECT count(*) FROM organizations").fetchone()[0] == 0
    conn.close()


def test_bad_toml(capsys: pytest.CaptureFixture[str], config: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[users]\n")
    rc, _, err = run(capsys, "directory", "load", str(bad), "--config", str(config))
    assert rc == 1
    assert "invalid TOML" in one_error_line(err)


def test_bad_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[database]\nur = 'x'\n")
    rc, _, err = run(capsys, "directory", "load", str(DEMO), "--config", str(config))
    assert rc == 1
    line = one_error_line(err)
    assert str(config) in line and "database.ur: unknown key" in line


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["app", "create", "--user", "99", "--name", "x"], "no user with id 99"),
        (["token", "issue", "--app", "nope"], "no app with client id 'nope'"),
    ],
)
def test_refusals(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert run(capsys, "directory", "load", str(DEMO))[0] == 0
    rc, out, err = run(capsys, *argv)
    assert rc == 1 and out == ""
    assert message in one_error_line(err)


@pytest.mark.parametrize(
    "argv",
    [
        ["token", "issue", "--app", "x", "--ttl", "0"],
        ["token", "issue", "--app", "x", "--ttl", "soon"],
        ["token", "issue"],
        ["app", "create", "--user", "abc", "--name", "x"],
        ["app", "create", "--name", "x"],
        ["directory", "load"],
        ["directory"],
    ],
)
def test_usage_errors(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage:" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["directory", "--help"],
        ["directory", "load", "--help"],
        ["app", "--help"],
        ["app", "create", "--help"],
        ["token", "--help"],
        ["token", "issue", "--help"],
    ],
)
def test_help(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: pbx-bridge" in out
    if len(argv) == 3:
        assert "--config FILE" in out
