"""Delivery outcomes written together: one store call for those that finish meanwhile."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from relay.store import StoreProtocol
from relay.store.storethread import StoreThread

T = TypeVar("T")
Write = Callable[[StoreProtocol], Any]
Written = list[tuple[Any, BaseException | None]]


def _write_all(writes: Sequence[Write], store: StoreProtocol) -> Written:
    """On the store's thread: each write in a savepoint of its own, so a failing one undoes
    only its own changes and its neighbours are committed."""
    written: Written = []
    for write in writes:
        try:
            with store.batch():
                written.append((write(store), None))
        except Exception as exc:
            written.append((None, exc))
    return written


class OutcomeWriter:
    """Writes the worker's outcomes (sent, retry, dead, external ids) in as few store calls
    as possible without waiting for company: a write made while none is under way is one
    store call at once; the writes made while it is under way go together in the next one,
    which starts as soon as it has ended. Each caller returns, as from ``StoreThread.call``,
    only once the commit holding its write is on the disk, with its own result or error."""

    def __init__(self, store: StoreThread) -> None:
        self._store = store
        self._queued: list[tuple[Write, asyncio.Future[Any]]] = []
        self._under_way: asyncio.Future[Written] | None = None
        self.calls = 0  # store calls made so far (for tests)

    async def write(self, fn: Callable[[StoreProtocol], T]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queued.append((fn, future))
        if self._under_way is None:
            self._next()
        return await future

    def _next(self) -> None:
        queued, self._queued = self._queued, []
        writes = [fn for fn, _ in queued]
        self.calls += 1
        call = asyncio.ensure_future(self._store.call(functools.partial(_write_all, writes)))
        self._under_way = call
        call.add_done_callback(functools.partial(self._ended, queued))

    def _ended(
        self, queued: list[tuple[Write, asyncio.Future[Any]]], call: asyncio.Future[Written]
    ) -> None:
        self._under_way = None
        if call.cancelled():
            for _, future in queued:
                future.cancel()
        elif (error := call.exception()) is not None:
            for _, future in queued:
                if not future.done():
                    future.set_exception(error)
        else:
            for (_, future), (result, failure) in zip(queued, call.result(), strict=True):
                if future.done():  # its caller was cancelled meanwhile (shutdown)
                    continue
                if failure is not None:
                    future.set_exception(failure)
                else:
                    future.set_result(result)
        if self._queued:
            self._next()
