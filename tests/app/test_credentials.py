"""Secret files named by their setting's path, as systemd/relay.service hands them over in
$CREDENTIALS_DIRECTORY: every secret the settings can name, at any depth, and clear refusals."""

from __future__ import annotations

import os
import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import BaseModel, SecretStr

from relay.cli.main import main
from relay.config.settings import Settings, load_settings
from relay.model.errors import ConfigError
from tests.support.paths import DOCS

# Destinations declared in the settings file; their secrets come from credential files.
# "helpDesk" checks that names keep their case.
DECLARED = """
[destinations.smtp.billing]
host = "smtp.billing.test"
username = "billing"
password = "in-the-file"  # credential files override it
[destinations.slack.ops]
api_url = "http://127.0.0.1:9/api"
[destinations.webhook.helpDesk]
url = "http://127.0.0.1:9/hook"
[destinations.hubspot.sales]
token = "in-the-file"
[destinations.pipedrive.sales]
api_token = "in-the-file"
[destinations.freshdesk.support]
api_url = "http://127.0.0.1:9"
api_key = "in-the-file"
[destinations.zendesk.support]
api_url = "http://127.0.0.1:9"
email = "agent@shop.test"
api_token = "in-the-file"
[destinations.teams.support]
timeout_seconds = 5
"""

NAMES = {
    "smtp": "billing",
    "slack": "ops",
    "webhook": "helpDesk",
    "hubspot": "sales",
    "pipedrive": "sales",
    "freshdesk": "support",
    "zendesk": "support",
    "teams": "support",
}


def secret_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The path of every SecretStr setting; a table of named entries contributes its entries'
    secrets under the name used in DECLARED."""
    for key, field in model.model_fields.items():
        annotation = field.annotation
        args = typing.get_args(annotation)
        if annotation is SecretStr or SecretStr in args:
            yield (*prefix, key)
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from secret_paths(annotation, (*prefix, key))
        elif typing.get_origin(annotation) is dict and _is_model(args[1]):
            yield from secret_paths(args[1], (*prefix, key, NAMES[key]))


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def setting(settings: Settings, path: tuple[str, ...]) -> Any:
    value: Any = settings
    for part in path:
        value = value[part] if isinstance(value, dict) else getattr(value, part)
    return value


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "relay.toml"
    path.write_text(f'[storage]\nstate_dir = "{tmp_path / "state"}"\n{DECLARED}', encoding="utf-8")
    return path


@pytest.fixture
def credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$CREDENTIALS_DIRECTORY as systemd fills it, with the SetCredential= fallback "relay"."""
    directory = tmp_path / "credentials"
    directory.mkdir()
    (directory / "relay").write_text("unused")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(directory))
    for name in list(os.environ):
        if name.startswith("RELAY_"):
            monkeypatch.delenv(name)
    return directory


def test_the_walk_finds_top_level_and_named_destination_secrets() -> None:
    paths = {"__".join(path) for path in secret_paths(Settings)}
    assert {
        "server__hook_token",
        "smtp__password",
        "slack__token",
        "slack__webhook_url",
        "destinations__smtp__billing__password",
        "destinations__slack__ops__token",
        "destinations__slack__ops__webhook_url",
        "destinations__webhook__helpDesk__secret",
        "destinations__hubspot__sales__token",
        "destinations__pipedrive__sales__api_token",
        "destinations__freshdesk__support__api_key",
        "destinations__zendesk__support__api_token",
        "smtp__oauth2_client_secret",
        "teams__webhook_url",
        "destinations__teams__support__webhook_url",
    } <= paths


