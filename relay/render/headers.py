"""Email headers: CR/LF-free values, parsed addresses, the Date and the thread references;
the flattened bytes checked to carry exactly the headers that were set."""

from __future__ import annotations

import copy
import email.policy
import functools
import io
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from email.errors import HeaderParseError, MessageError
from email.generator import BytesGenerator
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr
from typing import TYPE_CHECKING, Any

from relay.render.view import clip, one_line

if TYPE_CHECKING:
    from relay.model.content import EmailContent

SUBJECT_LIMIT = 120
_ADDRESS_SPECIALS = re.compile(r'[()<>\[\]:;@\\,"]')
FALLBACK_DOMAIN = "relay.invalid"


# Bidirectional overrides and isolates can make a header read backwards ("gpj.exe" shown as
# "exe.jpg"); headers have no use for them.
# header_safe drops them with the control characters and DEL.
_DROPPED = re.compile("[\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069]")
DISPLAY_NAME_LIMIT = 78
# "=?" opens an RFC 2047 encoded word. CPython's email package decodes encoded words in header
# values it is given and, before 3.11.10/3.12.5 (CVE-2024-6923), writes the decoded CR/LF out
# as real line breaks: "=?utf-8?q?x=0D=0ABcc:_a@evil.test?=" becomes a Bcc header.
ENCODED_WORD_START = "=?"
ENCODED_WORD_BROKEN = "= ?"
# Headers never transmitted (aiosmtplib's send_message drops them the same way).
UNSENT_HEADERS = ("Bcc", "Resent-Bcc")
ADDRESS_HEADERS = ("from", "to", "cc", "reply-to")
_FIELD_LINE = re.compile(rb"([!-9;-~]+):")


class UnsafeHeaders(ValueError):
    """The flattened message does not carry exactly the headers that were set on it."""


def header_safe(value: str | None) -> str:
    """One line: CR, LF and every other whitespace run collapsed; control characters and
    bidirectional overrides dropped; encoded-word syntax broken up ("=?" as "= ?"), so that
    the text is shown as written and never decoded into something else."""
    text = _DROPPED.sub("", one_line(value))
    # Last: dropping characters above could join "=" and "?" into a new encoded-word start.
    return text.replace(ENCODED_WORD_START, ENCODED_WORD_BROKEN)


def display_name(name: str | None) -> str:
    """A visitor's name as a display name without RFC 5322 specials. Quoting would be enough
    in theory, but folding a long quoted name can drop the quotes (CPython's email package),
    and "Eve, x <a@evil.test>" would then parse as more addresses than the visitor's. Nor
    does it start with ".": folded without its quotes, such a name is a phrase CPython's own
    parser fails on (AttributeError or TypeError reading the header back)."""
    words = " ".join(_ADDRESS_SPECIALS.sub(" ", header_safe(name)).split())
    return clip(words.lstrip(". "), DISPLAY_NAME_LIMIT)


def subject_line(text: str) -> str:
    """One safe line of at most SUBJECT_LIMIT characters, cut at a word with "…"."""
    line = header_safe(text)
    if len(line) <= SUBJECT_LIMIT:
        return line
    cut = line[: SUBJECT_LIMIT - 1]
    word_end = cut.rfind(" ")
    if word_end >= SUBJECT_LIMIT // 2:
        cut = cut[:word_end]
    return cut.rstrip(" ,;:-\u2013\u2014") + "…"


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


def thread_references(sent: Iterable[str]) -> list[str]:
    """The Message-IDs of earlier sent emails, oldest first, as References lists them: only
    well-formed ``<...>`` ids on one line, each once (the newest is In-Reply-To)."""
    found: dict[str, None] = {}
    for value in sent:
        text = header_safe(value)
        if text.startswith("<") and text.endswith(">") and " " not in text and "@" in text:
            found.setdefault(text, None)
    return list(found)


def header_fields(
    *,
    from_address: str,
    to: Iterable[str],
    cc: Iterable[str],
    reply_to: Address | None,
    subject: str,
    message_id: str,
    date: datetime,
    references: Iterable[str] = (),
    parsed: Callable[[str, str], Any] | None = None,
) -> list[tuple[str, Any]]:
    """An email's headers (name and value as ``EmailMessage`` takes them), in order.
    ``references``: the Message-IDs of the emails about this visitor that were actually
    sent, oldest first; none for a first email (no thread to join). ``parsed`` gives the
    header object for a value that is the same in every email (From, recipients, the fixed
    headers), parsed once by its owner (``MimeBuilder.header``)."""

    def same(name: str, value: str) -> Any:
        return value if parsed is None else parsed(name, value)

    fields: list[tuple[str, Any]] = [
        ("From", same("From", header_safe(from_address))),
        ("To", same("To", ", ".join(mailbox_list(to)))),
    ]
    cc_list = mailbox_list(cc)
    if cc_list:
        fields.append(("Cc", same("Cc", ", ".join(cc_list))))
    if reply_to is not None:
        fields.append(("Reply-To", reply_to))
    fields.append(("Subject", subject_line(subject)))
    fields.append(("Date", date))
    fields.append(("Message-ID", header_safe(message_id)))
    thread = thread_references(references)
    if thread:
        fields.append(("In-Reply-To", thread[-1]))
        fields.append(("References", " ".join(thread)))
    fields.append(("Auto-Submitted", same("Auto-Submitted", "auto-generated")))
    # Exchange/Outlook: no out-of-office or other automatic answers to this message.
    fields.append(("X-Auto-Response-Suppress", same("X-Auto-Response-Suppress", "All")))
    return fields


