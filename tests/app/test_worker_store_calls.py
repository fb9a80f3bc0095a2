"""The store calls the delivery worker makes per step: what each call runs on the store's
thread is recorded at the store's seam (a forwarding store, tests/support/faulty.py) and
bracketed per call; the real store thread, the real worker and a real aiosmtpd."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from relay.app import build_snapshot
from relay.delivery.retry import RetryPolicy
from relay.delivery.worker import Worker
from relay.senders.registry import SenderRegistry
from relay.store import STATUSES, StoreProtocol
from relay.store.storethread import StoreThread
from tests.support.faulty import FaultyStore
from tests.support.smtp import SmtpServer
from tests.support.store import StoreOpener
from tests.support.worker import email_settings, routed_intake

pytestmark = pytest.mark.usefixtures("backend")

POLICY = RetryPolicy(initial_seconds=0.05, max_seconds=0.2, max_age_seconds=3600)
T = TypeVar("T")


class RecordingStore(FaultyStore):
    """Forwards every call to the real store and appends its name to ``log``."""

    def __init__(self, inner: StoreProtocol, log: list[str]) -> None:
        super().__init__(inner)
        self.log = log

    def __getattr__(self, name: str) -> Any:
        forward = super().__getattr__(name)
        if not callable(forward):
            return forward

        def operation(*args: Any, **kwargs: Any) -> Any:
            self.log.append(name)
            return forward(*args, **kwargs)

        return operation


class BracketingStoreThread(StoreThread):
    """A store thread that writes "(" and ")" to ``log`` around what each call runs."""

    def __init__(self, store: StoreProtocol, log: list[str]) -> None:
        super().__init__(store)
        self.log = log

    async def call(self, fn: Callable[[StoreProtocol], T], *, durable: bool = True) -> T:
        def bracketed(store: StoreProtocol) -> T:
            self.log.append("(")
            try:
                return fn(store)
            finally:
                self.log.append(")")

        return await super().call(bracketed, durable=durable)


def calls(log: list[str]) -> list[list[str]]:
    """The operations of each bracketed call, in order."""
    found: list[list[str]] = []
    current: list[str] | None = None
    for entry in log:
        if entry == "(":
            current = []
        elif entry == ")":
            assert current is not None
            found.append(current)
            current = None
        elif current is not None:
            current.append(entry)
    return found


@pytest.fixture
async def senders() -> AsyncIterator[SenderRegistry]:
    registry = SenderRegistry()
    yield registry
    await registry.close()


async def test_a_claim_that_gets_fewer_than_asked_reads_the_next_due_time_in_the_same_call(
    tmp_path: Path, open_test_store: StoreOpener, smtp_server: SmtpServer, senders: SenderRegistry
) -> None:
    snapshot = build_snapshot(email_settings(tmp_path, smtp_server.port), senders)
    log: list[str] = []
    store = RecordingStore(open_test_store(), log)
    for n in range(3):
        store.inner.accept(routed_intake(snapshot, n))
    thread = BracketingStoreThread(store, log)
    worker = Worker(thread, lambda: snapshot, policy=POLICY, concurrency=4)
    try:
        worker.start()
        await asyncio.wait_for(worker.settled(), 30)
        await worker.stop(0)
    finally:
        thread.close()
    assert [row.status for row in open_test_store().deliveries(STATUSES)] == ["sent"] * 3
    made = calls(log)
    looks = [call for call in made if "next_due_at" in call]
    assert looks  # each claim got fewer than the 8 it asked for, the last one none
    # One round trip per step: the next due time is read by the claim's own call.
    assert all(call[0] == "claim_due" for call in looks)
    assert all(call.count("next_due_at") == 1 for call in looks)
