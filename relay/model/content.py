"""Rendered content, one type per action type: what the renderers make and the senders send."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from relay.model.crm import CrmContent


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


@dataclass(frozen=True)
class TeamsContent:
    """The Workflows webhook body: a message with one Adaptive Card attachment."""

    card: dict[str, Any]

    def body(self) -> dict[str, Any]:
        return {
            "type": "message",
            "attachments": [
                {"contentType": "application/vnd.microsoft.card.adaptive", "content": self.card}
            ],
        }


def line_prefix(delivery_id: int) -> bytes:
    """Every archive line starts with this, so a repeat of the same delivery is recognisable."""
    return b'{"delivery_id":%d,' % delivery_id


# CrmContent: HubSpot, Pipedrive, Freshdesk and Zendesk (relay.model.crm).
Content = EmailContent | SlackContent | WebhookContent | ArchiveContent | TeamsContent | CrmContent
