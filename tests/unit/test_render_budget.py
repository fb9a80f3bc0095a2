"""What one conversation can cost to render is bounded: the newest messages that fit, a note
counting the earlier ones, an email within ``render.max_email_bytes`` and a bounded Slack
message, whatever the body holds."""

from __future__ import annotations

import json
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from relay.config.settings import EmailAction, RenderSettings, SlackAction
from relay.intake.payload import parse
from relay.model.category import Category
from relay.render.i18n import Translator
from relay.render.renderer import Renderer
from relay.render.view import build_view
from tests.support.data import sample

EMAIL = EmailAction(type="email", to=["sales@shop.test"])
SLACK = SlackAction(type="slack", channel="#chats")
DEFAULT_EMAIL_BYTES = 1_000_000
SLACK_PAYLOAD_BYTES = 60_000  # 50 blocks of Block Kit's limits and the 4,000-char fallback
NEWEST = "the newest message"


def compact(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def with_messages(messages: list[dict[str, Any]]) -> dict[str, Any]:
    data = sample("v1")
    data["channel"]["isMissed"] = True
    data["messages"] = [*messages, {"type": "visitor", "content": NEWEST}]
    return data


def parts(message: EmailMessage) -> tuple[str, str]:
    text, html = (message.get_body(preferencelist=(kind,)) for kind in ("plain", "html"))
    assert isinstance(text, EmailMessage) and isinstance(html, EmailMessage)
    return text.get_content(), html.get_content()


def slack_payload(renderer: Renderer, raw: bytes) -> str:
    content = renderer.slack(parse(raw), Category.MISSED, SLACK)
    return json.dumps({"text": content.text, "blocks": content.blocks}, ensure_ascii=False)


def test_two_hundred_thousand_empty_messages_make_a_small_email_with_a_note() -> None:
    raw = compact(with_messages([{}] * 199_999))
    assert len(raw) < 700_000  # the reported attack: a 600 kB body
    renderer = Renderer(RenderSettings(), from_address="Relay <r@shop.test>")
    content = renderer.email(parse(raw), Category.MISSED, EMAIL, message_id="<m@shop.test>")
    size = len(content.message.as_bytes())
    assert size <= DEFAULT_EMAIL_BYTES, f"{size:,} bytes"
    assert RenderSettings().max_email_bytes == DEFAULT_EMAIL_BYTES
    text, html = parts(content.message)
    note = "… 199,700 earlier messages not shown; the full conversation is stored"
    assert note in text
    assert note in html
    assert NEWEST in text and NEWEST in html
    # The newest render.max_messages (300): 299 empty ones ("Unknown sender") and the last.
    assert RenderSettings().max_messages == 300
    assert text.count("Unknown sender:") == 299

    payload = slack_payload(renderer, raw)
    assert len(payload.encode()) <= SLACK_PAYLOAD_BYTES
    assert "… 199,980 earlier messages not shown; the full conversation is stored" in payload
    assert NEWEST in payload


@pytest.mark.parametrize(
    ("locale", "earlier", "note", "slack_note"),
    [
        (
            "en",
            1,
            "… 1 earlier message not shown; the full conversation is stored",
            "… 31 earlier messages not shown; the full conversation is stored",
        ),
        (
            "cs",
            3,
            "… 3 starší zprávy nejsou zobrazeny; celá konverzace je uložena",
            "… 33 starších zpráv není zobrazeno; celá konverzace je uložena",
        ),
        (
            "de",
            1_200,
            "… 1.200 frühere Nachrichten nicht angezeigt; die ganze Unterhaltung ist gespeichert",
            "… 1.230 frühere Nachrichten nicht angezeigt; die ganze Unterhaltung ist gespeichert",
        ),
    ],
)
def test_the_note_is_localised(locale: str, earlier: int, note: str, slack_note: str) -> None:
    settings = RenderSettings(locale=locale, max_messages=50)
    raw = compact(with_messages([{"type": "agent", "content": "hello"}] * (earlier + 49)))
    renderer = Renderer(settings, from_address="Relay <r@shop.test>")
    content = renderer.email(parse(raw), Category.MISSED, EMAIL, message_id="<m@shop.test>")
    text, html = parts(content.message)
    assert note in text
    assert note in html
    assert text.count("hello") == 49
    # Slack shows the newest 20 of the 50 rendered messages.
    assert slack_note in slack_payload(renderer, raw)


def test_a_conversation_within_the_limits_has_no_note() -> None:
    raw = compact(with_messages([{"type": "agent", "content": "hello"}] * 10))
    renderer = Renderer(RenderSettings(), from_address="Relay <r@shop.test>")
    content = renderer.email(parse(raw), Category.MISSED, EMAIL, message_id="<m@shop.test>")
    text, html = parts(content.message)
    assert text.count("hello") == 10
    assert "not shown" not in text and "not shown" not in html
    assert "not shown" not in slack_payload(renderer, raw)


@pytest.mark.parametrize("character", ["\n", "<", '"', "ř"])
def test_long_messages_are_cut_to_the_budget_instead_of_refused(character: str) -> None:
    """A 2 MB body of long messages whose characters grow most in HTML (line breaks become
    <br>, < and " entities) and in transfer encoding (non-ASCII)."""
    budget = 200_000
    raw = compact(with_messages([{"type": "visitor", "content": character * 6_000}] * 300))
    assert len(raw) > 1_500_000
    renderer = Renderer(RenderSettings(max_email_bytes=budget), from_address="R <r@shop.test>")
    content = renderer.email(parse(raw), Category.MISSED, EMAIL, message_id="<m@shop.test>")
    assert len(content.message.as_bytes()) <= budget
    text, html = parts(content.message)
    assert NEWEST in text and NEWEST in html
    assert "earlier messages not shown" in text


def test_one_huge_message_and_huge_lists_stay_within_the_smallest_budget() -> None:
    budget = 200_000  # the smallest render.max_email_bytes accepted
    data = with_messages([{"type": "visitor", "name": "<" * 50_000, "content": "\n" * 900_000}])
    data["visitor"].update(name="N" * 20_000, note="&" * 100_000, city="<" * 20_000)
    data["channel"]["ratingDesc"] = '"' * 100_000
    data["paths"] = [{"url": "https://shop.test/" + "a" * 500, "title": "<" * 500}] * 2_000
    data["variables"] = {f"v{n}": {"label": "<" * 300, "value": "<" * 300} for n in range(2_000)}
    raw = compact(data)
    renderer = Renderer(RenderSettings(max_email_bytes=budget), from_address="R <r@shop.test>")
    content = renderer.email(parse(raw), Category.LOW_RATED, EMAIL, message_id="<m@shop.test>")
    assert len(content.message.as_bytes()) <= budget
    text, _ = parts(content.message)
    assert NEWEST in text
    assert "…" in text  # the long values end in an ellipsis where they were cut


def test_the_settings_refuse_limits_that_cannot_work() -> None:
    with pytest.raises(ValueError, match=r"max_messages\n.*greater than or equal to 1"):
        RenderSettings(max_messages=0)
    with pytest.raises(ValueError, match=r"max_email_bytes\n.*greater than or equal to 200000"):
        RenderSettings(max_email_bytes=10_000)


def test_at_most_a_hundred_agent_names_are_listed_each_once() -> None:
    answers = [
        {"type": "agent", "from": n % 150 + 1, "name": f"Agent {n % 150}", "content": "hi"}
        for n in range(300)
    ]
    view = build_view(
        parse(compact(with_messages(answers))), Category.MISSED, Translator("en", ZoneInfo("UTC"))
    )
    assert view.agents == tuple(f"Agent {n}" for n in range(100))
