"""The delivery worker when its store or a sender fails: a store error in the worker's loop,
an outcome that could not be recorded (requeued, sent again), a delivery past its age limit,
a sender that is no longer configured, failures no sender should raise, and sends that run
into their deadline (the send slots they leave). Store faults come from a fault-injecting
store around the real one (tests/support/faulty.py); sends go to a real aiosmtpd, or to a
sender that fails as told (tests/support/faulty.py, tests/support/held.py)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from relay.app import build_snapshot
from relay.delivery.retry import RetryPolicy
from relay.delivery.worker import Worker
from relay.model.errors import DeliveryError, StoreError
from relay.senders.registry import SenderRegistry
from relay.snapshot import Snapshot
from relay.store import STATUSES, DeliveryRow, StoreProtocol
from relay.store.storethread import StoreThread
from tests.support.faulty import FailingSender, FaultyStore
from tests.support.held import HeldSender
from tests.support.smtp import SmtpServer
from tests.support.store import StoreOpener
from tests.support.worker import email_settings, routed_intake

# The faults are injected around the store, whichever engine is beneath: SQLite's suffices.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

POLICY = RetryPolicy(initial_seconds=0.05, max_seconds=0.2, max_age_seconds=3600)
# A failed delivery not retried within the test: what runs is what was claimed first.
NO_RETRY_SOON = RetryPolicy(initial_seconds=3600, max_seconds=3600, max_age_seconds=7200)
T0 = 1_800_000_000.0


@pytest.fixture
async def senders() -> AsyncIterator[SenderRegistry]:
    """The senders' shared SMTP connections, closed at the end as a stopping relay does."""
    registry = SenderRegistry()
    yield registry
    await registry.close()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def working(
    store: StoreProtocol, snapshot: Snapshot, **options: Any
) -> AsyncIterator[Worker]:
    thread = StoreThread(store)
    worker = Worker(thread, lambda: snapshot, **{"policy": POLICY, **options})
    worker.start()
    try:
        yield worker
    finally:
        await worker.stop(0)
        thread.close()


async def attempts(worker: Worker, count: int) -> None:
    await asyncio.wait_for(worker.attempted(count), 30)


def rows(open_test_store: StoreOpener) -> list[DeliveryRow]:
    return open_test_store().deliveries(STATUSES)


