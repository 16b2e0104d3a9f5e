from __future__ import annotations

import logging
import os
import tomllib
from pathlib import Path

import pytest
from pydantic import SecretStr

from pbx_bridge.config import ConfigError, Settings, default_database_url, load_settings

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "pbx_bridge.example.toml"
SECRET = "s3cr3t-Do-Not-Log"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("PBX_BRIDGE_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str, name: str = "pbx.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults() -> None:
    s = load_settings()
    assert s.config_file is None
    assert s.http.host == "127.0.0.1"  # loopback by default
    assert s.http.port == 8080
    assert s.http.public_base_url == "http://127.0.0.1:8080"
    assert s.http.body_limit == 16384
    assert s.http.request_timeout == 10.0
    assert (s.ami.host, s.ami.port, s.ami.username) == ("127.0.0.1", 5038, "pbx-bridge")
    assert s.ami.secret.get_secret_value() == ""
    assert (s.ami.ping_interval, s.ami.ping_timeout, s.ami.action_timeout) == (10.0, 5.0, 5.0)
    assert (s.ami.connect_timeout, s.ami.backoff_cap, s.ami.auth_retry) == (5.0, 30.0, 60.0)
    assert s.database.url.get_secret_value() == default_database_url()
    assert default_database_url().startswith("sqlite:////")  # absolute
    assert (s.recordings.directory, s.recordings.default_format) == ("", "wav")
    assert (s.auth.token_ttl, s.auth.max_token_ttl) == (3600, 31536000)
    assert (s.logging.level, s.logging.json_) == ("INFO", False)


def test_example_file_documents_every_key_with_its_default() -> None:
    with EXAMPLE.open("rb") as fh:
        data = tomllib.load(fh)
    expected: dict[str, set[str]] = {}
    for section, field in Settings.model_fields.items():
        model = field.annotation
        if section in ("pbx", "pbx_secrets"):  # commented out: [ami] is the one node
            continue
        expected[section] = {f.alias or n for n, f in model.model_fields.items()}
    assert {k: set(v) for k, v in data.items()} == expected
    text = EXAMPLE.read_text()
    for keys in expected.values():
        for key in keys:  # every key is spelled out
            assert f"\n{key} = " in text, key
    assert load_settings(EXAMPLE).model_dump() == load_settings().model_dump()
    assert "PBX_BRIDGE_AMI__SECRET" in text  # secrets from the environment are documented
    assert "\n# [[pbx]]\n" in text and "PBX_BRIDGE_PBX_SECRETS__" in text  # several nodes


def test_file_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [http]
        port = 9000
        public_base_url = "https://pbx.example.com/"
        [ami]
        secret = "abc"
        [logging]
        level = "debug"
        json = true
        [recordings]
        default_format = "wav49"
        """,
    )
    s = load_settings(path)
    assert s.config_file == path
    assert s.http.port == 9000
    assert s.http.host == "127.0.0.1"  # untouched keys keep their defaults
    assert s.http.public_base_url == "https://pbx.example.com"  # trailing "/" dropped
    assert s.ami.secret.get_secret_value() == "abc"
    assert s.logging.level == "DEBUG"
    assert s.logging.json_ is True
    assert s.recordings.default_format == "wav49"


def test_str_path_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "[http]\nport = 9001\n")
    assert load_settings(str(path)).http.port == 9001


def test_env_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[http]\nport = 9000\nhost = "10.0.0.1"\n[ami]\nsecret = "file"\n')
    monkeypatch.setenv("PBX_BRIDGE_HTTP__PORT", "9100")
    monkeypatch.setenv("pbx_bridge_ami__secret", "from-env")  # case-insensitive
    monkeypatch.setenv("PBX_BRIDGE_LOGGING__JSON", "true")
    s = load_settings(path)
    assert s.http.port == 9100  # env wins
    assert s.http.host == "10.0.0.1"  # rest of the section still from the file
    assert s.ami.secret.get_secret_value() == "from-env"
    assert s.logging.json_ is True


def test_env_without_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PBX_BRIDGE_AUTH__TOKEN_TTL", "60")
    monkeypatch.setenv("PBX_BRIDGE_DATABASE__URL", "sqlite:////tmp/x.sqlite3")
    s = load_settings()
    assert s.auth.token_ttl == 60
    assert s.database.url.get_secret_value() == "sqlite:////tmp/x.sqlite3"


def test_config_path_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = write(tmp_path, "[http]\nport = 9001\n", "a.toml")
    b = write(tmp_path, "[http]\nport = 9002\n", "b.toml")
    monkeypatch.setenv("PBX_BRIDGE_CONFIG", str(a))
    assert load_settings().http.port == 9001
    assert load_settings().config_file == a
    assert load_settings(b).http.port == 9002  # --config wins over the environment


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: not found"):
        load_settings(tmp_path / "nope.toml")


def test_bad_toml_names_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[http\nport = 1\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    msg = str(err.value)
    assert str(path) in msg and "invalid TOML" in msg and "line 1" in msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    ("text", "key", "what"),
    [
        ("[http]\nport = 70000\n", "http.port", "less than or equal to 65535"),
        ("[http]\nport = 0\n", "http.port", "greater than or equal to 1"),
        ("[ami]\nport = -1\n", "ami.port", "greater than or equal to 1"),
        ("[ami]\nping_timeout = 0\n", "ami.ping_timeout", "greater than 0"),
        ("[ami]\naction_timeout = -2.5\n", "ami.action_timeout", "greater than 0"),
        ("[http]\nrequest_timeout = nan\n", "http.request_timeout", "finite"),
        ("[http]\nbody_limit = 0\n", "http.body_limit", "greater than 0"),
        ("[http]\nprot = 80\n", "http.prot", "unknown key"),
        ("[htttp]\nport = 80\n", "htttp", "unknown key"),
        ('[http]\nport = "eighty"\n', "http.port", "integer"),
        ('[http]\npublic_base_url = "ftp://x"\n', "http.public_base_url", "http"),
        ('[recordings]\ndefault_format = "mp3"\n', "recordings.default_format", "wav"),
        ('[logging]\nlevel = "chatty"\n', "logging.level", "DEBUG"),
        ("[auth]\ntoken_ttl = 100\nmax_token_ttl = 10\n", "auth", "max_token_ttl"),
        ('[ami]\nusername = "a\\r\\nAction: Logoff"\n', "ami.username", "control"),
    ],
)
def test_bad_value_names_file_and_key(tmp_path: Path, text: str, key: str, what: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    msg = str(err.value)
    assert msg.startswith(f"config file {path}: {key}: "), msg
    assert what in msg
    assert "\n" not in msg


def test_bad_env_value_names_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PBX_BRIDGE_HTTP__PORT", "99999")
    with pytest.raises(ConfigError, match=r"http\.port: .*PBX_BRIDGE_HTTP__PORT"):
        load_settings()


def test_unrelated_env_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PBX_BRIDGE_SOMETHING", "x")
    assert load_settings().http.port == 8080


def test_secrets_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path, f'[ami]\nsecret = "{SECRET}"\n')
    monkeypatch.setenv("PBX_BRIDGE_DATABASE__URL", f"postgresql://u:{SECRET}-db@h/db")
    s = load_settings(path)
    assert isinstance(s.ami.secret, SecretStr)
    assert s.ami.secret.get_secret_value() == SECRET
    assert s.database.url.get_secret_value() == f"postgresql://u:{SECRET}-db@h/db"
    shown = [repr(s), str(s), repr(s.ami), str(s.ami), s.model_dump_json(), str(s.model_dump())]
    shown.append(str(s.model_dump(mode="json")))
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("pbx_bridge.test").info("settings %s %r %s", s, s, s.database)
    shown.append(caplog.text)
    for text in shown:
        assert SECRET not in text


def test_secret_not_in_error_message(tmp_path: Path) -> None:
    path = write(tmp_path, '[ami]\nsecret = "' + SECRET + '\\n"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert "ami.secret" in str(err.value)
    assert SECRET not in str(err.value)


def test_settings_are_immutable() -> None:
    s = load_settings()
    with pytest.raises(ValueError):
        s.http.port = 1  # type: ignore[misc]


def test_metrics_auth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """/metrics shows every tenant's figures: an admin token by default; "none" only when
    asked for; nothing else is accepted."""
    assert Settings().metrics.auth == "admin"
    path = tmp_path / "c.toml"
    path.write_text('[metrics]\nauth = "none"\n')
    assert load_settings(path).metrics.auth == "none"
    path.write_text('[metrics]\nauth = "anyone"\n')
    with pytest.raises(ConfigError, match=r"metrics\.auth"):
        load_settings(path)
    monkeypatch.setenv("PBX_BRIDGE_METRICS__AUTH", "none")
    assert load_settings().metrics.auth == "none"
