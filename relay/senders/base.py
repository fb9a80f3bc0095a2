"""What a sender receives (rendered content) and the one method every sender has."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Protocol


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


Content = EmailContent | SlackContent


class Sender(Protocol):
    """Deliver ``content`` or raise a ``relay.errors.DeliveryError`` subclass.

    ``skip`` lists recipients that already received this delivery in an earlier attempt.
    ``delivery_id`` is stable across attempts, so a sender may use it to stay idempotent.
    """

    async def send(
        self, content: Content, *, delivery_id: int, skip: tuple[str, ...] = ()
    ) -> None: ...
