"""The store thread's one transaction per batch: a failed commit is rolled back, and each
operation undoes only its own changes."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from relay.store import Store, StoreProtocol
from relay.store.postgres import PostgresStore
from relay.store.storethread import StoreThread
from tests.support.store import StoreOpener, bare_intake, held

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


async def test_a_failing_operation_before_any_write_of_its_call_undoes_its_own_only(
    store_thread: StoreThread, open_test_store: StoreOpener
) -> None:
    """Operations nested in a savepoint that has written nothing yet (on SQLite they open no
    savepoint of their own): each failure undoes exactly its writes, a second failure after
    the first as well, and the call goes on and commits what it writes next."""

    def fail_twice_then_write(store: StoreProtocol) -> int:
        for n in (4, 5):
            with pytest.raises(RuntimeError, match="after writing"), store.batch():
                store.accept(bare_intake(n))
                raise RuntimeError("after writing")
        return store.accept(bare_intake(6)).conversation_id

    kept = await store_thread.call(fail_twice_then_write)
    assert committed(open_test_store, kept)
    for n in (4, 5):
        again = await store_thread.accept(bare_intake(n))
        assert not again.duplicate  # the failed operations' conversations were not kept


async def test_a_failing_operation_after_a_sibling_wrote_undoes_its_own_writes_only(
    store_thread: StoreThread, open_test_store: StoreOpener
) -> None:
    """The other way round: in a savepoint whose first operation wrote (on SQLite with no
    savepoint of its own, as the enclosing one had written nothing), a later operation that
    fails undoes its own writes only, not its sibling's."""

    def write_then_fail_next(store: StoreProtocol) -> int:
        with store.batch():
            first = store.accept(bare_intake(9)).conversation_id
            with pytest.raises(RuntimeError, match="after writing"), store.batch():
                store.accept(bare_intake(10))
                raise RuntimeError("after writing")
        return first

    first = await store_thread.call(write_then_fail_next)
    assert committed(open_test_store, first)
    again = await store_thread.accept(bare_intake(10))
    assert not again.duplicate  # the failed operation's conversation was not kept
    assert (await store_thread.accept(bare_intake(9))).duplicate  # its sibling's was


async def test_a_read_failing_inside_reading_leaves_the_batch_usable(
    store_thread: StoreThread, open_test_store: StoreOpener
) -> None:
    """What the worker's claim does with a context read that fails: the writes before and
    after it are committed (PostgreSQL needs a savepoint for that, SQLite does not)."""

    def write_fail_read_write(store: StoreProtocol) -> tuple[int, int]:
        first = store.accept(bare_intake(7)).conversation_id
        assert isinstance(store, Store | PostgresStore)
        with pytest.raises(Exception, match=r"no such table|does not exist"), store.reading():
            store._conn.execute("SELECT * FROM no_such_table")
        return first, store.accept(bare_intake(8)).conversation_id

    first, second = await store_thread.call(write_fail_read_write)
    assert committed(open_test_store, first)
    assert committed(open_test_store, second)


async def test_calls_written_together_each_undo_their_own_writes_only(
    store_thread: StoreThread, open_test_store: StoreOpener
) -> None:
    """Calls queued while the store's thread is busy share the next batch: each one in a
    savepoint of its own there."""

    def write(n: int, *, fail: bool = False) -> Callable[[StoreProtocol], int]:
        def call(store: StoreProtocol) -> int:
            accepted = store.accept(bare_intake(n)).conversation_id
            if fail:
                raise RuntimeError("after writing")
            return accepted

        return call

    async with held(store_thread):
        together = asyncio.gather(
            store_thread.call(write(11)),
            store_thread.call(write(12, fail=True)),
            store_thread.call(write(13)),
            return_exceptions=True,
        )
        await asyncio.sleep(0)  # queued behind the held call
    first, failed, last = await together
    assert isinstance(failed, RuntimeError)
    assert isinstance(first, int)
    assert isinstance(last, int)
    assert committed(open_test_store, first)
    assert committed(open_test_store, last)
    again = await store_thread.accept(bare_intake(12))
    assert not again.duplicate  # the failed call's conversation was not kept


def refuse_conversation_66(path: Path) -> None:
    """A trigger (made over another connection) that RAISE(ROLLBACK)s the insert of
    conversation 1-66: SQLite then ends the whole transaction, not the statement."""
    other = sqlite3.connect(path)
    other.execute(
        "CREATE TRIGGER refuse_66 BEFORE INSERT ON conversations WHEN NEW.conv_key = '1-66'"
        " BEGIN SELECT RAISE(ROLLBACK, 'refused by trigger'); END"
    )
    other.commit()
    other.close()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_call_alone_whose_error_ends_the_transaction_gets_that_error(
    store_thread: StoreThread, open_test_store: StoreOpener
) -> None:
    """A call alone in its batch runs in the batch's transaction itself: an error that makes
    SQLite end the whole transaction reaches its caller as it is, and the store goes on."""
    path = store_thread.store.path  # type: ignore[attr-defined] # SQLite's file
    refuse_conversation_66(path)
    with pytest.raises(sqlite3.IntegrityError, match="refused by trigger"):
        await store_thread.call(lambda s: s.accept(bare_intake(66)))
    later = await store_thread.accept(bare_intake(3))
    assert committed(open_test_store, later.conversation_id)


def test_an_error_that_rolls_back_the_whole_batch_fails_the_rest_of_it(tmp_path: Path) -> None:
    path = tmp_path / "relay.db"
    store = Store(path)
    # A trigger that RAISE(ROLLBACK)s: SQLite then ends the whole transaction, not the
    # statement (as a full disk or an interrupted statement may).
    refuse_conversation_66(path)
    try:
        batch = pytest.raises(sqlite3.OperationalError, match="rolled back by an error")
        with batch, store.batch():  # the commit at its end fails too
            store.accept(bare_intake(1))
            with pytest.raises(sqlite3.IntegrityError, match="refused by trigger"):
                store.accept(bare_intake(66))
            with pytest.raises(sqlite3.OperationalError, match="rolled back by an error"):
                store.accept(bare_intake(2))  # the batch is gone: nothing more joins it
        assert store.conversation_raw(1) is None  # rolled back with the rest
        later = store.accept(bare_intake(3))  # the store goes on
        assert Store(path).conversation_raw(later.conversation_id) is not None
    finally:
        store.close()
