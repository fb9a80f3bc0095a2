"""Read the relay's store from a test, through a separate connection (as an operator would)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

from relay.config.settings import EmailAction, Settings
from relay.model.category import Category
from relay.routing.rules import PlannedDelivery
from relay.store import STATUSES, DeliveryRow, Intake, QuarantineRow, Store, StoreProtocol
from relay.store.opening import database_path, open_store, postgres_url
from relay.store.storethread import StoreThread

BACKENDS = ("sqlite", "postgresql")


class StoreOpener:
    """Opens stores on one database: SQLite at ``path``, or PostgreSQL at ``url`` if given.
    Keyword arguments go to ``PostgresStore`` (holder, lease_seconds)."""

    def __init__(self, path: Path, url: str | None) -> None:
        self.path, self.url = path, url
        self._opened: list[StoreProtocol] = []

    @property
    def backend(self) -> str:
        return "sqlite" if self.url is None else "postgresql"

    def __call__(self, **options: Any) -> StoreProtocol:
        if self.url is None:
            store: StoreProtocol = Store(self.path)
        else:
            from relay.store.postgres import PostgresStore  # noqa: PLC0415 - psycopg when used

            store = PostgresStore(self.url, **options)
        self._opened.append(store)
        return store

    def close_all(self) -> None:
        for store in self._opened:
            store.close()


def deliveries(settings: Settings) -> list[DeliveryRow]:
    store = open_store(settings)
    try:
        return store.deliveries(STATUSES)
    finally:
        store.close()


def quarantine(settings: Settings) -> list[QuarantineRow]:
    store = open_store(settings)
    try:
        return store.quarantined(limit=10_000)
    finally:
        store.close()


def count_rows(settings: Settings, table: str) -> int:
    """Rows of a store table, read through a connection of the test's own (either backend)."""
    query = f"SELECT COUNT(*) FROM {table}"  # noqa: S608 -- the tests' fixed table names
    url = postgres_url(settings)
    if url is None:
        with closing(sqlite3.connect(database_path(settings))) as db:
            return int(db.execute(query).fetchone()[0])
    import psycopg  # noqa: PLC0415 - only for PostgreSQL

    with psycopg.connect(url) as conn:
        row = conn.execute(query.encode()).fetchone()
    assert row is not None
    return int(row[0])


def select_rows(settings: Settings, query: str) -> list[dict[str, Any]]:
    """The rows of a fixed query as dicts, through a connection of the test's own (either
    backend; the query must read the same on both)."""
    url = postgres_url(settings)
    if url is None:
        with closing(sqlite3.connect(database_path(settings))) as db:
            db.row_factory = sqlite3.Row
            return [dict(row) for row in db.execute(query).fetchall()]
    import psycopg  # noqa: PLC0415 - only for PostgreSQL
    from psycopg.rows import dict_row  # noqa: PLC0415

    with psycopg.connect(url, row_factory=dict_row) as conn:
        return list(conn.execute(query.encode()).fetchall())


def emailed_intake(
    channel_id: int = 1, category: str = "missed", text: str = "", to: str = "sales@shop.test"
) -> Intake:
    """Conversation "7-<channel_id>" (``text`` makes a new version of it) with one planned
    email to ``to``."""
    action = EmailAction(type="email", to=[to])
    return Intake(
        raw=json.dumps({"accountId": 7, "channel": {"id": channel_id}, "t": text}).encode(),
        conv_key=f"7-{channel_id}",
        account_id=7,
        channel_id=channel_id,
        content_hash=f"hash-{channel_id}-{text}",
        category=category,
        planned=(PlannedDelivery(rule="r", action=action),),
    )


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


@asynccontextmanager
async def held(thread: StoreThread) -> AsyncIterator[None]:
    """The store's thread busy with one call until the block ends: what is queued meanwhile
    waits, and is written together in the next batch."""
    entered, release = threading.Event(), threading.Event()

    def hold(store: StoreProtocol) -> None:
        entered.set()
        assert release.wait(30), "the test never let the store thread go"

    holding = asyncio.ensure_future(thread.call(hold, durable=False))
    assert await asyncio.to_thread(entered.wait, 30)
    try:
        yield
    finally:
        release.set()
        await holding
