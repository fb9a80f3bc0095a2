"""Intake first: while the store is busy with intakes, the delivery worker holds only its floor
of deliveries, and drains the backlog at full speed once intake is quiet. The real store
thread over each backend, the real worker and a real aiosmtpd; the store's claims are recorded
at the store's seam (tests/support/faulty.py)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import NamedTuple

import pytest

from relay.app import build_snapshot
from relay.delivery.retry import RetryPolicy
from relay.delivery.slots import SlotRule
from relay.delivery.worker import (
    CLAIM_ROUNDS,
    IDLE_POLL_SECONDS,
    YIELD_POLL_SECONDS,
    Worker,
    claim_room,
    refill_mark,
)
from relay.senders.registry import SenderRegistry
from relay.snapshot import Snapshot
from relay.store import STATUSES, Accepted
from relay.store.storethread import StoreThread
from tests.support.faulty import ClaimRecordingStore
from tests.support.holding_smtp import HoldingHandler
from tests.support.smtp import SmtpServer
from tests.support.store import StoreOpener, held
from tests.support.worker import email_settings, routed_intake
from tests.support.yielding import (
    BusyIntake,
    HandClock,
    claims_settle,
    claims_that_took,
    hand_clock,
    run_on_hand_clock,
)

# The store thread and the worker on each backend (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")

POLICY = RetryPolicy(initial_seconds=0.05, max_seconds=0.2, max_age_seconds=3600)
CONCURRENCY = 4
YIELD_AT = 3


def yielding_worker(
    thread: StoreThread,
    snapshot: Snapshot,
    *,
    floor: int = 1,
    per_second: float | None = None,
    clock: Callable[[], float] = time.time,
) -> Worker:
    """The worker these tests run: yielding to intake from ``YIELD_AT`` intakes with ``floor``
    and, if given, ``per_second``; not started."""
    return Worker(
        thread,
        lambda: snapshot,
        policy=POLICY,
        concurrency=CONCURRENCY,
        clock=clock,
        yield_at_intakes=YIELD_AT,
        yield_concurrency=floor,
        yield_per_second=per_second,
    )


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
    worker = yielding_worker(thread, snapshot)
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


async def test_below_the_threshold_the_worker_makes_a_full_claim(
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
    assert got[0] == (CONCURRENCY, YIELD_AT - 1)  # a full claim, not the floor
    assert len(smtp_server.handler.messages) == YIELD_AT - 1


class HeldSends(NamedTuple):
    handler: HoldingHandler
    snapshot: Snapshot
    thread: StoreThread
    worker: Worker


@contextlib.asynccontextmanager
async def held_sends(
    tmp_path: Path,
    open_test_store: StoreOpener,
    senders: SenderRegistry,
    *,
    stored: int = 0,
    clock: Callable[[], float] = time.time,
) -> AsyncIterator[HeldSends]:
    """A real SMTP server that holds its reply to every DATA, ``stored`` deliveries to it
    accepted first, and the yielding worker started on a ``ClaimRecordingStore``; on leaving,
    the held sends are released and the worker settles and stops."""
    handler = HoldingHandler()
    handler.holding.set()
    server = SmtpServer(handler)
    server.start()
    try:
        snapshot = build_snapshot(email_settings(tmp_path, server.port), senders)
        store = ClaimRecordingStore(open_test_store())
        for n in range(stored):
            store.accept(routed_intake(snapshot, n))
        thread = StoreThread(store)
        worker = yielding_worker(thread, snapshot, clock=clock)
        worker.start()
        try:
            yield HeldSends(handler, snapshot, thread, worker)
            handler.release()
            await asyncio.wait_for(worker.settled(), 30)
            await worker.stop(0)
        finally:
            handler.release()
            thread.close()
    finally:
        server.stop()


async def test_a_claim_takes_at_most_concurrency_and_the_next_step_claims_on_at_once(
    tmp_path: Path, open_test_store: StoreOpener, senders: SenderRegistry
) -> None:
    """Twelve deliveries to one destination, its sends held by the server: each claim asks
    for at most ``concurrency`` (the store call that claims them, reading each one's context,
    holds back the intakes queued behind it), and the worker claims on at once, without
    waiting for a send to end, until the destination holds all ``claim_room`` gives it."""
    mine, _ = claim_room(SlotRule.of(CONCURRENCY, None), CLAIM_ROUNDS, leases=False)
    assert CONCURRENCY < mine < 12  # more than one claim's worth, fewer than all
    full, rest = divmod(mine, CONCURRENCY)
    expected = [(CONCURRENCY, CONCURRENCY)] * full + ([(CONCURRENCY, rest)] if rest else [])
    async with held_sends(tmp_path, open_test_store, senders, stored=12) as run:
        await asyncio.to_thread(run.handler.wait_held, 1)
        # The second claim was queued when the first one's answer came back, before any of
        # its sends could start: a store call queued now comes back after it. Each claim's
        # answer is handled (and the next claim queued) before that store call's: one more
        # store call for each claim after the second.
        for _ in expected[1:]:
            await run.thread.call(lambda store: None, durable=False)
        claims = claims_that_took(run.thread)
    assert claims == expected
    assert len({m.message["Message-ID"] for m in run.handler.messages}) == 12


async def test_a_destination_is_refilled_a_round_at_a_time(
    tmp_path: Path, open_test_store: StoreOpener, senders: SenderRegistry
) -> None:
    """Twelve deliveries to one destination that may use 3 slots (a share of 2, one
    borrowed): it holds CLAIM_ROUNDS rounds of them, 9, while its sends are held. A send's
    end then claims nothing while it holds more than its refill mark, one round below; the
    end that brings it down to the mark claims a whole round, not one delivery per send."""
    rule = SlotRule.of(CONCURRENCY, None)
    mine, _ = claim_room(rule, CLAIM_ROUNDS, leases=False)
    assert refill_mark(rule, CLAIM_ROUNDS, leases=False) == mine - rule.ceiling
    assert 12 - mine == rule.ceiling  # one round left behind the first fill
    full, rest = divmod(mine, CONCURRENCY)
    first_fill = [(CONCURRENCY, CONCURRENCY)] * full + [(CONCURRENCY, rest)]

    async def claims_after_attempts(count: int) -> list[tuple[int, int]]:
        # A send's end that wakes the worker has it queue its claim before that send's
        # outcome is written: a store call queued after the outcome comes back after both.
        await run.worker.attempted(count)
        await run.thread.call(lambda store: None, durable=False)
        return claims_that_took(run.thread)

    async with held_sends(tmp_path, open_test_store, senders, stored=12) as run:
        await asyncio.to_thread(run.handler.wait_held, rule.ceiling)
        for _ in first_fill[1:]:  # as in the test above: the first fill's claims are back
            await run.thread.call(lambda store: None, durable=False)
        assert claims_that_took(run.thread) == first_fill
        run.handler.let_through(1)
        assert await claims_after_attempts(1) == first_fill  # 8 held, above the mark
        run.handler.let_through(rule.ceiling - 1)
        refilled = await claims_after_attempts(rule.ceiling)  # down to the mark: a round
    assert refilled == [*first_fill, (CONCURRENCY, rule.ceiling)]
    assert len({m.message["Message-ID"] for m in run.handler.messages}) == 12


async def test_a_floor_claim_written_with_intakes_does_not_keep_the_worker_yielding(
    tmp_path: Path, open_test_store: StoreOpener, senders: SenderRegistry
) -> None:
    """The worker's floor claim is written in the batch of the intakes it yielded to, and its
    delivery is held by the server: once intake is quiet the worker's own look at the store
    (a batch without intakes) ends the yield, and it sends more while that send is held."""
    # The worker's clock ahead of the intakes': the claim queued before them finds them due.
    async with held_sends(
        tmp_path, open_test_store, senders, clock=lambda: time.time() + 3600
    ) as run:
        await asyncio.wait_for(run.worker.settled(), 30)
        await floor_claimed_with_intakes(run.thread, run.worker, run.snapshot)
        await asyncio.to_thread(run.handler.wait_held, 1)
        claims = claims_that_took(run.thread)
        # The first send is still held: a second one began all the same.
        await asyncio.to_thread(run.handler.wait_held, 2)
    # The floor claim took one delivery, in the batch of the intakes it yielded to.
    assert claims[0] == (1, 1)
    assert len({m.message["Message-ID"] for m in run.handler.messages}) == YIELD_AT
    rows = open_test_store().deliveries(STATUSES)
    assert [row.status for row in rows] == ["sent"] * YIELD_AT


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
        loop = hand_clock()
        senders = SenderRegistry()
        snapshot = build_snapshot(email_settings(tmp_path, server.port), senders)
        thread = StoreThread(open_test_store())
        # Ahead of the intakes' clock: they are due at once.
        worker = yielding_worker(thread, snapshot, clock=lambda: time.time() + 3600)
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
        run_on_hand_clock(scenario())
    finally:
        handler.release()
        server.stop()


def paced_run(
    tmp_path: Path,
    open_test_store: StoreOpener,
    smtp_server: SmtpServer,
    per_second: float | None,
    scenario: Callable[[HandClock, BusyIntake, Worker], Awaitable[None]],
    *,
    floor: int = 1,
    count: int = 3,
) -> ClaimRecordingStore:
    """``count`` deliveries queued, then the worker started on a hand-moved clock while intake
    is busy (``YIELD_AT`` intakes), yielding with ``floor`` and ``per_second``; runs
    ``scenario``, then lets intake go quiet and the worker drain the rest. The claims made."""
    store = ClaimRecordingStore(open_test_store())

    async def run() -> None:
        loop = hand_clock()
        senders = SenderRegistry()
        snapshot = build_snapshot(email_settings(tmp_path, smtp_server.port), senders)
        thread = BusyIntake(store)
        worker = yielding_worker(thread, snapshot, floor=floor, per_second=per_second)
        try:
            for n in range(count):
                await thread.accept(routed_intake(snapshot, n))
            thread.pressure = YIELD_AT
            worker.start()
            await scenario(loop, thread, worker)
            thread.pressure = 0
            loop.advance(YIELD_POLL_SECONDS)  # the yield's next look sees intake quiet
            await worker.settled()
        finally:
            loop.run_free()
            await worker.stop(0)
            thread.close()
            await senders.close()

    run_on_hand_clock(run())
    rows = open_test_store().deliveries(STATUSES)
    assert [row.status for row in rows] == ["sent"] * count
    return store


def test_while_yielding_the_worker_starts_its_floor_no_faster_than_its_pace(
    tmp_path: Path, open_test_store: StoreOpener, smtp_server: SmtpServer
) -> None:
    """At 10 a second, the floor's next claim waits 0.1 s of the loop's clock after the last,
    however soon its delivery ends and however many intakes wake the worker meanwhile; once
    intake is quiet the worker claims as many as it may hold without waiting for the pace."""
    seen: list[list[tuple[int, int]]] = []

    async def scenario(loop: HandClock, thread: BusyIntake, worker: Worker) -> None:
        await worker.attempted(1)
        for _ in range(5):
            worker.wake()  # as accepted intakes do
        await claims_settle(thread)
        seen.append(claims_that_took(thread))
        loop.advance(0.06)  # not yet the pace: the yield's look only
        await claims_settle(thread)
        await claims_settle(thread)  # and the claim that look would have let it queue
        seen.append(claims_that_took(thread))
        loop.advance(0.05)  # past 0.1 s after the first claim
        await worker.attempted(2)
        seen.append(claims_that_took(thread))

    store = paced_run(tmp_path, open_test_store, smtp_server, 10.0, scenario)
    assert seen == [[(1, 1)], [(1, 1)], [(1, 1), (1, 1)]]
    # Intake quiet: the last delivery in a full claim, not the floor.
    last = [c for c in store.claims if c[1] > 0][-1]
    assert last == (CONCURRENCY, 1)
    assert len(smtp_server.handler.messages) == 3


def test_a_claim_of_n_pauses_the_floor_for_n_over_its_pace(
    tmp_path: Path, open_test_store: StoreOpener, smtp_server: SmtpServer
) -> None:
    """A floor of two at 10 a second: its claim of two deliveries holds the next claim for
    0.2 s of the loop's clock (two starts at 10 a second), not 0.1 s, however soon both end."""
    seen: list[list[tuple[int, int]]] = []

    async def scenario(loop: HandClock, thread: BusyIntake, worker: Worker) -> None:
        await worker.attempted(2)
        await claims_settle(thread)
        seen.append(claims_that_took(thread))
        loop.advance(0.15)  # past the pace of one start: still paused
        # Twice: the first lets the paused worker's own store call come back, the second
        # the claim it would queue right after it.
        await claims_settle(thread)
        await claims_settle(thread)
        seen.append(claims_that_took(thread))
        loop.advance(0.06)  # past 0.2 s after the claim
        await worker.attempted(4)
        seen.append(claims_that_took(thread))

    paced_run(tmp_path, open_test_store, smtp_server, 10.0, scenario, floor=2, count=5)
    assert seen == [[(2, 2)], [(2, 2)], [(2, 2), (2, 2)]]
    assert len(smtp_server.handler.messages) == 5


