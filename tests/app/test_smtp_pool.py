"""SMTP connection reuse against a real aiosmtpd server: one connection for many messages, a
broken connection replaced, failures still sorted into transient and permanent."""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest

from relay.config.settings import SmtpSettings
from relay.model.content import EmailContent
from relay.model.errors import (
    DeliveryConnectionError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from relay.senders.smtp import SmtpSender
from relay.senders.smtp_pool import SmtpPools
from tests.support.smtp import RecordingHandler, SmtpServer, free_port


@dataclass
class CountingHandler(RecordingHandler):
    """Also remembers which SMTP session (= TCP connection) carried each DATA."""

    sessions: list[Any] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if not any(known is session for known in self.sessions):
            self.sessions.append(session)
        return await super().handle_DATA(server, session, envelope)


def email(n: int) -> EmailContent:
    message = EmailMessage()
    message["From"] = "relay@example.test"
    message["To"] = "team@example.test"
    message["Subject"] = f"message {n}"
    message["Message-ID"] = f"<{n}@example.test>"
    message.set_content(f"body {n}")
    return EmailContent(message, ("team@example.test",))


@pytest.fixture
def server() -> Any:
    started = SmtpServer(CountingHandler())
    started.start()
    yield started
    started.stop()


@pytest.fixture
def pools() -> SmtpPools:
    """The pools a relay's senders share (the sender registry owns one)."""
    return SmtpPools()


def sender_for(port: int, pools: SmtpPools) -> SmtpSender:
    settings = SmtpSettings(host="127.0.0.1", port=port, timeout_seconds=5)
    return SmtpSender(settings, pool_size=2, pools=pools)


async def test_consecutive_messages_share_one_connection(
    server: SmtpServer, pools: SmtpPools
) -> None:
    sender = sender_for(server.port, pools)
    for n in range(10):
        await sender.send(email(n), delivery_id=n)
    pool = sender.pool
    await pools.close()
    handler = server.handler
    assert isinstance(handler, CountingHandler)
    assert len(handler.messages) == 10
    assert len(handler.sessions) == 1
    assert pool.opened == 1


async def test_a_broken_pooled_connection_is_replaced(server: SmtpServer, pools: SmtpPools) -> None:
    sender = sender_for(server.port, pools)
    await sender.send(email(1), delivery_id=1)
    # Restarting the server drops the pooled connection under the sender's feet.
    server.stop()
    server.controller = SmtpServer(server.handler, port=server.port).controller
    server.start()
    await sender.send(email(2), delivery_id=2)
    pool = sender.pool
    await pools.close()
    handler = server.handler
    assert isinstance(handler, CountingHandler)
    assert [m.message["Subject"] for m in handler.messages] == ["message 1", "message 2"]
    assert len(handler.sessions) == 2
    assert pool.opened == 2


async def test_failures_still_classify_and_the_next_send_uses_a_fresh_connection(
    server: SmtpServer, pools: SmtpPools
) -> None:
    handler = server.handler
    handler.data_replies = ["451 4.3.0 try later", "550 5.7.1 rejected"]
    sender = sender_for(server.port, pools)
    with pytest.raises(TransientDeliveryError) as transient:
        await sender.send(email(1), delivery_id=1)
    assert not isinstance(transient.value, PermanentDeliveryError)
    assert "451" in transient.value.message
    with pytest.raises(PermanentDeliveryError) as permanent:
        await sender.send(email(2), delivery_id=2)
    assert "550" in permanent.value.message
    await sender.send(email(3), delivery_id=3)
    pool = sender.pool
    await pools.close()
    assert [m.message["Subject"] for m in handler.messages] == ["message 3"]
    assert pool.opened == 3  # a connection that saw a failure is not reused


async def test_a_server_that_went_away_is_a_transient_connection_failure(
    server: SmtpServer, pools: SmtpPools
) -> None:
    sender = sender_for(server.port, pools)
    await sender.send(email(1), delivery_id=1)
    server.stop()
    with pytest.raises(DeliveryConnectionError):
        await sender.send(email(2), delivery_id=2)
    await pools.close()
    server.controller = SmtpServer(server.handler, port=server.port).controller
    server.start()


async def test_nothing_listening_is_a_transient_connection_failure(pools: SmtpPools) -> None:
    sender = sender_for(free_port(), pools)
    with pytest.raises(DeliveryConnectionError):
        await sender.send(email(1), delivery_id=1)
    await pools.close()


async def test_senders_rebuilt_by_a_reload_share_the_connection(
    server: SmtpServer, pools: SmtpPools
) -> None:
    first, rebuilt = sender_for(server.port, pools), sender_for(server.port, pools)
    await first.send(email(1), delivery_id=1)
    await rebuilt.send(email(2), delivery_id=2)
    assert first.pool is rebuilt.pool
    await pools.close()
    handler = server.handler
    assert isinstance(handler, CountingHandler)
    assert len(handler.sessions) == 1
