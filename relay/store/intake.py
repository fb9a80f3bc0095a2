"""Intake-side writes: store an accepted body with its planned deliveries, or quarantine it."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from relay.store import queries
from relay.store.base import WRITES, StoreBase
from relay.store.records import Accepted, Intake


class IntakeOps(StoreBase):
    def accept_many(self, intakes: Sequence[Intake], now: float | None = None) -> list[Accepted]:
        """Store bodies and their planned deliveries in ONE transaction (one fsync)."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            return [self._accept(db, intake, now) for intake in intakes]

    def accept(self, intake: Intake, now: float | None = None) -> Accepted:
        return self.accept_many([intake], now)[0]

    def _accept(self, db: sqlite3.Connection, intake: Intake, now: float) -> Accepted:
        # One statement in the common case: the next version number is computed inside the
        # INSERT, and an exact duplicate (same key and content hash) inserts nothing.
        inserted = db.execute(
            queries.INSERT_CONVERSATION_VERSION,
            (
                intake.conv_key,
                intake.account_id,
                intake.channel_id,
                intake.content_hash,
                intake.category,
                now,
                intake.raw,
                intake.begin_at,
            ),
        ).fetchone()
        if inserted is None:
            existing = db.execute(
                queries.FIND_DUPLICATE,
                (intake.conv_key, intake.content_hash),
            ).fetchone()
            return Accepted(existing[0], existing[1], duplicate=True, deliveries=0)
        conversation_id, version = inserted
        created = WRITES.plan_deliveries(
            db, conversation_id, intake.conv_key, intake.category, intake.planned, now=now
        )
        if intake.lead is not None:
            WRITES.record_lead(
                db, conversation_id, intake.conv_key, intake.category, intake.lead, now=now
            )
        return Accepted(conversation_id, version, duplicate=False, deliveries=created)

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
    ) -> int:
        """Keep a refused body (cut to ``max_body`` and ``max_bytes``); drop the oldest rows
        beyond ``max_rows`` and those that bring the kept bodies beyond ``max_bytes``."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            cur = db.execute(
                queries.INSERT_QUARANTINE,
                (now, reason, message, remote, len(body), body[: min(max_body, max_bytes)]),
            )
            db.execute(queries.TRIM_QUARANTINE_ROWS, (max_rows,))
            db.execute(queries.TRIM_QUARANTINE_BYTES, (max_bytes,))
        assert cur.lastrowid is not None
        return cur.lastrowid
