"""Permanent SMTP failures a retry cannot fix: refused credentials, an unverifiable certificate."""

from __future__ import annotations

import json
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from litestar.testing import TestClient

from relay.app import create_app
from relay.settings import Settings
from tests.conftest import TOKEN, sample
from tests.support.app import wait_settled
from tests.support.smtp import RecordingHandler, free_port
from tests.support.store import deliveries


def missed() -> bytes:
    data = sample("v1")
    data["channel"]["isMissed"] = True
    return json.dumps(data).encode()


def refuse_everyone(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    return AuthResult(success=False, handled=False)


@pytest.fixture
def auth_smtp() -> Iterator[tuple[int, RecordingHandler]]:
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=refuse_everyone,
        auth_require_tls=False,
    )
    controller.start()
    yield port, handler
    controller.stop()


def test_refused_credentials_are_permanent(
    make_settings: Callable[..., Settings], auth_smtp: tuple[int, RecordingHandler]
) -> None:
    port, handler = auth_smtp
    settings = make_settings(
        smtp={"host": "127.0.0.1", "port": port, "username": "relay", "password": "wrong"}
    )
    with TestClient(create_app(settings)) as client:
        client.post(f"/hooks/smartsupp/{TOKEN}", content=missed())
        wait_settled(client)
    [row] = deliveries(settings)
    assert (row.status, row.attempts) == ("dead", 1)
    assert row.last_error is not None
    assert row.last_error.startswith("SMTP authentication failed: 535")
    assert handler.messages == []


@pytest.fixture
def self_signed_tls_smtp(tmp_path: Path) -> Iterator[int]:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    port = free_port()
    controller = Controller(
        RecordingHandler(), hostname="127.0.0.1", port=port, ssl_context=context
    )
    controller.start()
    yield port
    controller.stop()


def test_an_unverifiable_certificate_is_permanent(
    make_settings: Callable[..., Settings], self_signed_tls_smtp: int
) -> None:
    settings = make_settings(
        smtp={"host": "127.0.0.1", "port": self_signed_tls_smtp, "security": "tls"}
    )
    with TestClient(create_app(settings)) as client:
        client.post(f"/hooks/smartsupp/{TOKEN}", content=missed())
        wait_settled(client)
    [row] = deliveries(settings)
    assert (row.status, row.attempts) == ("dead", 1)
    assert row.last_error is not None
    assert row.last_error.startswith("TLS certificate verification failed")
