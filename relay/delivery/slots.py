"""Send slots: how many sends run at once, in all and to each destination, and who goes next."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SlotRule:
    """``total`` sends at once in all. Each destination may always have ``share`` of them; up
    to ``ceiling`` while no send to another destination waits for a slot, the destination
    has not run into its deadline, and one slot stays free after it (``ceiling == share``:
    a destination never borrows)."""

    total: int
    share: int
    ceiling: int

    @property
    def failing_limit(self) -> int:
        """The sends the destinations that last ran into their deadline may have in flight
        together: all slots but one (with one slot in all, that one)."""
        return max(self.total - 1, 1)

    @classmethod
    def of(cls, concurrency: int, per_destination: int | None) -> SlotRule:
        """``[delivery]``'s rule: ``per_destination_concurrency`` when it is set, a hard cap;
        unset, half of ``concurrency`` (at least 1) for each destination, and idle slots
        borrowed up to ``concurrency - 1`` (work-conserving, as a link-sharing scheduler)."""
        if per_destination is not None:
            cap = min(per_destination, concurrency)
            return cls(concurrency, cap, cap)
        share = max(concurrency // 2, 1)
        return cls(concurrency, share, max(concurrency - 1, share))


def may_start(
    rule: SlotRule,
    key: str,
    running: Mapping[str, int],
    *,
    others_waiting: bool,
    failing: bool,
    failing_running: int = 0,
) -> bool:
    """Whether a send to ``key`` may start now, with ``running`` sends in flight by
    destination: within its share whenever a slot is free; beyond it (borrowing) only up
    to the ceiling, for a destination not ``failing``, while no send to another destination
    waits (``others_waiting``), and with a slot left free after it. A ``failing``
    destination starts none while the failing ones together have ``failing_running`` sends
    in flight, all slots but one (deliveries claimed before it ran into its deadline)."""
    in_all = sum(running.values())
    if in_all >= rule.total:
        return False
    if failing and failing_running >= rule.failing_limit:
        return False
    mine = running.get(key, 0)
    if mine < rule.share:
        return True
    return mine < rule.ceiling and not failing and not others_waiting and in_all + 1 < rule.total


class SendSlots:
    """Hands out send slots by ``rule`` on one event loop: ``async with slots.slot(key)``
    holds one for a send to destination ``key``. Waiting sends start in the order they came
    whenever the rule lets them (one held back by its destination's share does not hold up
    another destination's); ``failing``: the destinations that last ran into their
    deadline (the worker's own set, read at each decision), which never borrow and, with
    ``failing_together``, together hold at most all slots but one. The worker changes it
    only while the send that changes it holds its slot, so the release that follows decides
    by it (a change is not looked at before the next release)."""

    def __init__(
        self,
        rule: SlotRule,
        failing: Collection[str] = frozenset(),
        *,
        failing_together: bool = True,
    ) -> None:
        self.rule = rule
        self._failing = failing
        self._failing_together = failing_together
        self.running: Counter[str] = Counter()
        self._waiting: deque[tuple[str, asyncio.Future[None]]] = deque()
        self._closed = False

    def close(self) -> None:
        """Start no more sends (the worker stops): those waiting for a slot wait until they
        are cancelled, those holding one keep it until they end."""
        self._closed = True

    @contextlib.asynccontextmanager
    async def slot(self, key: str) -> AsyncIterator[None]:
        await self._acquire(key)
        try:
            yield
        finally:
            self._release(key)

    def _startable(self, key: str) -> bool:
        if self._closed:
            return False
        others = any(k != key and not f.done() for k, f in self._waiting)
        failing = key in self._failing
        return may_start(
            self.rule,
            key,
            self.running,
            others_waiting=others,
            failing=failing,
            failing_running=(
                sum(self.running[k] for k in self._failing)
                if failing and self._failing_together
                else 0
            ),
        )

    async def _acquire(self, key: str) -> None:
        if not any(k == key for k, _ in self._waiting) and self._startable(key):
            self.running[key] += 1
            return
        while True:
            waiter = asyncio.get_running_loop().create_future()
            entry = (key, waiter)
            self._waiting.append(entry)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._release(key)  # granted as it was cancelled: give the slot back
                else:
                    self._waiting.remove(entry)
                    self._grant()  # its absence may let a borrower go on
                raise
            if not self._closed:
                return
            # Granted just before ``close``, which came first: no send starts after it.
            self._release(key)

    def _release(self, key: str) -> None:
        self.running[key] -= 1
        if self.running[key] <= 0:
            del self.running[key]
        self._grant()

    def _grant(self) -> None:
        """Start every waiting send the rule now allows, oldest first."""
        for entry in list(self._waiting):
            key, waiter = entry
            # A cancelled waiter is still queued until its task runs and takes it out.
            if not waiter.done() and self._startable(key):
                self._waiting.remove(entry)
                self.running[key] += 1
                waiter.set_result(None)
