"""Settings: the example file, environment overrides, secret files and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from relay.cli.main import main
from relay.config.settings import load_settings
from relay.model.errors import ConfigError
from tests.support.paths import ROOT


def test_example_file_loads_and_passes_check() -> None:
    settings = load_settings(ROOT / "settings.example.toml")
    assert settings.server.port == 8080
    result = CliRunner().invoke(main, ["check", "--config", str(ROOT / "settings.example.toml")])
    assert result.exit_code == 0, result.output
    assert "settings OK" in result.output


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "relay.toml"
    config.write_text('[smtp]\nhost = "file.example"\nport = 25\n')
    monkeypatch.setenv("RELAY_SMTP__PORT", "2525")
    settings = load_settings(config)
    assert (settings.smtp.host, settings.smtp.port) == ("file.example", 2525)


def test_config_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "relay.toml"
    config.write_text("[server]\nport = 9001\n")
    monkeypatch.setenv("RELAY_CONFIG", str(config))
    assert load_settings().server.port == 9001


def test_secrets_directory(tmp_path: Path) -> None:
    secrets = tmp_path / "creds"
    secrets.mkdir()
    (secrets / "server__hook_token").write_text("from-a-file")
    (secrets / "smtp__password").write_text("hunter2")
    (secrets / "smtp__username").write_text("relay")
    settings = load_settings(None, secrets_dir=secrets)
    assert settings.server.hook_token is not None
    assert settings.server.hook_token.get_secret_value() == "from-a-file"
    assert settings.smtp.password is not None
    assert settings.smtp.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(settings)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[server]\nprot = 1\n", "server.prot: unknown key"),
        ('[smtp]\nsecurity = "ssl"\n', "smtp.security"),
        ('[server]\nport = "high"\n', "server.port"),
        ("[[rules]]\nname = 'x'\nactions = []\n", "rule 'x': actions"),
        ("[server\n", "not valid TOML"),
        (
            "[delivery]\nconcurrency = 2\nyield_concurrency = 3\n",
            "delivery: yield_concurrency (3) must not exceed concurrency (2)",
        ),
    ],
)
def test_invalid_settings_name_the_key(tmp_path: Path, text: str, named: str) -> None:
    config = tmp_path / "relay.toml"
    config.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert named in str(info.value)
    result = CliRunner().invoke(main, ["check", "--config", str(config)])
    assert result.exit_code == 1
    assert named in result.output


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_the_package_exports_its_entry_points_on_first_use() -> None:
    import relay  # noqa: PLC0415 -- the package's own lazy attributes are what is tested
    from relay.app import create_app  # noqa: PLC0415
    from relay.config import settings  # noqa: PLC0415

    assert relay.create_app is create_app
    assert relay.Settings is settings.Settings
    assert relay.load_settings is settings.load_settings
    with pytest.raises(AttributeError, match="module 'relay' has no attribute 'serve'"):
        _ = relay.serve  # type: ignore[attr-defined]
