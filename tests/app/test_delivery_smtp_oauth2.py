"""SMTP AUTH XOAUTH2 against a real aiosmtpd server and a fake token endpoint on loopback."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from relay.app import create_app
from relay.config.settings import Settings, SmtpSettings, load_settings
from relay.model.content import EmailContent
from relay.model.errors import (
    DeliveryConnectionError,
    DeliveryTimeout,
    PermanentDeliveryError,
    RateLimited,
    TransientDeliveryError,
)
from relay.senders.oauth2 import ClientCredentials, TokenCache, parse_token, token_failure
from relay.senders.smtp import SmtpSender
from relay.senders.smtp_oauth2 import xoauth2_string
from relay.senders.smtp_pool import SmtpPools
from tests.support.app import wait_settled
from tests.support.config import to_toml
from tests.support.data import TOKEN, base_sections, sample
from tests.support.oauth import (
    CLIENT_ID,
    CLIENT_SECRET,
    SCOPE,
    FakeTokenEndpoint,
    Refusal,
    XOAuth2Handler,
)
from tests.support.smtp import SmtpServer
from tests.support.store import deliveries

HOOK = f"/hooks/smartsupp/{TOKEN}"
MAILBOX = "relay@shop.test"


@pytest.fixture
def token_endpoint() -> Iterator[FakeTokenEndpoint]:
    endpoint = FakeTokenEndpoint()
    endpoint.start()
    yield endpoint
    endpoint.stop()


@pytest.fixture
def oauth_server(token_endpoint: FakeTokenEndpoint) -> Iterator[SmtpServer]:
    server = SmtpServer(
        XOAuth2Handler(endpoint=token_endpoint, user=MAILBOX), auth_require_tls=False
    )
    server.start()
    yield server
    server.stop()


def handler(server: SmtpServer) -> XOAuth2Handler:
    assert isinstance(server.handler, XOAuth2Handler)
    return server.handler


def smtp_section(port: int, token_url: str) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": port,
        "from_address": f"Relay <{MAILBOX}>",
        "username": MAILBOX,
        "auth": "oauth2",
        "oauth2_token_url": token_url,
        "oauth2_client_id": CLIENT_ID,
        "oauth2_scope": SCOPE,
    }


def oauth_settings(tmp_path: Path, port: int, token_url: str, secret: str) -> Settings:
    """Settings with the client secret in a credentials file, as a service install keeps it."""
    sections = base_sections(tmp_path / "state")
    sections["smtp"] = smtp_section(port, token_url)
    sections["routing"] = {"sales_inbox": "sales@shop.test"}
    path = tmp_path / "relay.toml"
    path.write_text(to_toml(sections), encoding="utf-8")
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "smtp__oauth2_client_secret").write_text(secret + "\n", encoding="utf-8")
    return load_settings(path, secrets_dir=credentials)


def missed() -> bytes:
    data = sample("v1")
    data["channel"]["isMissed"] = True
    return json.dumps(data).encode()


def test_xoauth2_login_with_the_endpoints_token_delivers(
    tmp_path: Path, token_endpoint: FakeTokenEndpoint, oauth_server: SmtpServer
) -> None:
    settings = oauth_settings(tmp_path, oauth_server.port, token_endpoint.url(), CLIENT_SECRET)
    assert settings.smtp.oauth2_client_secret is not None
    with TestClient(create_app(settings)) as client:
        assert client.post(HOOK, content=missed()).status_code == 200
        handler(oauth_server).wait_for(1)
        wait_settled(client)
    [row] = deliveries(settings)
    assert (row.status, row.last_error) == ("sent", None)
    assert handler(oauth_server).logins == ["tok-1"]
    assert [m.rcpt_tos for m in handler(oauth_server).messages] == [["sales@shop.test"]]
    [form] = token_endpoint.requests
    assert form == {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scope": SCOPE,
    }
    assert token_endpoint.paths == ["/tenant-1/oauth2/v2.0/token"]


def test_invalid_client_is_dead_with_the_endpoints_words(
    tmp_path: Path, token_endpoint: FakeTokenEndpoint, oauth_server: SmtpServer
) -> None:
    settings = oauth_settings(tmp_path, oauth_server.port, token_endpoint.url(), "wrong")
    with TestClient(create_app(settings)) as client:
        assert client.post(HOOK, content=missed()).status_code == 200
        wait_settled(client)
    [row] = deliveries(settings)
    assert row.status == "dead"
    assert row.attempts == 1
    assert row.last_error is not None
    assert "invalid_client" in row.last_error
    assert "AADSTS7000215: Invalid client secret provided." in row.last_error
    assert "wrong" not in row.last_error
    assert handler(oauth_server).messages == []
    assert handler(oauth_server).logins == []


def test_an_unavailable_token_endpoint_is_retried_then_delivered_once(
    tmp_path: Path, token_endpoint: FakeTokenEndpoint, oauth_server: SmtpServer
) -> None:
    token_endpoint.refusals = [
        Refusal(503, {"error": "temporarily_unavailable", "error_description": "busy"}),
        Refusal(500, {}),
    ]
    settings = oauth_settings(tmp_path, oauth_server.port, token_endpoint.url(), CLIENT_SECRET)
    with TestClient(create_app(settings)) as client:
        assert client.post(HOOK, content=missed()).status_code == 200
        handler(oauth_server).wait_for(1)
        wait_settled(client)
    [row] = deliveries(settings)
    assert (row.status, row.attempts) == ("sent", 3)
    assert len(handler(oauth_server).messages) == 1


def message(n: int) -> EmailContent:
    mail = EmailMessage()
    mail["From"] = MAILBOX
    mail["To"] = "sales@shop.test"
    mail["Subject"] = f"message {n}"
    mail.set_content(f"body {n}\n")
    return EmailContent(mail, ("sales@shop.test",))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_expiry_mid_run_fetches_a_new_token_and_each_message_arrives_once(
    token_endpoint: FakeTokenEndpoint, oauth_server: SmtpServer
) -> None:
    settings = SmtpSettings(
        **smtp_section(oauth_server.port, token_endpoint.url()), oauth2_client_secret=CLIENT_SECRET
    )
    clock = Clock()
    # No idle connections kept: every send connects and logs in again.
    pools = SmtpPools()  # closed below, as a running relay's sender registry closes its own
    sender = SmtpSender(settings, pool_size=0, clock=clock, pools=pools)
    server = handler(oauth_server)
    try:
        await sender.send(message(1), delivery_id=1)
        await sender.send(message(2), delivery_id=2)
        assert server.logins == ["tok-1", "tok-1"]  # cached, not fetched again
        clock.now += token_endpoint.expires_in  # past the token's lifetime
        await sender.send(message(3), delivery_id=3)
        assert server.logins[-1] == "tok-2"
        # The server ends tok-2 early (its own idea of expiry): a 535, then a fresh token.
        token_endpoint.revoke("tok-2")
        await sender.send(message(4), delivery_id=4)
    finally:
        await pools.close()
    assert server.refused_tokens == ["tok-2"]
    assert server.logins == ["tok-1", "tok-1", "tok-2", "tok-3"]
    assert token_endpoint.issued == ["tok-1", "tok-2", "tok-3"]
    subjects = [m.message["Subject"] for m in server.messages]
    assert subjects == ["message 1", "message 2", "message 3", "message 4"]


async def test_a_token_the_server_keeps_refusing_is_a_permanent_auth_failure(
    token_endpoint: FakeTokenEndpoint, oauth_server: SmtpServer
) -> None:
    settings = SmtpSettings(
        **{**smtp_section(oauth_server.port, token_endpoint.url()), "username": "other@shop.test"},
        oauth2_client_secret=CLIENT_SECRET,
    )
    pools = SmtpPools()  # closed below, as a running relay's sender registry closes its own
    sender = SmtpSender(settings, pool_size=0, pools=pools)
    try:
        with pytest.raises(
            PermanentDeliveryError, match=re.escape("535 5.7.3 Authentication unsuccessful")
        ):
            await sender.send(message(1), delivery_id=1)
    finally:
        await pools.close()
    assert token_endpoint.issued == ["tok-1", "tok-2"]  # refreshed once, then given up
    assert handler(oauth_server).messages == []


async def test_a_token_endpoint_that_never_answers_is_a_transient_timeout() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        cache = TokenCache(
            ClientCredentials(f"http://127.0.0.1:{port}/token", CLIENT_ID, CLIENT_SECRET, SCOPE),
            timeout_seconds=0.2,
        )
        with pytest.raises(DeliveryTimeout, match="timed out"):
            await cache.token()


async def test_an_unreachable_token_endpoint_is_a_transient_connection_failure() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    cache = TokenCache(
        ClientCredentials(f"http://127.0.0.1:{port}/token", CLIENT_ID, CLIENT_SECRET, SCOPE),
        timeout_seconds=5,
    )
    with pytest.raises(DeliveryConnectionError, match=r"/token connection failed: ConnectError"):
        await cache.token()


def test_token_endpoint_errors_are_sorted_as_rfc_6749_says() -> None:
    def body(error: str, description: str = "") -> bytes:
        return json.dumps({"error": error, "error_description": description}).encode()

    for error in ("invalid_client", "unauthorized_client", "invalid_grant", "invalid_scope"):
        failure = token_failure(400, body(error, f"AADSTS1: {error}\r\nTrace ID: 1"), None)
        assert isinstance(failure, PermanentDeliveryError)
        assert failure.message.endswith(f"{error}: AADSTS1: {error} Trace ID: 1")
    limited = token_failure(429, body("too_many"), "17", now=0.0)
    assert isinstance(limited, RateLimited) and limited.retry_after == 17.0
    for status, data in ((500, b""), (503, body("temporarily_unavailable")), (502, b"<html>")):
        failure = token_failure(status, data, None)
        assert isinstance(failure, TransientDeliveryError)
        assert not isinstance(failure, PermanentDeliveryError)
    unavailable = token_failure(400, body("temporarily_unavailable"), None)
    assert isinstance(unavailable, TransientDeliveryError)
    assert not isinstance(unavailable, PermanentDeliveryError)
    assert isinstance(token_failure(403, b"<html>", None), PermanentDeliveryError)
    assert isinstance(token_failure(200, b"<html>", None), TransientDeliveryError)


def test_token_lifetimes_are_renewed_before_they_end() -> None:
    token = parse_token(b'{"access_token": "a", "expires_in": 3599}', 100.0)
    assert token is not None
    assert (token.value, token.expires_at, token.refresh_at) == ("a", 3699.0, 3399.0)
    short = parse_token(b'{"access_token": "b", "expires_in": "60"}', 0.0)
    assert short is not None and short.refresh_at == 30.0
    assert parse_token(b'{"token_type": "Bearer"}', 0.0) is None
    assert parse_token(b"not json", 0.0) is None
    # A lifetime that is no number: the usual hour.
    vague = parse_token(b'{"access_token": "c", "expires_in": "soon"}', 0.0)
    assert vague is not None and vague.expires_at == 3600.0


def test_the_xoauth2_string_is_the_documented_sasl_format() -> None:
    # The example of Google's XOAUTH2 protocol page, encoded.
    assert xoauth2_string(
        "someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"
    ) == (
        b"dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52"
        b"YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
    )


def test_oauth2_settings_are_complete_and_without_a_password() -> None:
    with pytest.raises(ValueError, match="oauth2_client_secret"):
        SmtpSettings(**smtp_section(25, "https://login.example/token"))
    with pytest.raises(ValueError, match="remove password"):
        SmtpSettings(
            **smtp_section(25, "https://login.example/token"),
            oauth2_client_secret="x",
            password="p",
        )


async def test_a_server_without_xoauth2_is_a_permanent_failure(
    token_endpoint: FakeTokenEndpoint, smtp_server: SmtpServer
) -> None:
    # The plain aiosmtpd offers no AUTH at all: the settings cannot work with it.
    settings = SmtpSettings(
        **smtp_section(smtp_server.port, token_endpoint.url()), oauth2_client_secret=CLIENT_SECRET
    )
    pools = SmtpPools()
    try:
        with pytest.raises(PermanentDeliveryError) as refused:
            await SmtpSender(settings, pools=pools).send(message(1), delivery_id=1)
    finally:
        await pools.close()
    assert refused.value.message == (
        "SMTP server cannot do what the settings require:"
        " auth = oauth2 but the server does not offer AUTH XOAUTH2"
    )
    assert token_endpoint.issued == []  # no token is fetched for a server that cannot take it
    assert smtp_server.handler.messages == []
