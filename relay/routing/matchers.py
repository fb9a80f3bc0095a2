"""Matchers: the facts of one conversation, and each configured matcher checked against them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from relay.model.category import Category
from relay.model.conversation import Conversation, variable_text
from relay.routing.rules import WEEKDAY_NAMES, Match, TimeWindow, VariableMatch


def _text(value: Any) -> str | None:
    """A variable's value as text (``variable_text``); None when absent or empty."""
    return variable_text(value) or None


@dataclass(frozen=True, slots=True)
class Facts:
    """What the matchers look at, taken from a conversation once per routing decision."""

    category: Category
    account_id: int
    rating: int | None
    country_code: str | None
    group: str | None
    email: str | None
    variables: dict[str, Any]  # raw values; compared through _text()
    texts: tuple[str, ...]
    triggered: bool
    triggered_by: tuple[str, ...]
    duration: int | None
    messages_count: int | None
    at: float  # seconds since the epoch; the moment time windows are evaluated at

    @classmethod
    def of(cls, conversation: Conversation, category: Category, *, at: float) -> Facts:
        visitor, channel = conversation.visitor, conversation.channel
        messages = conversation.messages
        return cls(
            category=category,
            account_id=conversation.account_id,
            rating=channel.rating,
            country_code=(visitor.country_code or "").strip().upper() or None,
            group=visitor.group_name,
            email=visitor.email_address,
            variables={k: v.value for k, v in visitor.variable_items.items()},
            texts=tuple(m.content for m in messages if m.content and m.type != "system"),
            triggered=bool(channel.is_triggered),
            triggered_by=tuple(m.triggered_by for m in messages if m.triggered_by),
            duration=channel.duration,
            messages_count=channel.messages_count,
            at=at,
        )


class Phrase(str):
    """A description shown as is (not quoted) in an explanation."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Check:
    """One matcher's verdict: what the rule wanted, what the conversation has, and whether
    that is a match. ``wanted`` and ``actual`` are kept raw; ``describe()`` formats them."""

    matcher: str
    wanted: Any
    actual: Any
    ok: bool

    def describe(self) -> str:
        verdict = "ok  " if self.ok else "FAIL"
        return f"{verdict} {self.matcher}: wanted {_show(self.wanted)}, got {_show(self.actual)}"


def _show(value: Any) -> str:
    if isinstance(value, Phrase):
        return str(value)
    if value is None:
        return "nothing"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]" if value else "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return _show_object(value)


def _show_object(value: Any) -> str:
    if isinstance(value, datetime):
        day = WEEKDAY_NAMES[value.weekday()][:3].capitalize()
        return f"{day} {value:%Y-%m-%d %H:%M %Z} ({value.tzinfo})"
    if isinstance(value, TimeWindow):
        where = "outside" if value.mode == "mute" else "inside"
        return f"{where} {' '.join(value.weekdays)} {' '.join(value.hours)}"
    pattern = getattr(value, "pattern", None)
    return f"/{pattern}/" if isinstance(pattern, str) else str(value)


def _at_least(name: str, bound: int, value: int | None) -> Check:
    return Check(name, Phrase(f">= {bound}"), value, value is not None and value >= bound)


def _at_most(name: str, bound: int, value: int | None) -> Check:
    return Check(name, Phrase(f"<= {bound}"), value, value is not None and value <= bound)


def _variable(key: str, spec: VariableMatch, raw: Any) -> Iterator[Check]:
    name = f"variables.{key}"
    value = _text(raw)
    if spec.present is not None:
        yield Check(f"{name}.present", spec.present, value, (value is not None) == spec.present)
    if spec.equals is not None:
        yield Check(f"{name}.equals", spec.equals, value, value == spec.equals)
    if spec.one_of is not None:
        yield Check(f"{name}.one_of", spec.one_of, value, value in spec.one_of)
    if spec.regex is not None:
        found = value is not None and spec.regex.search(value) is not None
        yield Check(f"{name}.regex", spec.regex, value, found)


def local_time(window: TimeWindow, at: float) -> datetime:
    return datetime.fromtimestamp(at, window.zone)


def in_window(window: TimeWindow, at: float) -> bool:
    """Is the local wall-clock time at ``at`` on a listed weekday and inside a listed range?"""
    local = local_time(window, at)
    if local.weekday() not in window.days:
        return False
    minute = local.hour * 60 + local.minute
    return any(
        (low <= minute < high) if low < high else (minute >= low or minute < high)
        for low, high in window.minute_ranges
    )


def _time(window: TimeWindow, at: float) -> Check:
    """``wanted`` is the window, ``actual`` the local time (both formatted by ``_show``)."""
    inside = in_window(window, at)
    local = local_time(window, at)
    if window.mode == "mute":
        return Check("time (mute)", window, local, not inside)
    return Check("time (active)", window, local, inside)


def checks(match: Match, facts: Facts) -> Iterator[Check]:
    """One Check per configured matcher, in a fixed order. The rule matches iff all are ok."""
    yield from _about_the_chat(match, facts)
    yield from _about_the_content(match, facts)


def _about_the_chat(m: Match, f: Facts) -> Iterator[Check]:
    """Category, rating, account and visitor fields."""
    if m.category is not None:
        yield Check("category", [c.value for c in m.category], f.category.value,
                    f.category in m.category)  # fmt: skip
    if m.rating_min is not None:
        yield _at_least("rating_min", m.rating_min, f.rating)
    if m.rating_max is not None:
        yield _at_most("rating_max", m.rating_max, f.rating)
    if m.has_rating is not None:
        yield Check("has_rating", m.has_rating, f.rating, (f.rating is not None) == m.has_rating)
    if m.account_id is not None:
        yield Check("account_id", m.account_id, f.account_id, f.account_id in m.account_id)
    if m.country_code is not None:
        yield Check("country_code", m.country_code, f.country_code,
                    f.country_code in m.country_code)  # fmt: skip
    if m.group is not None:
        yield Check("group", m.group, f.group, f.group in m.group)
    if m.has_email is not None:
        yield Check("has_email", m.has_email, f.email, (f.email is not None) == m.has_email)


def _about_the_content(m: Match, f: Facts) -> Iterator[Check]:
    """Visitor variables, messages, triggers, length and the time window."""
    for key, spec in (m.variables or {}).items():
        yield from _variable(key, spec, f.variables.get(key))
    if m.message_regex is not None:
        hit = next((h for t in f.texts if (h := m.message_regex.search(t))), None)
        yield Check("message_regex", m.message_regex, hit[0] if hit else None, hit is not None)
    if m.triggered is not None:
        yield Check("triggered", m.triggered, f.triggered, f.triggered == m.triggered)
    if m.triggered_by is not None:
        ok = any(t in m.triggered_by for t in f.triggered_by)
        yield Check("triggered_by", m.triggered_by, f.triggered_by, ok)
    if m.duration_min is not None:
        yield _at_least("duration_min", m.duration_min, f.duration)
    if m.duration_max is not None:
        yield _at_most("duration_max", m.duration_max, f.duration)
    if m.messages_min is not None:
        yield _at_least("messages_min", m.messages_min, f.messages_count)
    if m.messages_max is not None:
        yield _at_most("messages_max", m.messages_max, f.messages_count)
    if m.time is not None:
        yield _time(m.time, f.at)
