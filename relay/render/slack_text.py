"""Slack text safety: escaping of & < > and clipping that never splits an escape sequence."""

from __future__ import annotations

_ENTITY_MAX = len("&amp;")


def slack_escape(text: str) -> str:
    """Slack's three control characters as entities, so no mention, link or command can form."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip_escaped(text: str, limit: int) -> str:
    """Clip already escaped ``text`` to ``limit`` characters (ellipsis included)."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 1, 0)]
    amp = cut.rfind("&", max(len(cut) - _ENTITY_MAX, 0))
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut.rstrip() + "…"


def escaped(text: str, limit: int) -> str:
    return clip_escaped(slack_escape(text), limit)


def quote(text: str) -> str:
    """Escaped mrkdwn block quote of ``text``, one ``>`` per line."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join("> " + slack_escape(line) for line in lines)
