"""The view-model: a pure function turning a Conversation into display-ready, localized values."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from urllib.parse import quote, urlsplit

from relay.model.category import Category
from relay.model.conversation import Conversation, Message, SenderKind, valid_email
from relay.render.i18n import Translator

MAX_RATING = 5
_KNOWN_KINDS = {"visitor", "agent", "system"}
PAGES_SHOWN = 5  # the journey shows this many pages, then "+N more"
PHONES_SHOWN = 3
# A message that is only a greeting says nothing about what the visitor wants.
_GREETING = re.compile(
    r"^(?:hi|hello|hey|hallo|hi there|hello there|good (?:morning|afternoon|evening)|"
    r"ahoj|čau|cau|dobrý den|dobry den|zdravím|zdravim|dobrý večer|"
    r"guten (?:tag|morgen|abend)|servus|moin|grüß gott|gruss gott|grüezi)"
    r"[\s!.,?;:)(-]*$",
    re.IGNORECASE,
)
# A phone number in free text: an optional +, then 7 to 15 digits with spaces, dots, dashes
# or brackets between them.
_PHONE = re.compile(r"(?<![\w+])\+?\(?\d[\d ().\-/]{5,22}\d(?![\w])")
_DATE_LIKE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")
_URL = re.compile(r"\bhttps?://[^\s<>\"']+", re.IGNORECASE)
_URL_TRAILING = ".,;:!?)]}'\""
# Right-to-left scripts: Hebrew, Arabic, Syriac, Thaana, NKo, Samaritan, Mandaic and their
# presentation forms.
_RTL = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc]")
FSI, PDI = "\u2068", "\u2069"
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f]")  # either makes an address unsafe to link
# Placeholders a conversation URL template may use (render.conversation_url).
URL_PLACEHOLDERS = ("chat_id", "account_id", "visitor_id")

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
class JourneyStep:
    """One step of the pages journey: a page (``label`` says "Landing page" or "Chat started
    on" for the first and the last), or ``more`` pages left out between the shown ones."""

    page: LinkView | None
    label: str | None = None
    more: int = 0


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
class PhoneView:
    """A phone number as written in a message and its ``tel:`` URI."""

    text: str
    uri: str


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
    # What the visitor wants: the first message that is more than a greeting (the whole
    # text of an offline message); "" when the visitor wrote nothing.
    ask: str = ""
    reply_email: str | None = None  # the visitor's address, else the offline form's
    reply_mailto: str | None = None  # mailto: URI with a prefilled subject
    conversation_url: str | None = None  # "Open in Smartsupp" (render.conversation_url)
    phones: tuple[PhoneView, ...] = ()
    pages_more: int = 0  # pages not shown (between the first ones and the last one)
    # The pages as a journey: the first ones, "+N more", the last (where the chat started).
    journey: tuple[JourneyStep, ...] = ()
    # The location's places (city, country) and country code, each to be shown isolated
    # (<bdi>; Unicode isolates in ``location`` when a part is right-to-left).
    location_places: tuple[str, ...] = ()
    location_code: str | None = None
    history: str | None = None  # "2 earlier conversations (1 missed on 12 Nov)"
    rating_short: str | None = None  # "★1" for the subject
    begin_timestamp: int | None = None  # Unix seconds of ``date`` (Slack date tokens)


def one_line(text: str | None) -> str:
    """Collapse every run of whitespace (CR, LF, tabs, unicode spaces) to one space."""
    # str.split() splits at the characters re's \s matches (str.isspace), in C.
    return " ".join((text or "").split())


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
    if safe and _SPACE_OR_CONTROL.search(address):
        safe = False
    return LinkView(label, address if safe else None)


def is_greeting(text: str) -> bool:
    return bool(_GREETING.match(one_line(text)))


def phone_numbers(texts: Sequence[str], limit: int = PHONES_SHOWN) -> tuple[PhoneView, ...]:
    """Phone numbers (7 to 15 digits) found in ``texts``, de-duplicated, at most ``limit``."""
    found: dict[str, PhoneView] = {}
    for text in texts:
        for match in _PHONE.finditer(text):
            written = match.group(0).strip()
            digits = "".join(ch for ch in written if ch.isdigit())
            if not 7 <= len(digits) <= 15 or _DATE_LIKE.fullmatch(written):
                continue
            uri = "tel:" + ("+" if written.startswith("+") else "") + digits
            found.setdefault(uri, PhoneView(written, uri))
            if len(found) == limit:
                return tuple(found.values())
    return tuple(found.values())


def url_spans(text: str) -> list[tuple[str, str | None]]:
    """``text`` split into (piece, url) pairs; url is set only for absolute http(s) links."""
    pieces: list[tuple[str, str | None]] = []
    position = 0
    for match in _URL.finditer(text):
        address = match.group(0).rstrip(_URL_TRAILING)
        found = link(address, address)
        if found is None or found.url is None:
            continue
        pieces.append((text[position : match.start()], None))
        pieces.append((address, found.url))
        position = match.start() + len(address)
    pieces.append((text[position:], None))
    return [(piece, url) for piece, url in pieces if piece]


def mailto(address: str, subject: str) -> str:
    """A mailto: URI for ``address`` (already validated) with ``subject`` percent-encoded."""
    return f"mailto:{quote(address, safe='@')}?subject={quote(subject, safe='')}"


def conversation_url(template: str | None, conversation: Conversation) -> str | None:
    """``template`` with the conversation's ids filled in (percent-encoded), if it is set."""
    if not template:
        return None
    visitor_id = conversation.visitor.id
    values = {
        "chat_id": quote(str(conversation.channel.id), safe=""),
        "account_id": quote(str(conversation.account_id), safe=""),
        "visitor_id": quote("" if visitor_id is None else str(visitor_id), safe=""),
    }
    address = template.format(**values)
    found = link(address, address)
    return found.url if found is not None else None


def history_line(earlier: Sequence[tuple[str, float]], t: Translator) -> str | None:
    """ "2 earlier conversations (1 missed on 12 Nov; last: Offline message on 20 Nov)" from
    (category, Unix seconds) pairs of the visitor's earlier chats; None for a first visit. A
    chat whose stored begin time is no date (a beginAt far out of range) is left out."""
    moments = [
        (category, moment)
        for category, when in earlier
        if (moment := _utc_moment(when)) is not None
    ]
    if not moments:
        return None
    parts = []
    missed = [moment for category, moment in moments if category == Category.MISSED]
    if missed:
        date = t.short_date_text(max(missed))
        parts.append(t("history_missed", count=t.number(len(missed)), date=date))
    category, moment = max(moments, key=lambda pair: pair[1])
    label = t(f"category.{category}") if t.has(f"category.{category}") else category
    parts.append(t("history_last", category=label, date=t.short_date_text(moment)))
    return f"{t.plural('history', len(moments))} ({'; '.join(parts)})"


def _utc_moment(when: float) -> datetime | None:
    """Unix seconds as a UTC datetime; None for a value no date holds in every time zone
    (inf, NaN, beyond the years 2 to 9998: a zone's offset moves the years 1 and 9999 out)."""
    try:
        moment = datetime.fromtimestamp(when, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return moment if 1 < moment.year < 9999 else None


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
    day = t.date_text(moment)
    if first_day is not None and day != first_day:
        return f"{day} {t.time_text(moment)}"
    return t.time_text(moment)


def _minute_time(
    moment: datetime | None, first_day: str | None, t: Translator, cache: dict[datetime, str]
) -> str:
    """``_time`` remembered per local minute in ``cache`` (one view's messages)."""
    if moment is None:
        return ""
    minute = moment.astimezone(t.zone).replace(second=0, microsecond=0)
    found = cache.get(minute)
    if found is None:
        found = cache[minute] = _time(moment, first_day, t)
    return found


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
    # Times are shown to the minute: format each minute once (Babel is the costly part).
    times: dict[datetime, str] = {}
    for message in _shown(conversation.messages, limits):
        kind = message_kind(message)
        content = message.content or ""
        name = clip(one_line(message.name), field)
        text = system_sentence(content, name, t) if kind == "system" else content
        trigger = clip(one_line(message.triggered_by), field)
        offline_email = clip(one_line(message.email), field)
        sent = message.sent
        views.append(
            MessageView(
                kind=kind,
                author=clip(_author(message, kind, visitor_name, t), field),
                text=clip(text, limits.message_chars),
                time=_minute_time(sent, first_day, t, times),
                iso_time=sent.isoformat() if sent else "",
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


def the_ask(conversation: Conversation, category: Category) -> str:
    """The first visitor message that is more than a greeting (else the first one); for an
    offline message everything the visitor wrote."""
    texts = [
        (message.content or "").strip()
        for message in conversation.messages
        if message_kind(message) == "visitor" and one_line(message.content)
    ]
    if category is Category.OFFLINE:
        return "\n\n".join(texts)
    return next((text for text in texts if not is_greeting(text)), texts[0] if texts else "")


def offline_form_email(conversation: Conversation) -> str | None:
    """The first valid address a visitor left on an offline-form message."""
    for message in conversation.messages:
        address = valid_email(message.email)
        if address is not None:
            return address
    return None


def _location_parts(
    conversation: Conversation, t: Translator
) -> tuple[tuple[str, ...], str | None]:
    """The visitor's (city, country) as known, and the country code unless it is one of them."""
    visitor = conversation.visitor
    city, country = one_line(visitor.city), one_line(visitor.country)
    code = one_line(visitor.country_code).upper()
    if code.isalpha() and city and country:
        # Smartsupp's bodies have been seen with city and country swapped.
        names = t.country_names(code)
        if city.casefold() in names and country.casefold() not in names:
            city, country = country, city
    places = tuple(p for p in (city, country) if p)
    return places, (code if code and code not in places else None)


def has_rtl(text: str) -> bool:
    """Whether ``text`` has a right-to-left letter (Hebrew, Arabic and related scripts)."""
    return bool(_RTL.search(text))


def isolated(text: str) -> str:
    """``text`` between FIRST STRONG ISOLATE and POP DIRECTIONAL ISOLATE (plain text, Slack)."""
    return f"{FSI}{text}{PDI}"


def location_text(places: Sequence[str], code: str | None) -> str | None:
    """ "Brno, Czech Republic (CZ)"; when any part is right-to-left, every part isolated, so
    "الرياض, Saudi Arabia (SA)" cannot be shown as "Saudi Arabia (SA) ,الرياض"."""
    rtl = any(has_rtl(part) for part in (*places, code or ""))
    shown = [isolated(place) if rtl else place for place in places]
    text = ", ".join(shown)
    if code:
        code_text = isolated(code) if rtl else code
        text = f"{text} ({code_text})" if text else code_text
    return text or None


def _clipped_link(text: str | None, url: str | None, limit: int) -> LinkView | None:
    """``link()`` with its text clipped; an address longer than ``limit`` is not linked."""
    found = link(text, url)
    if found is None:
        return None
    address = found.url if found.url is not None and len(found.url) <= limit else None
    return LinkView(clip(found.text, limit), address)


def journey(pages: Sequence[LinkView], t: Translator) -> tuple[JourneyStep, ...]:
    """At most PAGES_SHOWN pages: the first ones, then "+N more" and the last page; the first
    is labelled the landing page and the last the page where the chat started (the body lists
    the pages in the order visited)."""
    if not pages:
        return ()
    if len(pages) == 1:
        return (JourneyStep(pages[0], t("landing_and_chat")),)
    head = pages[: PAGES_SHOWN - 1] if len(pages) > PAGES_SHOWN else pages[:-1]
    steps = [JourneyStep(head[0], t("landing_page"))]
    steps.extend(JourneyStep(page) for page in head[1:])
    more = len(pages) - len(head) - 1
    if more:
        steps.append(JourneyStep(None, more=more))
    steps.append(JourneyStep(pages[-1], t("chat_started_on")))
    return tuple(steps)


def _clipped(text: str | None, limit: int) -> str | None:
    return clip(text, limit) if text else None


def build_view(
    conversation: Conversation,
    category: Category,
    t: Translator,
    limits: ViewLimits = DEFAULT_LIMITS,
    *,
    url_template: str | None = None,
    history: str | None = None,
) -> ConversationView:
    """Everything the email and Slack templates show, formatted for ``t``'s locale and zone,
    and no more than ``limits`` allow. ``url_template`` makes the "Open in Smartsupp" link
    (placeholders {chat_id}, {account_id}, {visitor_id}); ``history`` is the returning-visitor
    line."""
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
                FieldView(clip(one_line(variable.label) or key, field), clip(text, field))
                for key, variable in visitor.variable_items.items()
                if (text := variable.text) != ""  # JSON for a value that is no string
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
    all_pages = [
        page
        for page in (_clipped_link(p.title, p.url, field) for p in conversation.paths)
        if page is not None
    ]
    steps = journey(all_pages, t)
    pages = tuple(step.page for step in steps if step.page is not None)
    places, code = _location_parts(conversation, t)
    places = tuple(clip(place, field) for place in places)
    code = clip(code, field) if code else None
    messages = _messages(conversation, t, limits)
    missed = category is Category.MISSED
    ask = clip(the_ask(conversation, category), limits.message_chars)
    reply_email = visitor.email_address or offline_form_email(conversation)
    shown_name = clip(one_line(name), field) or t("unknown_visitor")
    subject_text = clip(one_line(ask), 60) or t(f"category.{category.value}")
    visitor_texts = [
        m.content or "" for m in conversation.messages[-limits.messages :] if m.type == "visitor"
    ]
    return ConversationView(
        locale=t.locale,
        category=category.value,
        category_label=t(f"category.{category.value}"),
        badge_background=background,
        badge_text=foreground,
        emoji=CATEGORY_EMOJI.get(category, ":speech_balloon:"),
        visitor_name=shown_name,
        visitor_name_known=name is not None,
        visitor_email=visitor.email_address,
        country_code=clip(one_line(visitor.country_code).upper(), field) or None,
        location=location_text(places, code),
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
        # A missed chat had no answer: response times beside "No agent joined" mislead.
        first_response=None if missed else t.duration(channel.first_response),
        avg_response=None if missed else t.duration(channel.avg_response),
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
        ask=ask,
        reply_email=reply_email,
        reply_mailto=(
            mailto(reply_email, t("reply_subject", text=subject_text)) if reply_email else None
        ),
        conversation_url=conversation_url(url_template, conversation),
        phones=phone_numbers([clip(text, limits.message_chars) for text in visitor_texts]),
        pages_more=len(all_pages) - len(pages),
        journey=steps,
        location_places=places,
        location_code=code,
        history=history,
        rating_short=f"★{min(max(rating, 0), MAX_RATING)}" if rating is not None else None,
        begin_timestamp=int(moment.timestamp()) if moment is not None else None,
    )
