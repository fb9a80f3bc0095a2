"""The store thread's one transaction per batch: a failed commit is rolled back, and each
operation undoes only its own changes."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from relay.store import Store, StoreProtocol
from relay.store.postgres import PostgresStore
from relay.store.storethread import StoreThread
from tests.support.store import StoreOpener, bare_intake

ORPHAN_DELIVERY = (
    "INSERT INTO deliveries (conversation_id, dedupe_key, rule, channel, action, category,"
    " created_at, next_attempt_at, updated_at) VALUES (999999, ?, 'r', 'email', '{}', 'missed',"
    " 0, 0, 0)"
)


# PostgreSQL: a foreign key declared deferred is checked at COMMIT (the table goes with the
# rolled-back transaction).
DEFERRED_ORPHAN = (
    "CREATE TABLE orphan (conversation_id BIGINT REFERENCES conversations (id)"
    " DEFERRABLE INITIALLY DEFERRED)",
    "INSERT INTO orphan VALUES (999999)",
)


def committed(open_test_store: StoreOpener, conversation_id: int) -> bool:
    """Whether another connection sees the conversation (it was committed)."""
    return open_test_store().conversation_raw(conversation_id) is not None


async def test_after_a_failed_commit_later_batches_are_committed(
    store_thread: StoreThread, open_test_store: StoreOpener
) -> None:
    def break_the_commit(store: StoreProtocol) -> None:
        # A foreign key checked only at COMMIT: this batch's commit fails.
        if isinstance(store, Store):
            store._conn.execute("PRAGMA defer_foreign_keys=ON")
            store._conn.execute(ORPHAN_DELIVERY, ("orphan",))
        else:
            assert isinstance(store, PostgresStore)
            for statement in DEFERRED_ORPHAN:
                store._conn.execute(statement)

    failed = (sqlite3.IntegrityError, psycopg.errors.ForeignKeyViolation)
    with pytest.raises(failed, match=r"(?i)foreign key"):
        await store_thread.call(break_the_commit)
    accepted = await store_thread.accept(bare_intake(1))
    assert committed(open_test_store, accepted.conversation_id)


async def test_a_failing_call_undoes_its_own_writes_only(
    store_thread: StoreThread, open_test_store: StoreOpener
) -> None:
    def write_then_fail(store: StoreProtocol) -> None:
        store.accept(bare_intake(2))
        raise RuntimeError("after writing")

    with pytest.raises(RuntimeError, match="after writing"):
        await store_thread.call(write_then_fail)
    kept = await store_thread.accept(bare_intake(3))
    again = await store_thread.accept(bare_intake(2))
    assert not again.duplicate  # the failed call's conversation was not kept
    assert committed(open_test_store, kept.conversation_id)
