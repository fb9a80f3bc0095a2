"""The view-model: a pure function turning a Conversation into display-ready, localized values."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from urllib.parse import urlsplit

from relay.model.category import Category
from relay.model.conversation import Conversation, Message, SenderKind
from relay.render.i18n import Translator

MAX_RATING = 5
_WHITESPACE = re.compile(r"\s+")
_KNOWN_KINDS = {"visitor", "agent", "system"}

# Colour pairs (background, text, accent) chosen to keep at least 4.5:1 contrast; both colours
# are always set together so dark-mode clients that invert one cannot leave text unreadable.
CATEGORY_COLOURS: dict[str, tuple[str, str]] = {
    Category.OFFLINE: ("#dbeafe", "#1e3a8a"),
    Category.MISSED: ("#fee2e2", "#991b1b"),
    Category.LOW_RATED: ("#fef3c7", "#92400e"),
    Category.NORMAL: ("#dcfce7", "#166534"),
}
CATEGORY_EMOJI: dict[str, str] = {
    Category.OFFLINE: ":envelope:",
    Category.MISSED: ":rotating_light:",
    Category.LOW_RATED: ":warning:",
    Category.NORMAL: ":speech_balloon:",
}


@dataclass(frozen=True)
class ViewLimits:
    """How much of one conversation a view shows, so that a hostile body cannot make a huge
    email: the newest messages that fit; what is left out is counted (``messages_omitted``)."""

    messages: int = 300  # the newest messages shown
    message_chars: int = 10_000  # one message's text, the note and the rating comment
    text_chars: int = 125_000  # the shown messages' texts together
    field_chars: int = 2_000  # every other value taken from the body
    items: int = 100  # pages, visitor details and agent names

    def smaller(self) -> ViewLimits | None:
        """Every limit halved, down to a floor that still shows the gist; None at the floor."""
        floor = _FLOOR_LIMITS
        smaller = ViewLimits(
            messages=max(self.messages // 2, min(self.messages, floor.messages)),
            message_chars=max(
                self.message_chars // 2, min(self.message_chars, floor.message_chars)
            ),
            text_chars=max(self.text_chars // 2, min(self.text_chars, floor.text_chars)),
            field_chars=max(self.field_chars // 2, min(self.field_chars, floor.field_chars)),
            items=max(self.items // 2, min(self.items, floor.items)),
        )
        return None if smaller == self else smaller


_FLOOR_LIMITS = ViewLimits(
    messages=10, message_chars=500, text_chars=5_000, field_chars=200, items=10
)
DEFAULT_LIMITS = ViewLimits()


@dataclass(frozen=True)
class LinkView:
    """Text and, only for http(s) URLs, the address it links to."""

    text: str
    url: str | None


@dataclass(frozen=True)
class FieldView:
    label: str
    value: str


@dataclass(frozen=True)
class MessageView:
    kind: str  # "visitor", "agent", "system" or "unknown"
    author: str
    text: str  # the message, or the sentence describing a system event
    time: str  # local time, with the date when it differs from the chat's first day; "" if unknown
    iso_time: str  # UTC ISO-8601 or ""
    triggered_by: str | None  # label such as "Automatic message: Welcome trigger"
    offline_email: str | None  # label naming the address the visitor left in the offline form


@dataclass(frozen=True)
class ConversationView:
    locale: str
    category: str
    category_label: str
    badge_background: str
    badge_text: str
    emoji: str
    visitor_name: str
    visitor_name_known: bool
    visitor_email: str | None
    country_code: str | None
    location: str | None
    rating: int | None
    stars: str | None
    rating_label: str | None
    rating_comment: str | None
    date: str | None
    duration: str | None
    first_response: str | None
    avg_response: str | None
    agents: tuple[str, ...]
    note: str | None
    group: str | None
    pages: tuple[LinkView, ...]
    variables: tuple[FieldView, ...]
    referer: LinkView | None
    technical: tuple[FieldView, ...]
    messages: tuple[MessageView, ...]
    messages_omitted: int  # earlier messages left out by the view's limits
    first_visitor_message: str
    chat_ref: str


def one_line(text: str | None) -> str:
    """Collapse every run of whitespace (CR, LF, tabs, unicode spaces) to one space."""
    return _WHITESPACE.sub(" ", text or "").strip()


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + "…"


def link(text: str | None, url: str | None) -> LinkView | None:
    """A link only for absolute http(s) URLs; anything else is shown as plain text."""
    address = (url or "").strip()
    label = one_line(text) or address
    if not label:
        return None
    try:
        parts = urlsplit(address)
    except ValueError:
        return LinkView(label, None)
    safe = parts.scheme.lower() in ("http", "https") and bool(parts.netloc)
    if safe and any(ch.isspace() or ord(ch) < 32 for ch in address):
        safe = False
    return LinkView(label, address if safe else None)


def stars(rating: int) -> str:
    filled = min(max(rating, 0), MAX_RATING)
    return "★" * filled + "☆" * (MAX_RATING - filled)


def message_kind(message: Message) -> str:
    if message.type in _KNOWN_KINDS:
        return message.type or "unknown"
    sender, _ = message.sender
    return "unknown" if sender is SenderKind.UNKNOWN else sender.value


def system_sentence(code: str, name: str | None, t: Translator) -> str:
    """A system event in words; an unknown code is shown as it is."""
    key = f"event.{code.strip()}"
    if not code.strip() or not t.has(key):
        return one_line(code) if code.strip() else code
    return t(key, name=name or t("an_agent"))


def _author(message: Message, kind: str, visitor_name: str | None, t: Translator) -> str:
    name = one_line(message.name)
    if name:
        return name
    if kind == "visitor":
        return visitor_name or t("visitor")
    if kind == "agent":
        return t("agent")
    return t("unknown_sender") if kind == "unknown" else ""


def _time(moment: datetime | None, first_day: str | None, t: Translator) -> str:
    if moment is None:
        return ""
    if first_day is not None and t.date_text(moment) != first_day:
        return f"{t.date_text(moment)} {t.time_text(moment)}"
    return t.time_text(moment)


def _shown(messages: Sequence[Message], limits: ViewLimits) -> Sequence[Message]:
    """The newest messages within ``limits`` (at least the last one, clipped)."""
    start = max(len(messages) - limits.messages, 0)
    chars = 0
    for index in range(len(messages) - 1, start - 1, -1):
        chars += min(len(messages[index].content or ""), limits.message_chars)
        if chars > limits.text_chars and index < len(messages) - 1:
            return messages[index + 1 :]
    return messages[start:]


def _messages(
    conversation: Conversation, t: Translator, limits: ViewLimits
) -> tuple[MessageView, ...]:
    visitor_name = conversation.visitor.display_name
    start = conversation.begin or next(
        (m.sent for m in conversation.messages if m.sent is not None), None
    )
    first_day = t.date_text(start) if start is not None else None
    field, views = limits.field_chars, []
    for message in _shown(conversation.messages, limits):
        kind = message_kind(message)
        content = message.content or ""
        name = clip(one_line(message.name), field)
        text = system_sentence(content, name, t) if kind == "system" else content
        trigger = clip(one_line(message.triggered_by), field)
        offline_email = clip(one_line(message.email), field)
        views.append(
            MessageView(
                kind=kind,
                author=clip(_author(message, kind, visitor_name, t), field),
                text=clip(text, limits.message_chars),
                time=_time(message.sent, first_day, t),
                iso_time=message.sent.isoformat() if message.sent else "",
                triggered_by=t("triggered_by", name=trigger) if trigger else None,
                offline_email=t("offline_form", email=offline_email) if offline_email else None,
            )
        )
    return tuple(views)


def _agents(conversation: Conversation, limits: ViewLimits) -> tuple[str, ...]:
    names: dict[str, None] = {}
    for message in conversation.messages:
        kind = message_kind(message)
        joined = kind == "system" and (message.content or "").startswith("agent.")
        if kind != "agent" and not joined:
            continue
        name = clip(one_line(message.name), limits.field_chars)
        if name:
            names.setdefault(name, None)
            if len(names) == limits.items:
                break
    return tuple(names)


def first_visitor_message(conversation: Conversation) -> str:
    for message in conversation.messages:
        if message_kind(message) == "visitor" and one_line(message.content):
            return one_line(message.content)
    return ""


def _location(conversation: Conversation) -> str | None:
    visitor = conversation.visitor
    places = [one_line(p) for p in (visitor.city, visitor.country) if one_line(p)]
    code = one_line(visitor.country_code).upper()
    text = ", ".join(places)
    if code and code not in places:
        text = f"{text} ({code})" if text else code
    return text or None


def _clipped_link(text: str | None, url: str | None, limit: int) -> LinkView | None:
    """``link()`` with its text clipped; an address longer than ``limit`` is not linked."""
    found = link(text, url)
    if found is None:
        return None
    address = found.url if found.url is not None and len(found.url) <= limit else None
    return LinkView(clip(found.text, limit), address)


def _clipped(text: str | None, limit: int) -> str | None:
    return clip(text, limit) if text else None


def build_view(
    conversation: Conversation,
    category: Category,
    t: Translator,
    limits: ViewLimits = DEFAULT_LIMITS,
) -> ConversationView:
    """Everything the email and Slack templates show, formatted for ``t``'s locale and zone,
    and no more than ``limits`` allow."""
    visitor = conversation.visitor
    channel = conversation.channel
    background, foreground = CATEGORY_COLOURS.get(category, CATEGORY_COLOURS[Category.NORMAL])
    name = visitor.display_name
    moment = conversation.begin or conversation.end
    rating = channel.rating
    field = limits.field_chars
    variables = tuple(
        islice(
            (
                FieldView(clip(one_line(variable.label) or key, field), clip(variable.text, field))
                for key, variable in visitor.variable_items.items()
                if variable.text != ""
            ),
            limits.items,
        )
    )
    technical = tuple(
        FieldView(t(label), clip(one_line(value), field))
        for label, value in (
            ("ip_address", visitor.ip_address),
            ("platform", visitor.platform),
            ("user_agent", visitor.user_agent),
        )
        if one_line(value)
    )
    pages = tuple(
        islice(
            (
                v
                for p in conversation.paths
                if (v := _clipped_link(p.title, p.url, field)) is not None
            ),
            limits.items,
        )
    )
    messages = _messages(conversation, t, limits)
    return ConversationView(
        locale=t.locale,
        category=category.value,
        category_label=t(f"category.{category.value}"),
        badge_background=background,
        badge_text=foreground,
        emoji=CATEGORY_EMOJI.get(category, ":speech_balloon:"),
        visitor_name=clip(one_line(name), field) or t("unknown_visitor"),
        visitor_name_known=name is not None,
        visitor_email=visitor.email_address,
        country_code=clip(one_line(visitor.country_code).upper(), field) or None,
        location=_clipped(_location(conversation), field),
        rating=rating,
        stars=stars(rating) if rating is not None else None,
        rating_label=(
            t("rating_value", rating=min(max(rating, 0), MAX_RATING))
            if rating is not None
            else None
        ),
        rating_comment=_clipped((channel.rating_desc or "").strip(), limits.message_chars),
        date=t.datetime_text(moment) if moment is not None else None,
        duration=t.duration(channel.duration) if channel.duration else None,
        first_response=t.duration(channel.first_response),
        avg_response=t.duration(channel.avg_response),
        agents=_agents(conversation, limits),
        note=_clipped((visitor.note or "").strip(), limits.message_chars),
        group=_clipped(visitor.group_name, field),
        pages=pages,
        variables=variables,
        referer=_clipped_link(None, visitor.referer, field),
        technical=technical,
        messages=messages,
        messages_omitted=len(conversation.messages) - len(messages),
        first_visitor_message=clip(first_visitor_message(conversation), field),
        chat_ref=t("chat_id", chat_id=channel.id, account_id=conversation.account_id),
    )
