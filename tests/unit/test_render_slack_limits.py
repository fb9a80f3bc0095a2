"""Slack payloads stay inside Block Kit limits, however long or large the conversation is."""

from __future__ import annotations

import json
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from relay.intake.payload import parse
from relay.model.category import Category
from relay.render.slack import FALLBACK_LIMIT, HEADER_LIMIT, MAX_BLOCKS, SECTION_LIMIT
from tests.support.render import SLACK_ACTION, category_body, long_conversation, renderer_for


def assert_within_limits(text: str, blocks: tuple[dict[str, Any], ...]) -> None:
    assert len(blocks) <= MAX_BLOCKS
    assert 0 < len(text) <= FALLBACK_LIMIT
    for raw in blocks:
        block = Block.parse(raw)
        assert block is not None
        block.validate_json()  # raises SlackObjectFormationError on any violated limit
        assert block.to_dict() == raw
        if raw["type"] == "header":
            assert len(raw["text"]["text"]) <= HEADER_LIMIT
        if raw["type"] == "section":
            if "text" in raw:
                assert len(raw["text"]["text"]) <= SECTION_LIMIT
            for field in raw.get("fields", []):
                assert len(field["text"]) <= 2000
            assert len(raw.get("fields", [])) <= 10


@pytest.mark.parametrize("locale", ["en", "cs", "de"])
def test_two_thousand_messages_fit(locale: str) -> None:
    content = renderer_for(locale).slack(long_conversation(2000), Category.LOW_RATED, SLACK_ACTION)
    assert_within_limits(content.text, content.blocks)
    dumped = json.dumps(content.blocks, ensure_ascii=False)
    assert "Message 1999:" in dumped
    note = {
        "en": "… 1,980 earlier messages not shown",
        "cs": "… 1\u00a0980 starších zpráv není zobrazeno",
        "de": "… 1.980 frühere Nachrichten nicht angezeigt",
    }[locale]
    assert note in dumped


def test_huge_fields_are_clipped() -> None:
    data = category_body(Category.LOW_RATED)
    data["visitor"].update(name="N" * 5000, city="&" * 5000, note="<" * 9000)
    data["channel"]["ratingDesc"] = "&<>" * 3000
    data["messages"] = [
        {"type": "visitor", "content": "&" * 20000, "triggeredBy": "T" * 3000, "email": "e" * 900}
        for _ in range(40)
    ]
    conversation = parse(json.dumps(data).encode())
    content = renderer_for().slack(conversation, Category.LOW_RATED, SLACK_ACTION)
    assert_within_limits(content.text, content.blocks)
    for raw in content.blocks:
        for value in json.dumps(raw).split("&")[1:]:
            assert value.startswith(("amp;", "lt;", "gt;")), "an entity was split by clipping"
