"""What every store offers, by intent: the seam a second backend (PostgreSQL) implements.

``relay.store.Store`` (SQLite, statements in ``relay.store.queries``) and
``relay.store.postgres.PostgresStore`` (statements in ``relay.store.postgres.queries``)
implement it; the type checker holds both to this protocol."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from relay.routing.decide import PlannedDelivery
from relay.store.records import (
    Accepted,
    ClaimedDelivery,
    DeliveryRow,
    Intake,
    QuarantineRow,
)


class StoreProtocol(Protocol):
    # -- lifecycle and health
    def close(self) -> None: ...
    def batch(self) -> AbstractContextManager[None]: ...
    def file_problem(self) -> str | None: ...
    def writable(self, now: float | None = None) -> bool: ...

    # -- intake
    def accept(self, intake: Intake, now: float | None = None) -> Accepted: ...
    def accept_many(
        self, intakes: Sequence[Intake], now: float | None = None
    ) -> list[Accepted]: ...
    def quarantine(
        self,
        reason: str,
        message: str,
        body: bytes,
        remote: str | None,
        *,
        max_rows: int,
        max_bytes: int,
        max_body: int,
        now: float | None = None,
    ) -> int: ...

    # -- the worker's queue
    def recover_claimed(self, now: float | None = None) -> int: ...
    def claim_due(
        self,
        limit: int,
        now: float | None = None,
        *,
        admit: Callable[[dict[str, Any]], bool] | None = None,
    ) -> list[ClaimedDelivery]: ...
    def next_due_at(self, after: float | None = None) -> float | None: ...
    def mark_sent(
        self, delivery_id: int, now: float | None = None, *, sent_to: str | None = None
    ) -> None: ...
    def mark_retry(
        self,
        delivery_id: int,
        at: float,
        error: str,
        done: Sequence[str] = (),
        now: float | None = None,
    ) -> None: ...
    def mark_dead(
        self, delivery_id: int, error: str, done: Sequence[str] = (), now: float | None = None
    ) -> None: ...
    def record_external_ref(
        self, delivery_id: int, external_ref: str | None, note: str | None = None
    ) -> None: ...
    def known_external_ref(self, delivery_id: int) -> str | None: ...
    def release(self, delivery_ids: Sequence[int], now: float | None = None) -> None: ...

    # -- operator queries and commands
    def counts(self) -> dict[str, int]: ...
    def oldest_active_created_at(self) -> float | None: ...
    def deliveries(
        self,
        statuses: Sequence[str] = ...,
        *,
        conversation_id: int | None = None,
        limit: int = 1000,
    ) -> list[DeliveryRow]: ...
    def delivery(self, delivery_id: int) -> DeliveryRow | None: ...
    def retry_now(
        self, delivery_ids: Sequence[int] | None = None, now: float | None = None
    ) -> int: ...
    def conversation_raw(self, conversation_id: int) -> tuple[bytes, str, str] | None: ...
    def latest_version_id(self, conv_key: str) -> int | None: ...
    def replan(
        self, conversation_id: int, planned: Sequence[PlannedDelivery], now: float | None = None
    ) -> int: ...
    def quarantined(self, limit: int = 100) -> list[QuarantineRow]: ...
    def quarantine_entry(self, entry_id: int) -> QuarantineRow | None: ...
    def visitor_history(
        self, conversation_id: int, limit: int = 20
    ) -> tuple[tuple[str, float], ...]: ...
    def conversations_older_than(self, cutoff: float) -> list[int]: ...
    def delivery_ids_of(self, conversation_ids: Sequence[int]) -> list[int]: ...
    def purge(self, conversation_ids: Sequence[int]) -> int: ...
    def purge_quarantine_older_than(self, cutoff: float) -> int: ...
    def checkpoint(self) -> None: ...
    def exclusive(self, name: str) -> AbstractContextManager[bool]: ...


__all__ = ["StoreProtocol"]
