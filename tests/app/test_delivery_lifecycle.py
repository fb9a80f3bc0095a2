"""Delivery bookkeeping across stops: recovery of interrupted sends, release on shutdown, the
retry decision at its edges, Message-ID stability."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest
from litestar.testing import TestClient

from relay.app import create_app
from relay.config.settings import EmailAction, Settings
from relay.delivery.retry import GiveUp, RetryAt, RetryPolicy, decide
from relay.delivery.worker import message_id
from relay.routing.rules import PlannedDelivery
from relay.senders.slack import retry_after_seconds
from relay.store import StoreProtocol
from tests.support.data import TOKEN, sample
from tests.support.holding_smtp import HoldingHandler
from tests.support.smtp import SmtpServer
from tests.support.store import StoreOpener, deliveries, emailed_intake


@pytest.fixture
def store(open_test_store: StoreOpener) -> StoreProtocol:
    return open_test_store()


def test_an_interrupted_send_is_requeued_and_counted(store: StoreProtocol) -> None:
    store.accept(emailed_intake(), now=100)
    [claimed] = store.claim_due(10, now=100)
    assert claimed.attempts == 1
    assert store.claim_due(10, now=100) == []  # claimed rows are not handed out twice
    assert store.recover_claimed(now=200) == 1
    [row] = store.deliveries()
    assert (row.status, row.attempts, row.next_attempt_at) == ("retrying", 1, 200)
    assert row.last_error == "interrupted while sending"
    [again] = store.claim_due(10, now=200)
    assert again.attempts == 2


def test_a_claim_carries_the_recipients_done_so_far(store: StoreProtocol) -> None:
    store.accept(emailed_intake(1), now=100)
    store.accept(emailed_intake(2), now=100)
    first, second = store.claim_due(10, now=100)
    assert (first.done_recipients, second.done_recipients) == ((), ())
    store.mark_retry(first.id, 200, "451 later", ("b@shop.test", "a@shop.test"), now=100)
    store.mark_retry(second.id, 200, "451 later", (), now=100)
    again = {claimed.id: claimed.done_recipients for claimed in store.claim_due(10, now=200)}
    assert again == {first.id: ("a@shop.test", "b@shop.test"), second.id: ()}


def test_a_claim_takes_only_what_admit_accepts_and_leaves_the_rest_queued(
    store: StoreProtocol,
) -> None:
    for n in range(1, 6):
        to = "a@shop.test" if n % 2 else "b@shop.test"
        store.accept(emailed_intake(channel_id=n, to=to), now=100 + n)
    offered: list[str] = []

    def one_each(action: dict[str, Any]) -> bool:
        """Room for one delivery per recipient (monotone, as the worker's admitter is)."""
        offered.append(action["to"][0])
        return offered.count(action["to"][0]) == 1

    claimed = store.claim_due(3, now=200, admit=one_each)
    assert [c.conversation_id for c in claimed] == [1, 2]  # in due order
    # An action once turned away is not offered again: its later deliveries are left out.
    assert offered == ["a@shop.test", "b@shop.test", "a@shop.test", "b@shop.test"]
    rows = {row.conversation_id: row.status for row in store.deliveries()}
    assert rows == {1: "sending", 2: "sending", 3: "pending", 4: "pending", 5: "pending"}
    assert store.next_due_at() == 103
    assert store.next_due_at(after=104) == 105
    assert store.next_due_at(after=105) is None
    # The limit is respected, and the scan stops once it is reached.
    offered.clear()
    [third] = store.claim_due(1, now=200, admit=lambda action: offered.append("x") is None)
    assert third.conversation_id == 3 and offered == ["x"]


def test_a_backlog_for_a_full_destination_is_not_read_row_by_row(store: StoreProtocol) -> None:
    """600 deliveries to a full destination (more than one page of the scan) ahead of three
    to another: the claim finds the three, offering the full destination's action once."""
    for n in range(1, 601):
        store.accept(emailed_intake(channel_id=n, to="full@shop.test"), now=100)
    for n in range(601, 604):
        store.accept(emailed_intake(channel_id=n, to="free@shop.test"), now=101)
    offered: list[str] = []

    def room_for_free(action: dict[str, Any]) -> bool:
        offered.append(action["to"][0])
        return action["to"][0] == "free@shop.test"

    claimed = store.claim_due(10, now=200, admit=room_for_free)
    assert [c.conversation_id for c in claimed] == [601, 602, 603]
    assert offered == ["full@shop.test"] + ["free@shop.test"] * 3


def test_a_claim_told_not_to_look_past_a_refusal_ends_there(store: StoreProtocol) -> None:
    """``past_refused=False`` (the worker's claims right after one that found only a full
    destination's backlog): what is admitted before the first refusal is claimed, nothing
    behind it is read; the next full claim finds the rest."""
    store.accept(emailed_intake(channel_id=1, to="free@shop.test"), now=100)
    for n in range(2, 6):
        store.accept(emailed_intake(channel_id=n, to="full@shop.test"), now=101)
    store.accept(emailed_intake(channel_id=6, to="free@shop.test"), now=102)
    offered: list[str] = []

    def room_for_free(action: dict[str, Any]) -> bool:
        offered.append(action["to"][0])
        return action["to"][0] == "free@shop.test"

    claimed = store.claim_due(10, now=200, admit=room_for_free, past_refused=False)
    assert [c.conversation_id for c in claimed] == [1]
    assert offered == ["free@shop.test", "full@shop.test"]
    offered.clear()
    claimed = store.claim_due(10, now=200, admit=room_for_free)
    assert [c.conversation_id for c in claimed] == [6]
    assert offered == ["full@shop.test", "free@shop.test"]
    rows = {row.conversation_id: row.status for row in store.deliveries()}
    assert [n for n, status in sorted(rows.items()) if status == "pending"] == [2, 3, 4, 5]


def test_a_released_send_goes_back_untouched(store: StoreProtocol) -> None:
    store.accept(emailed_intake(), now=100)
    [claimed] = store.claim_due(10, now=100)
    store.release([claimed.id], now=150)
    [row] = store.deliveries()
    assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 0, 150)
    [claimed] = store.claim_due(10, now=150)
    store.mark_retry(claimed.id, at=160, error="451 later")
    [claimed] = store.claim_due(10, now=160)
    assert claimed.attempts == 2
    store.release([claimed.id], now=170)
    [row] = store.deliveries()
    assert (row.status, row.attempts, row.last_error) == ("retrying", 1, "451 later")


