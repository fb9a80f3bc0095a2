"""SQLite commits are flushed to the disk by a thread of their own: a caller learns its result
only after the flush that follows its commit, and a failed flush stops all storing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from relay.model.errors import StoreError
from relay.store import Accepted, Intake, Store
from relay.store.base import LogCopier, WalSync
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


class FailsOnce(WalSync):
    """A disk that refuses the first flush (once the test opens the gate) and takes the
    next ones: on Linux an fdatasync reports a write-back error once, then succeeds."""

    def __init__(self, wal: WalSync, gate: threading.Event) -> None:
        self.__dict__.update(wal.__dict__)
        self.gate = gate
        self.flushes = 0
        self.entered = threading.Event()

    def sync(self) -> None:
        self.flushes += 1
        if self.flushes == 1:
            self.entered.set()
            self.gate.wait()
            raise OSError(5, "Input/output error")
        super().sync()


class SecondIntakeSeen(Store):
    """Sets ``writing`` when the store thread writes the intake of conversation 2: past the
    check for a failed flush, so that intake is committed whatever the flush says."""

    def __init__(self, path: Path, gate: threading.Event) -> None:
        super().__init__(path)
        self.gate = gate
        self.writing = threading.Event()
        self.wal: FailsOnce | None = None

    def defer_sync(self) -> WalSync | None:
        wal = super().defer_sync()
        assert wal is not None
        self.wal = FailsOnce(wal, self.gate)
        return self.wal

    def accept_many(self, intakes: Sequence[Intake], now: float | None = None) -> list[Accepted]:
        if any(intake.channel_id == 2 for intake in intakes):
            self.writing.set()
        return super().accept_many(intakes, now)


async def test_a_commit_made_before_a_failed_flush_is_never_answered_by_a_later_one(
    tmp_path: Path,
) -> None:
    # The log's frames follow one another: if the first flush lost some, a crash loses every
    # later frame with them, however well a later flush goes. The commit written while that
    # flush was failing must not be acknowledged by the next one.
    gate = threading.Event()
    store = SecondIntakeSeen(tmp_path / "relay.db", gate)
    thread = StoreThread(store)
    try:
        first = asyncio.ensure_future(thread.accept(bare_intake(1)))
        assert store.wal is not None
        await asyncio.to_thread(store.wal.entered.wait)  # the first flush began, and waits
        second = asyncio.ensure_future(thread.accept(bare_intake(2)))
        await asyncio.to_thread(store.writing.wait)
        gate.set()
        with pytest.raises(StoreError, match="could not be flushed"):
            await first
        with pytest.raises(StoreError, match="could not be flushed"):
            await second
    finally:
        gate.set()
        thread.close()


def _open_inodes() -> set[tuple[int, int]]:
    """The files this process holds open, by device and inode."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            stat = os.stat(f"/proc/self/fd/{fd}")
            found.add((stat.st_dev, stat.st_ino))
    return found


async def test_the_log_flushed_is_the_one_sqlite_writes_when_the_database_is_a_link(
    tmp_path: Path,
) -> None:
    # The database moved to another disk, a link left in its place: SQLite follows the link
    # and keeps its log beside the real file. A log left over beside the link is not it, and
    # flushing that one would acknowledge commits the disk does not have.
    real, state = tmp_path / "data", tmp_path / "state"
    real.mkdir()
    state.mkdir()
    Store(real / "relay.db").close()
    (state / "relay.db").symlink_to(real / "relay.db")
    stale = state / "relay.db-wal"
    stale.write_bytes(b"")
    stale_id = (stale.stat().st_dev, stale.stat().st_ino)
    thread = StoreThread(Store(state / "relay.db"))
    try:
        accepted = await thread.accept(bare_intake(1))
        assert accepted.conversation_id == 1
        wal = (real / "relay.db-wal").stat()
        assert (wal.st_dev, wal.st_ino) in _open_inodes()
        assert stale_id not in _open_inodes()
    finally:
        thread.close()


async def test_a_commit_into_a_file_deleted_before_its_flush_is_not_acknowledged(
    tmp_path: Path,
) -> None:
    # Checked after the commit, the file was there; the answer waits for the flush, and by
    # then an operator's rm took it: nothing is acknowledged into a file that is gone.
    path = tmp_path / "relay.db"
    gate = threading.Event()
    store = GatedStore(path, gate)
    thread = StoreThread(store)
    try:
        pending = asyncio.ensure_future(thread.accept(bare_intake(1)))
        assert store.wal is not None
        await asyncio.to_thread(store.wal.entered.wait)  # committed; the flush waits
        path.unlink()
        gate.set()
        with pytest.raises(StoreError) as refused:
            await pending
    finally:
        gate.set()
        thread.close()
    assert str(refused.value) == f"the database file {path} was deleted while the relay had it open"


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


class CopyingStore(Store):
    """A store whose log is copied into the database file by ``copier``, and started over
    after ``copies_per_restart`` copies (default: the relay's)."""

    def __init__(
        self, path: Path, copier: type[LogCopier], copies_per_restart: int | None = None
    ) -> None:
        super().__init__(path)
        self.copier = copier
        self.copies_per_restart = copies_per_restart
        self.copiers: list[LogCopier] = []

    def defer_sync(self) -> WalSync | None:
        wal = super().defer_sync()
        assert wal is not None
        made = self.copiers

        class Recorded(self.copier):  # type: ignore[name-defined,misc]
            def __init__(self, database: Path) -> None:
                super().__init__(database)
                made.append(self)

        wal.copier_type = Recorded
        if self.copies_per_restart is not None:
            wal.COPIES_PER_RESTART = self.copies_per_restart
        return wal


