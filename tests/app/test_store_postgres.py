"""The PostgreSQL store's shared queue: leases with an expiry, claims that skip each other,
duplicates and versions decided by constraints under concurrency, versioned migrations."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import psycopg
import pytest

from relay.model.errors import StoreVersionError
from relay.store import Intake
from relay.store.postgres import PostgresStore
from relay.store.postgres.schema import MIGRATIONS, SCHEMA_VERSION
from tests.support.store import emailed_intake

T = TypeVar("T")
LEASE = 60.0


@pytest.fixture
def relays(postgres_url: str) -> Iterator[Callable[[], PostgresStore]]:
    """Opens stores on one database, each a relay of its own (its own holder)."""
    opened: list[PostgresStore] = []

    def open_one() -> PostgresStore:
        store = PostgresStore(postgres_url, lease_seconds=LEASE)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


def together(count: int, work: Callable[[int], T]) -> list[T]:
    """Run ``work(0..count-1)`` on as many threads, released at the same moment."""
    start = threading.Barrier(count)

    def run(n: int) -> T:
        start.wait(10)
        return work(n)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def test_a_lease_blocks_other_relays_until_it_expires_then_one_takes_it_over(
    relays: Callable[[], PostgresStore],
) -> None:
    first, second = relays(), relays()
    first.accept(emailed_intake(1), now=100)
    [held] = first.claim_due(10, now=100)
    assert second.claim_due(10, now=100 + LEASE - 1) == []  # the lease holds
    assert second.recover_claimed(now=100 + LEASE - 1) == 0  # another relay's live lease
    assert second.next_due_at() == 100 + LEASE  # the survivor knows when to look again
    [taken] = second.claim_due(10, now=100 + LEASE)
    assert (taken.id, taken.attempts) == (held.id, 2)  # the interrupted attempt counts
    first.mark_sent(held.id, now=100 + LEASE + 1)  # too late: no longer the holder
    [row] = second.deliveries()
    assert (row.status, row.last_error) == ("sending", "interrupted while sending")
    second.mark_sent(taken.id, now=100 + LEASE + 2)
    [row] = second.deliveries(("sent",))
    assert row.updated_at == 100 + LEASE + 2


def test_a_restarted_relay_recovers_what_it_held_and_only_that(
    relays: Callable[[], PostgresStore], postgres_url: str
) -> None:
    mine, other = relays(), relays()
    mine.accept(emailed_intake(1), now=100)
    mine.accept(emailed_intake(2), now=100)
    [a] = mine.claim_due(1, now=100)
    [b] = other.claim_due(1, now=100)
    restarted = PostgresStore(postgres_url, holder=mine.holder, lease_seconds=LEASE)
    try:
        assert restarted.recover_claimed(now=110) == 1
        states = {row.id: row.status for row in restarted.deliveries()}
        assert states == {a.id: "retrying", b.id: "sending"}
    finally:
        restarted.close()


def test_relays_claiming_at_once_never_share_a_delivery(
    relays: Callable[[], PostgresStore],
) -> None:
    stores = [relays() for _ in range(4)]
    for n in range(40):
        stores[0].accept(emailed_intake(n), now=100)

    def drain(n: int) -> list[int]:
        ids: list[int] = []
        while claimed := stores[n].claim_due(3, now=200):
            ids += [c.id for c in claimed]
        return ids

    taken = together(len(stores), drain)
    every = [i for ids in taken for i in ids]
    assert len(every) == len(set(every)) == 40


def test_identical_intakes_on_several_relays_store_one_conversation(
    relays: Callable[[], PostgresStore],
) -> None:
    stores = [relays() for _ in range(6)]
    accepted = together(
        len(stores), lambda n: stores[n].accept(emailed_intake(1, text="same"), now=100)
    )
    assert sorted(a.duplicate for a in accepted) == [False] + [True] * 5
    assert len({a.conversation_id for a in accepted}) == 1
    assert len(stores[0].deliveries()) == 1


def test_changed_intakes_on_several_relays_get_distinct_versions(
    relays: Callable[[], PostgresStore],
) -> None:
    stores = [relays() for _ in range(6)]
    accepted = together(
        len(stores), lambda n: stores[n].accept(emailed_intake(1, text=f"t{n}"), now=100)
    )
    assert sorted(a.version for a in accepted) == [1, 2, 3, 4, 5, 6]
    assert not any(a.duplicate for a in accepted)
    assert len(stores[0].deliveries()) == 1  # one action per category, whatever the version


def test_relays_starting_together_migrate_once(postgres_url: str) -> None:
    stores = together(4, lambda _: PostgresStore(postgres_url))
    for store in stores:
        store.close()
    with psycopg.connect(postgres_url) as conn:
        versions = conn.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
    assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]


def test_a_database_from_a_newer_relay_is_refused(postgres_url: str) -> None:
    PostgresStore(postgres_url).close()
    with psycopg.connect(postgres_url) as conn:
        conn.execute("INSERT INTO schema_version VALUES (%s)", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreVersionError, match="newer than this relay"):
        PostgresStore(postgres_url)


def test_a_version_1_database_loses_parsed_and_gains_external_ref_keeping_its_rows(
    postgres_url: str,
) -> None:
    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute(MIGRATIONS[0].encode())
        conn.execute("INSERT INTO schema_version VALUES (1)")
        conn.execute(
            "INSERT INTO conversations (conv_key, account_id, channel_id, version, content_hash,"
            " category, received_at, raw, parsed) VALUES ('7-1', 7, 1, 1, 'h', 'missed', 1,"
            " '\\x7b7d', '\\x7b7d')"
        )
    store = PostgresStore(postgres_url)
    try:
        assert store.conversation_raw(1) == (b"{}", "missed", "7-1")
        assert store.accept(emailed_intake(1, text="later")).version == 2
        [delivery] = store.deliveries()
        store.record_external_ref(delivery.id, "note-1")
        assert store.known_external_ref(delivery.id) == "note-1"
    finally:
        store.close()
    with psycopg.connect(postgres_url) as conn:
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name = 'conversations' AND column_name = 'parsed'"
        ).fetchall()
        versions = conn.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
    assert columns == []
    assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]


def test_a_version_5_database_keeps_its_console_users_and_gains_signed_out_at(
    postgres_url: str,
) -> None:
    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for version, step in enumerate(MIGRATIONS[:5], start=1):
            conn.execute(step.encode())
            conn.execute("INSERT INTO schema_version VALUES (%s)", (version,))
        conn.execute("INSERT INTO console_users VALUES ('jana', 'hash-1', 100)")
        conn.execute(
            "INSERT INTO console_audit (at, actor, action, target)"
            " VALUES (1, 'jana', 'login', 'console')"
        )
    store = PostgresStore(postgres_url)
    try:
        assert store.console_users() == [("jana", 100.0)]
        assert [row.action for row in store.audit_log()] == ["login"]
        assert store.console_user_session("jana") == ("hash-1", None)
        assert store.sign_out_console_user("jana", 200.0) is True
        assert store.console_user_session("jana") == ("hash-1", 200.0)
    finally:
        store.close()
    with psycopg.connect(postgres_url) as conn:
        versions = conn.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
    assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]


def test_purge_runs_on_one_relay_at_a_time(relays: Callable[[], PostgresStore]) -> None:
    first, second = relays(), relays()
    with first.exclusive("purge") as held:
        assert held
        with second.exclusive("purge") as also:
            assert not also
    with second.exclusive("purge") as held:
        assert held


def test_intake_and_retry_now_wake_every_listening_relay(
    relays: Callable[[], PostgresStore],
) -> None:
    idle, busy = relays(), relays()
    woken: queue.SimpleQueue[str] = queue.SimpleQueue()
    listener = idle.listen(lambda: woken.put("woken"))
    assert listener.listening.wait(10)
    assert woken.get(timeout=10) == "woken"  # on connecting: whatever came meanwhile is due
    busy.accept(emailed_intake(1), now=100)
    assert woken.get(timeout=10) == "woken"
    [claimed] = busy.claim_due(1, now=100)
    busy.mark_dead(claimed.id, "550 no such user", now=101)
    assert busy.retry_now([claimed.id], now=102) == 1
    assert woken.get(timeout=10) == "woken"
    assert [c.id for c in idle.claim_due(1, now=102)] == [claimed.id]


def test_a_listener_listens_again_after_losing_the_server(
    relays: Callable[[], PostgresStore], postgres_url: str
) -> None:
    idle, busy = relays(), relays()
    woken: queue.SimpleQueue[str] = queue.SimpleQueue()
    listener = idle.listen(lambda: woken.put("woken"))
    assert woken.get(timeout=10) == "woken"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE query LIKE 'LISTEN %' AND pid <> pg_backend_pid()"
        )
    assert woken.get(timeout=10) == "woken"  # connected again
    assert listener.listening.wait(10)
    busy.accept(emailed_intake(1), now=100)
    assert woken.get(timeout=10) == "woken"


def test_a_claim_in_progress_is_skipped_not_waited_for(
    relays: Callable[[], PostgresStore],
) -> None:
    first, second = relays(), relays()
    for n in range(3):
        first.accept(emailed_intake(n), now=100 + n)
    with first.batch():  # the first relay's claim is not committed yet
        [taken] = first.claim_due(1, now=200)
        others = second.claim_due(10, now=200)  # SKIP LOCKED: no wait, no double claim
        assert taken.id not in {c.id for c in others}
        assert len(others) == 2


def test_deliveries_a_claim_does_not_admit_stay_free_for_other_relays(
    relays: Callable[[], PostgresStore],
) -> None:
    first, second = relays(), relays()
    first.accept(emailed_intake(1), now=100)
    with first.batch():
        assert first.claim_due(10, now=200, admit=lambda action: False) == []
        assert len(second.claim_due(10, now=200)) == 1  # not locked by the refusal


def test_a_version_6_database_gains_the_begin_time_column_and_reads_older_rows_from_the_body(
    postgres_url: str,
) -> None:
    """Step 7 adds conversations.begin_at in place: a row stored before it has none, and the
    visitor's history reads that row's begin time from its body."""
    body = json.dumps(
        {"accountId": 7, "channel": {"id": 1}, "beginAt": 1427414400000, "visitor": {"id": 5}}
    ).encode()
    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for version, step in enumerate(MIGRATIONS[:6], start=1):
            conn.execute(step.encode())
            conn.execute("INSERT INTO schema_version VALUES (%s)", (version,))
        conn.execute(
            "INSERT INTO conversations (conv_key, account_id, channel_id, version, content_hash,"
            " category, received_at, raw) VALUES ('7-1', 7, 1, 1, 'h', 'missed', 2, %s)",
            (body,),
        )
    store = PostgresStore(postgres_url)
    try:
        later = body.replace(b'"id": 1}', b'"id": 2}')
        current = store.accept(
            Intake(later, "7-2", 7, 2, "h2", "offline", (), begin_at=1427500800.0)
        ).conversation_id
        assert store.visitor_history(current) == (("missed", 1427414400.0),)
    finally:
        store.close()
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute("SELECT id, begin_at FROM conversations ORDER BY id").fetchall()
        versions = conn.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
    assert rows == [(1, None), (2, 1427500800.0)]
    assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]
