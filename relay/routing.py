"""Routing: a pure function from a conversation, its category and the rules to deliveries."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from relay.classify import Category
from relay.conversation import Conversation
from relay.settings import Action, Match, Rule


@dataclass(frozen=True)
class PlannedDelivery:
    """One action of one matching rule, to be carried out for one conversation."""

    rule: str
    action: Action

    @property
    def channel(self) -> str:
        return self.action.type

    @property
    def action_key(self) -> str:
        """Identifies the action by content, so an edited rule is a different action."""
        spec = f"{self.rule}\0{self.action.model_dump_json()}"
        return hashlib.sha256(spec.encode()).hexdigest()[:16]


def matches(match: Match, conversation: Conversation, category: Category) -> bool:
    if match.category is not None and category not in match.category:
        return False
    rating = conversation.channel.rating
    if match.rating_min is not None and (rating is None or rating < match.rating_min):
        return False
    if match.rating_max is not None and (rating is None or rating > match.rating_max):
        return False
    return match.account_id is None or conversation.account_id in match.account_id


def route(
    conversation: Conversation, category: Category, rules: list[Rule]
) -> tuple[PlannedDelivery, ...]:
    """Walk ``rules`` in order; the first match wins unless it says ``continue = true``."""
    planned: list[PlannedDelivery] = []
    for rule in rules:
        if not matches(rule.match, conversation, category):
            continue
        planned.extend(PlannedDelivery(rule.name, action) for action in rule.actions)
        if not rule.continue_:
            break
    return tuple(planned)
