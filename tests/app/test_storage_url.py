"""[storage] url: SQLite by default, PostgreSQL by URL, the password from a credentials file."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from click.testing import CliRunner

from relay.cli import main
from relay.config.settings import load_settings
from relay.model.errors import ConfigError
from relay.store import Store
from relay.store.opening import describe, open_store
from relay.store.postgres import PostgresStore


def config(tmp_path: Path, storage: str = "") -> Path:
    path = tmp_path / "relay.toml"
    path.write_text(f'[storage]\nstate_dir = "{tmp_path / "state"}"\n{storage}', encoding="utf-8")
    return path


@pytest.mark.parametrize("line", ["", 'url = "sqlite:"'])
def test_no_url_or_sqlite_is_the_sqlite_file_in_the_state_dir(tmp_path: Path, line: str) -> None:
    settings = load_settings(config(tmp_path, line), secrets_dir=tmp_path)
    store = open_store(settings)
    try:
        assert isinstance(store, Store)
        assert store.path == tmp_path / "state" / "relay.db"
    finally:
        store.close()


def test_an_unknown_engine_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"storage\.url.*postgresql://"):
        load_settings(config(tmp_path, 'url = "mysql://db/relay"'), secrets_dir=tmp_path)


def test_the_password_comes_from_the_credentials_directory(
    tmp_path: Path, postgres_url: str
) -> None:
    parts = urlsplit(postgres_url)
    assert parts.password is not None
    bare = urlunsplit(parts._replace(netloc=f"{parts.username}@{parts.hostname}:{parts.port}"))
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "storage__password").write_text(parts.password + "\n")
    settings = load_settings(config(tmp_path, f'url = "{bare}"'), secrets_dir=credentials)
    store = open_store(settings, relay=True)
    try:
        assert isinstance(store, PostgresStore)
        assert store.writable()
        # The relay's name in the shared queue is kept in its state directory.
        assert store.holder == (tmp_path / "state" / "relay-id").read_text().strip()
    finally:
        store.close()
    assert parts.password not in describe(settings)


def test_the_whole_url_can_be_a_credential(tmp_path: Path, postgres_url: str) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "storage__url").write_text(postgres_url)
    settings = load_settings(config(tmp_path), secrets_dir=credentials)
    store = open_store(settings)
    try:
        assert isinstance(store, PostgresStore)
        assert store.writable()
    finally:
        store.close()


def test_the_cli_reads_the_postgresql_store(tmp_path: Path, postgres_url: str) -> None:
    path = config(tmp_path, f'url = "{postgres_url}"')
    PostgresStore(postgres_url).close()
    result = CliRunner().invoke(main, ["queue", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "pending" in result.output


def test_an_unreachable_database_is_named_without_its_password(tmp_path: Path) -> None:
    url = "postgresql://relay:s3cret@127.0.0.1:9/relay?connect_timeout=2"
    result = CliRunner().invoke(
        main, ["queue", "--config", str(config(tmp_path, f'url = "{url}"'))]
    )
    assert result.exit_code != 0
    assert "cannot be opened" in result.output
    assert "127.0.0.1:9" in result.output
    assert "s3cret" not in result.output


def test_a_lease_no_longer_than_a_send_deadline_is_refused(tmp_path: Path) -> None:
    """On PostgreSQL a claim is a lease: one that can expire while a send is still within its
    deadline hands the delivery to another relay, and it goes out twice. `relay check` and
    the relay itself refuse it, naming the longest deadline; SQLite has no leases."""
    from relay.app import build_snapshot  # noqa: PLC0415

    url = 'url = "postgresql://relay@127.0.0.1:1/relay"\n'
    smtp = '[smtp]\nhost = "127.0.0.1"\ntimeout_seconds = 30\n'
    short = config(tmp_path, url + "lease_seconds = 30\n" + smtp)
    checked = CliRunner().invoke(main, ["check", "--config", str(short)])
    assert checked.exit_code == 1
    expected = (
        "storage.lease_seconds (30) must be longer than the longest send deadline (email: 30 s)"
    )
    assert expected in checked.output
    with pytest.raises(ConfigError, match=r"^storage\.lease_seconds \(30\) must be longer"):
        build_snapshot(load_settings(short, secrets_dir=tmp_path))
    longer = config(tmp_path, url + "lease_seconds = 31\n" + smtp)
    assert CliRunner().invoke(main, ["check", "--config", str(longer)]).exit_code == 0
    build_snapshot(load_settings(longer, secrets_dir=tmp_path))
    on_sqlite = config(tmp_path, "lease_seconds = 1\n" + smtp)
    assert CliRunner().invoke(main, ["check", "--config", str(on_sqlite)]).exit_code == 0


def test_a_slack_escalation_counts_among_the_send_deadlines(tmp_path: Path) -> None:
    """Follow-up escalations to a Slack channel ("#sales") are sent by the Slack destination
    even where no rule uses it: its deadline bounds the lease like any other."""
    from relay.app import build_snapshot  # noqa: PLC0415

    storage = 'url = "postgresql://relay@127.0.0.1:1/relay"\nlease_seconds = 40\n'
    smtp = '[smtp]\nhost = "127.0.0.1"\ntimeout_seconds = 30\n'
    slack = '[slack]\ntoken = "xoxb-test"\ntimeout_seconds = 60\n'
    rules = '[[rules]]\nname = "all"\nactions = [{ type = "email", to = ["sales@shop.test"] }]\n'
    follow_up = (
        '[follow_up]\nenabled = true\npublic_url = "https://relay.shop.test"\n'
        'escalate_after_seconds = 600\nescalate_to = ["#sales"]\n'
    )
    path = config(tmp_path, storage + smtp + slack + follow_up + rules)
    checked = CliRunner().invoke(main, ["check", "--config", str(path)])
    expected = (
        "storage.lease_seconds (40) must be longer than the longest send deadline (slack: 60 s)"
    )
    assert checked.exit_code == 1, checked.output
    assert expected in checked.output
    with pytest.raises(ConfigError, match=r"\(slack: 60 s\)"):
        build_snapshot(load_settings(path, secrets_dir=tmp_path))
