"""Intake first: while the store is busy with intakes, the delivery worker holds only its floor
of deliveries, and drains the backlog at full speed once intake is quiet. The real store
thread over each backend, the real worker and a real aiosmtpd; the store's claims are recorded
at the store's seam (tests/support/faulty.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay.app import build_snapshot
from relay.delivery.retry import RetryPolicy
from relay.delivery.worker import CLAIM_AHEAD, IDLE_POLL_SECONDS, YIELD_POLL_SECONDS, Worker
from relay.senders.registry import SenderRegistry
from relay.snapshot import Snapshot
from relay.store import STATUSES, Accepted
from relay.store.storethread import StoreThread
from tests.support.faulty import ClaimRecordingStore
from tests.support.holding_smtp import HoldingHandler
from tests.support.smtp import SmtpServer
from tests.support.store import StoreOpener, held
from tests.support.worker import email_settings, routed_intake

# The store thread and the worker on each backend (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")

POLICY = RetryPolicy(initial_seconds=0.05, max_seconds=0.2, max_age_seconds=3600)
CONCURRENCY = 4
YIELD_AT = 3


@pytest.fixture
async def senders() -> AsyncIterator[SenderRegistry]:
    registry = SenderRegistry()
    yield registry
    await registry.close()


async def intakes_then_worker(
    thread: StoreThread, snapshot: Snapshot, count: int
) -> tuple[Worker, list[Accepted]]:
    """``count`` intakes queued on the held store thread, then the worker started (its first
    store call queued behind them): the worker's first step comes after the batch that
    commits those intakes."""
    worker = Worker(
        thread,
        lambda: snapshot,
        policy=POLICY,
        concurrency=CONCURRENCY,
        yield_at_intakes=YIELD_AT,
        yield_concurrency=1,
    )
    async with held(thread):
        accepting = asyncio.gather(
            *(thread.accept(routed_intake(snapshot, n)) for n in range(count))
        )
        await asyncio.sleep(0)  # the accepts run up to their place in the store's queue
        assert thread.intake_pressure() == count
        worker.start()
        await asyncio.sleep(0)  # the worker's first step queues its first store call
    return worker, await accepting


async def floor_claimed_with_intakes(
    thread: StoreThread, worker: Worker, snapshot: Snapshot
) -> None:
    """``YIELD_AT`` intakes queued on the held store thread and the settled worker woken: it
    yields, and its floor claim is written in the batch of those intakes."""
    async with held(thread):
        accepting = asyncio.gather(
            *(thread.accept(routed_intake(snapshot, n)) for n in range(YIELD_AT))
        )
        worker.wake()
        # Each step of the worker sets ``yielding`` and then queues its claim, with no await
        # between: once it is set, the claim waits with the intakes.
        for _ in range(10_000):
            if worker.yielding:
                break
            await asyncio.sleep(0)
        assert worker.yielding
    await accepting


async def test_the_worker_claims_its_floor_while_intakes_wait_then_drains_in_full(
    tmp_path: Path,
    open_test_store: StoreOpener,
    smtp_server: SmtpServer,
    senders: SenderRegistry,
) -> None:
    snapshot = build_snapshot(email_settings(tmp_path, smtp_server.port), senders)
    store = ClaimRecordingStore(open_test_store())
    thread = StoreThread(store)
    try:
        worker, accepted = await intakes_then_worker(thread, snapshot, YIELD_AT + 2)
        await asyncio.wait_for(worker.settled(), 30)
        yielding_at_the_end = worker.yielding
        await worker.stop(0)
    finally:
        thread.close()
    assert [a.deliveries for a in accepted] == [1] * (YIELD_AT + 2)
    # The first claim came right after the batch of intakes: one delivery, the floor.
    got = [c for c in store.claims if c[1] > 0]
    assert got[0] == (1, 1)
    # Once no intake was waiting, the worker asked for as many as it may hold.
    assert max(limit for limit, _ in got[1:]) > 1
    assert not yielding_at_the_end  # intake quiet: no longer yielding
    rows = open_test_store().deliveries(STATUSES)
    assert [row.status for row in rows] == ["sent"] * (YIELD_AT + 2)
    # Every delivery reached the server at least once.
    received = {m.message["Message-ID"] for m in smtp_server.handler.messages}
    assert len(received) == YIELD_AT + 2


async def test_below_the_threshold_the_worker_claims_as_many_as_it_may_hold(
    tmp_path: Path,
    open_test_store: StoreOpener,
    smtp_server: SmtpServer,
    senders: SenderRegistry,
) -> None:
    snapshot = build_snapshot(email_settings(tmp_path, smtp_server.port), senders)
    store = ClaimRecordingStore(open_test_store())
    thread = StoreThread(store)
    try:
        worker, _ = await intakes_then_worker(thread, snapshot, YIELD_AT - 1)
        await asyncio.wait_for(worker.settled(), 30)
        await worker.stop(0)
    finally:
        thread.close()
    got = [c for c in store.claims if c[1] > 0]
    assert got[0] == (CONCURRENCY * CLAIM_AHEAD, YIELD_AT - 1)
    assert len(smtp_server.handler.messages) == YIELD_AT - 1


async def test_a_floor_claim_written_with_intakes_does_not_keep_the_worker_yielding(
    tmp_path: Path, open_test_store: StoreOpener, senders: SenderRegistry
) -> None:
    """The worker's floor claim is written in the batch of the intakes it yielded to, and its
    delivery is held by the server: once intake is quiet the worker's own look at the store
    (a batch without intakes) ends the yield, and it sends more while that send is held."""
    handler = HoldingHandler()
    handler.holding.set()
    server = SmtpServer(handler)
    server.start()
    try:
        snapshot = build_snapshot(email_settings(tmp_path, server.port), senders)
        store = ClaimRecordingStore(open_test_store())
        thread = StoreThread(store)
        worker = Worker(
            thread,
            lambda: snapshot,
            policy=POLICY,
            concurrency=CONCURRENCY,
            yield_at_intakes=YIELD_AT,
            yield_concurrency=1,
            # Ahead of the intakes' clock: the claim queued before them finds them due.
            clock=lambda: time.time() + 3600,
        )
        worker.start()
        try:
            await asyncio.wait_for(worker.settled(), 30)
            await floor_claimed_with_intakes(thread, worker, snapshot)
            await asyncio.to_thread(handler.wait_held, 1)
            claims = list(store.claims)
            # The first send is still held: a second one began all the same.
            await asyncio.to_thread(handler.wait_held, 2)
            handler.release()
            await asyncio.wait_for(worker.settled(), 30)
            await worker.stop(0)
        finally:
            handler.release()
            thread.close()
    finally:
        server.stop()
    # The floor claim took one delivery, in the batch of the intakes it yielded to.
    assert next(c for c in claims if c[1] > 0) == (1, 1)
    assert len({m.message["Message-ID"] for m in handler.messages}) == YIELD_AT
    rows = open_test_store().deliveries(STATUSES)
    assert [row.status for row in rows] == ["sent"] * YIELD_AT


class HandClock(asyncio.SelectorEventLoop):
    """An event loop whose clock moves only when the test moves it (``advance``): a timer
    fires once the test has moved the clock past it, however slow or fast the machine is.
    ``run_free``: from then on the clock runs (for the clean-up's own timeouts)."""

    def __init__(self) -> None:
        self.hand = time.monotonic()
        self.offset: float | None = None
        super().__init__()

    def time(self) -> float:
        return self.hand if self.offset is None else time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.hand += seconds

    def run_free(self) -> None:
        if self.offset is None:
            self.offset = self.hand - time.monotonic()


def test_after_claiming_its_floor_the_worker_looks_again_within_the_yield_poll(
    tmp_path: Path, open_test_store: StoreOpener
) -> None:
    """The worker claims its floor in the batch of the intakes it yields to, and that send is
    held: intake then quiet, it looks at the store again after ``YIELD_POLL_SECONDS`` of the
    loop's clock (the documented "at least every 50 ms"), not after ``IDLE_POLL_SECONDS``,
    so twice the poll interval is enough for the next sends to begin."""
    assert 2 * YIELD_POLL_SECONDS < IDLE_POLL_SECONDS  # else the test could not tell them apart
    handler = HoldingHandler()
    handler.holding.set()
    server = SmtpServer(handler)
    server.start()

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, HandClock)
        senders = SenderRegistry()
        snapshot = build_snapshot(email_settings(tmp_path, server.port), senders)
        thread = StoreThread(open_test_store())
        worker = Worker(
            thread,
            lambda: snapshot,
            policy=POLICY,
            concurrency=CONCURRENCY,
            yield_at_intakes=YIELD_AT,
            yield_concurrency=1,
            clock=lambda: time.time() + 3600,  # the intakes are due at once
        )
        worker.start()
        try:
            await worker.settled()
            await floor_claimed_with_intakes(thread, worker, snapshot)
            # The floor's send is held; the worker began waiting before that send started.
            await asyncio.to_thread(handler.wait_held, 1)
            loop.advance(2 * YIELD_POLL_SECONDS)
            # IDLE_POLL_SECONDS never passes on this clock: only the yield's poll can end it.
            await asyncio.to_thread(handler.wait_held, 2, 10.0)
            handler.release()
            await worker.settled()
        finally:
            loop.run_free()
            handler.release()
            await worker.stop(0)
            thread.close()
            await senders.close()
        rows = open_test_store().deliveries(STATUSES)
        assert [row.status for row in rows] == ["sent"] * YIELD_AT

    try:
        with asyncio.Runner(loop_factory=HandClock) as runner:
            runner.run(scenario())
    finally:
        handler.release()
        server.stop()
