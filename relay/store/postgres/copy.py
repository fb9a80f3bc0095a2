"""Copy a SQLite store into an empty PostgreSQL store, keeping ids and delivery states."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from relay.model.errors import StoreError
from relay.store import Store
from relay.store.postgres.store import PostgresStore

# Rows read from SQLite and written to PostgreSQL at a time (bodies can be large).
CHUNK = 500

# What is copied, table by table, in this order (deliveries refer to conversations). A
# delivery left 'sending' by a stopped relay keeps its state with an expired lease: the first
# relay to start recovers it, counting the interrupted attempt, as SQLite's restart would.
TABLES: dict[str, tuple[str, ...]] = {
    "conversations": (
        "id", "conv_key", "account_id", "channel_id", "version", "content_hash", "category",
        "received_at", "raw", "begin_at",
    ),
    "deliveries": (
        "id", "conversation_id", "dedupe_key", "rule", "channel", "action", "category",
        "status", "attempts", "created_at", "next_attempt_at", "updated_at", "last_error",
        "done_recipients", "sent_to", "external_ref",
    ),
    "quarantine": ("id", "received_at", "reason", "message", "remote", "size", "body"),
    "leads": (
        "id", "conv_key", "conversation_id", "category", "created_at", "state", "visitor_id",
        "visitor_email", "visitor_name", "claimed_by", "claimed_at", "done_by", "done_at",
        "note", "answered_at",
    ),
    "lead_escalations": ("lead_id", "step", "at"),
    "lead_digests": ("day", "at"),
    "slack_requests": ("signature", "at"),
    "console_users": ("name", "password_hash", "created_at", "signed_out_at"),
    "console_audit": ("id", "at", "actor", "action", "target", "detail"),
    "delivery_attempts": ("id", "delivery_id", "at", "outcome", "detail"),
}  # fmt: skip
EXPIRED_LEASE = {"claimed_until": 0.0}
STATES = "SELECT status, COUNT(*) FROM deliveries GROUP BY status ORDER BY status"


@dataclass(frozen=True)
class Copied:
    """Rows per table and deliveries per status, the same in both stores once copied."""

    rows: dict[str, int]
    states: dict[str, int]


def source_counts(source: Store) -> Copied:
    db = source._conn
    rows = {t: int(db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in TABLES}  # noqa: S608 -- fixed table names
    states = {str(s): int(n) for s, n in db.execute(STATES).fetchall()}
    return Copied(rows, states)


def copy_store(
    source: Store, target: PostgresStore, advance: Callable[[str, int], object]
) -> Copied:
    """Copy every conversation, delivery, quarantined body and lead of ``source`` into ``target``
    in one transaction, then compare the counts; StoreError (and nothing kept) if the
    target already holds data or the counts differ. ``advance(table, rows)`` after each
    chunk. The source is only read; stop the relay using it first."""
    expected = source_counts(source)
    with target._transaction() as db:
        for table in TABLES:
            row = db.execute(f"SELECT EXISTS (SELECT 1 FROM {table})".encode()).fetchone()  # noqa: S608 -- fixed table names
            if row is not None and row[0]:
                raise StoreError(
                    f"{target.where} already holds {table}: copy into an empty database only"
                )
        for table, columns in TABLES.items():
            extra = EXPIRED_LEASE if table == "deliveries" else {}
            names = ", ".join((*columns, *extra))
            with db.cursor().copy(f"COPY {table} ({names}) FROM STDIN".encode()) as copy:
                for chunk in _chunks(source._conn, table, columns):
                    for values in chunk:
                        copy.write_row((*values, *extra.values()))
                    advance(table, len(chunk))
            if columns[0] != "id":
                continue
            # New rows continue after the copied ids.
            db.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"  # noqa: S608 -- fixed table names
                f" COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)".encode()
            )
        rows = {
            t: int(_one(db.execute(f"SELECT COUNT(*) FROM {t}".encode()).fetchone()))  # noqa: S608 -- fixed table names
            for t in TABLES
        }
        states = {str(s): int(n) for s, n in db.execute(STATES).fetchall()}
        copied = Copied(rows, states)
        if copied != expected:
            raise StoreError(
                f"the copy does not match its source (source {expected}, copy {copied}):"
                " nothing was kept"
            )
    return copied


def _one(row: tuple[Any, ...] | None) -> Any:
    assert row is not None
    return row[0]


def _chunks(
    db: sqlite3.Connection, table: str, columns: tuple[str, ...]
) -> Iterator[list[tuple[Any, ...]]]:
    cursor = db.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {columns[0]}")  # noqa: S608 -- fixed names
    while chunk := cursor.fetchmany(CHUNK):
        yield [tuple(row) for row in chunk]
