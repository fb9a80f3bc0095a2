"""Inputs shared by the rendering tests and scripts: one conversation per category, renderers."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

from relay.config.settings import EmailAction, RenderSettings, SlackAction
from relay.intake.payload import parse
from relay.model.category import Category, classify
from relay.model.conversation import Conversation
from relay.render.renderer import Renderer
from tests.support.paths import SAMPLES

SAMPLE_V1 = SAMPLES / "doc-example-v1.json"
FROM_ADDRESS = "Smartsupp relay <relay@relay.example>"
MESSAGE_ID = "<conversation.55039.email@relay.example>"
LOCALES = ("en", "cs", "de")
TIMEZONES = {"en": "Europe/London", "cs": "Europe/Prague", "de": "Europe/Berlin"}
EMAIL_ACTION = EmailAction(type="email", to=["sales@shop.example"], cc=["lead@shop.example"])
SLACK_ACTION = SlackAction(type="slack", channel="#chats")
# The Date header is the send time: a fixed clock keeps snapshots stable.
SEND_TIME = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def v1() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SAMPLE_V1.read_text(encoding="utf-8"))
    return data


def category_body(category: Category) -> dict[str, Any]:
    """The v1 sample changed so that it classifies as ``category``."""
    data = copy.deepcopy(v1())
    channel = data["channel"]
    if category is Category.OFFLINE:
        channel.update(isOffline=True, isChat=False, rating=None, duration=0)
        channel.update(firstResponse=None, avgResponse=None, messagesCount=1)
        data["visitor"].update(name="Jana Nováková", email="jana@example.cz")
        data["messages"] = [
            {
                "type": "visitor",
                "name": "Jana Nováková",
                "from": "visitor:jn1",
                "content": "Do you ship to Slovakia?\nI need 40 pieces by Friday.",
                "sentAt": 1427470439703,
                "triggeredBy": None,
                "email": "jana@example.cz",
            }
        ]
    elif category is Category.MISSED:
        channel.update(isMissed=True, isCompleted=False, rating=None, firstResponse=None)
        channel.update(avgResponse=None)
        data["messages"] = [
            data["messages"][0],
            {
                "type": "visitor",
                "name": "Dusan Kmet",
                "from": data["messages"][0]["from"],
                "content": "Is anybody there? I would like to order the pro package.",
                "sentAt": 1427470466000,
            },
            data["messages"][-1],
        ]
    elif category is Category.LOW_RATED:
        channel.update(rating=1, ratingDesc="Nobody answered my question about invoices.")
    return data


def conversation_for(category: Category) -> Conversation:
    conversation = parse(json.dumps(category_body(category)).encode())
    assert classify(conversation) is category
    return conversation


def renderer_for(locale: str = "en", **render: Any) -> Renderer:
    settings = RenderSettings.model_validate(
        {"locale": locale, "timezone": TIMEZONES.get(locale, "UTC"), **render}
    )
    return Renderer(settings, from_address=FROM_ADDRESS, clock=lambda: SEND_TIME)


def long_conversation(count: int = 2000) -> Conversation:
    """``count`` alternating visitor and agent messages, each a few hundred characters long."""
    data = category_body(Category.LOW_RATED)
    start = data["beginAt"]
    messages = []
    for index in range(count):
        visitor = index % 2 == 0
        messages.append(
            {
                "type": "visitor" if visitor else "agent",
                "name": "Dusan Kmet" if visitor else "John Doe",
                "from": "visitor:v1" if visitor else 3,
                "content": f"Message {index}: " + "lorem ipsum <dolor> & sit amet " * 12,
                "sentAt": start + index * 15_000,
            }
        )
    data["messages"] = messages
    data["endAt"] = start + count * 15_000
    data["channel"]["duration"] = count * 15
    return parse(json.dumps(data).encode())