def test_without_a_pace_the_floor_is_claimed_again_as_soon_as_its_delivery_ends(
    tmp_path: Path, open_test_store: StoreOpener, smtp_server: SmtpServer
) -> None:
    """The same run unpaced: the second floor claim comes with the loop's clock standing."""
    seen: list[list[tuple[int, int]]] = []

    async def scenario(loop: HandClock, thread: BusyIntake, worker: Worker) -> None:
        await worker.attempted(2)
        seen.append(claims_that_took(thread))

    paced_run(tmp_path, open_test_store, smtp_server, None, scenario)
    assert seen == [[(1, 1), (1, 1)]]


@pytest.mark.parametrize(
    ("pause", "moved"),
    [
        # 10 a second: the pause is longer than the yield's poll, which looks first.
        (0.1, 0.1 + YIELD_POLL_SECONDS),
        # 100 a second: the pause is shorter; the worker looks when it is over.
        (0.01, 0.01),
    ],
    ids=["slow-pace", "fast-pace"],
)
def test_a_partial_floor_claim_while_paced_looks_again_once_the_pause_is_over(
    tmp_path: Path, open_test_store: StoreOpener, pause: float, moved: float
) -> None:
    """A floor of two paced at 1 / ``pause`` a second: the worker claims the one delivery due
    (its send held by the server), then an accepted intake wakes it during the pause, a
    wake-up it does not take while paced. It looks again by itself once the pause is over
    (and the yield's poll, if that comes later): the second send begins with the loop's
    clock moved only that far (``moved``), never as far as ``IDLE_POLL_SECONDS``."""
    assert moved < IDLE_POLL_SECONDS  # else the test could not tell
    assert pause >= YIELD_POLL_SECONDS or moved < YIELD_POLL_SECONDS  # nor the poll's look
    handler = HoldingHandler()
    handler.holding.set()
    server = SmtpServer(handler)
    server.start()

    async def scenario() -> None:
        loop = hand_clock()
        senders = SenderRegistry()
        snapshot = build_snapshot(email_settings(tmp_path, server.port), senders)
        thread = BusyIntake(open_test_store())
        worker = yielding_worker(thread, snapshot, floor=2, per_second=1 / pause)
        try:
            await thread.accept(routed_intake(snapshot, 0))
            thread.pressure = YIELD_AT
            worker.start()
            await asyncio.to_thread(handler.wait_held, 1)
            await thread.accept(routed_intake(snapshot, 1))
            worker.wake()  # as the hook does once an intake is accepted
            await claims_settle(thread)
            loop.advance(moved)
            await asyncio.to_thread(handler.wait_held, 2, 10.0)
            handler.release()
            thread.pressure = 0
            await worker.settled()
        finally:
            loop.run_free()
            handler.release()
            await worker.stop(0)
            thread.close()
            await senders.close()
        rows = open_test_store().deliveries(STATUSES)
        assert [row.status for row in rows] == ["sent"] * 2

    try:
        run_on_hand_clock(scenario())
    finally:
        handler.release()
        server.stop()
    assert len({m.message["Message-ID"] for m in handler.messages}) == 2


