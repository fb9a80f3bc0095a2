"""Email headers: CR/LF-free values, parsed addresses, the Date and the per-visitor thread id."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, parseaddr

from relay.conversation import Conversation
from relay.render.view import clip, one_line

SUBJECT_LIMIT = 120
_ADDRESS_SPECIALS = re.compile(r'[()<>\[\]:;@\\,"]')
FALLBACK_DOMAIN = "relay.invalid"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# Bidirectional overrides and isolates can make a header read backwards ("gpj.exe" shown as
# "exe.jpg"); headers have no use for them.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
DISPLAY_NAME_LIMIT = 78


def header_safe(value: str | None) -> str:
    """One line: CR, LF and every other whitespace run collapsed; control characters and
    bidirectional overrides dropped."""
    text = one_line(value)
    return "".join(ch for ch in text if ch >= " " and ch != "\x7f" and ch not in _BIDI_CONTROLS)


def display_name(name: str | None) -> str:
    """A visitor's name as a display name without RFC 5322 specials. Quoting would be enough
    in theory, but folding a long quoted name can drop the quotes (CPython's email package),
    and "Eve, x <a@evil.test>" would then parse as more addresses than the visitor's."""
    return clip(" ".join(_ADDRESS_SPECIALS.sub(" ", header_safe(name)).split()), DISPLAY_NAME_LIMIT)


def subject_line(text: str) -> str:
    return clip(header_safe(text), SUBJECT_LIMIT)


def mailbox_list(values: Iterable[str]) -> list[str]:
    """Configured recipients as written (``"Sales <sales@x>"`` or ``sales@x``), one line each."""
    return [header_safe(v) for v in values if header_safe(v)]


def envelope_addresses(values: Iterable[str]) -> list[str]:
    """Bare addresses from configured recipients, de-duplicated case-insensitively, in order."""
    seen: set[str] = set()
    found: list[str] = []
    for _, address in getaddresses(mailbox_list(values)):
        key = address.lower()
        if address and "@" in address and key not in seen:
            seen.add(key)
            found.append(address)
    return found


def visitor_address(name: str | None, email: str | None) -> Address | None:
    """The visitor as a Reply-To address, or None if it cannot be written as a safe header."""
    if email is None:
        return None
    address = header_safe(email)
    if not address.isascii() or address != email:
        return None
    username, _, domain = address.rpartition("@")
    try:
        return Address(display_name=display_name(name), username=username, domain=domain)
    except (HeaderParseError, ValueError, IndexError):
        return None


def sender_domain(from_address: str) -> str:
    _, address = parseaddr(header_safe(from_address))
    domain = address.rpartition("@")[2].strip().lower()
    allowed = all(ch.isalnum() or ch in ".-" for ch in domain) and domain.isascii()
    return domain if domain and allowed else FALLBACK_DOMAIN


def thread_id(conversation: Conversation, from_address: str) -> str:
    """The same Message-ID-shaped value for every email about one visitor of one account."""
    visitor = conversation.visitor
    identity = visitor.id if visitor.id not in (None, "") else visitor.email_address
    if identity is None:
        identity = f"chat:{conversation.channel.id}"
    digest = hashlib.sha256(str(identity).encode("utf-8")).hexdigest()[:16]
    return f"<visitor.{conversation.account_id}.{digest}@{sender_domain(from_address)}>"


def message_date(conversation: Conversation) -> str:
    moment = conversation.end or conversation.begin or EPOCH
    return format_datetime(moment)


def set_headers(
    message: EmailMessage,
    *,
    from_address: str,
    to: Iterable[str],
    cc: Iterable[str],
    reply_to: Address | None,
    subject: str,
    message_id: str,
    date: str,
    thread: str,
) -> None:
    message["From"] = header_safe(from_address)
    message["To"] = ", ".join(mailbox_list(to))
    cc_list = mailbox_list(cc)
    if cc_list:
        message["Cc"] = ", ".join(cc_list)
    if reply_to is not None:
        message["Reply-To"] = reply_to
    message["Subject"] = subject_line(subject)
    message["Date"] = date
    message["Message-ID"] = header_safe(message_id)
    message["In-Reply-To"] = thread
    message["References"] = thread
    message["Auto-Submitted"] = "auto-generated"
