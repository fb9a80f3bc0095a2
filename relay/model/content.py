"""Rendered content, one type per action type: what the renderers make and the senders send."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from relay.model.crm import CrmContent

if TYPE_CHECKING:  # the message object is made on demand: email.policy's header registry
    # is imported then, not by every process that passes content along
    from email.message import EmailMessage


class MessageSource(Protocol):
    """What an email is made from before it is a message object (``render.mime.Draft``):
    the message object, or the bytes sent to a server with 8BITMIME without SMTPUTF8,
    written directly and checked (None when the check fails)."""

    message_id: str

    def message(self) -> EmailMessage: ...

    def flat(self) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class FlatEmail:
    """An email already flattened to the bytes sent and checked (``render.headers.flatten``,
    8-bit bodies, SMTPUTF8 headers exactly when ``utf8``), with its Message-ID: what the
    render helper hands back instead of the message object, which costs as much to pickle
    and unpickle as it did to render."""

    data: bytes
    utf8: bool
    message_id: str


class EmailContent:
    """A complete message (all headers set) and its envelope recipients (to + cc + bcc).

    ``flat``: the same message flattened and checked already (from the render helper); the
    message object is then parsed back from those bytes only if something asks for it.
    ``source``: what the renderer made the email from, which makes the message object when
    something asks for it, and the bytes for a server with 8BITMIME without SMTPUTF8."""

    __slots__ = ("_message", "flat", "recipients", "source")

    def __init__(
        self,
        message: EmailMessage | None = None,
        recipients: tuple[str, ...] = (),
        *,
        flat: FlatEmail | None = None,
        source: MessageSource | None = None,
    ) -> None:
        if message is None and flat is None and source is None:
            raise ValueError("an email needs its message, its source or its flattened bytes")
        self._message = message
        self.recipients = recipients
        self.flat = flat
        self.source = source

    @property
    def message(self) -> EmailMessage:
        if self._message is None:
            if self.source is not None:
                self._message = self.source.message()
                return self._message
            assert self.flat is not None  # one of the three is always set (__init__)
            import email.policy  # noqa: PLC0415 -- see TYPE_CHECKING above
            from email.message import EmailMessage  # noqa: PLC0415
            from email.parser import BytesParser  # noqa: PLC0415

            parser = BytesParser(_class=EmailMessage, policy=email.policy.SMTP)
            self._message = parser.parsebytes(self.flat.data)
        return self._message

    @property
    def message_id(self) -> str:
        """The Message-ID header ("" without one), without parsing a flattened message."""
        if self.flat is not None:
            return self.flat.message_id
        if self.source is not None and self._message is None:
            return self.source.message_id
        return str(self.message["Message-ID"] or "")

    def flat_for(self, *, utf8: bool, eight_bit: bool) -> bytes | None:
        """The flattened bytes when they were made for these options (or, without SMTPUTF8,
        can be written from the source), else None."""
        flat = self.flat
        if flat is not None and eight_bit and flat.utf8 == utf8:
            return flat.data
        # From the source only while the message object was never handed out (a caller
        # may have changed it).
        if flat is None and self.source is not None and self._message is None and eight_bit:
            if utf8:
                return None
            data = self.source.flat()
            if data is not None:
                self.flat = FlatEmail(data, False, self.source.message_id)
            return data
        return None

    def with_flat(self, flat: FlatEmail) -> EmailContent:
        """The same email carried as its flattened bytes only (what crosses processes)."""
        return EmailContent(recipients=self.recipients, flat=flat)

    def __reduce__(self) -> tuple[Any, ...]:
        # Flattened: only the bytes cross a process boundary, never the message object.
        if self.flat is not None:
            return (_flat_email, (self.recipients, self.flat))
        return (EmailContent, (self.message, self.recipients))  # a source: its message

    def __repr__(self) -> str:
        return f"EmailContent(recipients={self.recipients!r}, message_id={self.message_id!r})"


def _flat_email(recipients: tuple[str, ...], flat: FlatEmail) -> EmailContent:
    return EmailContent(recipients=recipients, flat=flat)


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