def test_versions_plan_each_action_once_per_category(store: StoreProtocol) -> None:
    first = store.accept(emailed_intake(text="a"))
    same = store.accept(emailed_intake(text="a"))
    changed = store.accept(emailed_intake(text="b"))
    recategorised = store.accept(emailed_intake(text="c", category="low-rated"))
    assert (first.version, first.deliveries) == (1, 1)
    assert (same.duplicate, same.version, same.deliveries) == (True, 1, 0)
    assert (changed.duplicate, changed.version, changed.deliveries) == (False, 2, 0)
    assert (recategorised.version, recategorised.deliveries) == (3, 1)


def test_a_crm_id_is_kept_and_found_by_later_versions_of_the_same_action(
    store: StoreProtocol,
) -> None:
    first = store.accept(emailed_intake(text="a"), now=100)
    [one] = store.deliveries(conversation_id=first.conversation_id)
    assert store.known_external_ref(one.id) is None
    store.record_external_ref(one.id, "ticket-1")
    store.record_external_ref(one.id, None, "no email: nothing created")  # keeps the id
    assert store.known_external_ref(one.id) == "ticket-1"
    noted = store.delivery(one.id)
    assert noted is not None
    assert noted.last_error == "no email: nothing created"
    # A later version in another category plans the same action again: it finds the id.
    later = store.accept(emailed_intake(text="b", category="low-rated"), now=101)
    [two] = store.deliveries(conversation_id=later.conversation_id)
    assert store.known_external_ref(two.id) == "ticket-1"
    store.record_external_ref(two.id, "ticket-2")
    assert (store.known_external_ref(two.id), store.known_external_ref(one.id)) == (
        "ticket-2",
        "ticket-1",
    )
    # Another action of the same conversation, or another conversation: nothing to update.
    other_action = PlannedDelivery(
        rule="r", action=EmailAction(type="email", to=["other@shop.test"])
    )
    third = store.accept(
        replace(emailed_intake(text="c", category="offline"), planned=(other_action,))
    )
    [three] = store.deliveries(conversation_id=third.conversation_id)
    elsewhere = store.accept(emailed_intake(channel_id=2, text="a"), now=102)
    [four] = store.deliveries(conversation_id=elsewhere.conversation_id)
    assert store.known_external_ref(three.id) is None
    assert store.known_external_ref(four.id) is None