def test_every_secret_setting_is_read_from_its_credential(config: Path, credentials: Path) -> None:
    paths = list(secret_paths(Settings))
    # A secret that must have a form gets one (the store's URL names its engine, a session
    # key is long enough to sign with).
    shaped = {
        ("storage", "url"): "postgresql://secret@db.test/relay-{}",
        ("console", "session_key"): "a session key of at least 32 characters {}",
    }
    for index, path in enumerate(paths):
        # LoadCredential=relay:/etc/relay/credentials names the file F "relay_F".
        secret = shaped.get(path, "secret-{}").format(index)
        (credentials / ("relay_" + "__".join(path))).write_text(f"{secret}\n")
    settings = load_settings(config)
    for index, path in enumerate(paths):
        value = setting(settings, path)
        assert isinstance(value, SecretStr), path
        assert value.get_secret_value() == shaped.get(path, "secret-{}").format(index), path


def test_named_webhook_secret_and_smtp_password(config: Path, credentials: Path) -> None:
    (credentials / "relay_destinations__webhook__helpDesk__secret").write_text("hook-key")
    (credentials / "relay_destinations__smtp__billing__password").write_text("mail-pass\n")
    settings = load_settings(config)
    webhook = settings.destinations.webhook["helpDesk"]
    smtp = settings.destinations.smtp["billing"]
    assert webhook.secret is not None and webhook.secret.get_secret_value() == "hook-key"
    assert smtp.password is not None and smtp.password.get_secret_value() == "mail-pass"
    # The file's settings are kept beside the secret.
    assert (smtp.host, smtp.username) == ("smtp.billing.test", "billing")
    assert list(settings.destinations.webhook) == ["helpDesk"]


def test_any_setting_and_table_entries_at_any_depth(config: Path, credentials: Path) -> None:
    (credentials / "relay_destinations__webhook__helpDesk__headers__Authorization").write_text(
        "Bearer abc"
    )
    (credentials / "relay_destinations__webhook__helpDesk__url").write_text(
        "https://user:pw@helpdesk.test/api"
    )
    (credentials / "relay_server__trusted_proxies").write_text('["127.0.0.1/32"]')
    (credentials / "relay_smtp__port").write_text("2525")
    settings = load_settings(config)
    webhook = settings.destinations.webhook["helpDesk"]
    assert webhook.headers == {"Authorization": "Bearer abc"}
    assert webhook.url == "https://user:pw@helpdesk.test/api"
    assert [str(net) for net in settings.server.trusted_proxies] == ["127.0.0.1/32"]
    assert settings.smtp.port == 2525


def test_a_single_credential_without_the_directory_prefix(config: Path, credentials: Path) -> None:
    # LoadCredential=smtp__password:/some/file gives a credential named just the path.
    (credentials / "smtp__password").write_text("single")
    password = load_settings(config).smtp.password
    assert password is not None and password.get_secret_value() == "single"


def test_empty_credentials_directory_loads_the_file_alone(config: Path, credentials: Path) -> None:
    (credentials / "relay").unlink()
    settings = load_settings(config)
    assert settings.smtp.password is None
    assert settings.destinations.webhook["helpDesk"].secret is None


def test_environment_still_overrides_a_credential(
    config: Path, credentials: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (credentials / "relay_smtp__password").write_text("from-credential")
    monkeypatch.setenv("RELAY_SMTP__PASSWORD", "from-env")
    password = load_settings(config).smtp.password
    assert password is not None and password.get_secret_value() == "from-env"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        # A subdirectory smtp/password of /etc/relay/credentials (an older layout).
        ("relay_smtp_password", "credential relay_smtp_password in"),
        ("relay_smtpp__password", "'smtpp' is not a settings section"),
        ("relay_smtp__", "not a setting path"),
        ("relay_smtp__pasword", "smtp.pasword: unknown key"),
        # A misspelt destination name would quietly make a destination of its own.
        (
            "relay_destinations__webhook__other__secret",
            r"credential relay_destinations__webhook__other__secret: "
            r"\[destinations.webhook.other\] is not declared",
        ),
        ("relay_destinations__smtp__Billing__password", r"\[destinations.smtp.Billing\]"),
    ],
)
def test_a_file_that_names_no_setting_is_refused(
    config: Path, credentials: Path, name: str, message: str
) -> None:
    (credentials / name).write_text("x")
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings(config)
    assert "x\n" not in str(caught.value)


