"""/healthz and /readyz: a writable store, a running worker and a fresh backlog, or 503."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from litestar.testing import TestClient

from relay.app import build_snapshot, create_app, database_path
from relay.config.settings import Settings
from relay.ops.health import StoreState, evaluate
from relay.runtime import Runtime
from relay.store.opening import postgres_url
from tests.support.app import runtime, wait_settled
from tests.support.data import TOKEN, body, sample
from tests.support.smtp import SmtpServer


def missed() -> bytes:
    data = sample("v1")
    data["channel"]["isMissed"] = True
    return body(data)


def checks(response: Any) -> dict[str, bool]:
    return {name: check["ok"] for name, check in response.json()["checks"].items()}


@pytest.mark.usefixtures("backend")  # on each store
def test_ready_when_all_is_well(make_settings: Callable[..., Settings]) -> None:
    with TestClient(create_app(make_settings())) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {
            "store": {"ok": True, "detail": "writable"},
            "worker": {"ok": True, "detail": "running"},
            "backlog": {
                "ok": True,
                "detail": "fresh",
                "active": 0,
                "oldest_age_seconds": 0.0,
                "max_age_seconds": 900.0,
            },
        },
        "delivery": {
            "mode": "outbox",
            "outbox": [
                "rule 'missed-and-offline-to-sales': actions.0: email to sales@localhost",
                "rule 'low-rated-to-slack': actions.0: slack to #customer-feedback",
            ],
        },
    }


@pytest.mark.usefixtures("backend")  # on each store
def test_not_ready_when_the_worker_is_stopped(make_settings: Callable[..., Settings]) -> None:
    with TestClient(create_app(make_settings())) as client:
        assert client.get("/readyz").status_code == 200
        client.blocking_portal.call(runtime(client).worker.stop, 0.0)
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["status"] == "not_ready"
        assert checks(response) == {"store": True, "worker": False, "backlog": True}
        assert response.json()["checks"]["worker"]["detail"] == "stopped"
        # The process still answers: liveness is not readiness.
        assert client.get("/healthz").status_code == 200


@pytest.mark.usefixtures("backend")  # on each store
def test_not_ready_while_the_backlog_is_stale_and_ready_once_it_drains(
    make_settings: Callable[..., Settings], smtp_server: SmtpServer
) -> None:
    settings = make_settings(
        smtp={"host": "127.0.0.1", "port": smtp_server.port},
        health={"max_backlog_age_seconds": 60},
    )
    handler = smtp_server.handler
    handler.rcpt_replies["sales@localhost"] = "451 4.2.1 mailbox busy, try later"
    with TestClient(create_app(settings)) as client:
        assert client.post(f"/hooks/smartsupp/{TOKEN}", content=missed()).status_code == 200
        fresh = client.get("/readyz")
        assert fresh.status_code == 200, fresh.text
        assert fresh.json()["checks"]["backlog"]["active"] == 1

        # Two minutes later (by the clock readiness reads) the delivery is still not sent.
        runtime(client).clock = lambda: time.time() + 120
        stale = client.get("/readyz")
        assert stale.status_code == 503
        assert checks(stale) == {"store": True, "worker": True, "backlog": False}
        backlog = stale.json()["checks"]["backlog"]
        assert backlog["active"] == 1
        assert backlog["oldest_age_seconds"] >= 120
        assert "limit 60 s" in backlog["detail"]

        # The mail server recovers, the worker delivers, the backlog is empty again.
        with handler.arrived:
            handler.rcpt_replies.clear()
        handler.wait_for(1)
        wait_settled(client)
        assert client.get("/readyz").status_code == 200


@contextlib.contextmanager
def write_lock_held(settings: Settings, backend: str) -> Iterator[None]:
    """Another connection holds what the store's write probe needs: SQLite's write lock, or on
    PostgreSQL the probe's table."""
    if backend == "sqlite":
        other = sqlite3.connect(database_path(settings), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()
        return
    url = postgres_url(settings)
    assert url is not None
    with psycopg.connect(url) as conn, conn.transaction():
        conn.execute("LOCK TABLE health_probe IN EXCLUSIVE MODE")
        yield


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.usefixtures("backend")  # on each store
def test_readiness_follows_the_postgresql_connection(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(health={"probe_timeout_seconds": 5})
    url = postgres_url(settings)
    assert url is not None
    name = urlsplit(url).path.lstrip("/")
    maintenance = urlunsplit(urlsplit(url)._replace(path="/postgres"))

    def allow_connections(allowed: bool) -> None:
        with psycopg.connect(maintenance, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
            if not allowed:  # and the server drops the relay's connections
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (name,),
                )

    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").status_code == 200
        allow_connections(False)
        try:
            response = client.get("/readyz")
            assert response.status_code == 503
            assert checks(response)["store"] is False
            refused = client.post(f"/hooks/smartsupp/{TOKEN}", content=missed())
            assert refused.status_code == 503
        finally:
            allow_connections(True)
        # The next probe opens a new connection: ready again, and intake works.
        assert client.get("/readyz").status_code == 200
        posted = client.post(f"/hooks/smartsupp/{TOKEN}", content=missed())
        assert posted.status_code == 200, posted.text


@pytest.mark.usefixtures("backend")  # on each store
def test_not_ready_when_the_store_cannot_write(
    make_settings: Callable[..., Settings], backend: str
) -> None:
    settings = make_settings(health={"probe_timeout_seconds": 0.5})
    with TestClient(create_app(settings)) as client:
        # Another process holds the database's write lock (as a long `relay purge` would).
        with write_lock_held(settings, backend):
            response = client.get("/readyz")
        assert response.status_code == 503
        assert checks(response) == {"store": False, "worker": True, "backlog": False}
        assert response.json()["checks"]["store"]["detail"] == (
            "the store did not answer within 0.5 s"
        )
        # Once the store thread has finished the probe that waited for the lock: ready.
        client.blocking_portal.call(runtime(client).store.call, lambda store: None)
        assert client.get("/readyz").status_code == 200


@pytest.mark.parametrize(
    ("state", "now", "ready"),
    [
        (StoreState(True, {"pending": 0}, None), 1000.0, True),
        (StoreState(True, {"retrying": 2}, 950.0), 1000.0, True),
        (StoreState(True, {"retrying": 2}, 900.0), 1000.0, False),  # exactly at the limit
        (StoreState(False, {}, None), 1000.0, False),
        ("the store did not answer within 5 s", 1000.0, False),
    ],
)
def test_verdict(state: StoreState | str, now: float, ready: bool) -> None:
    verdict = evaluate(state, worker_running=True, now=now, max_backlog_age=100.0)
    assert verdict.ready is ready
    assert verdict.as_json()["status"] == ("ready" if ready else "not_ready")


async def test_a_relay_not_started_is_not_ready_and_has_no_store_or_worker(
    make_settings: Callable[..., Settings],
) -> None:
    runtime = Runtime(snapshot=build_snapshot(make_settings()))
    verdict = await runtime.readiness()
    assert not verdict.ready
    assert verdict.checks["store"].detail == "the store is not open"
    assert verdict.checks["worker"].detail == "stopped"
    with pytest.raises(RuntimeError, match=r"^the store is not open \(app not started\)$"):
        _ = runtime.store
    with pytest.raises(RuntimeError, match=r"^the worker is not running \(app not started\)$"):
        _ = runtime.worker
