"""A destination's connection cap limits its sends, not its deliveries: more are claimed and
rendered ahead while its sends are in flight, never more sends than the cap, and a stop
while some wait for a connection loses nothing and sends nothing twice. Against a real
aiosmtpd that holds each DATA until the test lets it go and counts the transactions open."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from litestar.testing import TestClient

from relay.app import build_snapshot, create_app
from relay.config.settings import Settings
from relay.delivery.worker import CLAIM_AHEAD, CLAIM_ROUNDS, rounds_ahead
from relay.intake.http import prepare
from relay.runtime import Runtime
from relay.store.opening import open_store
from tests.support.app import runtime, wait_settled
from tests.support.data import sample
from tests.support.smtp import RecordingHandler, SmtpServer
from tests.support.store import deliveries

# The store and the worker on each backend (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")

CONVERSATIONS = 10
CAP = 2  # per destination: half of concurrency 4


@dataclass
class GatedHandler(RecordingHandler):
    """Holds every DATA until ``gate`` is set; counts the transactions between MAIL and the
    end of DATA (``open``) and the most ever open at once (``peak``)."""

    gate: threading.Event = field(default_factory=threading.Event)
    open: int = 0
    peak: int = 0

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: Any
    ) -> str:
        with self.arrived:
            self.open += 1
            self.peak = max(self.peak, self.open)
            self.arrived.notify_all()
        envelope.mail_from = address
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        opened = await asyncio.to_thread(self.gate.wait, 30)
        assert opened, "the test never let DATA through"
        reply = await super().handle_DATA(server, session, envelope)
        with self.arrived:
            self.open -= 1
        return reply

    def wait_open(self, count: int, timeout: float = 20.0) -> None:
        with self.arrived:
            ok = self.arrived.wait_for(lambda: self.open >= count, timeout=timeout)
        assert ok, f"expected {count} open transactions, got {self.open}"


@pytest.fixture
def gated() -> Any:
    handler = GatedHandler()
    server = SmtpServer(handler)
    server.start()
    yield server
    handler.gate.set()
    server.stop()


def stored_first(settings: Settings) -> None:
    """The conversations stored before the relay starts, so that its first claim sees them
    all (one claim takes what the destination's cap admits)."""
    prepared = Runtime(snapshot=build_snapshot(settings))
    intakes = []
    for n in range(CONVERSATIONS):
        data = sample("v1")
        data["channel"]["id"] = 7_000 + n
        intakes.append(prepare(prepared, json.dumps(data).encode()))
    store = open_store(settings)
    try:
        store.accept_many(intakes)
    finally:
        store.close()


def gated_settings(
    make_settings: Callable[..., Settings], server: SmtpServer, per_destination: int | None = CAP
) -> Settings:
    """Concurrency 4; ``per_destination_concurrency`` CAP (a hard cap) unless told otherwise."""
    return make_settings(
        smtp={"host": "127.0.0.1", "port": server.port},
        delivery={
            "concurrency": 4,
            "per_destination_concurrency": per_destination,
            "shutdown_grace_seconds": 20,
        },
        rules=[{"name": "all-by-email", "actions": [{"type": "email", "to": ["ops@shop.test"]}]}],
    )


def claimed_ahead(settings: Settings, client: TestClient[Any], borrowed: int = 0) -> int:
    """How many deliveries of the one destination the worker holds at most: the slots it
    may use (its share CAP, and on SQLite the ``borrowed`` slots too) CLAIM_ROUNDS times on
    SQLite, CLAIM_AHEAD times on PostgreSQL where the lease outlasts CLAIM_AHEAD**2 send
    deadlines; CAP where it does not claim ahead."""
    senders = runtime(client).snapshot.senders.values()
    lease = None if settings.storage.url is None else settings.storage.lease_seconds
    rounds = rounds_ahead(lease, [sender.deadline_seconds for sender in senders])
    if lease is not None:
        borrowed = 0
    return (CAP + borrowed) * rounds


def message_ids(handler: RecordingHandler) -> list[str]:
    return [str(received.message["Message-ID"]) for received in handler.messages]


def test_sends_stay_within_the_cap_while_more_are_claimed_and_rendered_ahead(
    make_settings: Callable[..., Settings], gated: SmtpServer
) -> None:
    handler = gated.handler
    assert isinstance(handler, GatedHandler)
    settings = gated_settings(make_settings, gated)
    stored_first(settings)
    with TestClient(create_app(settings)) as client:
        handler.wait_open(CAP)
        holding = claimed_ahead(settings, client)
        statuses = sorted(row.status for row in deliveries(settings))
        assert statuses.count("sending") == holding
        assert statuses.count("pending") == CONVERSATIONS - holding
        handler.gate.set()
        wait_settled(client)
    assert CLAIM_AHEAD > 1
    assert handler.peak == CAP  # the cap reached, never passed, with more claimed behind it
    ids = message_ids(handler)
    assert len(ids) == CONVERSATIONS
    assert len(set(ids)) == CONVERSATIONS
    assert {row.status for row in deliveries(settings)} == {"sent"}


def test_alone_a_destination_borrows_idle_slots_up_to_all_but_one(
    make_settings: Callable[..., Settings], gated: SmtpServer
) -> None:
    """``per_destination_concurrency`` unset: a share of 2 of the 4 slots, and with no other
    destination waiting the one destination borrows idle slots up to 3, never the fourth;
    more are claimed behind them (on SQLite CLAIM_ROUNDS times the 3 slots it may use, on
    PostgreSQL twice its share). On PostgreSQL with a lease too short to claim ahead it
    claims, and so sends, its share only: a delivery claimed for a borrowed slot could wait
    past its lease."""
    handler = gated.handler
    assert isinstance(handler, GatedHandler)
    settings = gated_settings(make_settings, gated, per_destination=None)
    stored_first(settings)
    with TestClient(create_app(settings)) as client:
        holding = claimed_ahead(settings, client, borrowed=1)
        most = CAP if holding == CAP else CAP + 1
        handler.wait_open(most)
        statuses = sorted(row.status for row in deliveries(settings))
        assert statuses.count("sending") == holding
        assert statuses.count("pending") == CONVERSATIONS - holding
        handler.gate.set()
        wait_settled(client)
    assert holding > CAP or settings.storage.url is not None
    assert handler.peak == most  # borrowed up to all but one, never the last slot
    ids = message_ids(handler)
    assert len(ids) == CONVERSATIONS
    assert len(set(ids)) == CONVERSATIONS
    assert {row.status for row in deliveries(settings)} == {"sent"}


def stopped_while_held(
    client: TestClient[Any], settings: Settings, handler: GatedHandler
) -> tuple[int, list[str]]:
    """Stop the worker while the server holds its sends, then let those end within the grace
    period: how many messages reached the server, and the deliveries' statuses after."""
    worker = runtime(client).worker
    stopping: list[asyncio.Task[None]] = []

    async def begin_stop() -> None:
        """Stop claiming before any held send ends (its end would wake a claim): the stop's
        first step, before it awaits anything, is to claim no more."""
        stopping.append(asyncio.create_task(worker.stop(20.0)))
        await asyncio.sleep(0)

    async def end_stop() -> None:
        await asyncio.wait_for(stopping[0], 30)

    client.blocking_portal.call(begin_stop)
    handler.gate.set()
    client.blocking_portal.call(end_stop)
    assert not worker.running
    return len(handler.messages), sorted(row.status for row in deliveries(settings))


def restarted_sends_each_once(settings: Settings, handler: GatedHandler) -> None:
    """A new start sends the rest: every conversation's email reached the server exactly
    once, and every delivery is sent."""
    with TestClient(create_app(settings)) as client:
        wait_settled(client)
    ids = message_ids(handler)
    assert len(ids) == CONVERSATIONS
    assert len(set(ids)) == CONVERSATIONS
    assert {row.status for row in deliveries(settings)} == {"sent"}


def test_a_stop_while_deliveries_wait_for_a_connection_loses_nothing_and_sends_nothing_twice(
    make_settings: Callable[..., Settings], gated: SmtpServer
) -> None:
    """Stopped with the cap's sends held and the deliveries claimed ahead waiting for a
    connection: those waiting are put back pending at once, the held sends end within the
    grace period, and a new start sends the rest, each conversation's email exactly once."""
    handler = gated.handler
    assert isinstance(handler, GatedHandler)
    settings = gated_settings(make_settings, gated)
    stored_first(settings)
    with TestClient(create_app(settings)) as client:
        handler.wait_open(CAP)
        holding = claimed_ahead(settings, client)
        first_run, statuses = stopped_while_held(client, settings, handler)
    assert holding == CAP * CLAIM_ROUNDS or settings.storage.url is not None
    assert first_run == CAP  # the sends held, not those claimed ahead of them
    assert statuses.count("sent") == CAP
    assert statuses.count("pending") == CONVERSATIONS - CAP
    restarted_sends_each_once(settings, handler)


def test_a_stop_while_a_borrowing_destination_holds_its_claims_ahead_loses_nothing(
    make_settings: Callable[..., Settings], gated: SmtpServer
) -> None:
    """As above with ``per_destination_concurrency`` unset: the one destination borrows a slot
    and (on SQLite) holds CLAIM_ROUNDS times each slot it may use. Stopped then, the
    borrowed send ends within the grace period like the others, every delivery claimed for a
    borrowed slot and not yet sending is put back pending, and a new start sends each email
    exactly once."""
    handler = gated.handler
    assert isinstance(handler, GatedHandler)
    settings = gated_settings(make_settings, gated, per_destination=None)
    stored_first(settings)
    with TestClient(create_app(settings)) as client:
        holding = claimed_ahead(settings, client, borrowed=1)
        most = CAP if holding == CAP else CAP + 1
        handler.wait_open(most)
        held = sorted(row.status for row in deliveries(settings)).count("sending")
        first_run, statuses = stopped_while_held(client, settings, handler)
    assert held == holding
    assert holding == (CAP + 1) * CLAIM_ROUNDS or settings.storage.url is not None
    assert first_run == most  # the sends held, borrowed one included, not those claimed ahead
    assert statuses.count("sent") == most
    assert statuses.count("pending") == CONVERSATIONS - most
    restarted_sends_each_once(settings, handler)