async def test_a_store_failure_in_the_worker_loop_is_logged_and_a_later_step_delivers(
    tmp_path: Path,
    open_test_store: StoreOpener,
    smtp_server: SmtpServer,
    senders: SenderRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    snapshot = build_snapshot(email_settings(tmp_path, smtp_server.port), senders)
    store = FaultyStore(open_test_store())
    store.accept(routed_intake(snapshot))
    store.fail("claim_due", sqlite3.OperationalError("database or disk is full"))
    async with working(store, snapshot) as worker:
        await attempts(worker, 1)
    assert store.failed == ["claim_due"]
    assert "delivery worker step failed" in caplog.text
    assert "database or disk is full" in caplog.text
    assert [row.status for row in rows(open_test_store)] == ["sent"]
    assert len(smtp_server.handler.messages) == 1


async def test_an_outcome_that_could_not_be_recorded_is_requeued_and_sent_again(
    tmp_path: Path,
    open_test_store: StoreOpener,
    smtp_server: SmtpServer,
    senders: SenderRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    snapshot = build_snapshot(email_settings(tmp_path, smtp_server.port), senders)
    store = FaultyStore(open_test_store())
    store.accept(routed_intake(snapshot))
    store.fail("mark_sent", sqlite3.OperationalError("disk I/O error"))
    async with working(store, snapshot) as worker:
        await attempts(worker, 2)
    # At least once: the message went out, its outcome was lost, so it goes out again (with
    # the same Message-ID, so the recipient's mail system can drop the repeat).
    first, second = smtp_server.handler.wait_for(2)
    assert first.message["Message-ID"] == second.message["Message-ID"]
    [row] = rows(open_test_store)
    assert (row.status, row.attempts) == ("sent", 2)
    assert store.failed == ["mark_sent"]
    assert f"delivery {row.id}: could not record the outcome" in caplog.text
    assert f"delivery {row.id} requeued: its last outcome was not recorded" in caplog.text


async def test_a_requeue_that_fails_is_tried_again_by_the_next_step(
    tmp_path: Path, open_test_store: StoreOpener, smtp_server: SmtpServer, senders: SenderRegistry
) -> None:
    snapshot = build_snapshot(email_settings(tmp_path, smtp_server.port), senders)
    store = FaultyStore(open_test_store())
    store.accept(routed_intake(snapshot))
    store.fail("mark_sent", sqlite3.OperationalError("disk I/O error"))
    store.fail("mark_retry", sqlite3.OperationalError("disk I/O error"))
    async with working(store, snapshot) as worker:
        await attempts(worker, 2)
    assert store.failed == ["mark_sent", "mark_retry"]
    [row] = rows(open_test_store)
    assert (row.status, row.attempts) == ("sent", 2)


async def test_a_delivery_failing_past_its_age_limit_is_given_up(
    tmp_path: Path, open_test_store: StoreOpener, smtp_server: SmtpServer, senders: SenderRegistry
) -> None:
    snapshot = build_snapshot(email_settings(tmp_path, smtp_server.port), senders)
    store = open_test_store()
    store.accept(routed_intake(snapshot), now=T0)
    smtp_server.handler.data_replies = ["451 4.3.0 Try again later"]
    # The first attempt happens 59 minutes after intake: the next one, two minutes later at
    # the soonest, would be past the hour.
    policy = RetryPolicy(initial_seconds=120, max_seconds=900, max_age_seconds=3600)
    clock = Clock(T0 + 59 * 60)
    async with working(store, snapshot, policy=policy, clock=clock, jitter=lambda: 1.0) as worker:
        await attempts(worker, 1)
    [row] = rows(open_test_store)
    assert row.status == "dead"
    assert row.last_error is not None
    assert row.last_error.startswith("SMTP server deferred: 451 4.3.0 Try again later")
    assert "still failing after 1 attempts over 59 min" in row.last_error
    assert "no further attempt within the 60 min age limit" in row.last_error
    assert smtp_server.handler.attempts == 1


async def test_a_delivery_whose_destination_is_no_longer_configured_is_dead(
    tmp_path: Path, open_test_store: StoreOpener, smtp_server: SmtpServer, senders: SenderRegistry
) -> None:
    # Planned while the settings had a "crm" webhook; the relay now runs without it (the
    # destination was removed from the settings and the relay reloaded).
    before = email_settings(
        tmp_path,
        smtp_server.port,
        destinations={"webhook": {"crm": {"url": "http://127.0.0.1:9/hook"}}},
        rules=[{"name": "to-crm", "actions": [{"type": "webhook", "destination": "crm"}]}],
    )
    store = open_test_store()
    store.accept(routed_intake(build_snapshot(before, senders)))
    now = build_snapshot(email_settings(tmp_path, smtp_server.port), senders)
    async with working(store, now) as worker:
        await attempts(worker, 1)
    [row] = rows(open_test_store)
    assert (row.status, row.last_error) == ("dead", "no sender configured for 'webhook:crm'")


async def test_without_visitor_history_the_email_still_goes_out(
    tmp_path: Path,
    open_test_store: StoreOpener,
    smtp_server: SmtpServer,
    senders: SenderRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    snapshot = build_snapshot(email_settings(tmp_path, smtp_server.port), senders)
    store = FaultyStore(open_test_store())
    store.accept(routed_intake(snapshot))
    store.fail("visitor_history", StoreError("the store cannot read"))
    async with working(store, snapshot) as worker:
        await attempts(worker, 1)
    [row] = rows(open_test_store)
    assert row.status == "sent"
    assert f"delivery {row.id}: no visitor history (the store cannot read)" in caplog.text
    assert len(smtp_server.handler.messages) == 1


async def test_when_the_histories_read_together_fail_each_is_read_on_its_own(
    tmp_path: Path,
    open_test_store: StoreOpener,
    smtp_server: SmtpServer,
    senders: SenderRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two emails about one visitor claimed together: their histories are read in one call
    (``visitor_histories``); when that fails, each one's is read on its own and both go out."""
    snapshot = build_snapshot(email_settings(tmp_path, smtp_server.port), senders)
    store = FaultyStore(open_test_store())
    store.accept(routed_intake(snapshot, 1))
    store.accept(routed_intake(snapshot, 2))
    store.fail("visitor_histories", StoreError("the store cannot read"))
    async with working(store, snapshot) as worker:
        await attempts(worker, 2)
    assert [row.status for row in rows(open_test_store)] == ["sent", "sent"]
    assert store.failed == ["visitor_histories"]
    assert "visitor histories of 2 deliveries (the store cannot read)" in caplog.text
    assert "no visitor history" not in caplog.text
    assert len(smtp_server.handler.messages) == 2
    # Each history really read: the second conversation's email names the first.
    parts = [m.message.get_body(("plain",)) for m in smtp_server.handler.messages]
    texts = [str(part.get_content()) for part in parts if part is not None]
    assert sum("1 earlier conversation" in text for text in texts) == 1


# A bug in a sender: retried (it may be passing), logged with its traceback.
A_BUG = (lambda: KeyError("token"), "KeyError('token')", True)
# A delivery error that says neither transient nor permanent: treated as transient.
NEITHER = (lambda: DeliveryError("the answer was odd"), "the answer was odd", False)


@pytest.mark.parametrize("case", [A_BUG, NEITHER], ids=["a-bug", "neither-kind"])
async def test_a_sender_failure_of_no_known_kind_is_retried(
    tmp_path: Path,
    open_test_store: StoreOpener,
    senders: SenderRegistry,
    caplog: pytest.LogCaptureFixture,
    case: tuple[Callable[[], BaseException], str, bool],
) -> None:
    error, recorded, unexpected = case
    # Nothing listens on port 9 (discard): the failing sender stands in for SMTP anyway.
    snapshot = build_snapshot(email_settings(tmp_path, 9), senders)
    failing = FailingSender(error)
    snapshot = replace(snapshot, senders={**snapshot.senders, "email": failing})
    store = open_test_store()
    store.accept(routed_intake(snapshot))
    with caplog.at_level(logging.WARNING, logger="relay.worker"):
        async with working(store, snapshot) as worker:
            await attempts(worker, 1)
    [row] = rows(open_test_store)
    assert (row.status, row.last_error) == ("retrying", recorded)
    assert failing.calls >= 1
    assert ("unexpected sender failure" in caplog.text) is unexpected


async def rendered(worker: Worker) -> None:
    """Return once every delivery the worker has claimed so far is rendered and waiting for a
    send slot: with the event loop's executor on one thread (``held_destination``) the
    renders run in the order the deliveries were claimed, and a job handed to it now runs
    after them; the tasks they resume go on to their slot before this one resumes."""
    await asyncio.to_thread(lambda: None)


async def held_destination(
    tmp_path: Path, open_test_store: StoreOpener, senders: SenderRegistry
) -> tuple[StoreProtocol, Snapshot, HeldSender]:
    """Six emails to one destination whose sends the test ends one by one; renders on one
    thread of the event loop's executor (``rendered``)."""
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=1))
    snapshot = build_snapshot(email_settings(tmp_path, 9), senders)
    held = HeldSender()
    snapshot = replace(snapshot, senders={**snapshot.senders, "email": held})
    store = open_test_store()
    for n in range(6):
        store.accept(routed_intake(snapshot, n))
    return store, snapshot, held


async def test_the_slot_of_a_send_that_ran_into_its_deadline_is_not_borrowed_again(
    tmp_path: Path, open_test_store: StoreOpener, senders: SenderRegistry
) -> None:
    """Concurrency 4, ``per_destination_concurrency`` unset: alone, the destination borrows
    up to 3 slots (its share is 2). When one of those sends runs into its deadline, the
    destination counts as failing before the slot goes back, so the send waiting behind
    does not borrow it for another deadline: the destination is down to its share."""
    store, snapshot, held = await held_destination(tmp_path, open_test_store, senders)
    async with working(store, snapshot, concurrency=4, policy=NO_RETRY_SOON) as worker:
        await held.wait_started(3)
        await rendered(worker)
        held.time_out()
        await attempts(worker, 1)  # the slot went back well before the outcome was recorded
        assert (held.started, len(held.held)) == (3, 2)


async def test_once_a_send_to_a_failing_destination_succeeds_it_borrows_again_at_once(
    tmp_path: Path, open_test_store: StoreOpener, senders: SenderRegistry
) -> None:
    """A failing destination at its share (2 of 4) with deliveries waiting: a send to it
    succeeds, so it no longer counts as failing when its slot goes back, and the waiting
    sends take that slot and borrow the idle one, instead of leaving it idle until the next
    send ends (a whole deadline, for a slow destination)."""
    store, snapshot, held = await held_destination(tmp_path, open_test_store, senders)
    async with working(store, snapshot, concurrency=4, policy=NO_RETRY_SOON) as worker:
        await held.wait_started(3)
        await rendered(worker)
        held.time_out()
        await attempts(worker, 1)
        held.succeed()
        await attempts(worker, 2)
        assert len(held.held) == 3  # up to all but one of the 4 slots again


async def test_failing_destinations_together_leave_a_slot_with_deliveries_claimed_before(
    tmp_path: Path, open_test_store: StoreOpener, senders: SenderRegistry
) -> None:
    """Two destinations with a cap of 2 of the 4 slots each, both sends held and one more
    delivery of each claimed behind them. Both run into their deadline: the deliveries
    claimed before that may not take the slots the timed-out sends gave back beyond
    ``concurrency - 1`` for failing destinations together, so one slot stays free for the
    destinations that are not slow."""
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=1))
    hooks = {name: {"url": f"http://127.0.0.1:9/{name}"} for name in "ab"}
    actions = [{"type": "webhook", "destination": name} for name in "ab"]
    settings = email_settings(
        tmp_path,
        9,
        destinations={"webhook": hooks},
        rules=[{"name": "both-webhooks", "actions": actions}],
    )
    snapshot = build_snapshot(settings, senders)
    held = {name: HeldSender() for name in "ab"}
    snapshot = replace(
        snapshot,
        senders={**snapshot.senders, **{f"webhook:{name}": held[name] for name in "ab"}},
    )
    store = open_test_store()
    for n in range(3):
        store.accept(routed_intake(snapshot, n))
    options = {"concurrency": 4, "per_destination": 2, "policy": NO_RETRY_SOON}
    async with working(store, snapshot, **options) as worker:
        for sender in held.values():
            await sender.wait_started(2)
        await rendered(worker)
        held["a"].time_out()
        await attempts(worker, 1)
        held["b"].time_out()
        await attempts(worker, 2)
        assert [held[name].started for name in "ab"] == [3, 2]
        assert sum(len(sender.held) for sender in held.values()) == 3


