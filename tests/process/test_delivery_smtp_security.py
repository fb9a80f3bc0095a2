"""Permanent SMTP failures a retry cannot fix: refused credentials, an unverifiable certificate;
encoded words in visitor data that would forge headers (CVE-2024-6923) are inert or refused."""

from __future__ import annotations

import asyncio
import email.policy
import json
import ssl
import subprocess
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from litestar.testing import TestClient

from relay.app import create_app
from relay.config.settings import Settings
from relay.model.content import EmailContent
from relay.model.errors import PermanentDeliveryError
from relay.senders.outbox import OutboxSender
from relay.senders.smtp import SmtpSender
from relay.senders.smtp_pool import SmtpPools
from tests.support.app import wait_settled
from tests.support.data import TOKEN, sample
from tests.support.smtp import RecordingHandler, SmtpServer, free_port
from tests.support.store import deliveries

# RFC 2047 encoded words that decode to CR LF and a header line. On interpreters with
# CVE-2024-6923 (3.11 before 3.11.10, 3.12 before 3.12.5) the email package writes them out
# decoded, as real header lines, when the message is flattened.
FORGED_FROM = "=?utf-8?q?Eve=0D=0AFrom:_CEO_<ceo@example.com>?="
FORGED_BCC = "=?utf-8?q?x=0D=0ABcc:_v@evil.test?="
# A first email about the visitor: no In-Reply-To or References (no earlier email was sent).
SENT_HEADERS = [
    "from", "to", "reply-to", "subject", "date", "message-id",
    "auto-submitted", "x-auto-response-suppress", "content-type", "mime-version",
]  # fmt: skip


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


def header_names(data: bytes) -> list[str]:
    """The field names of the header block of ``data``, in order (continuations skipped)."""
    block = data.split(b"\r\n\r\n", 1)[0]
    return [
        line.split(b":", 1)[0].decode("ascii", "replace").lower()
        for line in block.split(b"\r\n")
        if line[:1] not in (b" ", b"\t")
    ]


def test_encoded_words_in_visitor_data_cannot_forge_headers(
    make_settings: Callable[..., Settings], smtp_server: SmtpServer
) -> None:
    data = sample("v1")
    data["channel"]["isMissed"] = True
    data["visitor"]["name"] = FORGED_FROM  # reaches the Subject and the Reply-To name
    data["messages"][0]["content"] = FORGED_BCC  # the first visitor message: the Subject
    settings = make_settings(
        smtp={"host": "127.0.0.1", "port": smtp_server.port, "from_address": "R <r@shop.test>"},
        routing={"sales_inbox": "sales@shop.test"},
    )
    with TestClient(create_app(settings)) as client:
        assert client.post(f"/hooks/smartsupp/{TOKEN}", content=json.dumps(data)).is_success
        [envelope] = smtp_server.handler.wait_for(1)
        wait_settled(client)
    [row] = deliveries(settings)
    assert (row.status, row.last_error) == ("sent", None)
    assert envelope.rcpt_tos == ["sales@shop.test"]

    # Exactly the headers the relay sets: one From (the configured one), no Bcc.
    names = header_names(envelope.data)
    assert sorted(names) == sorted(SENT_HEADERS), names
    assert names.count("from") == 1 and "bcc" not in names
    message = envelope.message
    assert message["From"] == "R <r@shop.test>"
    assert [a.addr_spec for a in message["Reply-To"].addresses] == ["dusan@domain.com"]
    # The visitor's text is shown as written, with its encoded-word syntax broken up.
    subject = str(message["Subject"])
    assert "= ?utf-8?q?x=0D=0ABcc:_v@evil.test?=" in subject
    assert "= ?utf-8?q?Eve=0D=0AFrom:_CEO_" in subject

    # The body starts right after the headers: the multipart boundary, then both parts.
    body = envelope.data.split(b"\r\n\r\n", 1)[1]
    boundary = message.get_boundary()
    assert message.get_content_type() == "multipart/alternative" and boundary
    assert body.startswith(b"--" + boundary.encode("ascii") + b"\r\n"), body[:80]
    text_part = message.get_body(preferencelist=("plain",))
    assert text_part is not None
    assert FORGED_BCC in text_part.get_content()


def forged_message(subject: str) -> EmailMessage:
    """A message whose Subject was set without the relay's header cleaning."""
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = "R <r@shop.test>"
    message["To"] = "sales@shop.test"
    message["Subject"] = subject
    message.set_content("hello\n")
    return message


def test_a_message_that_flattens_to_other_headers_is_refused(
    make_settings: Callable[..., Settings], smtp_server: SmtpServer, tmp_path: Path
) -> None:
    """Defence in depth: whatever the header values, the bytes are checked before sending."""
    settings = make_settings(smtp={"host": "127.0.0.1", "port": smtp_server.port})
    pools = SmtpPools()  # closed below, as a running relay's sender registry closes its own
    sender = SmtpSender(settings.smtp, pools=pools)
    outbox = OutboxSender(tmp_path / "outbox")
    content = EmailContent(forged_message(f"Hi {FORGED_BCC}"), recipients=("sales@shop.test",))

    async def attempt() -> list[PermanentDeliveryError]:
        refusals = []
        for target in (sender, outbox):
            try:
                await target.send(content, delivery_id=1)
            except PermanentDeliveryError as exc:
                refusals.append(exc)
        await pools.close()
        return refusals

    refusals = asyncio.run(attempt())
    assert len(refusals) == 2, "both the SMTP sender and the outbox must refuse"
    assert all("unsafe" in exc.message for exc in refusals)
    assert smtp_server.handler.attempts == 0  # DATA was never sent
    assert smtp_server.handler.messages == []
    assert not list((tmp_path / "outbox").glob("*.eml"))

    # The same check lets a clean message through, unchanged.
    clean = EmailContent(forged_message("Hi there"), recipients=("sales@shop.test",))

    async def send_clean() -> None:
        await sender.send(clean, delivery_id=2)
        await pools.close()

    asyncio.run(send_clean())
    [received] = smtp_server.handler.wait_for(1)
    assert header_names(received.data) == [
        "from", "to", "subject", "content-type", "content-transfer-encoding", "mime-version"
    ]  # fmt: skip
