"""Snapshots of the email (headers, text, HTML) and Slack payload per category and locale.

Regenerate with ``RELAY_UPDATE_SNAPSHOTS=1 pytest tests/unit/test_render_snapshots.py``;
otherwise any difference fails the test, so a template change is always reviewed as a snapshot diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from relay.model.category import Category
from tests.support.paths import SNAPSHOTS
from tests.support.render import (
    EMAIL_ACTION,
    LOCALES,
    MESSAGE_ID,
    SLACK_ACTION,
    conversation_for,
    renderer_for,
)

UPDATE = os.environ.get("RELAY_UPDATE_SNAPSHOTS") == "1"
SHOWN_HEADERS = (
    "From",
    "To",
    "Cc",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "References",
    "Auto-Submitted",
    "X-Auto-Response-Suppress",
)


def compare(path: Path, actual: str) -> None:
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.exists(), f"{path} is missing; run with RELAY_UPDATE_SNAPSHOTS=1 to create it"
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{path.name} differs; review and RELAY_UPDATE_SNAPSHOTS=1 to accept"


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("category", list(Category), ids=[c.value for c in Category])
def test_email_snapshot(category: Category, locale: str) -> None:
    conversation = conversation_for(category)
    content = renderer_for(locale).email(
        conversation, category, EMAIL_ACTION, message_id=MESSAGE_ID
    )
    message = content.message
    text_part = message.get_body(("plain",))
    html_part = message.get_body(("html",))
    assert text_part is not None
    assert html_part is not None
    headers = "".join(f"{name}: {message[name]}\n" for name in SHOWN_HEADERS if message[name])
    recipients = f"Envelope-Recipients: {', '.join(content.recipients)}\n"
    compare(
        SNAPSHOTS / locale / f"{category.value}.txt",
        headers + recipients + "\n" + str(text_part.get_content()),
    )
    compare(SNAPSHOTS / locale / f"{category.value}.html", str(html_part.get_content()))


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("category", list(Category), ids=[c.value for c in Category])
def test_slack_snapshot(category: Category, locale: str) -> None:
    content = renderer_for(locale).slack(conversation_for(category), category, SLACK_ACTION)
    payload = {"channel": content.channel, "text": content.text, "blocks": list(content.blocks)}
    rendered = json.dumps(payload, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    compare(SNAPSHOTS / locale / f"{category.value}.slack.json", rendered)
