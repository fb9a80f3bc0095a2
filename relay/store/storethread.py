"""One thread owns the store; concurrent intakes are committed together (group commit)."""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from relay.model.errors import StoreError
from relay.store import Accepted, Intake, StoreProtocol
from relay.store.base import StoreBase, WalSync

log = logging.getLogger("relay.storethread")  # the published logger name (docs/operations.md)

T = TypeVar("T")
MAX_BATCH = 256


@dataclass
class _Job:
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    intake: Intake | None = None
    call: Callable[[StoreProtocol], Any] | None = None
    durable: bool = True  # answered only once its commit is on the disk


_Outcomes = list[tuple[_Job, Any, BaseException | None]]


def _resolve_many(outcomes: _Outcomes) -> None:
    """Resolve a committed batch with one wake-up per event loop instead of one per job."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, Any, BaseException | None]]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].loop, []).append(outcome)

    def apply(items: list[tuple[_Job, Any, BaseException | None]]) -> None:
        for job, result, error in items:
            if job.future.done():
                continue
            if error is not None:
                job.future.set_exception(error)
            else:
                job.future.set_result(result)

    for loop, items in by_loop.items():
        loop.call_soon_threadsafe(apply, items)


class _CallFailed(Exception):
    """Rolls back the transaction of a call alone in its batch, which raised ``error``."""

    def __init__(self, job: _Job, error: Exception) -> None:
        super().__init__(str(error))
        self.job = job
        self.error = error


def _call_alone(job: _Job, store: StoreProtocol) -> tuple[_Job, Any, BaseException | None]:
    """``job``'s call in the batch's transaction itself; its failure raises ``_CallFailed``."""
    assert job.call is not None
    try:
        return job, job.call(store), None
    except Exception as exc:
        raise _CallFailed(job, exc) from exc


class StoreThread:
    """Serialises all store access on one thread.

    Intakes that arrive while a commit is in progress wait in the queue and are written
    together by the next transaction, so N concurrent requests cost one fsync, not N. A
    caller's future resolves only after its transaction has committed, and only if the
    database file is still the one that was opened (not deleted or replaced meanwhile):
    otherwise every call fails with ``StoreError``.

    ``intake_error`` says why the last intakes could not be committed (None once one is).
    """

    def __init__(self, store: StoreProtocol) -> None:
        self.store = store
        # SQLite: commits are flushed to the disk by a thread of their own, once for all the
        # transactions committed meanwhile, while this thread writes the next ones; callers
        # learn their results only after that flush (see _sync_run).
        self._wal: WalSync | None = store.defer_sync() if isinstance(store, StoreBase) else None
        self._unsynced: queue.SimpleQueue[_Outcomes | None] = queue.SimpleQueue()
        self._sync_problem: str | None = None
        self._syncer: threading.Thread | None = None
        if self._wal is not None:
            self._wal.copy_on_a_thread()
            self._syncer = threading.Thread(target=self._sync_run, name="relay-sync", daemon=True)
            self._syncer.start()
        self.intake_error: str | None = None
        self._file_problem: str | None = None
        # The last failure logged with its traceback: the same failure again (a damaged page
        # fails every intake) is not logged again here; each request logs one line.
        self._failure_logged: str | None = None
        # How busy intake is, for the delivery worker's rule "intake first"
        # (``intake_pressure``): intakes not answered yet, counted on the event loop, and the
        # intakes of the newest batch written (0 after a batch without any), by this thread.
        self.intakes_waiting = 0
        self.last_batch_intakes = 0
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="relay-store", daemon=True)
        self._thread.start()

    async def accept(self, intake: Intake) -> Accepted:
        loop = asyncio.get_running_loop()
        job = _Job(loop.create_future(), loop, intake=intake)
        self.intakes_waiting += 1
        self._queue.put(job)
        try:
            result: Accepted = await job.future
        except sqlite3.IntegrityError:
            raise
        except sqlite3.DatabaseError as exc:
            # A damaged page or a full disk: the store cannot take it, said in one line.
            raise StoreError(f"the conversation could not be committed: {exc}") from exc
        finally:
            self.intakes_waiting -= 1
        return result

    def intake_pressure(self) -> int:
        """How many intakes the store is busy with: those not answered yet (queued, being
        written or waiting for the flush), or those of the newest batch if more (it still
        counts the intakes of a busy moment until a batch without intakes is written)."""
        return max(self.intakes_waiting, self.last_batch_intakes)

    async def call(self, fn: Callable[[StoreProtocol], T], *, durable: bool = True) -> T:
        """``fn`` on the store's thread, in the next batch's transaction. ``durable=False``:
        answered as soon as that transaction has committed, before the disk has it - for
        writes that a restart undoes anyway (claims: a restart requeues what was claimed)."""
        loop = asyncio.get_running_loop()
        job = _Job(loop.create_future(), loop, call=fn, durable=durable)
        self._queue.put(job)
        result: T = await job.future
        return result

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._syncer is not None:
            self._unsynced.put(None)
            self._syncer.join()
        if self._wal is not None:
            self._wal.close()
        self.store.close()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                batch.append(job)
            self._process(batch)
            if self._wal is not None and self._sync_problem is None:
                try:
                    self._wal.checkpoint()
                except Exception as exc:  # the log keeps everything; the next one tries again
                    self._log_failure(exc, "checkpoint of the write-ahead log failed")
            if stop:
                return

    def _sync_run(self) -> None:
        """Flush the log for every batch committed since the last flush, then answer them."""
        assert self._wal is not None
        while True:
            first = self._unsynced.get()
            if first is None:
                return
            pending = list(first)
            stop = False
            while True:
                try:
                    more = self._unsynced.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                pending += more
            # Committed while a flush was failing: its frames come after the ones the disk may
            # have dropped, so a crash loses it too, whatever a later flush says.
            problem = self._sync_problem
            if problem is None:
                try:
                    self._wal.sync()
                except OSError as exc:
                    # What the disk did not take may be lost whatever a later flush says:
                    # nothing more is stored until the relay is restarted.
                    problem = f"the database log could not be flushed to the disk: {exc}"
                    log.error("%s: nothing can be stored until the relay is restarted", problem)
                    self._sync_problem = problem
                    self.intake_error = problem
            if problem is not None:
                error = StoreError(problem)
                pending = [(job, None, error) for job, _, _ in pending]
            else:
                # Checked again once flushed: the file may have gone while the disk took it.
                gone = self.store.file_problem()
                if gone is not None:
                    self._refuse([job for job, _, _ in pending], gone)
                    pending = []
            _resolve_many(pending)
            if stop:
                return

    def _process(self, batch: list[_Job]) -> None:
        """Everything queued meanwhile, intakes and the worker's bookkeeping alike, in one
        transaction; each caller learns its result only after that commit."""
        outcomes: list[tuple[_Job, Any, BaseException | None]] = []
        # The files are checked after the commit, which is what counts (a file gone before it
        # fails the batch there alike): checking them before as well cost two more stat
        # calls per batch.
        if self._sync_problem is not None:
            self._refuse(batch, self._sync_problem)
            return
        # A call alone in its batch needs no savepoint of its own: its failure rolls the
        # whole transaction back, which undoes exactly its changes (a statement saved twice
        # per batch; most of the worker's batches hold one call).
        alone = batch[0] if len(batch) == 1 and batch[0].call is not None else None
        try:
            with self.store.batch():
                intakes = [job for job in batch if job.intake is not None]
                self.last_batch_intakes = len(intakes)
                if intakes:
                    outcomes += self._accept_intakes(intakes)
                if alone is not None:
                    outcomes.append(_call_alone(alone, self.store))
                for job in batch if alone is None else ():
                    if job.call is None:
                        continue
                    try:
                        with self.store.batch():  # a savepoint: a failing call undoes its own
                            result = job.call(self.store)
                        outcomes.append((job, result, None))
                    except Exception as exc:
                        outcomes.append((job, None, exc))
        except _CallFailed as failed:  # rolled back: the call's own error, nothing logged
            outcomes = [(failed.job, None, failed.error)]
        except Exception as exc:
            self._log_failure(exc, "commit of a batch of %d store operations failed", len(batch))
            outcomes = [(job, None, exc) for job in batch]
        # Checked again after the commit: what went into a file deleted meanwhile is lost.
        problem = self.store.file_problem()
        if problem is not None:
            self._refuse(batch, problem)
            return
        self._note_intakes(outcomes)
        if self._wal is None:
            _resolve_many(outcomes)
            return
        at_once = [outcome for outcome in outcomes if not outcome[0].durable]
        if at_once:
            _resolve_many(at_once)
        durable = [outcome for outcome in outcomes if outcome[0].durable]
        if durable:  # a batch of claims alone needs no flush
            self._unsynced.put(durable)

    def _refuse(self, batch: list[_Job], problem: str) -> None:
        if problem != self._file_problem:
            log.error(
                "%s: nothing can be stored until it is restored and the relay restarted", problem
            )
            self._file_problem = problem
        self.intake_error = problem
        error = StoreError(problem)
        _resolve_many([(job, None, error) for job in batch])

    def _note_intakes(self, outcomes: list[tuple[_Job, Any, BaseException | None]]) -> None:
        """Remember whether intakes can be committed: a database error on every intake of a
        batch (a damaged page, a full disk) makes the store not ready until one succeeds."""
        intakes = [error for job, _, error in outcomes if job.intake is not None]
        if not intakes:
            return
        if any(error is None for error in intakes):
            self.intake_error = None
            return
        failed = [e for e in intakes if isinstance(e, sqlite3.DatabaseError)]
        failed = [e for e in failed if not isinstance(e, sqlite3.IntegrityError)]
        if failed:
            self.intake_error = f"the last intake could not be committed: {failed[0]}"

    def _log_failure(self, exc: BaseException, message: str, *args: object) -> None:
        """Log ``message`` with the traceback of ``exc`` unless the previous failure logged
        was the same (type and text); call it from the ``except`` block."""
        key = f"{type(exc).__name__}: {exc}"
        if key != self._failure_logged:
            self._failure_logged = key
            log.exception(message, *args)

    def _accept_intakes(self, jobs: list[_Job]) -> list[tuple[_Job, Any, BaseException | None]]:
        try:
            results = self.store.accept_many([job.intake for job in jobs if job.intake])
        except Exception as exc:
            # One bad intake must not fail its neighbours: fall back to one by one.
            self._log_failure(
                exc, "group commit of %d intakes failed; retrying one by one", len(jobs)
            )
            outcomes: list[tuple[_Job, Any, BaseException | None]] = []
            for job in jobs:
                assert job.intake is not None
                try:
                    outcomes.append((job, self.store.accept(job.intake), None))
                except Exception as exc:
                    outcomes.append((job, None, exc))
            return outcomes
        return [(job, result, None) for job, result in zip(jobs, results, strict=True)]
