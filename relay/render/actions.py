"""Rendering of webhook and archive actions: a JSON body and an archive line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from relay.intake.payload import json_value
from relay.model.category import Category
from relay.model.content import ArchiveContent, WebhookContent, line_prefix
from relay.model.conversation import Conversation
from relay.routing.rules import ArchiveAction, WebhookAction

if TYPE_CHECKING:
    from relay.render.templating import BodyTemplates  # imports Jinja: the caller has one


def template_variables(
    raw: bytes, conversation: Conversation, category: Category, *, rule: str, delivery_id: int
) -> dict[str, Any]:
    """What a webhook body template can use: the hook body as received (camelCase keys, as
    Smartsupp documents them) and a few derived values."""
    return {
        "conversation": json_value(raw),
        "key": conversation.key,
        "category": category.value,
        "rule": rule,
        "delivery_id": delivery_id,
    }


def render_webhook(
    action: WebhookAction,
    raw: bytes,
    conversation: Conversation,
    category: Category,
    *,
    rule: str,
    delivery_id: int,
    bodies: BodyTemplates,
) -> WebhookContent:
    """The stored body byte for byte, or the action's JSON template rendered."""
    if action.body is None:
        return WebhookContent(url=action.url, body=raw)
    variables = template_variables(raw, conversation, category, rule=rule, delivery_id=delivery_id)
    return WebhookContent(url=action.url, body=bodies.render(action.body, variables))


def render_archive(
    action: ArchiveAction,
    raw: bytes,
    conversation: Conversation,
    category: Category,
    *,
    rule: str,
    delivery_id: int,
) -> ArchiveContent:
    """One JSON line: delivery id first (the archive sender relies on it), then the rule,
    category, conversation key and the conversation exactly as received."""
    rest = msgspec.json.encode(
        {
            "rule": rule,
            "category": category.value,
            "conversation_key": conversation.key,
            "end_at": conversation.end_at,
            "conversation": json_value(raw),
        }
    )
    return ArchiveContent(path=action.path, line=line_prefix(delivery_id) + rest[1:])
