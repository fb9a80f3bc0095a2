"""Shared fixtures: real SMTP and fake Slack servers on loopback, settings, sample bodies."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from relay.config.settings import Settings
from relay.store.storethread import StoreThread
from tests.support.data import TOKEN, base_sections, body, sample  # noqa: F401
from tests.support.slack import FakeSlack
from tests.support.smtp import RecordingHandler, SmtpServer
from tests.support.store import BACKENDS, StoreOpener

if TYPE_CHECKING:
    from tests.support.postgres import PostgresServer


@pytest.fixture
def smtp_handler() -> RecordingHandler:
    return RecordingHandler()


@pytest.fixture
def smtp_server(smtp_handler: RecordingHandler) -> Iterator[SmtpServer]:
    server = SmtpServer(smtp_handler)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    slack = FakeSlack()
    slack.start()
    yield slack
    slack.stop()


@pytest.fixture
def make_settings(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[..., Settings]:
    """Settings with a temp state dir; keyword sections override (e.g. smtp={...}). In a test
    that uses the ``backend`` fixture, the store is that backend's (a fresh PostgreSQL
    database for "postgresql")."""
    url = None
    if "backend" in request.fixturenames and request.getfixturevalue("backend") == "postgresql":
        url = str(request.getfixturevalue("postgres_url"))

    def make(**sections: Any) -> Settings:
        data: dict[str, Any] = base_sections(tmp_path / "state")
        if url is not None:
            data["storage"]["url"] = url
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return Settings(**data)

    return make


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The store's engine: every test that uses this (or a fixture built on it) runs on both.
    A test for one engine only says so: @pytest.mark.parametrize("backend", ["sqlite"],
    indirect=True)."""
    return str(request.param)


@pytest.fixture
def storage_section(backend: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The [storage] keys that select ``backend``: none for SQLite, the URL of a fresh
    PostgreSQL database (for tests that write a config file rather than use make_settings)."""
    if backend == "postgresql":
        return {"url": str(request.getfixturevalue("postgres_url"))}
    return {}


@pytest.fixture
def open_test_store(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[StoreOpener]:
    """Opens stores on one fresh database of ``backend``: each call a new connection to the
    same data (another relay, or an operator's look). Every one is closed at the end."""
    url = str(request.getfixturevalue("postgres_url")) if backend == "postgresql" else None
    opener = StoreOpener(tmp_path / "relay.db", url)
    yield opener
    opener.close_all()


@pytest.fixture
def store_thread(open_test_store: StoreOpener) -> Iterator[StoreThread]:
    """The store thread over a fresh database (of each backend), without an app around it."""
    thread = StoreThread(open_test_store())
    yield thread
    thread.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (tests/support/postgres.py)."""
    from tests.support.postgres import postgres_server  # noqa: PLC0415 - psycopg only when used

    with postgres_server() as server:
        yield server


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    """The URL of a fresh, empty database on the session's server."""
    return postgres.fresh_database()


def pytest_report_header() -> str:
    """Name the lock file the environment was installed from, and whether it still matches."""
    from tests.support.lock import check  # noqa: PLC0415 - only for the header

    return check().header()