def log_frames(path: Path) -> int:
    """The frames in the write-ahead log now: ``mxFrame`` of the wal-index header at the start
    of the -shm file (https://www.sqlite.org/walformat.html, native byte order). Read from
    the file, not asked of SQLite: a checkpoint would change what it shows."""
    header = path.with_name(path.name + "-shm").read_bytes()[:48]
    return int.from_bytes(header[16:20], sys.byteorder)


class LaggingCopier(LogCopier):
    """The real copy, made while the store goes on committing: a reader takes its snapshot,
    the copy waits for the test to commit more (``go``), then copies what the reader's
    snapshot allows, leaving the later commits in the log, as a copy running beside commits
    does."""

    def __init__(self, database: Path) -> None:
        super().__init__(database)
        self.database = database
        self.entered = threading.Semaphore(0)
        self.go = threading.Semaphore(0)

    def copy(self) -> None:
        with contextlib.closing(sqlite3.connect(self.database, isolation_level=None)) as reader:
            reader.execute("BEGIN")
            reader.execute("SELECT COUNT(*) FROM conversations").fetchone()
            self.entered.release()
            self.go.acquire()
            super().copy()
            reader.execute("COMMIT")


async def copy_beside_a_commit(
    store: CopyingStore, thread: StoreThread, first: int
) -> LaggingCopier:
    """Commit enough for a copy to be due; while it runs, commit one more intake; wait until
    the copy has finished. Conversations ``first`` .. ``first + CHECKPOINT_PAGES``."""
    many = [bare_intake(n) for n in range(first, first + WalSync.CHECKPOINT_PAGES)]
    await thread.call(lambda store: store.accept_many(many))
    copier = store.copiers[0]
    assert isinstance(copier, LaggingCopier)
    await asyncio.to_thread(copier.entered.acquire)
    # The store's thread does not wait for the copy: this intake is committed meanwhile.
    late = await asyncio.wait_for(
        thread.accept(bare_intake(first + WalSync.CHECKPOINT_PAGES)), timeout=60
    )
    assert late.conversation_id == first + WalSync.CHECKPOINT_PAGES
    copier.go.release()
    assert await asyncio.to_thread(copier.wait, 60)
    return copier


async def test_the_log_starts_over_only_after_several_copies(tmp_path: Path) -> None:
    path = tmp_path / "relay.db"
    store = CopyingStore(path, LaggingCopier)
    thread = StoreThread(store)
    rounds = WalSync.COPIES_PER_RESTART
    assert rounds > 1
    try:
        frames = []
        for n in range(rounds):
            await copy_beside_a_commit(store, thread, 1 + n * (WalSync.CHECKPOINT_PAGES + 2))
            # The next batch finds the copy finished (after the last one, copies the rest).
            await thread.accept(bare_intake(10**6 + n))
            frames.append(log_frames(path))
        assert frames == sorted(frames)  # the log only grew until now
        await thread.accept(bare_intake(10**7))  # the first commit after the last copy
        assert log_frames(path) < frames[0] // 4  # the log started over
    finally:
        thread.close()
    reader = Store(path)
    assert reader.conversation_raw(2 * rounds + rounds * WalSync.CHECKPOINT_PAGES) is not None
    reader.close()


async def test_commits_go_on_while_the_log_is_copied_and_the_rest_is_copied_after(
    tmp_path: Path,
) -> None:
    path = tmp_path / "relay.db"
    store = CopyingStore(path, LaggingCopier, copies_per_restart=1)
    thread = StoreThread(store)
    try:
        before = path.stat().st_size
        await copy_beside_a_commit(store, thread, 1)
        assert path.stat().st_size > before  # the copy took what came before the reader
        held = log_frames(path)
        # The first batch after the copy is appended to the log (not all of it is copied),
        # then copies the rest on the store's thread...
        await thread.accept(bare_intake(5000))
        assert log_frames(path) > held
        # ... so the next commit starts the log over from its beginning.
        await thread.accept(bare_intake(5001))
        assert log_frames(path) < held // 4
    finally:
        thread.close()
    reader = Store(path)
    assert reader.conversation_raw(3 + WalSync.CHECKPOINT_PAGES) is not None
    reader.close()


async def test_a_failed_copy_is_logged_and_storing_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    failed = threading.Event()

    class RefusedCopier(LogCopier):
        def copy(self) -> None:
            failed.set()
            raise OSError(28, "No space left on device")

    path = tmp_path / "relay.db"
    thread = StoreThread(CopyingStore(path, RefusedCopier))
    try:
        many = [bare_intake(n) for n in range(1, 1 + WalSync.CHECKPOINT_PAGES)]
        await thread.call(lambda store: store.accept_many(many))
        await asyncio.to_thread(failed.wait)
        await thread.accept(bare_intake(5000))  # its batch learns of the failure
        await thread.accept(bare_intake(5001))
    finally:
        thread.close()
    assert "checkpoint of the write-ahead log failed" in caplog.text
    assert "No space left on device" in caplog.text
    reader = Store(path)
    assert reader.conversation_raw(2 + WalSync.CHECKPOINT_PAGES) is not None
    reader.close()
