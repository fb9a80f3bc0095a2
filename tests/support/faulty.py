"""Fault injection at the seams: a store whose chosen operations fail, a store that records
the worker's claims, and a sender that fails with a chosen exception. Everything else is the
real thing underneath."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from relay.model.content import Content
from relay.senders.base import SendResult
from relay.store import StoreProtocol


class FaultyStore:
    """A ``StoreProtocol`` that forwards every call to a real store, except that an operation
    named in ``fail`` raises the given error instead, as many times as it was given (a disk
    that fills up, then has room again). ``failed`` lists the operations that failed;
    ``fired`` is set at the first failure (for a test to await it)."""

    def __init__(self, inner: StoreProtocol) -> None:
        self.inner = inner
        self.failed: list[str] = []
        self.fired = threading.Event()
        self._faults: dict[str, list[BaseException]] = {}
        self._lock = threading.Lock()  # faults are armed by the test, raised on the store thread

    def fail(self, operation: str, error: BaseException, times: int = 1) -> None:
        with self._lock:
            self._faults.setdefault(operation, []).extend([error] * times)

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.inner, name)
        if not callable(real):
            return real

        def operation(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                pending = self._faults.get(name)
                error = pending.pop(0) if pending else None
                if error is not None:
                    self.failed.append(name)
            if error is not None:
                self.fired.set()
                raise error
            return real(*args, **kwargs)

        return operation


class ClaimRecordingStore(FaultyStore):
    """A real store (through ``FaultyStore``) that records each ``claim_due``: the limit the
    worker asked for and how many deliveries it got, in order (written on the store thread,
    read by the test once the worker has settled)."""

    def __init__(self, inner: StoreProtocol) -> None:
        super().__init__(inner)
        self.claims: list[tuple[int, int]] = []

    def claim_due(self, limit: int, *args: Any, **kwargs: Any) -> Any:
        claimed = self.inner.claim_due(limit, *args, **kwargs)
        self.claims.append((limit, len(claimed)))
        return claimed


class FailingSender:
    """A sender whose every send raises what ``error`` makes (a bug in a sender, or an error
    class the worker does not sort); counts its calls."""

    deadline_seconds: float | None = None

    def __init__(self, error: Callable[[], BaseException]) -> None:
        self._error = error
        self.calls = 0

    async def send(
        self, content: Content, *, delivery_id: int, skip: tuple[str, ...] = ()
    ) -> SendResult | None:
        self.calls += 1
        raise self._error()
