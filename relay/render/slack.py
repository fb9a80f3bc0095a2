"""Slack Block Kit builders (by template name) that always stay inside Slack's size limits."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from relay.render.i18n import Translator
from relay.render.slack_text import clip_escaped, escaped, quote, slack_escape
from relay.render.view import ConversationView, MessageView

HEADER_LIMIT: Final = 150
SECTION_LIMIT: Final = 3000
FIELD_LIMIT: Final = 2000
MAX_FIELDS: Final = 10
MAX_BLOCKS: Final = 50
FALLBACK_LIMIT: Final = 4000
CONTEXT_LIMIT: Final = 3000
EXCERPT_MESSAGES: Final = 20  # the newest messages shown; older ones are summarised in a note
MESSAGE_LIMIT: Final = 600  # one message's characters within the excerpt
ASK_LIMIT: Final = SECTION_LIMIT  # the visitor's request (a whole offline message) up front
EXCERPT_SECTIONS: Final = 6

SlackBuilder = Callable[[ConversationView, Translator], list[Block]]


def _mrkdwn(text: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=text, verbatim=True)


def _field(label: str, value: str) -> MarkdownTextObject:
    return _mrkdwn(clip_escaped(f"*{slack_escape(label)}*\n{value}", FIELD_LIMIT))


def date_token(timestamp: int | None, fallback: str, pattern: str) -> str:
    """Slack's ``<!date^…>`` so each reader sees their own local time; ``fallback`` (escaped,
    no "|") where a client cannot format it."""
    text = slack_escape(fallback).replace("|", "¦")
    if timestamp is None:
        return text
    return f"<!date^{int(timestamp)}^{pattern}|{text}>"


def _message_timestamp(message: MessageView) -> int | None:
    try:
        return int(datetime.fromisoformat(message.iso_time).timestamp())
    except ValueError:
        return None


def _visitor_value(view: ConversationView) -> str:
    name = escaped(view.visitor_name, 300)
    email = view.reply_email
    if email is None:
        return name
    if "|" in email:
        return f"{name}\n{slack_escape(email)}"
    return f"{name}\n<mailto:{slack_escape(email)}|{slack_escape(email)}>"


def _links(view: ConversationView, t: Translator) -> str:
    """Reply (mailto with the subject) and call (tel:) links; "no contact" when there is none."""
    links = []
    if view.reply_mailto and "|" not in view.reply_mailto:
        label = slack_escape(t("reply_to", name=view.visitor_name)).replace("|", "¦")
        links.append(f"<{slack_escape(view.reply_mailto)}|{clip_escaped(label, 200)}>")
    for phone in view.phones:
        label = slack_escape(t("call", phone=phone.text)).replace("|", "¦")
        links.append(f"<{phone.uri}|{label}>")
    if not view.reply_email and not view.phones:
        links.append(f"_{slack_escape(t('no_contact'))}_")
    return "  ·  ".join(links)


def _fields(view: ConversationView, t: Translator) -> list[MarkdownTextObject]:
    pairs: list[tuple[str, str]] = [(t("visitor"), _visitor_value(view))]
    if view.location:
        pairs.append((t("location"), escaped(view.location, 300)))
    if view.stars and view.rating_label:
        pairs.append((t("rating"), f"{view.stars}  {slack_escape(view.rating_label)}"))
    date = (
        date_token(view.begin_timestamp, view.date, "{date_short_pretty} {time}")
        if view.date
        else ""
    )
    when = " · ".join(v for v in (date, slack_escape(view.duration or "")) if v)
    if when:
        pairs.append((t("date"), when))
    if view.agents:
        pairs.append((t("agents"), escaped(", ".join(view.agents), 500)))
    responses = " / ".join(slack_escape(v) for v in (view.first_response, view.avg_response) if v)
    if responses:
        pairs.append((f"{t('first_response')} / {t('avg_response')}", responses))
    if view.note:
        pairs.append((t("note"), escaped(view.note, 500)))
    return [_field(label, value) for label, value in pairs[:MAX_FIELDS]]


def message_line(message: MessageView) -> str:
    """One escaped mrkdwn excerpt line; system events in italics."""
    stamp = date_token(_message_timestamp(message), message.time, "{time}")
    time = f" · {stamp}" if message.time else ""
    if message.kind == "system":
        return clip_escaped(f"_{slack_escape(message.text)}_{time}", MESSAGE_LIMIT)
    marks = [escaped(m, 150) for m in (message.triggered_by, message.offline_email) if m]
    extra = "".join(f"\n_{mark}_" for mark in marks)
    head = f"*{escaped(message.author, 100)}*{time}{extra}\n"
    body = clip_escaped(slack_escape(message.text), max(MESSAGE_LIMIT - len(head), 100))
    return clip_escaped(head + body, MESSAGE_LIMIT)


def excerpt(messages: tuple[MessageView, ...]) -> tuple[list[str], int]:
    """The newest messages packed into section texts, and how many older ones were left out."""
    sections: list[list[str]] = []
    size = 0
    shown = 0
    for message in reversed(messages[-EXCERPT_MESSAGES:]):
        line = message_line(message)
        if not sections or size + len(line) + 2 > SECTION_LIMIT:
            if len(sections) == EXCERPT_SECTIONS:
                break
            sections.append([])
            size = 0
        sections[-1].insert(0, line)
        size += len(line) + 2
        shown += 1
    texts = ["\n\n".join(lines) for lines in reversed(sections)]
    return texts, len(messages) - shown


def build_alert(view: ConversationView, t: Translator) -> list[Block]:
    """Header, key facts, the visitor's comment, then the last messages of the chat."""
    title = f"{view.category_label}: {view.visitor_name}"
    blocks: list[Block] = [
        HeaderBlock(
            text=PlainTextObject(text=escaped(f"{view.emoji} {title}", HEADER_LIMIT), emoji=True)
        ),
        SectionBlock(fields=_fields(view, t)),
    ]
    if view.ask:
        ask = f"*{slack_escape(t('the_ask'))}*\n{quote(view.ask)}"
        blocks.append(SectionBlock(text=_mrkdwn(clip_escaped(ask, ASK_LIMIT))))
    links = _links(view, t)
    if links:
        blocks.append(ContextBlock(elements=[_mrkdwn(clip_escaped(links, CONTEXT_LIMIT))]))
    if view.conversation_url:
        button = ButtonElement(
            text=PlainTextObject(text=t("open_in_smartsupp")[:75], emoji=False),
            url=view.conversation_url,
            action_id="open_conversation",
        )
        blocks.append(ActionsBlock(elements=[button]))
    if view.history:
        history = f"*{slack_escape(t('returning'))}:* {slack_escape(view.history)}"
        blocks.append(ContextBlock(elements=[_mrkdwn(clip_escaped(history, CONTEXT_LIMIT))]))
    if view.rating_comment:
        comment = f"*{slack_escape(t('comment'))}*\n{quote(view.rating_comment)}"
        blocks.append(SectionBlock(text=_mrkdwn(clip_escaped(comment, SECTION_LIMIT))))
    blocks.append(DividerBlock())
    if view.category == "offline" and view.ask:
        # The offline text is already shown whole above; the excerpt would repeat it, cut.
        blocks.append(ContextBlock(elements=[_mrkdwn(escaped(view.chat_ref, CONTEXT_LIMIT))]))
        return blocks[:MAX_BLOCKS]
    texts, omitted = excerpt(view.messages)
    omitted += view.messages_omitted
    heading = f"*{slack_escape(t('last_messages'))}*"
    if omitted:
        # Past the render limit, also say that nothing is lost.
        note = "earlier_stored" if view.messages_omitted else "earlier_not_shown"
        heading += f" _{slack_escape(t.plural(note, omitted))}_"
    if not texts:
        heading = f"_{slack_escape(t('no_messages'))}_"
    blocks.append(ContextBlock(elements=[_mrkdwn(heading)]))
    blocks.extend(SectionBlock(text=_mrkdwn(text)) for text in texts)
    blocks.append(ContextBlock(elements=[_mrkdwn(escaped(view.chat_ref, CONTEXT_LIMIT))]))
    return blocks[:MAX_BLOCKS]


SLACK_BUILDERS: Final[Mapping[str, SlackBuilder]] = MappingProxyType({"alert": build_alert})


def to_payload(blocks: list[Block]) -> tuple[dict[str, Any], ...]:
    """Serialise (``to_dict`` runs slack-sdk's validation of every length limit)."""
    return tuple(block.to_dict() for block in blocks)


def fallback_text(rendered: str) -> str:
    """The notification text: already escaped by the template, clipped to Slack's limit."""
    return clip_escaped(rendered.strip(), FALLBACK_LIMIT)