def test_message_id_is_stable_per_conversation_action_and_category() -> None:
    key = "208-55039/missed/email:sales@shop.test"
    assert message_id(key, "Relay <relay@shop.test>") == message_id(key, "relay@shop.test")
    assert message_id(key, "relay@shop.test").endswith("@shop.test>")
    assert message_id(key, "x@shop.test") != message_id(key.replace("missed", "offline"), "x@s.t")


@pytest.mark.usefixtures("backend")  # on each store
def test_shutdown_grace_expiry_releases_the_in_flight_send_and_a_restart_delivers_it(
    make_settings: Callable[..., Settings],
) -> None:
    handler = HoldingHandler()
    handler.holding.set()
    server = SmtpServer(handler)
    server.start()
    try:
        settings = make_settings(
            smtp={"host": "127.0.0.1", "port": server.port},
            delivery={"shutdown_grace_seconds": 0.2},
        )
        data = sample("v1")
        data["channel"]["isMissed"] = True
        with TestClient(create_app(settings)) as client:
            client.post(f"/hooks/smartsupp/{TOKEN}", content=json.dumps(data).encode())
            handler.wait_held(1)
        [row] = deliveries(settings)
        assert (row.status, row.attempts) == ("pending", 0)
        handler.release()
        with TestClient(create_app(settings)) as client:
            handler.wait_for(2)
        # The held copy reached the server before the stop: at least once, never lost.
        assert [m.message["Message-ID"] for m in handler.messages].count(
            handler.messages[0].message["Message-ID"]
        ) == 2
    finally:
        handler.release()
        server.stop()


POLICY = RetryPolicy(initial_seconds=1, max_seconds=900, max_age_seconds=3 * 86400)


def test_a_retry_after_beyond_the_age_limit_gets_a_last_attempt_at_the_limit() -> None:
    decision = decide(POLICY, attempts=1, created_at=0, now=10, jitter=0.5, retry_after=4 * 86400)
    assert decision == RetryAt(at=3 * 86400, delay=3 * 86400 - 10)
    last = decide(
        POLICY, attempts=2, created_at=0, now=3 * 86400, jitter=0.5, retry_after=4 * 86400
    )
    assert isinstance(last, GiveUp)


def test_backoff_stays_within_equal_jitter_bounds_for_every_attempt() -> None:
    for attempts in range(1, 40):
        ceiling = min(900.0, 2.0 ** (attempts - 1))
        for jitter in (0.0, 0.5, 0.999):
            decision = decide(POLICY, attempts=attempts, created_at=0, now=0, jitter=jitter)
            assert isinstance(decision, RetryAt)
            assert ceiling / 2 <= decision.delay < ceiling or decision.delay == ceiling / 2


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds("-3") == 0.0
    assert retry_after_seconds(None) == 1.0
    assert retry_after_seconds("soon") == 1.0
    when = datetime(2030, 1, 1, 0, 0, 30, tzinfo=UTC)
    now = datetime(2030, 1, 1, 0, 0, 0, tzinfo=UTC).timestamp()
    assert retry_after_seconds(format_datetime(when, usegmt=True), now=now) == 30.0
