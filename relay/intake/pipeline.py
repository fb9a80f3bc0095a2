"""The intake pipeline: parse a hook body, classify the conversation, route it by the rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from relay.intake.payload import parse
from relay.model.category import Category, classify
from relay.model.conversation import Conversation
from relay.routing.decide import Decision, explain
from relay.routing.rules import Rule, RuleSet


@dataclass(frozen=True)
class Routed:
    """One body taken through the pipeline: what it says, its category, the routing decision."""

    raw: bytes
    conversation: Conversation
    category: Category
    decision: Decision


def take(
    raw: bytes,
    rules: RuleSet | Sequence[Rule],
    *,
    low_rating_threshold: int,
    now: float,
    at: float | None = None,
) -> Routed:
    """Parse, classify and route ``raw``; raises ``PayloadError`` naming what is wrong.
    ``now`` is only read when the conversation has no endAt or beginAt (see ``explain``)."""
    conversation = parse(raw)
    category = classify(conversation, low_rating_threshold=low_rating_threshold)
    decision = explain(conversation, category, rules, now=now, at=at)
    return Routed(raw, conversation, category, decision)
