"""A sender whose sends wait until the test ends each one: sent, or run into its deadline."""

from __future__ import annotations

import asyncio

from relay.model.content import Content
from relay.model.errors import DeliveryTimeout
from relay.senders.base import SendResult


class HeldSender:
    """Each send waits, in ``held`` (oldest first), until the test calls ``succeed`` or
    ``time_out`` on it; ``time_out`` raises the ``DeliveryTimeout`` that a send past its
    deadline raises (``send_within_deadline``), without the test waiting for a deadline.
    Used on one event loop."""

    deadline_seconds: float | None = None

    def __init__(self) -> None:
        self.held: list[asyncio.Future[None]] = []
        self.started = 0
        self._changed = asyncio.Condition()

    async def send(
        self, content: Content, *, delivery_id: int, skip: tuple[str, ...] = ()
    ) -> SendResult | None:
        end = asyncio.get_running_loop().create_future()
        self.held.append(end)
        async with self._changed:
            self.started += 1
            self._changed.notify_all()
        try:
            await end
        finally:
            self.held.remove(end)
        return None

    async def wait_started(self, count: int) -> None:
        """Return once ``count`` sends have started (since the sender was made)."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: self.started >= count), 30)

    def succeed(self, index: int = 0) -> None:
        self.held[index].set_result(None)

    def time_out(self, index: int = 0) -> None:
        self.held[index].set_exception(DeliveryTimeout("no complete answer within the deadline"))
