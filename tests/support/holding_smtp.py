"""An aiosmtpd handler that can hold DATA replies, to catch the relay in the middle of a send."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

from tests.support.smtp import Received, RecordingHandler


@dataclass
class HoldingHandler(RecordingHandler):
    """While ``holding`` is set, each DATA is recorded as it arrives (the server has the
    message) but its 250 reply waits until ``release()``: a relay killed meanwhile never
    learns the message arrived, and sends it again after a restart (a counted duplicate).
    After ``hold_after`` messages have been answered, holding starts by itself."""

    hold_after: int | None = None
    holding: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    held: int = 0
    passes: int = 0  # held replies that may go now, one each (``let_through``)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.arrived:
            self.attempts += 1
            if self.hold_after is not None and len(self.messages) >= self.hold_after:
                self.holding.set()
            self.messages.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
            )
            hold = self.holding.is_set() and not self.released.is_set()
            if hold:
                self.held += 1
            self.arrived.notify_all()
        if hold:
            await asyncio.to_thread(self._held_until_let_go)
        return "250 Message accepted"

    def _held_until_let_go(self) -> None:
        with self.arrived:
            self.arrived.wait_for(lambda: self.released.is_set() or self.passes > 0)
            if not self.released.is_set():
                self.passes -= 1

    def let_through(self, count: int = 1) -> None:
        """Answer ``count`` held DATA replies (those held now or next), the others still held."""
        with self.arrived:
            self.passes += count
            self.arrived.notify_all()

    def wait_held(self, count: int = 1, timeout: float = 20.0) -> None:
        with self.arrived:
            ok = self.arrived.wait_for(lambda: self.held >= count, timeout=timeout)
        assert ok, f"expected {count} held DATA replies, got {self.held}"

    def release(self) -> None:
        self.holding.clear()
        self.released.set()
        with self.arrived:
            self.arrived.notify_all()
