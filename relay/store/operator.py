"""Operator queries and commands: counts, listings, retry, replay, quarantine, purge."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from relay.routing import PlannedDelivery
from relay.store.base import ACTIVE, COUNTED, StoreBase
from relay.store.intake import plan_deliveries
from relay.store.records import DeliveryRow, QuarantineRow

_DELIVERY_COLUMNS = (
    "d.id, d.conversation_id, c.conv_key, d.rule, d.channel, d.status, d.attempts,"
    " d.created_at, d.next_attempt_at, d.updated_at, d.last_error, d.sent_to"
    " FROM deliveries d JOIN conversations c ON c.id = d.conversation_id"
)
RETRYABLE = ("pending", "retrying", "dead")


class OperatorOps(StoreBase):
    def counts(self) -> dict[str, int]:
        """Deliveries by status (``COUNTED``); ``sent`` counts real sends only and ``outbox``
        the deliveries written to the local outbox instead."""
        found = dict(
            self._conn.execute(
                "SELECT CASE WHEN status = 'sent' AND sent_to = 'outbox' THEN 'outbox'"
                " ELSE status END, COUNT(*) FROM deliveries GROUP BY 1"
            ).fetchall()
        )
        return {status: found.get(status, 0) for status in COUNTED}

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
        sql = f"SELECT {_DELIVERY_COLUMNS} WHERE d.status IN ({marks})"
        params: list[Any] = list(statuses)
        if conversation_id is not None:
            sql += " AND d.conversation_id = ?"
            params.append(conversation_id)
        sql += " ORDER BY d.id LIMIT ?"
        params.append(limit)
        return [DeliveryRow(*row) for row in self._conn.execute(sql, params).fetchall()]

    def delivery(self, delivery_id: int) -> DeliveryRow | None:
        row = self._conn.execute(
            f"SELECT {_DELIVERY_COLUMNS} WHERE d.id = ?",
            (delivery_id,),
        ).fetchone()
        return None if row is None else DeliveryRow(*row)

    def retry_now(self, delivery_ids: Sequence[int] | None = None, now: float | None = None) -> int:
        """Requeue deliveries (given ids, or every dead one) for an immediate attempt: a fresh
        start, so attempts, backoff and the age limit count again from now. Sent and in-flight
        deliveries are left alone (``replay`` sends a conversation again)."""
        now = time.time() if now is None else now
        reset = (
            "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?,"
            " created_at = ?, updated_at = ?"
        )
        with self._transaction() as db:
            if delivery_ids is None:
                return db.execute(reset + " WHERE status = 'dead'", (now, now, now)).rowcount
            changed = 0
            for delivery_id in delivery_ids:
                changed += db.execute(
                    reset + " WHERE id = ? AND status IN ('pending', 'retrying', 'dead')",
                    (now, now, now, delivery_id),
                ).rowcount
            return changed

    def conversation_raw(self, conversation_id: int) -> tuple[bytes, str, str] | None:
        """(raw body, category, conv_key) of one stored conversation."""
        row = self._conn.execute(
            "SELECT raw, category, conv_key FROM conversations WHERE id = ?", (conversation_id,)
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def latest_version_id(self, conv_key: str) -> int | None:
        """The id of the newest stored version of a conversation ("<accountId>-<channel.id>")."""
        row = self._conn.execute(
            "SELECT id FROM conversations WHERE conv_key = ? ORDER BY version DESC LIMIT 1",
            (conv_key,),
        ).fetchone()
        return None if row is None else int(row[0])

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
            return plan_deliveries(
                db, conversation_id, conv_key, category, planned, now=now, force=True
            )

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
        """Conversations received before ``cutoff`` with nothing left to deliver."""
        rows = self._conn.execute(
            "SELECT id FROM conversations WHERE received_at < ? AND id NOT IN"
            " (SELECT conversation_id FROM deliveries WHERE status IN ('pending', 'retrying',"
            " 'sending')) ORDER BY id",
            (cutoff,),
        ).fetchall()
        return [row[0] for row in rows]

    def delivery_ids_of(self, conversation_ids: Sequence[int]) -> list[int]:
        ids: list[int] = []
        for conversation_id in conversation_ids:
            rows = self._conn.execute(
                "SELECT id FROM deliveries WHERE conversation_id = ?", (conversation_id,)
            ).fetchall()
            ids.extend(row[0] for row in rows)
        return ids

    def purge(self, conversation_ids: Sequence[int]) -> int:
        """Delete conversations with their deliveries. ``secure_delete`` overwrites the freed
        pages, so the personal data does not linger in the file."""
        self._conn.execute("PRAGMA secure_delete=ON")
        with self._transaction() as db:
            deleted = sum(
                db.execute("DELETE FROM conversations WHERE id = ?", (i,)).rowcount
                for i in conversation_ids
            )
        return deleted

    def purge_quarantine_older_than(self, cutoff: float) -> int:
        self._conn.execute("PRAGMA secure_delete=ON")
        with self._transaction() as db:
            return db.execute("DELETE FROM quarantine WHERE received_at < ?", (cutoff,)).rowcount

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file and empty it (after a purge, so
        deleted rows do not survive in the log either)."""
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def vacuum(self) -> None:
        self._conn.execute("VACUUM")

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """Work that must run once at a time (purge): one SQLite file has one relay, and its
        writes are serialised by the file's lock, so this always holds (``name`` unused)."""
        del name
        yield True

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