def flatten(message: EmailMessage, *, utf8: bool = False, eight_bit: bool = True) -> bytes:
    """The bytes to transmit (CRLF line ends; SMTPUTF8 headers with ``utf8``; 7-bit bodies
    without ``eight_bit``), as aiosmtplib's send_message would make them, after checking
    that they carry exactly the headers set on ``message``, in order, with the same
    addresses. Raises UnsafeHeaders otherwise: a header value turned into more or fewer
    lines when flattened (CVE-2024-6923 on the interpreters it affects)."""
    policy = email.policy.SMTPUTF8 if utf8 else email.policy.SMTP
    if not eight_bit:
        policy = policy.clone(cte_type="7bit")
    outgoing = copy.copy(message)
    for name in UNSENT_HEADERS:
        del outgoing[name]
    buffer = io.BytesIO()
    try:
        BytesGenerator(buffer, policy=policy).flatten(outgoing)
    except MessageError as exc:  # HeaderWriteError on interpreters with the fix
        raise UnsafeHeaders(f"a header cannot be written safely: {exc}") from None
    data = buffer.getvalue()
    problem = header_problem(outgoing, data, utf8=utf8)
    if problem:
        raise UnsafeHeaders(problem)
    return data


def email_bytes(content: EmailContent, *, utf8: bool = False, eight_bit: bool = True) -> bytes:
    """The bytes to send ``content`` with these options: those the render helper wrote and
    checked for them already (``EmailContent.flat_for``), else its message flattened and
    checked here (``flatten``; UnsafeHeaders when it cannot be written safely)."""
    found = content.flat_for(utf8=utf8, eight_bit=eight_bit)
    if found is not None:
        return found
    return flatten(content.message, utf8=utf8, eight_bit=eight_bit)


def header_problem(message: EmailMessage, data: bytes, *, utf8: bool = False) -> str | None:
    """None if the header block of ``data`` has exactly ``message``'s header fields (names in
    order, addresses of From/To/Cc/Reply-To); else what differs (``fields_problem``)."""
    wanted = [name.lower() for name in message]
    addresses = {
        name: header_addresses(message[name]) for name in ADDRESS_HEADERS if name in wanted
    }
    return fields_problem(wanted, addresses, data, utf8=utf8)


def fields_problem(
    wanted: list[str], addresses: Mapping[str, list[str]], data: bytes, *, utf8: bool = False
) -> str | None:
    """None if the header block of ``data`` has exactly the header fields ``wanted`` (lower
    case, in order) and, for each address header among them, the ``addresses`` given
    (lower case); else what differs. The addresses are read from the bytes as
    ``BytesHeaderParser`` reads them (each field's first occurrence, its lines joined by the
    policy's ``header_source_parse``), each field's text parsed once per process
    (``_sent_addresses``: From and To repeat from email to email). ``utf8``: the bytes are
    sent with SMTPUTF8, so a reader takes 8-bit header bytes as UTF-8 (an address such as
    ``prodej@příklad.cz``); without it they are read as BytesHeaderParser reads them."""
    block, blank, _ = data.partition(b"\r\n\r\n")
    if not blank:
        return "no empty line ends the headers"
    names: list[str] = []
    fields: dict[str, list[bytes]] = {}  # each address header's first occurrence, its lines
    current: list[bytes] | None = None
    for line in block.split(b"\r\n"):
        if b"\r" in line or b"\n" in line:
            return "a bare CR or LF in the headers"
        if line[:1] in (b" ", b"\t") and names:
            if current is not None:
                current.append(line)
            continue  # a folded continuation of the field before
        field = _FIELD_LINE.match(line)
        if field is None:
            return f"a header line that is no field: {line[:60]!r}"
        name = field.group(1).decode("ascii").lower()
        names.append(name)
        current = None
        if name in ADDRESS_HEADERS and name not in fields:
            current = fields[name] = [line]
    if names != wanted:
        return f"header fields {names} where {wanted} were set"
    for name in ADDRESS_HEADERS:
        if name in wanted:
            problem = _address_problem(name, b"\r\n".join(fields[name]), addresses, utf8)
            if problem is not None:
                return problem
    return None


def _address_problem(
    name: str, field: bytes, addresses: Mapping[str, list[str]], utf8: bool
) -> str | None:
    try:
        sent = _sent_addresses(field, utf8)
    except Exception:  # CPython's parser fails on some folds (a quoted ".x" unquoted)
        return f"the {name} addresses cannot be read back"
    if list(sent) != addresses.get(name):
        return f"the {name} addresses changed when flattened"
    return None


@functools.lru_cache(maxsize=256)
def _sent_addresses(field: bytes, utf8: bool = False) -> tuple[str, ...]:
    """The addresses a reader of the flattened field finds, as ``BytesHeaderParser`` with
    the default policy reads it (ASCII with surrogate escapes, lines joined, then parsed);
    ``utf8``: UTF-8 (an SMTPUTF8 message's headers), any other byte still a surrogate."""
    text = field.decode("utf-8" if utf8 else "ascii", "surrogateescape")
    lines = [line + "\r\n" for line in text.split("\r\n")]
    policy = email.policy.default
    name, value = policy.header_source_parse(lines)
    return tuple(header_addresses(policy.header_fetch_parse(name, value)))


def header_addresses(header: object) -> list[str]:
    """The addresses of a parsed address header, lower-cased ([] for any other)."""
    return [str(address.addr_spec).lower() for address in getattr(header, "addresses", ())]
