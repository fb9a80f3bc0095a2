"""Immutable value objects for one Smartsupp conversation, decoded straight from the hook body."""

from __future__ import annotations

import enum
import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec

_EMAIL = re.compile(
    r"^[^@\s<>()\[\],;:\"\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)


def valid_email(value: str | None) -> str | None:
    """Return ``value`` stripped if it is a plain, single, header-safe address, else None."""
    if not value:
        return None
    candidate = value.strip()
    if len(candidate) > 254 or not _EMAIL.match(candidate):
        return None
    return candidate


def _datetime(ms: int | None) -> datetime | None:
    if ms is None:
        return None
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


class SenderKind(enum.StrEnum):
    AGENT = "agent"
    VISITOR = "visitor"
    SYSTEM = "system"
    UNKNOWN = "unknown"


class _Wire(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """Base: camelCase on the wire, snake_case in Python, every field optional."""


class Channel(_Wire, frozen=True):
    id: int
    is_chat: bool | None = None
    is_missed: bool | None = None
    is_triggered: bool | None = None
    is_offline: bool | None = None
    is_completed: bool | None = None
    is_dropped: bool | None = None
    duration: int | None = None
    avg_response: int | None = None
    first_response: int | None = None
    messages_count: int | None = None
    words_count: int | None = None
    rating: int | None = None
    rating_desc: str | None = None


def variable_text(value: Any) -> str:
    """A variable's value as text, the same for display, matching and rules: "" when absent,
    a string as it is, JSON for the rest (``true``, ``5``, objects with sorted keys)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


class Variable(_Wire, frozen=True):
    label: str | None = None
    value: Any = None

    @property
    def text(self) -> str:
        return variable_text(self.value)


# A visitor id or email is looked up (the visitor's earlier chats, leads): no real one comes
# near this many characters (an address has at most 254), and PostgreSQL cannot index a much
# longer one (2,704 bytes an entry), so a body with one is refused as malformed.
VisitorKey = Annotated[str, msgspec.Meta(max_length=512)]


class Visitor(_Wire, frozen=True):
    id: int | VisitorKey | None = None
    name: str | None = None
    email: VisitorKey | None = None
    note: str | None = None
    group: str | int | None = None
    group_key: str | int | None = None
    ip_address: str | None = None
    city: str | None = None
    country_code: str | None = None
    country: str | None = None
    user_agent: str | None = None
    platform: str | None = None
    referer: str | None = None
    # A null entry is tolerated and skipped (see ``variable_items``).
    variables: dict[str, Variable | None] | None = None

    @property
    def variable_items(self) -> dict[str, Variable]:
        return {key: var for key, var in (self.variables or {}).items() if var is not None}

    @property
    def group_name(self) -> str | None:
        """``group`` in newer bodies, ``groupKey`` in older ones."""
        value = self.group if self.group is not None else self.group_key
        return None if value is None or value == "" else str(value)

    @property
    def email_address(self) -> str | None:
        return valid_email(self.email)

    @property
    def display_name(self) -> str | None:
        return (self.name or "").strip() or None


_NO_VISITOR = Visitor()


class Page(_Wire, frozen=True):
    url: str | None = None
    title: str | None = None


class Message(_Wire, frozen=True):
    type: str | None = None
    name: str | None = None
    from_: int | str | None = msgspec.field(default=None, name="from")
    content: str | None = None
    sent_at: int | None = None
    triggered_by: str | None = None
    email: str | None = None

    @property
    def sender(self) -> tuple[SenderKind, str | None]:
        """Normalise ``from``: 3, "agent:3", "visitor:abc", "system", a bare visitor id, or null."""
        raw = self.from_
        if isinstance(raw, int):
            return SenderKind.AGENT, str(raw)
        if raw is None or raw == "":
            return SenderKind.UNKNOWN, None
        kind, sep, ident = raw.partition(":")
        if sep and kind in ("agent", "visitor", "system"):
            return SenderKind(kind), ident or None
        if raw == "system":
            return SenderKind.SYSTEM, None
        if raw.isdigit():
            return SenderKind.AGENT, raw
        return SenderKind.VISITOR, raw

    @property
    def sent(self) -> datetime | None:
        return _datetime(self.sent_at)


class Conversation(_Wire, frozen=True):
    account_id: int
    channel: Channel
    begin_at: int | None = None
    end_at: int | None = None
    # Smartsupp may send null for any of these; the properties below hide that.
    visitor_or_none: Visitor | None = msgspec.field(default=None, name="visitor")
    paths_or_none: tuple[Page | None, ...] | None = msgspec.field(default=None, name="paths")
    messages_or_none: tuple[Message | None, ...] | None = msgspec.field(
        default=None, name="messages"
    )

    @property
    def visitor(self) -> Visitor:
        return self.visitor_or_none or _NO_VISITOR

    @property
    def paths(self) -> tuple[Page, ...]:
        return tuple(p for p in self.paths_or_none or () if p is not None)

    @property
    def messages(self) -> tuple[Message, ...]:
        return tuple(m for m in self.messages_or_none or () if m is not None)

    @property
    def key(self) -> str:
        """Identity across re-posts: the account and its channel (chat) id."""
        return f"{self.account_id}-{self.channel.id}"

    @property
    def begin(self) -> datetime | None:
        return _datetime(self.begin_at)

    @property
    def end(self) -> datetime | None:
        return _datetime(self.end_at)
