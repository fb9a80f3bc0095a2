"""Lead rows: written with the conversation at intake, changed only by compare-and-set."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from relay.leads.model import Lead, LeadFacts, LeadState, Refused, answered_in_chat
from relay.routing.decide import PlannedDelivery
from relay.store import queries
from relay.store.base import StoreBase


def lead_from_row(row: Any) -> Lead:
    """A lead from its columns (``queries._LEAD_COLUMNS``; the PostgreSQL store's too)."""
    (lid, key, category, created, state, vid, vemail, vname, cby, cat, dby, dat, note, aat) = row
    return Lead(
        id=lid,
        conv_key=key,
        category=category,
        created_at=created,
        state=LeadState(state),
        visitor_id=vid,
        visitor_email=vemail,
        visitor_name=vname,
        claimed_by=cby,
        claimed_at=cat,
        done_by=dby,
        done_at=dat,
        note=note,
        answered_at=aat,
    )


def record_lead(
    db: sqlite3.Connection,
    conversation_id: int,
    conv_key: str,
    category: str,
    facts: LeadFacts,
    *,
    now: float,
) -> None:
    """Inside the intake's transaction: an answered conversation settles the visitor's open
    leads; a follow-up conversation becomes a lead (once per conversation key)."""
    if facts.answered and (facts.visitor_id or facts.visitor_email):
        rows = db.execute(
            queries.OPEN_LEADS_OF_VISITOR,
            (conv_key, facts.visitor_id, facts.visitor_email),
        ).fetchall()
        for row in rows:
            lead = lead_from_row(row)
            changed = answered_in_chat(lead, now)
            if isinstance(changed, Lead):
                _write(db, lead, changed)
    if facts.follow_up:
        db.execute(
            queries.INSERT_LEAD,
            (
                conv_key,
                conversation_id,
                category,
                now,
                facts.visitor_id,
                facts.visitor_email,
                facts.visitor_name,
            ),
        )


def _write(db: sqlite3.Connection, before: Lead, after: Lead) -> bool:
    """Write ``after`` only if the row still is ``before`` (its state and claimer)."""
    cur = db.execute(
        queries.UPDATE_LEAD,
        (
            after.state.value,
            after.claimed_by,
            after.claimed_at,
            after.done_by,
            after.done_at,
            after.note,
            after.answered_at,
            before.id,
            before.state.value,
            before.claimed_by,
        ),
    )
    return cur.rowcount == 1


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
            if isinstance(after, Lead) and after != before and not _write(db, before, after):
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
            from relay.store.intake import plan_deliveries  # noqa: PLC0415 -- intake imports us

            return plan_deliveries(db, found[1], lead.conv_key, lead.category, planned, now=now)

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
