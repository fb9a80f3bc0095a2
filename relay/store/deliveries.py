"""Worker-side operations on the delivery queue: recover, claim, and record each outcome."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any

from relay.store import queries
from relay.store.admission import Admission, scan_due
from relay.store.base import StoreBase
from relay.store.operator import VISITOR_ROWS, visitor_match
from relay.store.records import ClaimedDelivery


def _recipients(done: Sequence[str]) -> str:
    return json.dumps(sorted(set(done)))


class DeliveryOps(StoreBase):
    def recover_claimed(self, now: float | None = None) -> int:
        """After a crash or restart: deliveries left 'sending' go back to the queue, due now.
        The interrupted attempt counts (it may have reached the destination)."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            cur = db.execute(queries.RECOVER_CLAIMED, (now, now))
        return cur.rowcount

    def claim_due(
        self,
        limit: int,
        now: float | None = None,
        *,
        admit: Callable[[dict[str, Any]], bool] | None = None,
        past_refused: bool = True,
    ) -> list[ClaimedDelivery]:
        """Mark up to ``limit`` due deliveries 'sending' and count the attempt, atomically.

        With ``admit``, due deliveries are offered to it in order and only those whose action
        it admits are claimed (per-destination limits); the others stay queued as they are.
        ``past_refused=False``: the scan ends at the first delivery ``admit`` turns away."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            if admit is not None:  # the rows admit chose, by primary key
                ids = self._admitted(db, now, limit, admit, past_refused)
                source = queries.CLAIM_BY_ID_SOURCE
                where, args = queries.ids_in("d.id", len(ids)), list[float](ids)
            else:
                source, where, args = queries.CLAIM_DUE_SOURCE, queries.CLAIM_DUE_WHERE, [now]
            query = queries.claim_query(source, where)
            rows = db.execute(query, (*args, limit)).fetchall()
            db.executemany(queries.MARK_SENDING, [(now, row[0]) for row in rows])
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
                done_recipients=() if row[9] == "[]" else tuple(json.loads(row[9])),
                raw=row[10],
            )
            for row in rows
        ]

    @staticmethod
    def _admitted(
        db: sqlite3.Connection,
        now: float,
        limit: int,
        admit: Callable[[dict[str, Any]], bool],
        past_refused: bool = True,
    ) -> list[int]:
        """The ids of the first ``limit`` due deliveries that ``admit`` accepts, in order; after
        each action it turns away, the scan goes on from there without that action."""
        ids: list[int] = []

        def fetch(at: float, last: int, refused: Sequence[str], page: int) -> list[Any]:
            query = queries.due_actions(len(refused))
            return db.execute(query, (now, at, last, *refused, page)).fetchall()

        scan_due(fetch, limit, Admission(admit, past_refused=past_refused), ids)
        return ids

    def next_due_at(self, after: float | None = None) -> float | None:
        """When the earliest queued delivery is due; with ``after``, the earliest due later."""
        if after is not None:
            row = self._conn.execute(queries.NEXT_DUE_AFTER, (after,)).fetchone()
            return None if row is None else row[0]
        row = self._conn.execute(queries.NEXT_DUE).fetchone()
        return None if row is None else row[0]

    def mark_sent(
        self,
        delivery_id: int,
        now: float | None = None,
        *,
        sent_to: str | None = None,
        message_id: str | None = None,
    ) -> None:
        """``sent_to='outbox'``: written to the local outbox, not to a real destination;
        ``message_id``: the Message-ID of an email really sent (``sent_email_ids``)."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            db.execute(queries.MARK_SENT, (now, sent_to, message_id, delivery_id))
            db.execute(queries.RECORD_ATTEMPT, (delivery_id, now, "sent", sent_to or ""))

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
            db.execute(queries.MARK_RETRY, (at, error, now, _recipients(done), delivery_id))
            db.execute(queries.RECORD_ATTEMPT, (delivery_id, now, "retry", error))

    def mark_dead(
        self, delivery_id: int, error: str, done: Sequence[str] = (), now: float | None = None
    ) -> None:
        now = time.time() if now is None else now
        with self._transaction() as db:
            db.execute(queries.MARK_DEAD, (error, now, _recipients(done), delivery_id))
            db.execute(queries.RECORD_ATTEMPT, (delivery_id, now, "dead", error))

    def record_external_ref(
        self, delivery_id: int, external_ref: str | None, note: str | None = None
    ) -> None:
        """Store the id the destination gave what this delivery created or updated; ``note``
        (why it created nothing) is kept as the delivery's last error."""
        with self._transaction() as db:
            db.execute(queries.RECORD_EXTERNAL_REF, (external_ref, note, delivery_id))

    def sent_email_ids(self, delivery_id: int, limit: int = 10) -> tuple[str, ...]:
        """The Message-IDs of the emails really sent about the visitor of this delivery's
        conversation (not this delivery's own), oldest first, at most the newest ``limit``:
        what its email may name in In-Reply-To and References."""
        found = self._conn.execute(queries.DELIVERY_VISITOR, (delivery_id,)).fetchone()
        if found is None:
            return ()
        conv_key, account, vid, vemail = found
        params = {
            "id": delivery_id,
            "conv_key": conv_key,
            "account": account,
            **visitor_match(vid, vemail),
            "rows": VISITOR_ROWS,
            "limit": limit,
        }
        rows = self._conn.execute(queries.SENT_EMAIL_IDS, params).fetchall()
        return tuple(str(row[0]) for row in reversed(rows))

    def known_external_ref(self, delivery_id: int) -> str | None:
        """The id recorded by this delivery or, failing that, by the latest delivery of the
        same conversation (``conv_key``, any version) and the same action: the object a
        retry or a later version must update instead of creating another."""
        row = self._conn.execute(queries.KNOWN_EXTERNAL_REF, (delivery_id,)).fetchone()
        return None if row is None else str(row[0])

    def release(self, delivery_ids: Sequence[int], now: float | None = None) -> None:
        """Give claimed deliveries back untouched (shutdown before they were sent): the
        attempt that never finished is not counted."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            db.executemany(queries.RELEASE_CLAIMED, [(now, now, i) for i in delivery_ids])
