"""Worker-side operations on the delivery queue: recover, claim, and record each outcome."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from relay.store.base import StoreBase
from relay.store.records import ClaimedDelivery


def _recipients(done: Sequence[str]) -> str:
    return json.dumps(sorted(set(done)))


class DeliveryOps(StoreBase):
    def recover_claimed(self, now: float | None = None) -> int:
        """After a crash or restart: deliveries left 'sending' go back to the queue, due now.
        The interrupted attempt counts (it may have reached the destination)."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            cur = db.execute(
                "UPDATE deliveries SET status = 'retrying', next_attempt_at = ?, updated_at = ?,"
                " last_error = 'interrupted while sending' ||"
                " COALESCE(' (before: ' || last_error || ')', '')"
                " WHERE status = 'sending'",
                (now, now),
            )
        return cur.rowcount

    def claim_due(self, limit: int, now: float | None = None) -> list[ClaimedDelivery]:
        """Mark up to ``limit`` due deliveries 'sending' and count the attempt, atomically."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            rows = db.execute(
                "SELECT d.id, d.conversation_id, d.rule, d.channel, d.action, d.category,"
                " d.attempts, d.created_at, d.dedupe_key, d.done_recipients, c.raw"
                " FROM deliveries d INDEXED BY deliveries_due_order"
                " JOIN conversations c ON c.id = d.conversation_id"
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

    def mark_sent(
        self, delivery_id: int, now: float | None = None, *, sent_to: str | None = None
    ) -> None:
        """``sent_to='outbox'``: written to the local outbox, not to a real destination."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            db.execute(
                "UPDATE deliveries SET status = 'sent', updated_at = ?, last_error = NULL,"
                " sent_to = ? WHERE id = ?",
                (now, sent_to, delivery_id),
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
                (at, error, now, _recipients(done), delivery_id),
            )

    def mark_dead(
        self, delivery_id: int, error: str, done: Sequence[str] = (), now: float | None = None
    ) -> None:
        now = time.time() if now is None else now
        with self._transaction() as db:
            db.execute(
                "UPDATE deliveries SET status = 'dead', last_error = ?, updated_at = ?,"
                " done_recipients = ? WHERE id = ?",
                (error, now, _recipients(done), delivery_id),
            )

    def release(self, delivery_ids: Sequence[int], now: float | None = None) -> None:
        """Give claimed deliveries back untouched (shutdown before they were sent): the
        attempt that never finished is not counted."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            db.executemany(
                "UPDATE deliveries SET status = CASE WHEN attempts > 1 THEN 'retrying'"
                " ELSE 'pending' END, attempts = attempts - 1, next_attempt_at = ?,"
                " updated_at = ? WHERE id = ? AND status = 'sending'",
                [(now, now, i) for i in delivery_ids],
            )
