"""Matchers: the facts of one conversation, and each configured matcher checked against them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from relay.classify import Category
from relay.conversation import Conversation
from relay.rules import WEEKDAY_NAMES, Match, TimeWindow, VariableMatch


def _text(value: Any) -> str | None:
    """A variable's value as text: None when absent or empty; JSON spelling for non-strings."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True, slots=True)
class Facts:
    """What the matchers look at, taken from a conversation once per routing decision."""

    category: Category
    account_id: int
    rating: int | None
    country_code: str | None
    group: str | None
    email: str | None
    variables: dict[str, str | None]
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
            variables={k: _text(v.value) for k, v in (visitor.variables or {}).items() if v},
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
    pattern = getattr(value, "pattern", None)
    return f"/{pattern}/" if isinstance(pattern, str) else str(value)


def _at_least(name: str, bound: int | None, value: int | None) -> Iterator[Check]:
    if bound is not None:
        yield Check(name, Phrase(f">= {bound}"), value, value is not None and value >= bound)


def _at_most(name: str, bound: int | None, value: int | None) -> Iterator[Check]:
    if bound is not None:
        yield Check(name, Phrase(f"<= {bound}"), value, value is not None and value <= bound)


def _flag(name: str, wanted: bool | None, actual: bool, shown: Any) -> Iterator[Check]:
    if wanted is not None:
        yield Check(name, wanted, shown, actual == wanted)


def _variable(key: str, spec: VariableMatch, value: str | None) -> Iterator[Check]:
    name = f"variables.{key}"
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
    local = local_time(window, at)
    day = WEEKDAY_NAMES[local.weekday()][:3].capitalize()
    shown = f"{day} {local:%Y-%m-%d %H:%M %Z} ({window.timezone})"
    wanted = f"{' '.join(window.weekdays)} {' '.join(window.hours)}"
    if window.mode == "mute":
        outside = Phrase(f"outside {wanted}")
        return Check("time (mute)", outside, Phrase(shown), not in_window(window, at))
    return Check("time (active)", Phrase(f"inside {wanted}"), Phrase(shown), in_window(window, at))


def checks(match: Match, facts: Facts) -> Iterator[Check]:
    """One Check per configured matcher, in a fixed order. The rule matches iff all are ok."""
    m, f = match, facts
    if m.category is not None:
        yield Check("category", [c.value for c in m.category], f.category.value,
                    f.category in m.category)  # fmt: skip
    yield from _at_least("rating_min", m.rating_min, f.rating)
    yield from _at_most("rating_max", m.rating_max, f.rating)
    yield from _flag("has_rating", m.has_rating, f.rating is not None, f.rating)
    if m.account_id is not None:
        yield Check("account_id", m.account_id, f.account_id, f.account_id in m.account_id)
    if m.country_code is not None:
        yield Check("country_code", m.country_code, f.country_code,
                    f.country_code in m.country_code)  # fmt: skip
    if m.group is not None:
        yield Check("group", m.group, f.group, f.group in m.group)
    yield from _flag("has_email", m.has_email, f.email is not None, f.email)
    for key, spec in (m.variables or {}).items():
        yield from _variable(key, spec, f.variables.get(key))
    if m.message_regex is not None:
        hit = next((h for t in f.texts if (h := m.message_regex.search(t))), None)
        yield Check("message_regex", m.message_regex, hit[0] if hit else None, hit is not None)
    yield from _flag("triggered", m.triggered, f.triggered, f.triggered)
    if m.triggered_by is not None:
        ok = any(t in m.triggered_by for t in f.triggered_by)
        yield Check("triggered_by", m.triggered_by, f.triggered_by, ok)
    yield from _at_least("duration_min", m.duration_min, f.duration)
    yield from _at_most("duration_max", m.duration_max, f.duration)
    yield from _at_least("messages_min", m.messages_min, f.messages_count)
    yield from _at_most("messages_max", m.messages_max, f.messages_count)
    if m.time is not None:
        yield _time(m.time, f.at)
