"""`[ari]` is gone (issue 10, item 6): pbx-bridge never used ARI. A leftover section in
the file is one clear error; the old environment variables are ignored, so a service's
EnvironmentFile that still sets PBX_BRIDGE_ARI__PASSWORD keeps starting."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbx_bridge.config import ConfigError, Settings, load_settings


def test_settings_have_no_ari_section() -> None:
    assert "ari" not in Settings.model_fields


def test_an_ari_section_in_the_file_says_to_delete_it(tmp_path: Path) -> None:
    path = tmp_path / "old.toml"
    path.write_text('[ari]\nurl = "http://127.0.0.1:8088/ari"\npassword = "s3cr3t-ari"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    msg = str(err.value)
    assert "[ari] was removed" in msg and "delete the section" in msg
    assert "s3cr3t-ari" not in msg


def test_old_ari_environment_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PBX_BRIDGE_ARI__PASSWORD", "s3cr3t-ari")
    monkeypatch.setenv("PBX_BRIDGE_ARI__URL", "http://127.0.0.1:8088/ari")
    settings = load_settings()
    assert "s3cr3t-ari" not in settings.model_dump_json()
