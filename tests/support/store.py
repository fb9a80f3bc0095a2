"""Read the relay's store from a test, through a separate connection (as an operator would)."""

from __future__ import annotations

from relay.app import database_path
from relay.settings import Settings
from relay.store import STATUSES, DeliveryRow, QuarantineRow, Store


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
