"""``relay leads``: the stored leads as a table or as JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from relay.leads.model import Lead


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M")


def as_json(leads: Sequence[Lead]) -> str:
    return json.dumps([lead.as_json() for lead in leads], ensure_ascii=False, indent=2)


def as_table(leads: Sequence[Lead]) -> list[str]:
    if not leads:
        return ["no leads"]
    lines = [f"{'ID':>5}  {'STATE':16} {'CATEGORY':8} {'CREATED (UTC)':16}  VISITOR / WHO"]
    for lead in leads:
        visitor = lead.visitor_email or lead.visitor_name or lead.visitor_id or "-"
        who = ""
        if lead.done_by:
            who = f" done by {lead.done_by} {_when(lead.done_at)}"
        elif lead.claimed_by:
            who = f" claimed by {lead.claimed_by} {_when(lead.claimed_at)}"
        lines.append(
            f"{lead.id:>5}  {lead.state.value:16} {lead.category:8}"
            f" {_when(lead.created_at):16}  {visitor}{who}"
        )
    return lines
