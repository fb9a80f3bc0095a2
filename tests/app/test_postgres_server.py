"""The PostgreSQL the store tests run on, and the building blocks the PostgreSQL store uses:
durable commits, separate databases, row locks skipped by other workers, no root server."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest
from psycopg import errors

from relay.store.pgconnect import connect, redacted
from tests.support.postgres import PostgresServer, server_bindir, unavailable, with_database


def test_connect_gives_a_transaction_with_synchronous_commit(postgres_url: str) -> None:
    with connect(f"{postgres_url}?application_name=relay-test") as connection:
        assert connection.autocommit is False
        assert connection.info.get_parameters()["connect_timeout"] == "10"
        assert connection.execute("SHOW application_name").fetchone() == ("relay-test",)
        assert connection.execute("SHOW synchronous_commit").fetchone() == ("on",)
        assert connection.execute("SHOW fsync").fetchone() == ("on",)
        connection.execute("CREATE TABLE kept (id integer PRIMARY KEY)")
        assert connection.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        connection.rollback()
        assert connection.execute("SELECT to_regclass('kept')").fetchone() == (None,)
    with connect(f"{postgres_url}?connect_timeout=3") as connection:
        assert connection.info.get_parameters()["connect_timeout"] == "3"


def test_synchronous_commit_holds_against_a_database_default_of_off(
    postgres: PostgresServer, postgres_url: str
) -> None:
    name = postgres_url.rsplit("/", 1)[1]
    with psycopg.connect(postgres.url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    with psycopg.connect(postgres_url) as plain:
        assert plain.execute("SHOW synchronous_commit").fetchone() == ("off",)
    with connect(postgres_url) as connection:
        assert connection.execute("SHOW synchronous_commit").fetchone() == ("on",)


def test_committed_rows_are_seen_by_a_new_connection(postgres_url: str) -> None:
    with connect(postgres_url) as writer:
        writer.execute("CREATE TABLE notes (id integer PRIMARY KEY, body text NOT NULL)")
        writer.execute("INSERT INTO notes VALUES (1, 'kept')")
        writer.commit()
    with connect(postgres_url) as reader:
        assert reader.execute("SELECT body FROM notes").fetchall() == [("kept",)]


def test_fresh_databases_are_empty_and_independent(postgres: PostgresServer) -> None:
    first, second = postgres.fresh_database(), postgres.fresh_database()
    assert first != second
    with connect(first) as connection:
        connection.execute("CREATE TABLE only_here (id integer)")
        connection.commit()
    with connect(second) as connection:
        assert connection.execute("SELECT to_regclass('only_here')").fetchone() == (None,)
        tables = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        assert tables == (0,)


def test_a_row_locked_by_one_connection_is_skipped_by_another(postgres_url: str) -> None:
    claim = "SELECT id FROM queue WHERE NOT done ORDER BY due, id LIMIT 1 FOR UPDATE SKIP LOCKED"
    with connect(postgres_url) as setup:
        setup.execute("CREATE TABLE queue (id integer PRIMARY KEY, due integer, done boolean)")
        setup.execute("INSERT INTO queue VALUES (1, 10, false), (2, 20, false), (3, 30, false)")
        setup.commit()
    with connect(postgres_url) as first, connect(postgres_url) as second:
        # A bound for the case the lock is not skipped: the test fails instead of hanging.
        second.execute("SET lock_timeout = '10s'")
        second.commit()
        assert first.execute(claim).fetchone() == (1,)  # held until first's transaction ends
        assert second.execute(claim).fetchone() == (2,)
        with pytest.raises(errors.LockNotAvailable):
            second.execute("SELECT id FROM queue WHERE id = 1 FOR UPDATE NOWAIT")
        second.rollback()  # releases row 2; row 1 is still held by first
        assert second.execute(claim).fetchone() == (2,)
        second.rollback()
        first.execute("UPDATE queue SET done = true WHERE id = 1")
        first.commit()
        assert second.execute(claim).fetchone() == (2,)
        assert second.execute("SELECT id FROM queue WHERE done").fetchall() == [(1,)]
        second.rollback()


def test_the_server_does_not_run_as_root(postgres: PostgresServer) -> None:
    if not postgres.local:
        pytest.skip("the server named by RELAY_TEST_POSTGRES_URL runs elsewhere")
    assert postgres.data_dir is not None and postgres.run_as is not None
    with psycopg.connect(postgres.url) as connection:
        row = connection.execute(
            "SELECT pg_backend_pid(), current_setting('data_directory')"
        ).fetchone()
        assert row is not None
        pid, data_directory = row
        postmaster = int((postgres.data_dir / "postmaster.pid").read_text().split()[0])
        # Read while connected: the backend process ends with its connection.
        for process in (pid, postmaster):
            status = Path(f"/proc/{process}/status").read_text()
            uids = next(line for line in status.splitlines() if line.startswith("Uid:"))
            assert {int(uid) for uid in uids.split()[1:]} == {postgres.run_as.uid}, uids
    assert Path(data_directory) == postgres.data_dir
    assert postgres.data_dir.stat().st_uid == postgres.run_as.uid
    if os.geteuid() == 0:
        assert postgres.run_as.name == "postgres"
        assert postgres.run_as.uid != 0


def test_the_server_listens_on_loopback_and_in_its_own_directory(
    postgres: PostgresServer,
) -> None:
    if not postgres.local:
        pytest.skip("the server named by RELAY_TEST_POSTGRES_URL is configured elsewhere")
    assert postgres.data_dir is not None
    with psycopg.connect(postgres.url) as connection:
        listen = connection.execute("SHOW listen_addresses").fetchone()
        sockets = connection.execute("SHOW unix_socket_directories").fetchone()
    assert listen == ("127.0.0.1",)
    assert sockets == (str(postgres.data_dir.parent),)


def test_urls_are_shown_without_their_password() -> None:
    url = "postgresql://relay:s3cret%2Fpw@db.example:5432/relay?sslmode=require&password=other"
    shown = redacted(url)
    assert "s3cret" not in shown and "other" not in shown
    assert shown == "postgresql://relay:***@db.example:5432/relay?sslmode=require&password=***"
    assert with_database(url, "other_db").startswith("postgresql://relay:s3cret%2Fpw@db.example")
    assert with_database(url, "other_db").split("?")[0].endswith("/other_db")


def test_server_binaries_are_found_outside_pg_configs_directory(tmp_path: Path) -> None:
    """Debian's pg_config names the client directory; the server is under its version."""
    client = tmp_path / "usr" / "bin"
    root = tmp_path / "usr" / "lib" / "postgresql"
    for directory, names in (
        (client, ("pg_config", "psql")),
        (root / "9.6" / "bin", ("initdb", "pg_ctl", "postgres")),
        (root / "15" / "bin", ("initdb", "pg_ctl", "postgres")),
        (root / "16" / "bin", ("initdb", "pg_ctl")),  # incomplete: no server binary
    ):
        directory.mkdir(parents=True)
        for name in names:
            (directory / name).write_text("#!/bin/sh\n")
            (directory / name).chmod(0o755)
    assert server_bindir(str(client), [root]) == root / "15" / "bin"
    assert server_bindir(str(root / "9.6" / "bin"), [root]) == root / "9.6" / "bin"
    assert server_bindir(None, [tmp_path / "missing"]) is None


def test_a_missing_server_fails_under_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required under CI: no binaries"):
        unavailable("no binaries")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="no binaries"):
        unavailable("no binaries")
