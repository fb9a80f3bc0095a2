"""The store thread's one transaction per batch: a failed commit is rolled back, and each
operation undoes only its own changes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from relay.store import Store
from relay.store.storethread import StoreThread
from tests.support.store import bare_intake

ORPHAN_DELIVERY = (
    "INSERT INTO deliveries (conversation_id, dedupe_key, rule, channel, action, category,"
    " created_at, next_attempt_at, updated_at) VALUES (999999, ?, 'r', 'email', '{}', 'missed',"
    " 0, 0, 0)"
)


def committed(path: Path, conversation_id: int) -> bool:
    """Whether another connection sees the conversation (it was committed)."""
    other = Store(path)
    try:
        return other.conversation_raw(conversation_id) is not None
    finally:
        other.close()


async def test_after_a_failed_commit_later_batches_are_committed(
    store_thread: StoreThread, tmp_path: Path
) -> None:
    def break_the_commit(store: Store) -> None:
        # A foreign key checked only at COMMIT: this batch's commit fails.
        store._conn.execute("PRAGMA defer_foreign_keys=ON")
        store._conn.execute(ORPHAN_DELIVERY, ("orphan",))

    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        await store_thread.call(break_the_commit)
    accepted = await store_thread.accept(bare_intake(1))
    assert committed(tmp_path / "relay.db", accepted.conversation_id)


async def test_a_failing_call_undoes_its_own_writes_only(
    store_thread: StoreThread, tmp_path: Path
) -> None:
    def write_then_fail(store: Store) -> None:
        store.accept(bare_intake(2))
        raise RuntimeError("after writing")

    with pytest.raises(RuntimeError, match="after writing"):
        await store_thread.call(write_then_fail)
    kept = await store_thread.accept(bare_intake(3))
    again = await store_thread.accept(bare_intake(2))
    assert not again.duplicate  # the failed call's conversation was not kept
    assert committed(tmp_path / "relay.db", kept.conversation_id)
