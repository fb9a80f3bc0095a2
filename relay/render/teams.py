"""Microsoft Teams Adaptive Cards (version 1.4) built from the same view as the Slack message.

Every value taken from a conversation goes into a RichTextBlock ``TextRun``, which Adaptive
Card hosts never read as Markdown; mention tags and the templating and date-function
delimiters are broken up as well, so no visitor text is ever interpreted."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from relay.model.category import Category
from relay.render.i18n import Translator
from relay.render.view import ConversationView, MessageView, clip

CARD_VERSION: Final = "1.4"
SCHEMA_URL: Final = "http://adaptivecards.io/schemas/adaptive-card.json"
EXCERPT_MESSAGES: Final = 10
MESSAGE_LIMIT: Final = 600
FIELD_LIMIT: Final = 500
# Teams refuses messages above about 28 KB; the card stays well below it.
CARD_BYTES: Final = 20_000
ZWSP: Final = "\u200b"

CATEGORY_STYLE: Final[Mapping[str, str]] = MappingProxyType(
    {
        Category.MISSED: "attention",
        Category.LOW_RATED: "warning",
        Category.OFFLINE: "accent",
        Category.NORMAL: "good",
    }
)
# "{{DATE(...)}}" functions, "${...}" templating and "<at>...</at>" mentions.
_ACTIVE = re.compile(r"\{\{|\$\{|<\s*/?\s*at\b", re.IGNORECASE)


def inert(text: str) -> str:
    """``text`` with every sequence a Teams host could act on split by a zero-width space."""
    return _ACTIVE.sub(lambda m: m.group()[0] + ZWSP + m.group()[1:], text)


def run(text: str, limit: int = FIELD_LIMIT, **style: Any) -> dict[str, Any]:
    return {"type": "TextRun", "text": inert(clip(text, limit)), **style}


def rich(*inlines: dict[str, Any], **options: Any) -> dict[str, Any]:
    return {"type": "RichTextBlock", "inlines": list(inlines), **options}


def _facts(view: ConversationView, t: Translator) -> list[tuple[str, str]]:
    contact = view.visitor_name
    if view.visitor_email:
        contact = f"{contact} · {view.visitor_email}"
    pairs = [(t("visitor"), contact)]
    if view.location:
        pairs.append((t("location"), view.location))
    if view.stars and view.rating_label:
        pairs.append((t("rating"), f"{view.stars}  {view.rating_label}"))
    when = " · ".join(v for v in (view.date, view.duration) if v)
    if when:
        pairs.append((t("date"), when))
    if view.agents:
        pairs.append((t("agents"), ", ".join(view.agents)))
    if view.group:
        pairs.append((t("group"), view.group))
    responses = " / ".join(v for v in (view.first_response, view.avg_response) if v)
    if responses:
        pairs.append((f"{t('first_response')} / {t('avg_response')}", responses))
    if view.note:
        pairs.append((t("note"), view.note))
    return pairs


def _message(message: MessageView) -> list[dict[str, Any]]:
    when = f" · {message.time}" if message.time else ""
    if message.kind == "system":
        return [rich(run(message.text + when, italic=True, isSubtle=True), spacing="small")]
    marks = " · ".join(m for m in (message.triggered_by, message.offline_email) if m)
    head = [run(message.author, 200, weight="bolder"), run(when, 100, isSubtle=True)]
    if marks:
        head.append(run(f" · {marks}", 300, isSubtle=True, italic=True))
    return [rich(*head, spacing="small"), rich(run(message.text, MESSAGE_LIMIT), spacing="none")]


def _card(body: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "AdaptiveCard", "$schema": SCHEMA_URL, "version": CARD_VERSION, "body": body}


def build_card(view: ConversationView, t: Translator) -> dict[str, Any]:
    """Header (category, visitor, stars), the visitor's ask, contact and facts, the newest
    messages and the chat reference; the excerpt shrinks until the card fits ``CARD_BYTES``."""
    header = [
        run(f"{view.category_label}: {view.visitor_name}", 200, size="large", weight="bolder")
    ]
    if view.stars:
        header.append(run(f"  {view.stars}", 20, size="large", color="warning"))
    top: list[dict[str, Any]] = [
        {
            "type": "Container",
            "style": CATEGORY_STYLE.get(view.category, "emphasis"),
            "items": [rich(*header)],
        }
    ]
    if view.first_visitor_message:
        top.append(rich(run(view.first_visitor_message, MESSAGE_LIMIT)))
    if view.rating_comment:
        top.append(
            rich(
                run(f"{t('comment')}: ", 100, weight="bolder"),
                run(view.rating_comment, MESSAGE_LIMIT),
            )
        )
    top.extend(
        rich(run(f"{label}: ", 100, weight="bolder"), run(value), spacing="small")
        for label, value in _facts(view, t)
    )
    end = [rich(run(view.chat_ref, 300, isSubtle=True, size="small"), separator=True)]
    shown = list(view.messages[-EXCERPT_MESSAGES:])
    while True:
        omitted = len(view.messages) - len(shown) + view.messages_omitted
        heading = t("last_messages") if shown else t("no_messages")
        if omitted:
            note = "earlier_stored" if view.messages_omitted else "earlier_not_shown"
            heading = f"{heading} ({t.plural(note, omitted)})"
        excerpt = [rich(run(heading, 300, weight="bolder"), separator=True)]
        excerpt.extend(block for message in shown for block in _message(message))
        card = _card([*top, *excerpt, *end])
        if not shown or len(json.dumps(card).encode()) <= CARD_BYTES:
            return card
        shown = shown[1:]
