"""Renderer behaviour: headers, threading, subjects, odd input, hostile content, template checks."""

from __future__ import annotations

import email
import email.policy
import json
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from relay.config.settings import EmailAction, RenderSettings, SlackAction
from relay.intake.payload import parse
from relay.model.category import Category, classify
from relay.model.conversation import Channel, Conversation, Message
from relay.model.errors import ConfigError
from relay.render.headers import envelope_addresses
from relay.render.renderer import Renderer
from tests.support.render import (
    EMAIL_ACTION,
    FROM_ADDRESS,
    MESSAGE_ID,
    SLACK_ACTION,
    category_body,
    conversation_for,
    renderer_for,
)


def parts(message: EmailMessage) -> tuple[str, str]:
    """(plain text, html) of a multipart/alternative message, decoded."""
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    return str(text.get_content()), str(html.get_content())


def slack_texts(value: Any) -> list[str]:
    """Every "text" string anywhere in a Block Kit payload."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "text" and isinstance(item, str):
                found.append(item)
            else:
                found.extend(slack_texts(item))
    elif isinstance(value, list | tuple):
        for item in value:
            found.extend(slack_texts(item))
    return found


def with_content(**changes: Any) -> Conversation:
    data = category_body(Category.MISSED)
    data["visitor"].update(changes.pop("visitor", {}))
    data["messages"][0].update(changes)
    return parse(json.dumps(data).encode())


def test_email_headers_and_multipart_structure() -> None:
    action = EmailAction(
        type="email",
        to=["Sales <sales@shop.example>", "sales@shop.example"],
        cc=["lead@shop.example"],
        bcc=["audit@shop.example", "LEAD@shop.example"],
    )
    conversation = conversation_for(Category.MISSED)
    content = renderer_for().email(conversation, Category.MISSED, action, message_id=MESSAGE_ID)
    message = content.message
    assert message.get_content_type() == "multipart/alternative"
    assert message["From"] == FROM_ADDRESS
    assert message["To"] == "Sales <sales@shop.example>, sales@shop.example"
    assert message["Cc"] == "lead@shop.example"
    assert message["Bcc"] is None
    assert "audit@" not in message.as_string()
    assert content.recipients == ("sales@shop.example", "lead@shop.example", "audit@shop.example")
    assert message["Reply-To"] == "Dusan Kmet <dusan@domain.com>"
    assert message["Message-ID"] == MESSAGE_ID
    # The Date is when the email is sent (the renderer's clock), not the chat's 2015 end.
    assert message["Date"] == "Fri, 20 Nov 2026 09:30:00 +0000"
    assert message["X-Auto-Response-Suppress"] == "All"
    # The bare greeting "Hello" is skipped for the visitor's first real message.
    assert message["Subject"] == (
        "[Missed chat] Dusan Kmet (CZ): Is anybody there? I would like to order the pro package."
    )
    # A first email joins no thread: no id it could name was sent.
    assert message["In-Reply-To"] is None
    assert message["References"] is None


def test_in_reply_to_names_the_newest_sent_email_and_references_all_of_them() -> None:
    sent = ["<first@relay.example>", "<second@relay.example>", "<first@relay.example>"]
    message = (
        renderer_for()
        .email(
            conversation_for(Category.MISSED),
            Category.MISSED,
            EMAIL_ACTION,
            message_id=MESSAGE_ID,
            references=[*sent, "not an id", "<two\r\nBcc: x@evil.test>"],
        )
        .message
    )
    assert message["In-Reply-To"] == "<second@relay.example>"
    # Each id once, in order; anything that is not one well-formed id is left out.
    assert message["References"] == "<first@relay.example> <second@relay.example>"


def test_date_header_is_the_send_time_not_the_chat_time() -> None:
    """The 2015 sample must not land in 2015 in the inbox: Date is when the email is made."""
    sent = [datetime(2026, 1, 5, 8, 0, tzinfo=UTC), datetime(2026, 1, 5, 8, 7, 30, tzinfo=UTC)]
    renderer = Renderer(RenderSettings(), from_address="Relay <r@shop.test>", clock=lambda: sent[0])
    conversation = conversation_for(Category.NORMAL)
    bare = Conversation(account_id=1, channel=Channel(id=1))
    first = renderer.email(conversation, Category.NORMAL, EMAIL_ACTION, message_id="<a@x>")
    sent.pop(0)
    later = renderer.email(bare, Category.NORMAL, EMAIL_ACTION, message_id="<b@x>")
    assert first.message["Date"] == "Mon, 05 Jan 2026 08:00:00 +0000"
    assert later.message["Date"] == "Mon, 05 Jan 2026 08:07:30 +0000"


def test_no_reply_to_without_a_valid_visitor_email() -> None:
    conversation = with_content(visitor={"email": "not an address"})
    message = (
        renderer_for()
        .email(conversation, Category.MISSED, EMAIL_ACTION, message_id=MESSAGE_ID)
        .message
    )
    assert message["Reply-To"] is None


def test_subject_is_one_clipped_line() -> None:
    conversation = with_content(content="First line\r\nsecond\tline   " + "long " * 60)
    subject = (
        renderer_for()
        .email(conversation, Category.MISSED, EMAIL_ACTION, message_id=MESSAGE_ID)
        .message["Subject"]
    )
    assert subject.startswith("[Missed chat] Dusan Kmet (CZ): First line second line long")
    assert len(subject) <= 120
    assert subject.endswith("…")


def test_subject_override_is_a_sandboxed_template() -> None:
    action = EmailAction(
        type="email",
        to=["a@shop.example"],
        subject="Chat {{ conversation.channel.id }} - {{ 7*6 }}",
    )
    conversation = conversation_for(Category.MISSED)
    subject = renderer_for().email(conversation, Category.MISSED, action, message_id=MESSAGE_ID)
    assert subject.message["Subject"] == "Chat 55039 - 42"


def test_broken_subject_override_falls_back_and_is_reported() -> None:
    renderer = renderer_for()
    bad = "{{ conversation.__class__.__mro__ }}{{ nope }}"
    action = EmailAction(type="email", to=["a@shop.example"], subject=bad)
    conversation = conversation_for(Category.MISSED)
    message = renderer.email(conversation, Category.MISSED, action, message_id=MESSAGE_ID).message
    assert message["Subject"].startswith("[Missed chat]")
    assert renderer.check_subject(bad)
    assert renderer.check_subject("{{ view.visitor_name }}") == []


@pytest.mark.parametrize("locale", ["en", "cs", "de"])
def test_odd_but_valid_conversations_render(locale: str) -> None:
    renderer = renderer_for(locale)
    odd = [
        Conversation(account_id=1, channel=Channel(id=1)),
        Conversation(
            account_id=1,
            channel=Channel(id=2, rating=9, duration=-5),
            messages_or_none=(
                None,
                Message(),
                Message(type="system", content="agent.leave"),
                Message(type="system", name="Ann", content="agent.transfer"),
                Message(type="system", content="brand.new.code"),
                Message(type="weird", from_="visitor:x", content=""),
                Message(content="no type", sent_at=10**17),
            ),
        ),
    ]
    for conversation in odd:
        category = classify(conversation)
        content = renderer.email(conversation, category, EMAIL_ACTION, message_id="<o@x>")
        text, html = parts(content.message)
        assert "<html" in html
        slack = renderer.slack(conversation, category, SLACK_ACTION)
        assert slack.blocks
    text, _ = parts(
        renderer.email(odd[1], Category.NORMAL, EMAIL_ACTION, message_id="<o@x>").message
    )
    assert "brand.new.code" in text


def test_system_events_in_words() -> None:
    conversation = conversation_for(Category.NORMAL)
    text, html = parts(
        renderer_for()
        .email(conversation, Category.NORMAL, EMAIL_ACTION, message_id="<x@y>")
        .message
    )
    for body in (text, html):
        assert "John Doe joined the chat" in body
        assert "The visitor closed the chat" in body
        assert "Automatic message: Test Trigger" in body


def test_only_http_links_become_links() -> None:
    data = category_body(Category.NORMAL)
    data["paths"] = [
        {"url": "javascript:alert(1)", "title": "Evil"},
        {"url": "https://shop.example/a?b=1&c=2", "title": "Good"},
    ]
    conversation = parse(json.dumps(data).encode())
    _, html = parts(
        renderer_for()
        .email(conversation, Category.NORMAL, EMAIL_ACTION, message_id="<x@y>")
        .message
    )
    assert "javascript:" not in html
    assert 'href="https://shop.example/a?b=1&amp;c=2"' in html


def test_hostile_visitor_name_cannot_inject_headers() -> None:
    conversation = with_content(
        visitor={"name": "Eve\r\nBcc: x@evil.test", "email": "eve@evil.test"}
    )
    content = renderer_for().email(
        conversation, Category.MISSED, EMAIL_ACTION, message_id="<id@x>\r\nBcc: y@evil.test"
    )
    assert content.recipients == ("sales@shop.example", "lead@shop.example")
    raw = content.message.as_bytes()
    reparsed = email.message_from_bytes(raw, policy=email.policy.SMTP)
    assert reparsed["Bcc"] is None
    header_block = raw.split(b"\r\n\r\n", 1)[0]
    for line in header_block.split(b"\r\n"):
        assert b"\r" not in line
        assert b"\n" not in line
        assert not line.lower().startswith(b"bcc")
    for name, value in content.message.items():
        assert "\r" not in str(value), name
        assert "\n" not in str(value), name
    assert "Eve Bcc: x@evil.test" in str(reparsed["Subject"])


def test_script_tags_arrive_escaped() -> None:
    conversation = with_content(content="<script>alert(1)</script>", visitor={"name": "<b>Eve</b>"})
    text, html = parts(
        renderer_for()
        .email(conversation, Category.MISSED, EMAIL_ACTION, message_id="<x@y>")
        .message
    )
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>Eve" not in html
    assert "<script>alert(1)</script>" in text


def test_slack_content_cannot_mention_or_link() -> None:
    hostile = "<!channel> <@U123> <https://evil.test|click> & co"
    conversation = with_content(content=hostile, visitor={"name": "<!here>"})
    data = category_body(Category.LOW_RATED)
    data["channel"]["ratingDesc"] = "<!channel>"
    rated = parse(json.dumps(data).encode())
    renderer = renderer_for()
    for item, category in ((conversation, Category.MISSED), (rated, Category.LOW_RATED)):
        content = renderer.slack(item, category, SLACK_ACTION)
        texts = [content.text, *slack_texts(content.blocks)]
        for text in texts:
            # Slack's own date tokens (<!date^…>) are the only "<!" the relay writes.
            assert not re.search(r"<!(?!date\^\d+\^\{)", text)
            assert "<@" not in text
            assert "<https://evil" not in text
        assert any("&lt;!channel&gt;" in text for text in texts)
        if category is Category.MISSED:
            assert "&lt;!channel&gt; &lt;@U123&gt;" in content.text
            assert "&amp; co" in content.text


def test_template_syntax_in_content_renders_literally() -> None:
    content = "{{ 7*7 }} {{ 7*191 }} {% raw %}"
    conversation = with_content(content=content, visitor={"name": "{{ 6*1111 }}"})
    renderer = renderer_for()
    message = renderer.email(
        conversation, Category.MISSED, EMAIL_ACTION, message_id="<x@y>"
    ).message
    text, html = parts(message)
    slack = renderer.slack(conversation, Category.MISSED, SLACK_ACTION)
    for body in (text, html, slack.text, json.dumps(slack.blocks), message["Subject"]):
        assert "{{ 7*7 }} {{ 7*191 }}" in body
        assert "{{ 6*1111 }}" in body
        assert "1337" not in body
        assert "6666" not in body


def test_check_reports_unknown_and_broken_templates(tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "broken.html.j2").write_text("{% if %}", encoding="utf-8")
    (tmp_path / "email" / "broken.txt.j2").write_text("{{ view.no_such_field }}", encoding="utf-8")
    renderer = Renderer(RenderSettings(templates_dir=tmp_path), from_address=FROM_ADDRESS)
    assert renderer.check([("email", "transcript"), ("slack", "alert")]) == []
    problems = renderer.check(
        [("email", "broken"), ("email", "missing"), ("slack", "nope"), ("sms", "x")]
    )
    text = "\n".join(problems)
    assert "email template 'broken' (html)" in text
    assert "line 1" in text
    assert "no_such_field" in text
    assert "email/missing.html.j2 does not exist" in text
    assert "slack template 'nope' does not exist" in text
    assert "unknown template kind 'sms'" in text


def test_override_directory_takes_precedence(tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "subject.txt.j2").write_text(
        "Chat with {{ view.visitor_name }}", encoding="utf-8"
    )
    renderer = Renderer(RenderSettings(templates_dir=tmp_path), from_address=FROM_ADDRESS)
    conversation = conversation_for(Category.NORMAL)
    message = renderer.email(
        conversation, Category.NORMAL, EMAIL_ACTION, message_id="<x@y>"
    ).message
    assert message["Subject"] == "Chat with Dusan Kmet"
    assert "John Doe joined the chat" in parts(message)[0]


def test_unknown_templates_and_settings_are_config_errors() -> None:
    renderer = renderer_for()
    conversation = conversation_for(Category.NORMAL)
    with pytest.raises(ConfigError):
        renderer.slack(conversation, Category.NORMAL, SlackAction(type="slack", template="nope"))
    with pytest.raises(ConfigError):
        action = EmailAction(type="email", to=["a@b.example"], template="nope")
        renderer.email(conversation, Category.NORMAL, action, message_id="<x@y>")
    with pytest.raises(ConfigError):
        Renderer(RenderSettings(timezone="Mars/Olympus"), from_address=FROM_ADDRESS)


def test_rendering_is_deterministic() -> None:
    conversation = conversation_for(Category.LOW_RATED)
    first = renderer_for("cs").email(
        conversation, Category.LOW_RATED, EMAIL_ACTION, message_id="<x@y>"
    )
    second = renderer_for("cs").email(
        conversation, Category.LOW_RATED, EMAIL_ACTION, message_id="<x@y>"
    )
    assert parts(first.message) == parts(second.message)
    assert first.message.items() == second.message.items()


def test_bidirectional_overrides_and_long_names_are_tamed_in_headers() -> None:
    from relay.render.headers import display_name, header_safe  # noqa: PLC0415 -- local to this check

    assert header_safe("invoice\u202egpj.exe\u2066x\u2069") == "invoicegpj.exex"
    assert header_safe("a\x00b\x1bc") == "abc"
    long_name = display_name("Ann " * 60)
    assert len(long_name) <= 78
    assert long_name.endswith("…")


def test_a_subject_override_renders_each_conversation_of_its_own() -> None:
    action = EmailAction(
        type="email", to=["a@shop.example"], subject="Chat {{ view.visitor_name }}"
    )
    renderer = renderer_for()
    first = renderer.email(
        with_content(visitor={"name": "Jana"}), Category.MISSED, action, message_id=MESSAGE_ID
    )
    second = renderer.email(
        with_content(visitor={"name": "Petr"}), Category.MISSED, action, message_id=MESSAGE_ID
    )
    assert (first.message["Subject"], second.message["Subject"]) == ("Chat Jana", "Chat Petr")


def test_a_slack_visitor_email_with_a_bar_is_shown_but_never_linked() -> None:
    # "|" is valid in an address's local part, and ends a Slack link's target.
    conversation = with_content(visitor={"name": "Jana", "email": "ja|na@shop.test"})
    content = renderer_for().slack(conversation, Category.MISSED, SLACK_ACTION)
    texts = slack_texts(content.blocks)
    assert any("Jana\nja|na@shop.test" in text for text in texts)
    assert not any("<mailto:ja|na" in text for text in texts)
    assert any("<mailto:ja%7Cna@shop.test?subject=" in text for text in texts)  # the reply link
    plain = with_content(visitor={"name": "Jana", "email": "jana@shop.test"})
    linked = slack_texts(renderer_for().slack(plain, Category.MISSED, SLACK_ACTION).blocks)
    assert any("<mailto:jana@shop.test|jana@shop.test>" in text for text in linked)


def test_a_teams_card_names_the_visitors_group() -> None:
    card = renderer_for().teams(with_content(visitor={"group": "Sales CZ"}), Category.MISSED).card
    assert "Sales CZ" in json.dumps(card)
    ungrouped = renderer_for().teams(with_content(visitor={"groupKey": None}), Category.MISSED)
    assert "Sales CZ" not in json.dumps(ungrouped.card)


def test_check_reports_templates_that_raise_outside_jinja(tmp_path: Path) -> None:
    """A template that divides by zero or recurses is a problem the check names, not a
    traceback of `relay check` or `relay serve`; a rule subject that raises falls back."""
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "divides.html.j2").write_text("{{ 1/0 }}", encoding="utf-8")
    (tmp_path / "email" / "divides.txt.j2").write_text("ok", encoding="utf-8")
    (tmp_path / "email" / "recurses.html.j2").write_text(
        '{% include "email/recurses.html.j2" %}', encoding="utf-8"
    )
    (tmp_path / "email" / "recurses.txt.j2").write_text("ok", encoding="utf-8")
    renderer = Renderer(RenderSettings(templates_dir=tmp_path), from_address=FROM_ADDRESS)
    problems = renderer.check([("email", "divides"), ("email", "recurses")])
    assert len(problems) == 2
    assert "email template 'divides' (html)" in problems[0]
    assert "ZeroDivisionError" in problems[0]
    assert "email template 'recurses' (html)" in problems[1]
    assert "RecursionError" in problems[1]
    bad = "{{ 1/0 }}"
    assert "ZeroDivisionError" in "".join(renderer.check_subject(bad))
    action = EmailAction(type="email", to=["a@shop.example"], subject=bad)
    conversation = conversation_for(Category.MISSED)
    message = renderer.email(conversation, Category.MISSED, action, message_id=MESSAGE_ID).message
    assert message["Subject"].startswith("[Missed chat]")


def test_envelope_recipients_are_worked_out_per_action_as_before() -> None:
    """The envelope a renderer remembers per list of recipients is ``envelope_addresses``
    of that action's own recipients, email after email."""
    renderer = renderer_for()
    actions = [
        EMAIL_ACTION,
        EmailAction(type="email", to=["Sales <SALES@shop.example>"], cc=["sales@shop.example"]),
        EmailAction(
            type="email", to=["A <a@shop.example>"], bcc=["zoë@shop.example", "A@SHOP.example"]
        ),
        EmailAction(type="email", to=["b@shop.example"], cc=['"Ann, B" <c@shop.example>']),
        EmailAction(type="email", to=["b@shop.example", "c@shop.example"]),
        EmailAction(type="email", to=["b@shop.example"], cc=["c@shop.example"]),
    ]
    conversation = conversation_for(Category.MISSED)
    for action in actions * 2:
        content = renderer.email(conversation, Category.MISSED, action, message_id="<m@x>")
        expected = envelope_addresses([*action.to, *action.cc, *action.bcc])
        assert content.recipients == tuple(expected)
