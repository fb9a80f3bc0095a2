"""Rendered content, one type per action type: what the renderers make and the senders send."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any


@dataclass(frozen=True)
class EmailContent:
    """A complete message (all headers set) and its envelope recipients (to + cc + bcc)."""

    message: EmailMessage
    recipients: tuple[str, ...]


@dataclass(frozen=True)
class SlackContent:
    """A Slack message: ``channel`` for chat.postMessage (None for an incoming webhook)."""

    channel: str | None
    text: str
    blocks: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class WebhookContent:
    """An HTTP POST body. ``url`` is the action's own URL; None: the destination's."""

    url: str | None
    body: bytes
    content_type: str = "application/json"


@dataclass(frozen=True)
class ArchiveContent:
    """One JSON line (no newline) to append to ``path`` (relative: under the state dir)."""

    path: str
    line: bytes


def line_prefix(delivery_id: int) -> bytes:
    """Every archive line starts with this, so a repeat of the same delivery is recognisable."""
    return b'{"delivery_id":%d,' % delivery_id


Content = EmailContent | SlackContent | WebhookContent | ArchiveContent
