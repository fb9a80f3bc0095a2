"""Email over STARTTLS with AUTH and over implicit TLS, each against a real aiosmtpd server
whose certificate is trusted through ``smtp.ca_file``."""

from __future__ import annotations

import json
import ssl
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from litestar.testing import TestClient

from relay.app import create_app
from relay.config.settings import Settings
from tests.support.app import wait_settled
from tests.support.data import TOKEN, sample
from tests.support.smtp import RecordingHandler, free_port
from tests.support.store import deliveries


def missed() -> bytes:
    data = sample("v1")
    data["channel"]["isMissed"] = True
    return json.dumps(data).encode()


@dataclass
class SessionRecordingHandler(RecordingHandler):
    """Also notes, per accepted message, whether TLS was on and who logged in."""

    sessions: list[tuple[bool, bytes | None]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        # STARTTLS records the TLS details on the session; implicit TLS on the transport.
        tls = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
        self.sessions.append((tls, login))
        return await super().handle_DATA(server, session, envelope)


def accept_relay_user(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"relay", b"s3cret")
    return AuthResult(success=ok, auth_data=data)


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return key, cert


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    key, cert = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@pytest.fixture
def starttls_smtp(certificate: tuple[Path, Path]) -> Iterator[tuple[int, SessionRecordingHandler]]:
    handler = SessionRecordingHandler()
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        tls_context=server_context(certificate),
        require_starttls=True,
        authenticator=accept_relay_user,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    yield port, handler
    controller.stop()


@pytest.fixture
def implicit_tls_smtp(
    certificate: tuple[Path, Path],
) -> Iterator[tuple[int, SessionRecordingHandler]]:
    handler = SessionRecordingHandler()
    port = free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, ssl_context=server_context(certificate)
    )
    controller.start()
    yield port, handler
    controller.stop()


def deliver(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        assert client.post(f"/hooks/smartsupp/{TOKEN}", content=missed()).status_code == 200
        wait_settled(client)


def test_starttls_with_auth_delivers(
    make_settings: Callable[..., Settings],
    starttls_smtp: tuple[int, SessionRecordingHandler],
    certificate: tuple[Path, Path],
) -> None:
    port, handler = starttls_smtp
    settings = make_settings(
        smtp={
            "host": "127.0.0.1", "port": port, "security": "starttls",
            "username": "relay", "password": "s3cret", "ca_file": str(certificate[1]),
        }
    )  # fmt: skip
    deliver(settings)
    assert [row.status for row in deliveries(settings)] == ["sent"]
    assert len(handler.messages) == 1
    assert handler.sessions == [(True, b"relay")]


def test_implicit_tls_delivers(
    make_settings: Callable[..., Settings],
    implicit_tls_smtp: tuple[int, SessionRecordingHandler],
    certificate: tuple[Path, Path],
) -> None:
    port, handler = implicit_tls_smtp
    settings = make_settings(
        smtp={"host": "127.0.0.1", "port": port, "security": "tls", "ca_file": str(certificate[1])}
    )
    deliver(settings)
    assert [row.status for row in deliveries(settings)] == ["sent"]
    assert handler.sessions == [(True, None)]


def test_plain_smtp_to_a_server_that_requires_starttls_is_dead_with_its_reply(
    make_settings: Callable[..., Settings], starttls_smtp: tuple[int, SessionRecordingHandler]
) -> None:
    port, handler = starttls_smtp
    settings = make_settings(smtp={"host": "127.0.0.1", "port": port, "security": "none"})
    deliver(settings)
    [row] = deliveries(settings)
    assert (row.status, row.attempts) == ("dead", 1)
    assert row.last_error is not None
    assert "530" in row.last_error
    assert handler.messages == []
