"""SMTP connection reuse against a real aiosmtpd server: one connection for many messages, a
broken connection replaced, failures still sorted into transient and permanent."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import pytest

from relay.config.settings import SmtpSettings
from relay.model.content import EmailContent
from relay.model.errors import (
    DeliveryConnectionError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from relay.senders.smtp import SmtpSender
from relay.senders.smtp_pool import SmtpPool, SmtpPools, open_connection
from tests.support.smtp import RecordingHandler, SmtpServer, free_port


@dataclass
class CountingHandler(RecordingHandler):
    """Also remembers which SMTP session (= TCP connection) carried each DATA."""

    sessions: list[Any] = field(default_factory=list)
    servers: list[Any] = field(default_factory=list)  # the server side of each session
    noops: int = 0

    async def handle_NOOP(self, server: Any, session: Any, envelope: Any, arg: str) -> str:
        self.noops += 1
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if not any(known is session for known in self.sessions):
            self.sessions.append(session)
            self.servers.append(server)
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


class Clock:
    """The pool's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


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
    # Back in the pool a moment ago: reused without a NOOP round trip first.
    assert handler.noops == 0


async def test_a_connection_idle_for_longer_is_checked_with_a_noop_first(
    server: SmtpServer,
) -> None:
    clock = Clock()
    settings = SmtpSettings(host="127.0.0.1", port=server.port, timeout_seconds=5)
    pool = SmtpPool(lambda: open_connection(settings), trust_seconds=2.0, clock=clock)
    handler = server.handler
    assert isinstance(handler, CountingHandler)

    async def send(n: int) -> None:
        async def transaction(client: aiosmtplib.SMTP) -> None:
            await client.sendmail(
                "relay@example.test", ["team@example.test"], f"Subject: {n}\r\n\r\nbody\r\n"
            )

        await pool.run(transaction)

    await send(1)
    clock.now += 1.0
    await send(2)
    assert handler.noops == 0
    clock.now += 2.5
    await send(3)
    await pool.close()
    assert handler.noops == 1
    assert len(handler.messages) == 3
    assert pool.opened == 1


async def test_a_trusted_connection_the_server_closed_is_replaced_and_the_message_sent_once(
    server: SmtpServer, pools: SmtpPools
) -> None:
    sender = sender_for(server.port, pools)
    await sender.send(email(1), delivery_id=1)
    # The server ends the session between two sends: the client is not told before its next
    # command (nothing was read from the socket in between).
    handler = server.handler
    assert isinstance(handler, CountingHandler)
    (session,) = handler.servers
    closed = threading.Event()

    def close() -> None:
        session.transport.close()
        closed.set()

    server.controller.loop.call_soon_threadsafe(close)
    assert closed.wait(5)
    await sender.send(email(2), delivery_id=2)
    pool = sender.pool
    await pools.close()
    assert [m.message["Subject"] for m in handler.messages] == ["message 1", "message 2"]
    assert pool.opened == 2
    assert handler.noops == 0


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
