"""Routing: a pure function from a conversation, its category and the rules to deliveries,
with an explanation of every decision (the same structure decides and explains)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from relay.model.category import Category
from relay.model.conversation import Conversation
from relay.routing.matchers import Check, Facts, checks
from relay.routing.rules import PlannedDelivery, Rule, RuleSet

Verdict = Literal["matched", "not matched", "not reached"]


@dataclass(frozen=True)
class RuleOutcome:
    """How one rule fared: its checks (empty when not reached) and the actions it planned."""

    rule: Rule
    verdict: Verdict
    checks: tuple[Check, ...]


@dataclass(frozen=True)
class Decision:
    """The whole routing decision for one conversation."""

    category: Category
    at: float
    at_source: Literal["--at", "endAt", "beginAt", "now"]
    outcomes: tuple[RuleOutcome, ...]
    stopped_by: str | None  # the matching rule without ``continue`` that ended the walk
    fallback_used: bool
    planned: tuple[PlannedDelivery, ...]

    @property
    def dropped(self) -> bool:
        """No rule matched and the fallback is "drop": stored, nothing is sent."""
        return not self.planned and not any(o.verdict == "matched" for o in self.outcomes)

    @property
    def at_text(self) -> str:
        return datetime.fromtimestamp(self.at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# Millisecond timestamps any time zone can show: a day inside datetime's range on each side.
EARLIEST_MS = int(datetime(1, 1, 2, tzinfo=UTC).timestamp()) * 1000
LATEST_MS = int(datetime(9999, 12, 30, tzinfo=UTC).timestamp()) * 1000


def _usable_ms(ms: int | None) -> bool:
    return ms is not None and EARLIEST_MS <= ms <= LATEST_MS


def evaluation_time(
    conversation: Conversation, *, now: float, at: float | None = None
) -> tuple[float, Literal["--at", "endAt", "beginAt", "now"]]:
    """When time windows are evaluated: ``at`` if given, else endAt, beginAt, then ``now``.
    A timestamp no calendar can show (a body's absurd endAt) is skipped like a missing one."""
    if at is not None:
        return at, "--at"
    if conversation.end_at is not None and _usable_ms(conversation.end_at):
        return conversation.end_at / 1000, "endAt"
    if conversation.begin_at is not None and _usable_ms(conversation.begin_at):
        return conversation.begin_at / 1000, "beginAt"
    return now, "now"


def explain(
    conversation: Conversation,
    category: Category,
    rules: RuleSet | Sequence[Rule],
    *,
    now: float,
    at: float | None = None,
) -> Decision:
    """Walk the rules in order; the first match wins unless it says ``continue = true``.
    If no rule matched, the fallback actions (if any) are planned under the rule "fallback"."""
    rule_set = rules if isinstance(rules, RuleSet) else RuleSet(tuple(rules))
    when, source = evaluation_time(conversation, now=now, at=at)
    facts = Facts.of(conversation, category, at=when)
    outcomes: list[RuleOutcome] = []
    planned: list[PlannedDelivery] = []
    stopped_by: str | None = None
    for index, rule in enumerate(rule_set.rules):
        if stopped_by is not None:
            outcomes.append(RuleOutcome(rule, "not reached", ()))
            continue
        found = tuple(checks(rule.match, facts))
        matched = all(c.ok for c in found)
        outcomes.append(RuleOutcome(rule, "matched" if matched else "not matched", found))
        if matched:
            planned.extend(rule_set.plans[index])
            if not rule.continue_:
                stopped_by = rule.name
    fallback_used = not any(o.verdict == "matched" for o in outcomes) and bool(rule_set.fallback)
    if fallback_used:
        planned.extend(rule_set.fallback_plans)
    return Decision(
        category=category,
        at=when,
        at_source=source,
        outcomes=tuple(outcomes),
        stopped_by=stopped_by,
        fallback_used=fallback_used,
        planned=tuple(planned),
    )


def route(
    conversation: Conversation,
    category: Category,
    rules: RuleSet | Sequence[Rule],
    *,
    now: float,
    at: float | None = None,
) -> tuple[PlannedDelivery, ...]:
    """The deliveries ``explain`` plans; ``now`` is only used when the conversation has no
    endAt or beginAt (routing itself never reads the clock)."""
    return explain(conversation, category, rules, now=now, at=at).planned