def test_the_same_setting_twice_is_refused(config: Path, credentials: Path) -> None:
    (credentials / "smtp__password").write_text("one")
    (credentials / "relay_smtp__password").write_text("two")
    with pytest.raises(ConfigError, match="both set smtp__password"):
        load_settings(config)


def test_symbolic_links_and_hidden_files_are_ignored(config: Path, credentials: Path) -> None:
    target = credentials.parent / "elsewhere"
    target.write_text("linked")
    (credentials / "relay_smtp__password").symlink_to(target)
    (credentials / ".relay_slack__token").write_text("hidden")
    settings = load_settings(config)
    assert settings.smtp.password is None
    assert settings.slack.token is None


def test_relay_check_names_the_bad_credential(config: Path, credentials: Path) -> None:
    (credentials / "relay_smtp_password").write_text("x")
    result = CliRunner().invoke(main, ["check", "--config", str(config)])
    assert result.exit_code == 1
    assert "credential relay_smtp_password" in result.output
    assert "smtp__password" in result.output


def test_no_module_state_between_loads(config: Path, credentials: Path) -> None:
    (credentials / "relay_smtp__password").write_text("first")
    first = load_settings(config).smtp.password
    (credentials / "relay_smtp__password").write_text("second")
    second = load_settings(config).smtp.password
    assert first is not None and second is not None
    assert (first.get_secret_value(), second.get_secret_value()) == ("first", "second")


def documented_file_names() -> list[str]:
    """The file names in the secrets table of docs/deploy.md."""
    text = (DOCS / "deploy.md").read_text("utf-8")
    section = text.split("### Secrets\n", 1)[1].split("\n### ", 1)[0]
    rows = [line.split("|") for line in section.splitlines() if line.startswith("| `[")]
    return [name for row in rows for name in re.findall(r"`([^`]+__[^`]+)`", row[2])]


def test_every_file_name_in_the_deploy_guide_sets_its_setting(
    tmp_path: Path, credentials: Path
) -> None:
    names = documented_file_names()
    assert "destinations__webhook__helpdesk__secret" in names
    assert "destinations__smtp__billing__password" in names
    config = tmp_path / "guide.toml"
    config.write_text(
        "[destinations.smtp.billing]\n[destinations.slack.ops]\n[destinations.teams.support]\n"
        '[destinations.webhook.helpdesk]\nurl = "https://h.test/"\n',
        encoding="utf-8",
    )
    expected = {}
    for index, name in enumerate(names):
        expected[name] = f"https://secret.test/{index}" if name.endswith("url") else f"v{index}"
        (credentials / f"relay_{name}").write_text(expected[name])
    settings = load_settings(config)
    for name, value in expected.items():
        got = setting(settings, tuple(name.split("__")))
        assert (got.get_secret_value() if isinstance(got, SecretStr) else got) == value, name


def test_a_missing_credentials_directory_is_named(
    config: Path, credentials: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = credentials.parent / "gone"
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(missing))
    with pytest.raises(ConfigError, match=f"^credentials directory {missing} does not exist$"):
        load_settings(config)


def test_a_credentials_directory_that_is_a_file_is_named(
    config: Path, credentials: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(config))
    with pytest.raises(ConfigError, match=f"^credentials directory {config} cannot be read: "):
        load_settings(config)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "is not a regular file"),  # a directory of that name
        (b"x" * (1024 * 1024 + 1), "is larger than 1048576 bytes"),
        (b"\xff\xfepassword", "is not UTF-8 text"),
    ],
    ids=["directory", "too-large", "not-utf8"],
)
def test_a_credential_that_cannot_be_a_value_is_refused(
    config: Path, credentials: Path, content: bytes | None, problem: str
) -> None:
    file = credentials / "relay_smtp__password"
    if content is None:
        file.mkdir()
    else:
        file.write_bytes(content)
    with pytest.raises(ConfigError) as refused:
        load_settings(config)
    assert str(refused.value) == f"credential {file} {problem}"
