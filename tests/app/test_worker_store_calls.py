"""The store calls the delivery worker makes per step: what each call runs on the store's
thread is recorded at the store's seam (a forwarding store, tests/support/faulty.py) and
bracketed per call; the real store thread, the real worker and a real aiosmtpd."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
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
from tests.support.smtp import RecordingHandler, SmtpServer
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


@dataclass
class HoldsTheFirst(RecordingHandler):
    """Holds the first DATA until ``gate`` is set; the others are answered at once (the
    scripted ``data_replies`` first)."""

    gate: threading.Event = field(default_factory=threading.Event)
    held: bool = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.arrived:
            hold, self.held = not self.held, True
        if hold:
            opened = await asyncio.to_thread(self.gate.wait, 30)
            assert opened, "the test never let the first DATA through"
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def holding() -> Iterator[SmtpServer]:
    handler = HoldsTheFirst()
    server = SmtpServer(handler)
    server.start()
    yield server
    handler.gate.set()
    server.stop()


def barrier(log: list[str]) -> Callable[[StoreProtocol], None]:
    def mark(store: StoreProtocol) -> None:
        log.append("barrier")

    return mark


async def after_the_worker_is_done_with(thread: StoreThread, log: list[str]) -> None:
    """Store calls of the test's own, in the store's queue after any the worker makes when
    woken by what has just happened: a wake-up resumes the worker on the next turn of the
    loop and it queues its claim at once, before the first of these calls is answered."""
    for _ in range(3):
        await thread.call(barrier(log), durable=False)


def after(made: list[list[str]], operation: str) -> list[list[str]]:
    """The calls after the first that ran ``operation``, up to the test's last barrier."""
    start = next(n for n, call in enumerate(made) if operation in call)
    end = max(n for n, call in enumerate(made) if "barrier" in call)
    assert start < end
    return [call for call in made[start + 1 : end] if "barrier" not in call]


@pytest.fixture
async def senders() -> AsyncIterator[SenderRegistry]:
    registry = SenderRegistry()
    yield registry
    await registry.close()


def recorded_worker(
    tmp_path: Path, open_test_store: StoreOpener, port: int, senders: SenderRegistry, count: int
) -> tuple[Worker, BracketingStoreThread, list[str]]:
    """A worker (concurrency 4) over a recording store holding ``count`` routed intakes, each
    with one email to the SMTP server on ``port``; its store thread brackets each call."""
    snapshot = build_snapshot(email_settings(tmp_path, port), senders)
    log: list[str] = []
    store = RecordingStore(open_test_store(), log)
    for n in range(count):
        store.inner.accept(routed_intake(snapshot, n))
    thread = BracketingStoreThread(store, log)
    return Worker(thread, lambda: snapshot, policy=POLICY, concurrency=4), thread, log


async def test_a_claim_that_gets_fewer_than_asked_reads_the_next_due_time_in_the_same_call(
    tmp_path: Path, open_test_store: StoreOpener, smtp_server: SmtpServer, senders: SenderRegistry
) -> None:
    worker, thread, log = recorded_worker(tmp_path, open_test_store, smtp_server.port, senders, 3)
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


async def test_a_recorded_outcome_wakes_no_step_while_the_last_one_had_room_left(
    tmp_path: Path, open_test_store: StoreOpener, holding: SmtpServer, senders: SenderRegistry
) -> None:
    """Two deliveries, one held in its send: the other's send ends (the worker steps and
    claims: nothing is due), then its outcome is recorded. The step before counted it and
    still had room, so no step follows the outcome: no claim until the held send ends."""
    handler = holding.handler
    assert isinstance(handler, HoldsTheFirst)
    worker, thread, log = recorded_worker(tmp_path, open_test_store, holding.port, senders, 2)
    try:
        worker.start()
        await asyncio.wait_for(worker.attempted(1), 30)
        await after_the_worker_is_done_with(thread, log)
        assert len(handler.messages) == 1  # the other is still held
        handler.gate.set()
        await asyncio.wait_for(worker.settled(), 30)
        await worker.stop(0)
    finally:
        thread.close()
    assert [row.status for row in open_test_store().deliveries(STATUSES)] == ["sent"] * 2
    assert len(handler.messages) == 2
    assert after(calls(log), "mark_sent") == []


async def test_a_recorded_retry_wakes_a_step_that_reads_its_due_time(
    tmp_path: Path, open_test_store: StoreOpener, holding: SmtpServer, senders: SenderRegistry
) -> None:
    """Two deliveries, one held in its send, the other answered 451: once its retry is
    recorded the worker steps and reads the new due time (its claim's look ahead), and
    sends it again while the first is still held."""
    handler = holding.handler
    assert isinstance(handler, HoldsTheFirst)
    handler.data_replies.append("451 try again later")
    worker, thread, log = recorded_worker(tmp_path, open_test_store, holding.port, senders, 2)
    try:
        worker.start()
        await asyncio.wait_for(worker.attempted(1), 30)
        await after_the_worker_is_done_with(thread, log)
        looks = after(calls(log), "mark_retry")
        assert any(call[0] == "claim_due" and "next_due_at" in call for call in looks)
        await asyncio.wait_for(worker.attempted(2), 30)  # the retry, sent
        assert len(handler.messages) == 1  # while the first is still held
        handler.gate.set()
        await asyncio.wait_for(worker.settled(), 30)
        await worker.stop(0)
    finally:
        thread.close()
    assert [row.status for row in open_test_store().deliveries(STATUSES)] == ["sent"] * 2
    assert len(handler.messages) == 2
