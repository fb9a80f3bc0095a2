"""Which source wins when the settings file, a secret file and the environment give one key."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.config.settings import load_settings


@pytest.mark.parametrize(
    ("in_file", "in_secrets", "in_env", "wins"),
    [
        (True, False, False, "file"),
        (True, True, False, "secret"),
        (True, False, True, "env"),
        (True, True, True, "env"),
        (False, True, True, "env"),
        (False, True, False, "secret"),
    ],
)
def test_file_then_secrets_then_environment(  # noqa: PLR0917 -- pytest parameters
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    in_file: bool,
    in_secrets: bool,
    in_env: bool,
    wins: str,
) -> None:
    """As docs/deploy.md says: secrets override relay.toml, RELAY_* variables override both."""
    config = tmp_path / "relay.toml"
    config.write_text('[smtp]\npassword = "file"\n' if in_file else "", encoding="utf-8")
    secrets = tmp_path / "credentials"
    secrets.mkdir()
    if in_secrets:
        (secrets / "smtp__password").write_text("secret", encoding="utf-8")
    monkeypatch.delenv("RELAY_SMTP__PASSWORD", raising=False)
    monkeypatch.setenv("RELAY_SMTP__USERNAME", "relay")  # a password needs its username
    if in_env:
        monkeypatch.setenv("RELAY_SMTP__PASSWORD", "env")
    settings = load_settings(config, secrets_dir=secrets)
    assert settings.smtp.password is not None
    assert settings.smtp.password.get_secret_value() == wins