def test_a_stop_during_the_pause_ends_the_worker_at_once_and_leaves_the_rest_pending(
    tmp_path: Path, open_test_store: StoreOpener, smtp_server: SmtpServer
) -> None:
    """At one delivery every 10 s while intake is busy: the first is sent, and the worker is
    paused with the loop's clock standing. A stop ends it without waiting for the pause (or
    the clock), and the second delivery, never claimed, stays pending: nothing lost, nothing
    sent twice."""
    stopped = threading.Event()
    in_time: list[bool] = []

    async def scenario() -> None:
        loop = hand_clock()
        senders = SenderRegistry()
        snapshot = build_snapshot(email_settings(tmp_path, smtp_server.port), senders)
        thread = BusyIntake(open_test_store())
        worker = yielding_worker(thread, snapshot, per_second=0.1)
        stopping: asyncio.Future[None] | None = None
        try:
            for n in range(2):
                await thread.accept(routed_intake(snapshot, n))
            thread.pressure = YIELD_AT
            worker.start()
            await worker.attempted(1)
            await claims_settle(thread)
            stopping = asyncio.ensure_future(worker.stop(0))
            stopping.add_done_callback(lambda _: stopped.set())
            in_time.append(await asyncio.to_thread(stopped.wait, 10.0))
        finally:
            loop.run_free()
            await (stopping if stopping is not None else worker.stop(0))
            thread.close()
            await senders.close()

    run_on_hand_clock(scenario())
    assert in_time == [True]  # with the loop's clock still standing
    rows = open_test_store().deliveries(STATUSES)
    assert sorted(row.status for row in rows) == ["pending", "sent"]
    assert len(smtp_server.handler.messages) == 1
