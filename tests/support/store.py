"""Read the relay's store from a test, through a separate connection (as an operator would)."""

from __future__ import annotations

from typing import Any

from relay.app import database_path
from relay.config.settings import Settings
from relay.model.category import Category
from relay.store import STATUSES, DeliveryRow, Intake, QuarantineRow, Store


def deliveries(settings: Settings) -> list[DeliveryRow]:
    store = Store(database_path(settings))
    try:
        return store.deliveries(STATUSES)
    finally:
        store.close()


def quarantine(settings: Settings) -> list[QuarantineRow]:
    store = Store(database_path(settings))
    try:
        return store.quarantined(limit=10_000)
    finally:
        store.close()


def bare_intake(n: int, raw: Any = b"{}") -> Intake:
    """A minimal intake for conversation "1-<n>" with nothing planned (store-level tests)."""
    return Intake(
        raw=raw,
        conv_key=f"1-{n}",
        account_id=1,
        channel_id=n,
        content_hash=f"hash-{n}",
        category=Category.NORMAL.value,
        planned=(),
    )
