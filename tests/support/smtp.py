"""A real aiosmtpd server whose replies each test can script."""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class RecordingHandler:
    """Answers DATA with the next scripted reply ("451 ...", "550 ...") and then 250; the
    first ``data_stalls`` messages get no answer at all (the server stalls after the data)."""

    data_replies: list[str] = field(default_factory=list)
    data_stalls: int = 0
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    messages: list[Received] = field(default_factory=list)
    attempts: int = 0
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        reply = self.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.arrived:
            self.attempts += 1
            stall = self.data_stalls > 0
            self.data_stalls -= stall
            self.arrived.notify_all()
        if stall:
            await asyncio.Event().wait()  # until the server stops
        with self.arrived:
            if self.data_replies:
                reply = self.data_replies.pop(0)
                self.arrived.notify_all()
                return reply
            self.messages.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
            )
            self.arrived.notify_all()
        return "250 Message accepted"

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        """Block until ``count`` messages were accepted (or fail after ``timeout``)."""
        with self.arrived:
            ok = self.arrived.wait_for(lambda: len(self.messages) >= count, timeout=timeout)
        assert ok, f"expected {count} messages, got {len(self.messages)} after {timeout} s"
        return list(self.messages)

    def wait_for_attempts(self, count: int, timeout: float = 20.0) -> None:
        with self.arrived:
            ok = self.arrived.wait_for(lambda: self.attempts >= count, timeout=timeout)
        assert ok, f"expected {count} DATA attempts, got {self.attempts}"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SmtpServer:
    """aiosmtpd's Controller on a fixed free port (it cannot report a port chosen by the OS)."""

    def __init__(self, handler: RecordingHandler, port: int | None = None, **options: Any) -> None:
        """``options``: aiosmtpd SMTP parameters (``auth_require_tls`` and the like)."""
        self.handler = handler
        self.port = port or free_port()
        self.controller = Controller(handler, hostname="127.0.0.1", port=self.port, **options)

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()
