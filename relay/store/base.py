"""The SQLite schema, the connection settings and the transaction helper every store part uses."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from relay.errors import StoreVersionError

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id            INTEGER PRIMARY KEY,
    conv_key      TEXT    NOT NULL,   -- "<accountId>-<channel.id>"
    account_id    INTEGER NOT NULL,
    channel_id    INTEGER NOT NULL,
    version       INTEGER NOT NULL,   -- 1, 2, ... for re-posts with changed content
    content_hash  TEXT    NOT NULL,
    category      TEXT    NOT NULL,
    received_at   REAL    NOT NULL,
    raw           BLOB    NOT NULL,   -- the body exactly as posted
    parsed        BLOB    NOT NULL,   -- the normalised conversation as JSON
    UNIQUE (conv_key, content_hash)
);
CREATE INDEX IF NOT EXISTS conversations_received ON conversations (received_at);
CREATE TABLE IF NOT EXISTS deliveries (
    id               INTEGER PRIMARY KEY,
    conversation_id  INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    dedupe_key       TEXT    NOT NULL UNIQUE,
    rule             TEXT    NOT NULL,
    channel          TEXT    NOT NULL,   -- "email", "slack", ...
    action           TEXT    NOT NULL,   -- the action as JSON, frozen at intake
    category         TEXT    NOT NULL,
    status           TEXT    NOT NULL DEFAULT 'pending',
                     -- pending -> sending -> sent | retrying -> ... | dead
    attempts         INTEGER NOT NULL DEFAULT 0,
    created_at       REAL    NOT NULL,
    next_attempt_at  REAL    NOT NULL,
    updated_at       REAL    NOT NULL,
    last_error       TEXT,
    done_recipients  TEXT    NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_attempt_at);
-- The claim order over the whole queue, so a claim reads only the rows it takes (without it a
-- claim sorts every due row: O(queue) per claim, quadratic when draining a backlog).
CREATE INDEX IF NOT EXISTS deliveries_due_order ON deliveries (next_attempt_at, id)
    WHERE status IN ('pending', 'retrying');
CREATE INDEX IF NOT EXISTS deliveries_conversation ON deliveries (conversation_id);
CREATE TABLE IF NOT EXISTS quarantine (
    id           INTEGER PRIMARY KEY,
    received_at  REAL    NOT NULL,
    reason       TEXT    NOT NULL,
    message      TEXT    NOT NULL,
    remote       TEXT,
    size         INTEGER NOT NULL,
    body         BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS health_probe (   -- one row, rewritten by each readiness check
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at  REAL    NOT NULL
);
"""

# Versioned schema changes, applied in order and recorded in PRAGMA user_version. Version 1 is
# the schema above (CREATE ... IF NOT EXISTS, so a store written before versioning, at
# user_version 0, is taken over as it is); never edit a released step, append a new one.
MIGRATIONS: tuple[str, ...] = (
    SCHEMA,
    # 2: where a sent delivery went: NULL (a real destination, or written before this
    # column existed) or 'outbox' (no destination configured: a file under <state_dir>/outbox).
    "ALTER TABLE deliveries ADD COLUMN sent_to TEXT;",
)
SCHEMA_VERSION = len(MIGRATIONS)

ACTIVE = ("pending", "retrying", "sending")
STATUSES = ("pending", "sending", "retrying", "sent", "dead")
# What counts() reports: the statuses, with sent deliveries that went to the outbox apart.
COUNTED = ("pending", "sending", "retrying", "sent", "outbox", "dead")


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the store at ``path`` to ``SCHEMA_VERSION``, one step per transaction; returns the
    version it was at. Refuses a store written by a newer relay rather than guessing."""
    found: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if found > SCHEMA_VERSION:
        raise StoreVersionError(
            f"{path} has schema version {found}, newer than this relay's {SCHEMA_VERSION}: "
            "run the relay version that wrote it, or a newer one"
        )
    for version in range(found + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(MIGRATIONS[version - 1]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version:d}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return found


def _statements(script: str) -> Iterator[str]:
    """Split a migration into statements (complete_statement knows about strings and
    comments), so each runs inside the migration's transaction; executescript would commit."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if pending.strip():
                yield pending
            pending = ""
    if pending.strip():
        yield pending


class StoreBase:
    """One connection and its transactions. Not thread-safe: one thread at a time (the app
    funnels every call through ``relay.storethread.StoreThread``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = connect(path)
        migrate(self._conn, path)
        self._savepoints = 0
        self._open = False  # inside a transaction this object began (and must end)

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A transaction; inside ``batch()`` a savepoint, so a failing operation undoes only
        its own changes and the batch commits once. A failed COMMIT is rolled back: the
        connection never stays inside a transaction that nothing will commit."""
        if self._open:
            if not self._conn.in_transaction:  # an earlier error rolled the whole batch back
                raise sqlite3.OperationalError("the transaction was rolled back by an error in it")
            self._savepoints += 1
            name = f"op{self._savepoints}"
            self._conn.execute(f"SAVEPOINT {name}")
            try:
                yield self._conn
            except BaseException:
                if self._conn.in_transaction:  # SQLite may have rolled back everything already
                    self._conn.execute(f"ROLLBACK TO {name}")
                    self._conn.execute(f"RELEASE {name}")
                raise
            self._conn.execute(f"RELEASE {name}")
            return
        self._conn.execute("BEGIN IMMEDIATE")
        self._open = True
        try:
            yield self._conn
            if not self._conn.in_transaction:
                raise sqlite3.OperationalError("the transaction was rolled back by an error in it")
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        finally:
            self._open = False

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Run several operations with one commit (one fsync): group commit."""
        with self._transaction():
            yield
