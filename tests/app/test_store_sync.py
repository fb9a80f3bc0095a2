"""SQLite commits are flushed to the disk by a thread of their own: a caller learns its result
only after the flush that follows its commit, and a failed flush stops all storing."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from relay.model.errors import StoreError
from relay.store import Store
from relay.store.base import WalSync
from relay.store.storethread import StoreThread
from tests.support.store import bare_intake


class GatedSync(WalSync):
    """The real flush, run only once the test opens the gate; or a refusing disk."""

    def __init__(self, wal: WalSync, gate: threading.Event, *, fail: bool = False) -> None:
        self.__dict__.update(wal.__dict__)
        self.gate = gate
        self.fail = fail
        self.flushes = 0
        self.entered = threading.Event()

    def sync(self) -> None:
        self.entered.set()
        self.gate.wait()
        if self.fail:
            raise OSError(5, "Input/output error")
        super().sync()
        self.flushes += 1


class GatedStore(Store):
    def __init__(self, path: Path, gate: threading.Event, *, fail: bool = False) -> None:
        super().__init__(path)
        self.gate = gate
        self.fail = fail
        self.wal: GatedSync | None = None

    def defer_sync(self) -> WalSync | None:
        wal = super().defer_sync()
        assert wal is not None  # a new store in a temporary directory is in WAL mode
        self.wal = GatedSync(wal, self.gate, fail=self.fail)
        return self.wal


async def test_an_intake_is_answered_only_after_its_commit_is_flushed(tmp_path: Path) -> None:
    gate = threading.Event()
    store = GatedStore(tmp_path / "relay.db", gate)
    thread = StoreThread(store)
    try:
        pending = asyncio.ensure_future(thread.accept(bare_intake(1)))
        assert store.wal is not None
        await asyncio.to_thread(store.wal.entered.wait)  # the flush after the commit began
        # Committed (another connection sees it) but not yet flushed: no answer yet.
        assert Store(tmp_path / "relay.db").conversation_raw(1) is not None
        await asyncio.sleep(0)
        assert not pending.done()
        gate.set()
        accepted = await pending
        assert accepted.conversation_id == 1
        assert store.wal.flushes >= 1
    finally:
        gate.set()
        thread.close()


async def test_a_failed_flush_fails_its_callers_and_every_later_intake(tmp_path: Path) -> None:
    gate = threading.Event()
    gate.set()
    thread = StoreThread(GatedStore(tmp_path / "relay.db", gate, fail=True))
    try:
        with pytest.raises(StoreError, match="could not be flushed"):
            await thread.accept(bare_intake(1))
        with pytest.raises(StoreError, match="could not be flushed"):
            await thread.accept(bare_intake(2))
        assert thread.intake_error is not None
    finally:
        thread.close()


def test_the_log_is_copied_into_the_database_file_once_it_has_grown(tmp_path: Path) -> None:
    path = tmp_path / "relay.db"
    store = Store(path)
    wal = store.defer_sync()
    assert wal is not None
    try:
        store.accept(bare_intake(1))
        wal.checkpoint()  # a few changes: the log keeps them
        before = path.stat().st_size
        store.accept_many([bare_intake(n) for n in range(2, 2 + wal.CHECKPOINT_PAGES)])
        assert path.stat().st_size == before  # everything is in the log
        wal.checkpoint()
        assert path.stat().st_size > before  # now copied into the database file
        reader = Store(path)
        assert reader.conversation_raw(1 + wal.CHECKPOINT_PAGES) is not None
        reader.close()
    finally:
        wal.close()
        store.close()


class FailingCheckpoint(WalSync):
    """The real log, whose first checkpoint fails (a disk that refused the copy once)."""

    def __init__(self, wal: WalSync) -> None:
        self.__dict__.update(wal.__dict__)
        self.calls = 0

    def checkpoint(self, *, force: bool = False) -> None:
        self.calls += 1
        if self.calls == 1:
            raise OSError(28, "No space left on device")
        super().checkpoint(force=force)


class FailingCheckpointStore(Store):
    wal: FailingCheckpoint | None = None

    def defer_sync(self) -> WalSync | None:
        wal = super().defer_sync()
        assert wal is not None
        self.wal = FailingCheckpoint(wal)
        return self.wal


async def test_a_failed_checkpoint_is_logged_and_storing_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FailingCheckpointStore(tmp_path / "relay.db")
    thread = StoreThread(store)
    try:
        first = await thread.accept(bare_intake(1))
        second = await thread.accept(bare_intake(2))
        assert (first.conversation_id, second.conversation_id) == (1, 2)
        assert store.wal is not None and store.wal.calls >= 2  # tried again after the failure
    finally:
        thread.close()
    assert "checkpoint of the write-ahead log failed" in caplog.text
    assert "No space left on device" in caplog.text
    assert Store(tmp_path / "relay.db").conversation_raw(2) is not None
