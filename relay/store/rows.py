"""Rows as both stores write and read them (deliveries planned, leads): only the SQL differs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from relay.leads.model import Lead, LeadFacts, LeadState, answered_in_chat
from relay.routing.rules import PlannedDelivery


class Executes(Protocol):
    """What these writes need of a connection: sqlite3's and psycopg's both have it."""

    def execute(self, query: Any, params: Any = ..., /) -> Any: ...


@dataclass(frozen=True)
class RowWriter:
    """One store's statements (positional parameters, in the order passed here) and the
    writes made with them; a write runs on the connection of the caller's transaction."""

    plan_delivery: str
    open_leads_of_visitor: str
    insert_lead: str
    update_lead: str

    def plan_deliveries(
        self,
        db: Executes,
        conversation_id: int,
        conv_key: str,
        category: str,
        planned: Sequence[PlannedDelivery],
        *,
        now: float,
        force: bool = False,
    ) -> int:
        """Insert deliveries; the number inserted. An action already planned for any version
        of the same conversation in the same category is not planned again (``dedupe_key`` is
        unique), unless ``force`` (operator replay) makes the key unique."""
        created = 0
        for index, plan in enumerate(planned):
            dedupe = f"{conv_key}/{category}/{plan.action_key}"
            if force:
                dedupe += f"/replay-{now!r}-{index}"
            action = plan.action_json
            params = (conversation_id, dedupe, plan.rule, plan.channel, action, category)
            created += db.execute(self.plan_delivery, (*params, now, now, now)).rowcount
        return created

    def write_lead(self, db: Executes, before: Lead, after: Lead) -> bool:
        """Write ``after`` only if the row still is ``before`` (its state and claimer)."""
        cur = db.execute(
            self.update_lead,
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
        return bool(cur.rowcount == 1)

    def record_lead(
        self,
        db: Executes,
        conversation_id: int,
        conv_key: str,
        category: str,
        facts: LeadFacts,
        *,
        now: float,
    ) -> None:
        """Inside the intake's transaction: an answered conversation settles the visitor's
        open leads (each by compare-and-set: one claimed meanwhile stays claimed); a
        follow-up conversation becomes a lead, once per conversation key (a unique
        constraint)."""
        if facts.answered and (facts.visitor_id or facts.visitor_email):
            rows = db.execute(
                self.open_leads_of_visitor, (conv_key, facts.visitor_id, facts.visitor_email)
            ).fetchall()
            for row in rows:
                lead = lead_from_row(row)
                changed = answered_in_chat(lead, now)
                if isinstance(changed, Lead):
                    self.write_lead(db, lead, changed)
        if facts.follow_up:
            db.execute(
                self.insert_lead,
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


def lead_from_row(row: Any) -> Lead:
    """A lead from its columns (``_LEAD_COLUMNS`` in both stores' queries)."""
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