async def test_a_backlog_that_borrows_leaves_another_destination_claims_for_its_share(
    tmp_path: Path, open_test_store: StoreOpener, senders: SenderRegistry
) -> None:
    """Concurrency 8, ``per_destination_concurrency`` unset: twenty emails borrow up to 7
    slots, and four deliveries to a webhook arrive behind them. The emails' sends end one
    by one: the webhook's deliveries get their share of 4 slots, which they can only have
    if the worker claimed them; the emails' backlog must not hold the claims they need."""
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=1))
    hooks = {"webhook": {"b": {"url": "http://127.0.0.1:9/b"}}}
    settings = email_settings(tmp_path, 9, destinations=hooks)
    to_b = [{"name": "to-b", "actions": [{"type": "webhook", "destination": "b"}]}]
    routed_to_b = build_snapshot(
        email_settings(tmp_path, 9, destinations=hooks, rules=to_b), senders
    )
    emails, webhook = HeldSender(), HeldSender()
    snapshot = build_snapshot(settings, senders)
    snapshot = replace(
        snapshot, senders={**snapshot.senders, "email": emails, "webhook:b": webhook}
    )
    store = open_test_store()
    for n in range(20):
        store.accept(routed_intake(snapshot, n))
    for n in range(4):
        store.accept(routed_intake(routed_to_b, 100 + n))
    async with working(store, snapshot, concurrency=8, policy=NO_RETRY_SOON) as worker:
        await emails.wait_started(7)
        await webhook.wait_started(1)  # the slot left free
        await rendered(worker)
        for count in range(1, 4):
            emails.succeed()
            await attempts(worker, count)
            await rendered(worker)
        assert len(webhook.held) == 4
