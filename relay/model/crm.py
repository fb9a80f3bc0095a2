"""A conversation for a CRM or help desk as neutral fields, and its plain-text and HTML forms."""

from __future__ import annotations

import html
from dataclasses import dataclass, field

# A subject or title is one line: the longest any of the four systems takes is 255.
MAX_LINE = 255


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
