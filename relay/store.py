"""The durable store: conversations, their planned deliveries (the outbox) and quarantined
bodies in one SQLite file. Every SQL statement of the relay lives in this module."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relay.routing import PlannedDelivery

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

ACTIVE = ("pending", "retrying", "sending")
STATUSES = ("pending", "sending", "retrying", "sent", "dead")


@dataclass(frozen=True)
class Intake:
    """Everything the request path wants stored for one accepted body."""

    raw: bytes
    parsed: bytes
    conv_key: str
    account_id: int
    channel_id: int
    content_hash: str
    category: str
    planned: tuple[PlannedDelivery, ...]


@dataclass(frozen=True)
class Accepted:
    conversation_id: int
    version: int
    duplicate: bool
    deliveries: int


@dataclass(frozen=True)
class ClaimedDelivery:
    id: int
    conversation_id: int
    rule: str
    channel: str
    action: dict[str, Any]
    category: str
    attempts: int  # including the one now starting
    created_at: float
    dedupe_key: str
    done_recipients: tuple[str, ...]
    raw: bytes


@dataclass(frozen=True)
class DeliveryRow:
    id: int
    conversation_id: int
    conv_key: str
    rule: str
    channel: str
    status: str
    attempts: int
    created_at: float
    next_attempt_at: float
    updated_at: float
    last_error: str | None


@dataclass(frozen=True)
class QuarantineRow:
    id: int
    received_at: float
    reason: str
    message: str
    remote: str | None
    size: int
    body: bytes


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class Store:
    """Intent-named operations over one connection. Not thread-safe: one thread at a time
    (the app funnels every call through ``relay.storethread.StoreThread``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = connect(path)
        self._conn.executescript(SCHEMA)

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # -- intake ---------------------------------------------------------------------------

    def accept_many(self, intakes: Sequence[Intake], now: float | None = None) -> list[Accepted]:
        """Store bodies and their planned deliveries in ONE transaction (one fsync)."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            return [self._accept(db, intake, now) for intake in intakes]

    def accept(self, intake: Intake, now: float | None = None) -> Accepted:
        return self.accept_many([intake], now)[0]

    def _accept(self, db: sqlite3.Connection, intake: Intake, now: float) -> Accepted:
        existing = db.execute(
            "SELECT id, version FROM conversations WHERE conv_key = ? AND content_hash = ?",
            (intake.conv_key, intake.content_hash),
        ).fetchone()
        if existing is not None:
            return Accepted(existing[0], existing[1], duplicate=True, deliveries=0)
        (version,) = db.execute(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM conversations WHERE conv_key = ?",
            (intake.conv_key,),
        ).fetchone()
        cur = db.execute(
            "INSERT INTO conversations (conv_key, account_id, channel_id, version, content_hash,"
            " category, received_at, raw, parsed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                intake.conv_key,
                intake.account_id,
                intake.channel_id,
                version,
                intake.content_hash,
                intake.category,
                now,
                intake.raw,
                intake.parsed,
            ),
        )
        conversation_id = cur.lastrowid
        assert conversation_id is not None
        created = self._plan(
            db, conversation_id, intake.conv_key, intake.category, intake.planned, now=now
        )
        return Accepted(conversation_id, version, duplicate=False, deliveries=created)

    def _plan(
        self,
        db: sqlite3.Connection,
        conversation_id: int,
        conv_key: str,
        category: str,
        planned: Sequence[PlannedDelivery],
        *,
        now: float,
        force: bool = False,
    ) -> int:
        """Insert deliveries. An action already planned for an earlier version of the same
        conversation in the same category is not planned again (unless ``force``)."""
        created = 0
        for plan in planned:
            dedupe = f"{conv_key}/{category}/{plan.action_key}"
            if force:
                dedupe += f"/replay-{now!r}-{created}"
            cur = db.execute(
                "INSERT OR IGNORE INTO deliveries (conversation_id, dedupe_key, rule, channel,"
                " action, category, created_at, next_attempt_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    conversation_id,
                    dedupe,
                    plan.rule,
                    plan.channel,
                    plan.action.model_dump_json(by_alias=True),
                    category,
                    now,
                    now,
                    now,
                ),
            )
            created += cur.rowcount
        return created

    def quarantine(
        self,
        reason: str,
        message: str,
        body: bytes,
        remote: str | None,
        *,
        max_rows: int,
        max_body: int,
        now: float | None = None,
    ) -> int:
        """Keep a refused body (cut to ``max_body``); drop the oldest rows beyond ``max_rows``."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            cur = db.execute(
                "INSERT INTO quarantine (received_at, reason, message, remote, size, body)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (now, reason, message, remote, len(body), body[:max_body]),
            )
            db.execute(
                "DELETE FROM quarantine WHERE id <= (SELECT id FROM quarantine"
                " ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (max_rows,),
            )
        assert cur.lastrowid is not None
        return cur.lastrowid

    # -- worker ---------------------------------------------------------------------------

    def recover_claimed(self, now: float | None = None) -> int:
        """After a crash or restart: deliveries left 'sending' go back to the queue."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            cur = db.execute(
                "UPDATE deliveries SET status = 'retrying', next_attempt_at = ?, updated_at = ?,"
                " last_error = COALESCE(last_error, 'interrupted while sending')"
                " WHERE status = 'sending'",
                (now, now),
            )
        return cur.rowcount

    def claim_due(self, limit: int, now: float | None = None) -> list[ClaimedDelivery]:
        now = time.time() if now is None else now
        with self._transaction() as db:
            rows = db.execute(
                "SELECT d.id, d.conversation_id, d.rule, d.channel, d.action, d.category,"
                " d.attempts, d.created_at, d.dedupe_key, d.done_recipients, c.raw"
                " FROM deliveries d JOIN conversations c ON c.id = d.conversation_id"
                " WHERE d.status IN ('pending', 'retrying') AND d.next_attempt_at <= ?"
                " ORDER BY d.next_attempt_at, d.id LIMIT ?",
                (now, limit),
            ).fetchall()
            db.executemany(
                "UPDATE deliveries SET status = 'sending', attempts = attempts + 1, updated_at = ?"
                " WHERE id = ?",
                [(now, row[0]) for row in rows],
            )
        return [
            ClaimedDelivery(
                id=row[0],
                conversation_id=row[1],
                rule=row[2],
                channel=row[3],
                action=json.loads(row[4]),
                category=row[5],
                attempts=row[6] + 1,
                created_at=row[7],
                dedupe_key=row[8],
                done_recipients=tuple(json.loads(row[9])),
                raw=row[10],
            )
            for row in rows
        ]

    def next_due_at(self) -> float | None:
        row = self._conn.execute(
            "SELECT MIN(next_attempt_at) FROM deliveries WHERE status IN ('pending', 'retrying')"
        ).fetchone()
        return None if row is None else row[0]

    def mark_sent(self, delivery_id: int, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._transaction() as db:
            db.execute(
                "UPDATE deliveries SET status = 'sent', updated_at = ?, last_error = NULL"
                " WHERE id = ?",
                (now, delivery_id),
            )

    def mark_retry(
        self,
        delivery_id: int,
        at: float,
        error: str,
        done: Sequence[str] = (),
        now: float | None = None,
    ) -> None:
        now = time.time() if now is None else now
        with self._transaction() as db:
            db.execute(
                "UPDATE deliveries SET status = 'retrying', next_attempt_at = ?, last_error = ?,"
                " updated_at = ?, done_recipients = ? WHERE id = ?",
                (at, error, now, json.dumps(sorted(set(done))), delivery_id),
            )

    def mark_dead(
        self, delivery_id: int, error: str, done: Sequence[str] = (), now: float | None = None
    ) -> None:
        now = time.time() if now is None else now
        with self._transaction() as db:
            db.execute(
                "UPDATE deliveries SET status = 'dead', last_error = ?, updated_at = ?,"
                " done_recipients = ? WHERE id = ?",
                (error, now, json.dumps(sorted(set(done))), delivery_id),
            )

    def release(self, delivery_ids: Sequence[int], now: float | None = None) -> None:
        """Give claimed deliveries back untouched (shutdown before they were sent)."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            db.executemany(
                "UPDATE deliveries SET status = CASE WHEN attempts > 1 THEN 'retrying'"
                " ELSE 'pending' END, attempts = attempts - 1, next_attempt_at = ?,"
                " updated_at = ? WHERE id = ? AND status = 'sending'",
                [(now, now, i) for i in delivery_ids],
            )

    # -- operators ------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        found = dict(
            self._conn.execute("SELECT status, COUNT(*) FROM deliveries GROUP BY status").fetchall()
        )
        return {status: found.get(status, 0) for status in STATUSES}

    def oldest_active_created_at(self) -> float | None:
        row = self._conn.execute(
            "SELECT MIN(created_at) FROM deliveries"
            " WHERE status IN ('pending', 'retrying', 'sending')"
        ).fetchone()
        return None if row is None else row[0]

    def deliveries(
        self,
        statuses: Sequence[str] = (*ACTIVE, "dead"),
        *,
        conversation_id: int | None = None,
        limit: int = 1000,
    ) -> list[DeliveryRow]:
        marks = ",".join("?" * len(statuses))
        # Only "?" placeholders are interpolated into the SQL text.
        sql = (
            "SELECT d.id, d.conversation_id, c.conv_key, d.rule, d.channel, d.status, d.attempts,"  # noqa: S608
            " d.created_at, d.next_attempt_at, d.updated_at, d.last_error"
            " FROM deliveries d JOIN conversations c ON c.id = d.conversation_id"
            f" WHERE d.status IN ({marks})"
        )
        params: list[Any] = list(statuses)
        if conversation_id is not None:
            sql += " AND d.conversation_id = ?"
            params.append(conversation_id)
        sql += " ORDER BY d.id LIMIT ?"
        params.append(limit)
        return [DeliveryRow(*row) for row in self._conn.execute(sql, params).fetchall()]

    def retry_now(self, delivery_ids: Sequence[int] | None = None, now: float | None = None) -> int:
        """Requeue deliveries (given ids, or every dead one) for an immediate attempt. The
        age limit starts over from now."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            if delivery_ids is None:
                cur = db.execute(
                    "UPDATE deliveries SET status = 'retrying', next_attempt_at = ?,"
                    " created_at = ?, updated_at = ? WHERE status = 'dead'",
                    (now, now, now),
                )
                return cur.rowcount
            changed = 0
            for delivery_id in delivery_ids:
                cur = db.execute(
                    "UPDATE deliveries SET status = 'retrying', next_attempt_at = ?,"
                    " created_at = ?, updated_at = ? WHERE id = ? AND status != 'sending'",
                    (now, now, now, delivery_id),
                )
                changed += cur.rowcount
            return changed

    def conversation_raw(self, conversation_id: int) -> tuple[bytes, str, str] | None:
        """(raw body, category, conv_key) of one stored conversation."""
        row = self._conn.execute(
            "SELECT raw, category, conv_key FROM conversations WHERE id = ?", (conversation_id,)
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def replan(
        self, conversation_id: int, planned: Sequence[PlannedDelivery], now: float | None = None
    ) -> int:
        """Plan fresh deliveries for a stored conversation (operator replay)."""
        now = time.time() if now is None else now
        found = self.conversation_raw(conversation_id)
        if found is None:
            return 0
        _, category, conv_key = found
        with self._transaction() as db:
            return self._plan(db, conversation_id, conv_key, category, planned, now=now, force=True)

    def quarantined(self, limit: int = 100) -> list[QuarantineRow]:
        rows = self._conn.execute(
            "SELECT id, received_at, reason, message, remote, size, body FROM quarantine"
            " ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [QuarantineRow(*row) for row in rows]

    def quarantine_entry(self, entry_id: int) -> QuarantineRow | None:
        row = self._conn.execute(
            "SELECT id, received_at, reason, message, remote, size, body FROM quarantine"
            " WHERE id = ?",
            (entry_id,),
        ).fetchone()
        return None if row is None else QuarantineRow(*row)

    def conversations_older_than(self, cutoff: float) -> list[int]:
        rows = self._conn.execute(
            "SELECT id FROM conversations WHERE received_at < ? AND id NOT IN"
            " (SELECT conversation_id FROM deliveries WHERE status IN ('pending', 'retrying',"
            " 'sending')) ORDER BY id",
            (cutoff,),
        ).fetchall()
        return [row[0] for row in rows]

    def purge(self, conversation_ids: Sequence[int]) -> int:
        """Delete conversations with their deliveries (the personal data goes with them)."""
        with self._transaction() as db:
            db.executemany(
                "DELETE FROM conversations WHERE id = ?", [(i,) for i in conversation_ids]
            )
        return len(conversation_ids)

    def purge_quarantine_older_than(self, cutoff: float) -> int:
        with self._transaction() as db:
            return db.execute("DELETE FROM quarantine WHERE received_at < ?", (cutoff,)).rowcount

    def vacuum(self) -> None:
        self._conn.execute("VACUUM")

    def writable(self, now: float | None = None) -> bool:
        """True if a row of the database file can be written and committed (fsync'd) now."""
        now = time.time() if now is None else now
        try:
            with self._transaction() as db:
                db.execute(
                    "INSERT INTO health_probe (id, checked_at) VALUES (1, ?)"
                    " ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
                    (now,),
                )
        except sqlite3.Error:
            return False
        return True
