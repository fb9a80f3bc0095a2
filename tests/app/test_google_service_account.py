"""Google Workspace: SMTP XOAUTH2 with a token from a service account's signed JWT assertion,
against a fake token endpoint that checks the signature and claims, and a real aiosmtpd."""

from __future__ import annotations

import json
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from relay.config.settings import SmtpSettings, load_settings
from relay.model.content import EmailContent
from relay.model.errors import ConfigError, PermanentDeliveryError
from relay.senders.google_jwt import ServiceAccountKey, ServiceAccountKeyError
from relay.senders.smtp import SmtpSender
from relay.senders.smtp_pool import SmtpPools
from tests.support.config import to_toml
from tests.support.oauth import FakeTokenEndpoint, ServiceAccount, XOAuth2Handler
from tests.support.smtp import SmtpServer

MAILBOX = "relay@shop.test"
ACCOUNT = "relay-mailer@shop-project.iam.gserviceaccount.com"
GOOGLE_SCOPE = "https://mail.google.com/"


def key_json(key: rsa.RSAPrivateKey, email: str = ACCOUNT) -> str:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return json.dumps(
        {
            "type": "service_account",
            "client_email": email,
            "private_key_id": "key-1",
            "private_key": pem,
            "token_uri": "https://oauth2.googleapis.com/token",
        }
    )


@pytest.fixture(scope="module")
def account_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def google(account_key: rsa.RSAPrivateKey) -> Iterator[tuple[FakeTokenEndpoint, SmtpServer]]:
    endpoint = FakeTokenEndpoint(scope=GOOGLE_SCOPE)
    endpoint.service_account = ServiceAccount(
        ACCOUNT, account_key.public_key(), subject=MAILBOX, scope=GOOGLE_SCOPE
    )
    endpoint.start()
    server = SmtpServer(XOAuth2Handler(endpoint=endpoint, user=MAILBOX), auth_require_tls=False)
    server.start()
    yield endpoint, server
    server.stop()
    endpoint.stop()


def settings(port: int, token_url: str, key: str) -> SmtpSettings:
    return SmtpSettings(
        provider="google",
        host="127.0.0.1",
        port=port,
        security="none",
        username=MAILBOX,
        from_address=f"Relay <{MAILBOX}>",
        oauth2_token_url=token_url,
        oauth2_service_account_key=key,
    )


def message() -> EmailContent:
    mail = EmailMessage()
    mail["From"] = MAILBOX
    mail["To"] = "sales@shop.test"
    mail["Subject"] = "hello"
    mail.set_content("body\n")
    return EmailContent(mail, ("sales@shop.test",))


async def test_a_signed_assertion_gets_the_token_the_server_accepts(
    google: tuple[FakeTokenEndpoint, SmtpServer], account_key: rsa.RSAPrivateKey
) -> None:
    endpoint, server = google
    pools = SmtpPools()  # closed below, as a running relay's sender registry closes its own
    sender = SmtpSender(
        settings(server.port, endpoint.url("/token"), key_json(account_key)), pools=pools
    )
    try:
        await sender.send(message(), delivery_id=1)
    finally:
        await pools.close()
    assert isinstance(server.handler, XOAuth2Handler)
    assert server.handler.logins == ["tok-1"]
    assert len(server.handler.messages) == 1
    [form] = endpoint.requests
    assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert endpoint.service_account is not None
    [claims] = endpoint.service_account.claims
    assert claims["iss"] == ACCOUNT and claims["sub"] == MAILBOX
    assert claims["scope"] == GOOGLE_SCOPE and claims["aud"] == endpoint.url("/token")
    assert claims["exp"] - claims["iat"] == 3600


async def test_another_accounts_key_is_dead_with_googles_words(
    google: tuple[FakeTokenEndpoint, SmtpServer],
) -> None:
    endpoint, server = google
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pools = SmtpPools()  # closed below, as a running relay's sender registry closes its own
    sender = SmtpSender(
        settings(server.port, endpoint.url("/token"), key_json(stranger)), pools=pools
    )
    try:
        with pytest.raises(PermanentDeliveryError, match=r"invalid_grant: Invalid JWT Signature\."):
            await sender.send(message(), delivery_id=1)
    finally:
        await pools.close()
    assert endpoint.issued == []


def test_the_google_preset_with_a_service_account_needs_no_client_secret(
    account_key: rsa.RSAPrivateKey,
) -> None:
    smtp = SmtpSettings(
        provider="google", username=MAILBOX, oauth2_service_account_key=key_json(account_key)
    )
    assert (smtp.host, smtp.auth, smtp.oauth2_token_url) == (
        "smtp.gmail.com",
        "oauth2",
        "https://oauth2.googleapis.com/token",
    )


def test_a_broken_key_is_refused_without_showing_it(tmp_path: Path) -> None:
    config = tmp_path / "relay.toml"
    config.write_text(
        to_toml({"smtp": {"provider": "google", "username": MAILBOX}}), encoding="utf-8"
    )
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    key = credentials / "smtp__oauth2_service_account_key"
    key.write_text("{oops-key", encoding="utf-8")
    with pytest.raises(ConfigError, match="not JSON") as refused:
        load_settings(config, secrets_dir=credentials)
    assert "oops-key" not in str(refused.value)
    key.write_text(
        json.dumps({"client_email": ACCOUNT, "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA"}),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="not a PEM key") as refused:
        load_settings(config, secrets_dir=credentials)
    assert "AAAA" not in str(refused.value)


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("[1, 2]", "the service-account key is not a JSON object"),
        (json.dumps({"client_email": ACCOUNT}), "lacks client_email or private_key"),
        ("ec", "the service-account private_key is not an RSA key"),
    ],
)
def test_a_key_that_is_no_rsa_service_account_key_is_refused(key: str, problem: str) -> None:
    if key == "ec":  # a well-formed PEM key of another kind
        pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        key = json.dumps({"client_email": ACCOUNT, "private_key": pem.decode()})
    with pytest.raises(ServiceAccountKeyError, match=problem):
        ServiceAccountKey.from_json(key)
