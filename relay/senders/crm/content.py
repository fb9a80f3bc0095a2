"""What a CRM sender receives: one conversation made into neutral fields, rendered purely."""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass, field
from datetime import datetime

from jinja2 import ChainableUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from relay.classify import Category
from relay.conversation import Conversation, SenderKind
from relay.senders.crm.config import CrmAction, HubSpotAction, PipedriveAction

_ENV = ImmutableSandboxedEnvironment(undefined=ChainableUndefined, autoescape=False)
# A subject or title is one line: the longest any of the four systems takes is 255.
MAX_LINE = 255
PHONE_VARIABLES = ("phone", "telephone", "tel", "mobile")


@dataclass(frozen=True)
class Message:
    when: str  # "2024-05-01 10:12 UTC" or ""
    author: str
    text: str


@dataclass(frozen=True)
class CrmContent:
    """One conversation for a CRM or help desk.

    ``marker`` names the conversation in every object the relay creates (a tag, an external
    id, a line of the note), so a retry finds what an earlier attempt created; ``revision``
    names this version of it (a later version with a rating adds to the same object).
    ``known_ref``: the id an earlier delivery of the same conversation recorded (set by the
    worker from the store), tried before any search."""

    system: str
    conversation_key: str
    revision: str
    category: str
    email: str | None
    name: str | None
    phone: str | None
    country: str | None
    title: str
    messages: tuple[Message, ...]
    variables: dict[str, str] = field(default_factory=dict)
    rating: int | None = None
    rating_text: str | None = None
    tags: tuple[str, ...] = ()
    priority: str = "medium"
    known_ref: str | None = None
    link: str | None = None  # back to the conversation (http or https), from the action

    @property
    def marker(self) -> str:
        return f"smartsupp-{self.conversation_key}"

    @property
    def revision_marker(self) -> str:
        return f"smartsupp-{self.conversation_key}-r{self.revision}"

    def header_lines(self) -> list[str]:
        lines = [f"Smartsupp conversation {self.conversation_key} ({self.category})"]
        values = (self.name, self.email, self.phone, self.country)
        who = ", ".join(_cut(v, 300) for v in values if v)
        if who:
            lines.append(f"Visitor: {who}")
        if self.rating is not None:
            comment = f": {_cut(self.rating_text, 1000)}" if self.rating_text else ""
            lines.append(f"Rating: {self.rating}{comment}")
        if self.link:
            lines.append(f"Conversation: {self.link}")
        return lines

    def text(self, limit: int) -> str:
        """The transcript as plain text, at most ``limit`` characters; the markers first, so
        a cut never loses them, and the newest messages kept when it must be cut."""
        head = "\n".join([f"[{self.marker}] [{self.revision_marker}]", *self.header_lines(), ""])
        each = _per_message(limit)
        lines = [f"{m.when} {m.author}: {_cut(m.text, each)}".strip() for m in self.messages]
        return _fit(head, lines, limit, "\n", "[... earlier messages left out]")

    def html(self, limit: int) -> str:
        """The transcript as HTML, every value escaped, at most ``limit`` characters."""
        esc = html.escape
        lines = self.header_lines()
        if self.link:  # the same line as a link (its text and target escaped)
            lines.pop()
        head = "".join(
            [
                f"<p>[{esc(self.marker)}] [{esc(self.revision_marker)}]</p>",
                *(f"<p>{esc(line)}</p>" for line in lines),
                f'<p>Conversation: <a href="{esc(self.link)}">{esc(self.link)}</a></p>'
                if self.link
                else "",
            ]
        )
        each = _per_message(limit) // 2  # escaping may double the length of what is kept
        lines = [
            f"<p><b>{esc(_cut(m.author, 200))}</b> {esc(m.when)}<br>{esc(_cut(m.text, each))}</p>"
            for m in self.messages
        ]
        return _fit(head, lines, limit, "", "<p>[... earlier messages left out]</p>")


def _per_message(limit: int) -> int:
    """One message may take a quarter of the room: a huge one cannot push out the rest."""
    return max(limit // 4, 500)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + " [... cut]"


def _fit(head: str, lines: list[str], limit: int, joiner: str, cut_note: str) -> str:
    whole = head + joiner + joiner.join(lines)
    if len(whole) <= limit:
        return whole
    kept: list[str] = []
    room = limit - len(head) - len(cut_note) - 2 * len(joiner)
    for line in reversed(lines):
        cost = len(line) + len(joiner)
        if cost > room:
            if not kept and room > 0:  # one huge message: keep its end
                kept.append(line[-room:] if room < len(line) else line)
            break
        kept.append(line)
        room -= cost
    text = head + joiner + cut_note + joiner + joiner.join(reversed(kept))
    return text[:limit]


def one_line(text: str, limit: int = MAX_LINE) -> str:
    """Whitespace (CR, LF, tabs) folded to single spaces, cut to ``limit`` characters."""
    folded = " ".join(text.split())
    return folded if len(folded) <= limit else folded[: limit - 1] + "…"


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else ""


def _author(conversation: Conversation, kind: SenderKind, name: str | None) -> str:
    if kind is SenderKind.VISITOR:
        return conversation.visitor.display_name or "Visitor"
    if kind is SenderKind.AGENT:
        return name or "Agent"
    return name or "System"


def _link(action: CrmAction, conversation: Conversation) -> str | None:
    """The action's link template over the conversation's ids; None unless it renders to one
    http(s) URL without spaces or quotes."""
    if action.link is None:
        return None
    url = _ENV.from_string(action.link).render(
        account_id=conversation.account_id, chat_id=conversation.channel.id, key=conversation.key
    )
    if not url.startswith(("https://", "http://")) or any(c in url for c in " \t\r\n\"'<>"):
        return None
    return url[:2000]


def render_crm(
    action: CrmAction, raw: bytes, conversation: Conversation, category: Category
) -> CrmContent:
    """Pure: the same body and action always give the same content."""
    visitor = conversation.visitor
    variables = {key: var.text for key, var in visitor.variable_items.items()}
    phone = next(
        (v for k, v in variables.items() if k.lower() in PHONE_VARIABLES and v.strip()), None
    )
    messages = tuple(
        Message(_when(m.sent), _author(conversation, m.sender[0], m.name), m.content or "")
        for m in conversation.messages
    )
    template = (
        action.title
        if isinstance(action, PipedriveAction)
        else ("" if isinstance(action, HubSpotAction) else action.subject)
    )
    names = {
        "name": visitor.display_name,
        "email": visitor.email_address,
        "key": conversation.key,
        "category": category.value,
        "country": visitor.country or visitor.country_code,
    }
    title = one_line(_ENV.from_string(template).render(**names)) if template else ""
    tags = tuple(getattr(action, "tags", ()))
    return CrmContent(
        system=action.type,
        conversation_key=conversation.key,
        revision=hashlib.sha256(raw).hexdigest()[:12],
        category=category.value,
        email=visitor.email_address,
        name=visitor.display_name,
        phone=phone.strip() if phone else None,
        country=visitor.country or visitor.country_code,
        title=title or f"Smartsupp chat {conversation.key}",
        link=_link(action, conversation),
        messages=messages,
        variables=variables,
        rating=conversation.channel.rating,
        rating_text=conversation.channel.rating_desc,
        tags=tags,
        priority=getattr(action, "priority", "medium"),
    )
