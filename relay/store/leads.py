"""Lead rows: written with the conversation at intake, changed only by compare-and-set."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from relay.leads.model import Lead, LeadState, Refused
from relay.routing.rules import PlannedDelivery
from relay.store import queries
from relay.store.base import WRITES, StoreBase
from relay.store.rows import lead_from_row


class LeadOps(StoreBase):
    def lead(self, lead_id: int) -> Lead | None:
        found = self._conn.execute(queries.LEAD_BY_ID, (lead_id,)).fetchone()
        return None if found is None else lead_from_row(found)

    def lead_for_conversation(self, conversation_id: int) -> Lead | None:
        """The lead of the conversation (any version) stored under ``conversation_id``."""
        found = self._conn.execute(queries.LEAD_OF_CONVERSATION, (conversation_id,)).fetchone()
        return None if found is None else lead_from_row(found)

    def leads(self, state: str | None = None, limit: int = 1000) -> list[Lead]:
        if state is None:
            rows = self._conn.execute(queries.LEADS, (limit,))
        else:
            rows = self._conn.execute(queries.LEADS_IN_STATE, (state, limit))
        return [lead_from_row(row) for row in rows.fetchall()]

    def leads_between(self, start: float, end: float) -> list[Lead]:
        rows = self._conn.execute(queries.LEADS_BETWEEN, (start, end))
        return [lead_from_row(row) for row in rows.fetchall()]

    def change_lead(
        self, lead_id: int, transition: Callable[[Lead], Lead | Refused]
    ) -> Lead | Refused | None:
        """Apply a pure transition to the stored lead and write the result (None: no lead)."""
        with self._transaction() as db:
            before = self.lead(lead_id)
            if before is None:
                return None
            after = transition(before)
            if (
                isinstance(after, Lead)
                and after != before
                and not WRITES.write_lead(db, before, after)
            ):
                raise sqlite3.OperationalError(f"lead {lead_id} changed during its transition")
            return after

    def slack_request_seen(self, signature: str, now: float, window: float) -> bool:
        """Record a verified Slack request; True if the same one was recorded already (a
        replay). Records older than ``window`` are dropped: their timestamps are refused."""
        with self._transaction() as db:
            db.execute(queries.FORGET_SLACK_REQUESTS, (now - window,))
            cur = db.execute(queries.RECORD_SLACK_REQUEST, (signature, now))
            return cur.rowcount == 0

    # -- escalations and digests (relay.leads.scheduler) ------------------------------------

    def escalations(self) -> set[tuple[int, int]]:
        """(lead id, step) of every escalation recorded."""
        rows = self._conn.execute(queries.ESCALATIONS).fetchall()
        return {(int(lead_id), int(step)) for lead_id, step in rows}

    def record_escalation(
        self, lead: Lead, step: int, planned: Sequence[PlannedDelivery], now: float
    ) -> int | None:
        """Record escalation ``step`` of ``lead`` and plan its deliveries in one transaction;
        None if it was recorded already (by an earlier run or another relay), or the lead is
        no longer open. Returns the number of deliveries planned."""
        with self._transaction() as db:
            found = db.execute(queries.LEAD_STATE, (lead.id,)).fetchone()
            if found is None or found[0] != LeadState.OPEN.value:
                return None
            cur = db.execute(queries.INSERT_ESCALATION, (lead.id, step, now))
            if cur.rowcount == 0:
                return None
            return WRITES.plan_deliveries(
                db, found[1], lead.conv_key, lead.category, planned, now=now
            )

    def digest_days(self) -> set[str]:
        return {str(row[0]) for row in self._conn.execute(queries.DIGEST_DAYS)}

    def take_digest_day(self, day: str, now: float) -> bool:
        """Record that the digest of ``day`` is being sent; False if it was already."""
        with self._transaction() as db:
            cur = db.execute(queries.TAKE_DIGEST_DAY, (day, now))
            return cur.rowcount == 1

    def release_digest_day(self, day: str) -> None:
        """Sending failed: the next pass tries again."""
        with self._transaction() as db:
            db.execute(queries.RELEASE_DIGEST_DAY, (day,))

    def day_conversations(self, start: float, end: float) -> list[tuple[str, float, bytes | None]]:
        """(category, received_at, raw body of low-rated ones) of the newest version of each
        conversation received in [start, end)."""
        rows = self._conn.execute(queries.DAY_CONVERSATIONS, (start, end)).fetchall()
        return [(str(cat), float(at), None if raw is None else bytes(raw)) for cat, at, raw in rows]
