"""The email's MIME tree built directly, with header objects parsed once per renderer, and
its bytes written directly from the same parts (``Draft``), as BytesGenerator writes them."""

from __future__ import annotations

import binascii
import email.policy
import re
import secrets
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime
from typing import Any, NamedTuple

from relay.render.headers import UNSENT_HEADERS, fields_problem, header_addresses


class CachedRegistry(HeaderRegistry):
    """The standard header registry, with each header class made once: the stdlib makes a
    new class on every lookup (``HeaderRegistry.__getitem__``), which is most of the cost of
    setting a header."""

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        found = self._classes.get(key)
        if found is None:
            found = self._classes[key] = super().__getitem__(name)
        return found

    def __reduce__(self) -> tuple[type[CachedRegistry], tuple[()]]:
        # The made classes cannot be pickled (render pool results): a copy starts empty.
        return (CachedRegistry, ())


def smtp_policy() -> EmailPolicy[EmailMessage]:
    """``email.policy.SMTP`` with a header registry of its own (CachedRegistry)."""
    return email.policy.SMTP.clone(header_factory=CachedRegistry())


def text_payload(
    text: str,
    max_line_length: int,
    qp_lines: dict[bytes, bytes] | None = None,
    qp_long_lines: dict[bytes, bytes] | None = None,
) -> tuple[str, str]:
    """(Content-Transfer-Encoding, encoded body) for UTF-8 ``text``, chosen as
    ``email.contentmanager`` chooses them for a policy that allows 8bit: 7bit for short ASCII
    lines, 8bit for short lines with other characters, else quoted-printable or base64,
    whichever is shorter for the first ten lines (for SMTP's CRLF line ends). Quoted-printable
    comes from binascii (C), not the pure-Python quoprimime.

    ``qp_lines``: quoted-printable lines already encoded, by line (``qp_line``): an email's
    HTML is mostly its template's lines, the same in every email, and encoding it was the
    larger part of this function's time; ``qp_long_lines``: the same for longer lines
    (``qp_line``), such as an HTML template's lines with their CSS inlined."""
    lines = text.encode("utf-8").splitlines()
    if max(map(len, lines), default=0) <= max_line_length:
        body = b"\n".join(lines) + b"\n"
        if body.isascii():
            return "7bit", body.decode("ascii")
        return "8bit", body.decode("ascii", "surrogateescape")
    if qp_lines is None:
        sniff = b"\n".join(lines[:10]) + b"\n"
        if len(binascii.b2a_qp(sniff, istext=True)) > len(binascii.b2a_base64(sniff)):
            return "base64", _base64_body(lines, max_line_length)
        body = b"\n".join(lines) + b"\n"
        return "quoted-printable", binascii.b2a_qp(body, istext=True).decode("ascii")
    # Most lines were encoded before: looked up here, without a call per line (an
    # encoded line is never empty: it ends with its LF). The first ten decide as the sniff
    # above: their encodings joined are the sniff's encoding (``qp_line``), and base64 makes
    # 4 characters of every 3 bytes (or part of them) and a newline.
    known = qp_lines.get
    encoded = [known(line) or qp_line(line, qp_lines, qp_long_lines) for line in lines[:10]]
    sniffed = sum(map(len, lines[:10])) + len(lines[:10])
    if sum(map(len, encoded)) > (sniffed + 2) // 3 * 4 + 1:
        return "base64", _base64_body(lines, max_line_length)
    encoded += [known(line) or qp_line(line, qp_lines, qp_long_lines) for line in lines[10:]]
    return "quoted-printable", b"".join(encoded).decode("ascii")


def _base64_body(lines: list[bytes], max_line_length: int) -> str:
    """As email.contentmanager: the policy's line ends inside the encoded body (so the
    decoded text has CRLF, as the stdlib's has), 76-character lines."""
    embedded = b"\r\n".join(lines) + b"\r\n"
    step = max_line_length // 4 * 3
    chunks = (embedded[i : i + step] for i in range(0, len(embedded), step))
    return "".join(binascii.b2a_base64(c).decode("ascii") for c in chunks)


# Quoted-printable lines a MimeBuilder keeps (a few emails' worth of template lines; the
# conversations' own lines come and go): QP_LINES_KEPT lines of at most QP_LINE_KEPT_LONGEST
# bytes, and QP_LONG_LINES_KEPT longer ones of at most QP_LONG_LINE_KEPT_LONGEST bytes (an
# HTML template's lines with their CSS inlined: a few hundred bytes each, the same in every
# email). A longer line is encoded every time, so that a conversation of long distinct lines
# cannot make the kept lines grow to QP_LINES_KEPT times their length. At most ~3 MB.
QP_LINES_KEPT = 2048
QP_LINE_KEPT_LONGEST = 256
QP_LONG_LINES_KEPT = 64
QP_LONG_LINE_KEPT_LONGEST = 4096


def qp_line(
    line: bytes, known: dict[bytes, bytes], long_known: dict[bytes, bytes] | None = None
) -> bytes:
    """``binascii.b2a_qp(line + b"\n", istext=True)`` for a ``line`` without CR or LF, from
    ``known`` when it was encoded before (a line longer than ``QP_LINE_KEPT_LONGEST`` is
    neither looked up nor kept there, but in ``long_known`` when given, up to
    ``QP_LONG_LINE_KEPT_LONGEST``). Quoted-printable encodes each line on its own (a
    line's soft breaks and its trailing white space depend on that line only), so the
    lines' encodings joined are the encoding of the lines joined."""
    if len(line) > QP_LINE_KEPT_LONGEST:
        if long_known is None or len(line) > QP_LONG_LINE_KEPT_LONGEST:
            return binascii.b2a_qp(line + b"\n", istext=True)
        known, kept = long_known, QP_LONG_LINES_KEPT
    else:
        kept = QP_LINES_KEPT
    encoded = known.get(line)
    if encoded is None:
        if len(known) >= kept:
            known.clear()
        encoded = known[line] = binascii.b2a_qp(line + b"\n", istext=True)
    return encoded


class MimeBuilder:
    """Makes an email's parts. Header values that repeat from email to email (content types,
    encodings, the configured From and recipients) are parsed once and reused: header objects
    are immutable."""

    def __init__(self) -> None:
        self.policy = smtp_policy()
        self._headers: dict[tuple[str, str], Any] = {}
        # The folded length of each header object made here, by identity (they live as long
        # as this builder, so an identity is never reused): renderer.flattened_size.
        self.folded: dict[int, int] = {}
        # The same headers' folded bytes, and their addresses (for the check of the bytes).
        self._folded_bytes: dict[int, bytes] = {}
        self._addresses: dict[int, list[str]] = {}
        # A multipart's Content-Type with a placeholder boundary, folded (``boundary_header``).
        self._boundary_headers: dict[str, bytes] = {}
        self._qp_lines: dict[bytes, bytes] = {}  # ``text_payload``'s encoded lines
        self._qp_long_lines: dict[bytes, bytes] = {}  # and its longer ones
        # The last Date folded (``_date_fold``): its second and UTC offset, and its bytes.
        self._last_date: tuple[tuple[datetime, timedelta | None], bytes | None] | None = None

    def header(self, name: str, value: str) -> Any:
        """The parsed header ``name: value``, made on first use."""
        key = (name, value)
        found = self._headers.get(key)
        if found is None:
            found = self._headers[key] = self.policy.header_factory(name, value)
            folded = self._folded_bytes[id(found)] = self.policy.fold_binary(name, found)
            self.folded[id(found)] = len(folded)
            self._addresses[id(found)] = header_addresses(found)
        return found

    def fold(self, name: str, value: Any) -> bytes:
        """``name: value`` folded as BytesGenerator writes it (``field``)."""
        return self.field(name, value)[1]

    def field(self, name: str, value: Any) -> tuple[Any, bytes]:
        """``name: value`` folded as BytesGenerator writes it with ``email.policy.SMTP``
        (``value``: a header object, a string or a datetime, as ``EmailMessage`` takes them),
        with the value to set on a message object: a shared header object's bytes from the
        cache; the values ``direct_fold`` writes as the stdlib writes them (the value as it
        is); anything else parsed (the header object) and folded by the stdlib, which raises
        ValueError for a value with a line break, as ``EmailMessage`` does when it is set.
        Whether the bytes are safe is checked in ``Draft.flat``."""
        cached = self._folded_bytes.get(id(value))
        if cached is not None:
            return value, cached
        if name == "Date" and isinstance(value, datetime):
            direct = self._date_fold(value)
        else:
            direct = direct_fold(name, value)
        if direct is not None:
            return value, direct
        header = self.parsed(name, value)
        return header, self.policy.fold_binary(name, header)

    def _date_fold(self, value: datetime) -> bytes | None:
        """``direct_fold("Date", value)``, remembered for the last second seen (the emails
        made in one second share it): ``format_datetime`` writes the local date and time to
        the second and the UTC offset, nothing else of the datetime."""
        key = (value.replace(microsecond=0, tzinfo=None), value.utcoffset())
        last = self._last_date
        if last is not None and last[0] == key:
            return last[1]
        folded = direct_fold("Date", value)
        self._last_date = (key, folded)
        return folded

    def parsed(self, name: str, value: Any) -> Any:
        """``value`` as the header object ``EmailMessage`` would store for it."""
        if isinstance(getattr(value, "name", None), str):
            return value
        return self.policy.header_store_parse(name, value)[1]

    def addresses(self, header: Any) -> list[str]:
        """The addresses of a parsed address header, lower-cased (as ``header_problem``)."""
        known = self._addresses.get(id(header))
        return known if known is not None else header_addresses(header)

    def boundary_header(self, subtype: str, boundary: str) -> bytes:
        """``Content-Type: multipart/subtype; boundary="..."`` folded as ``Message.set_boundary``
        and BytesGenerator make it. Every boundary made here has the same length and kinds of
        characters (``new_boundary``), so the header is folded once per subtype, with a
        placeholder, and the boundary put in its place."""
        folded = self._boundary_headers.get(subtype)
        if folded is None:
            value = f'multipart/{subtype}; boundary="{PLACEHOLDER_BOUNDARY}"'
            folded = self.fold("Content-Type", value)
            if unsafe_fold(folded) or folded.count(PLACEHOLDER_BOUNDARY.encode("ascii")) != 1:
                raise ValueError("the placeholder boundary was folded apart")
            self._boundary_headers[subtype] = folded
        if len(boundary) != len(PLACEHOLDER_BOUNDARY):
            raise ValueError(f"a boundary of another length: {boundary!r}")
        return folded.replace(PLACEHOLDER_BOUNDARY.encode("ascii"), boundary.encode("ascii"))

    def message(self) -> EmailMessage:
        return EmailMessage(policy=self.policy)

    def text_part(self, text: str, subtype: str, filename: str | None = None) -> EmailMessage:
        return self.encoded_part(self.encoded(text, subtype, filename))

    def encoded(self, text: str, subtype: str, filename: str | None = None) -> Encoded:
        """A text part's header objects and its encoded body (``text_payload``)."""
        cte, payload = text_payload(
            text, self.policy.max_line_length or 78, self._qp_lines, self._qp_long_lines
        )
        headers = [
            ("Content-Type", self.header("Content-Type", f'text/{subtype}; charset="utf-8"')),
            ("Content-Transfer-Encoding", self.header("Content-Transfer-Encoding", cte)),
        ]
        if filename is not None:
            disposition = f'attachment; filename="{filename}"'
            headers.append(("Content-Disposition", self.header("Content-Disposition", disposition)))
        return Encoded(tuple(headers), payload)

    def encoded_part(self, encoded: Encoded) -> EmailMessage:
        part = self.message()
        for name, header in encoded.headers:
            part[name] = header
        part.set_payload(encoded.payload)
        return part

    def multipart(self, message: EmailMessage, subtype: str, parts: list[EmailMessage]) -> None:
        """Make ``message`` a multipart/``subtype`` of ``parts`` (boundary chosen when sent)."""
        message["Content-Type"] = self.header("Content-Type", f"multipart/{subtype}")
        for part in parts:
            message.attach(part)

    def draft(
        self,
        headers: Sequence[tuple[str, Any]],
        text: str,
        html: str,
        attachment: str | None,
        filename: str,
    ) -> Draft:
        """The email made from ``headers`` (name and value, in order, as ``EmailMessage``
        takes them) and these texts, before it is a message object: multipart/alternative
        of ``text`` and ``html``, or, with ``attachment``, multipart/mixed of that and the
        text file."""
        return Draft(self, headers, text=text, html=html, attachment=attachment, filename=filename)


# BytesGenerator's boundaries: 15 "=", a random number of 19 digits, "==".
_BOUNDARY_DIGITS = len(repr(sys.maxsize - 1))
PLACEHOLDER_BOUNDARY = "=" * 15 + "0" * _BOUNDARY_DIGITS + "=="
# Room the size estimate gives each boundary line (generous: boundaries are 36 characters).
BOUNDARY_BYTES = 128
LINESEP = b"\r\n"
# A line end in a folded header that does not continue it (what BytesGenerator refuses on
# interpreters with ``verify_generated_headers``): a new header line, or a bare CR or LF.
_NEW_LINE = re.compile(rb"\r\n(?![ \t])|\r(?!\n)|(?<!\r)\n")
# Values written as they are, when they fit on the header's line (``direct_fold``).
# Words of at most 60 characters: every word fits on a line of its own after a space.
_WORDS = re.compile(r"[!-~]{1,60}(?: [!-~]{1,60})*", re.ASCII)
_SPACE = re.compile("( )")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9'_-]*(?: [A-Za-z0-9][A-Za-z0-9'_-]*)*", re.ASCII)
_PLAIN_USER = re.compile(r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*", re.ASCII)
_PLAIN_DOMAIN = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*", re.ASCII)
_MESSAGE_ID = re.compile(r"<[\w-]+(?:\.[\w-]+)*@[\w-]+(?:\.[\w-]+)*>", re.ASCII)
# Headers the stdlib's registry parses as unstructured text.
_UNSTRUCTURED = frozenset(
    ("subject", "in-reply-to", "references", "auto-submitted", "x-auto-response-suppress")
)
_MAX_LINE = 78  # email.policy.SMTP's max_line_length


def new_boundary() -> str:
    """A boundary as BytesGenerator makes one (``Generator._make_boundary``)."""
    return "=" * 15 + f"{secrets.randbelow(sys.maxsize):0{_BOUNDARY_DIGITS}d}" + "=="


def unsafe_fold(folded: bytes) -> bool:
    """Whether a folded header has a line end that does not continue it, or none at its end
    (what BytesGenerator refuses on interpreters with ``verify_generated_headers``)."""
    if not folded.endswith(LINESEP):
        return True
    end = len(folded) - 2
    if folded.find(b"\r", 0, end) < 0 and folded.find(b"\n", 0, end) < 0:
        return False  # one line (most headers): nothing the search below could find
    return _NEW_LINE.search(folded, 0, end) is not None


def direct_fold(name: str, value: Any) -> bytes | None:
    """``name: value`` as the stdlib folds it, without parsing, or None where that takes
    the stdlib: a Date from a datetime (``DateHeader``: ``format_datetime``, one short
    line); a plain ``<id@domain>`` Message-ID and a plain ``Name <user@domain>`` Reply-To
    address that fit on their line; printable ASCII words, single-spaced, without
    encoded-word syntax, of an unstructured header, folded at spaces as
    ``_refold_parse_tree`` folds them (``_fold_words``)."""
    lowered = name.lower()
    text: str | None = None
    if isinstance(value, datetime):
        text = format_datetime(value) if lowered == "date" else None
    elif isinstance(value, Address):
        text = _plain_address(value) if lowered == "reply-to" else None
    elif isinstance(value, str) and "=?" not in value:
        if lowered in _UNSTRUCTURED and _WORDS.fullmatch(value):
            return _fold_words(name, value)
        text = value if lowered == "message-id" and _MESSAGE_ID.fullmatch(value) else None
    if text is None or len(name) + 2 + len(text) > _MAX_LINE:
        return None
    return f"{name}: {text}\r\n".encode("ascii")


def _plain_address(address: Address) -> str | None:
    """``str(address)`` when it is a display name of plain words (or none) and a plain
    ``user@domain``: the text the stdlib parses back to the same address and writes as it
    is when it fits on its line."""
    name, username, domain = address.display_name, address.username, address.domain
    if not _PLAIN_USER.fullmatch(username) or not _PLAIN_DOMAIN.fullmatch(domain):
        return None
    if not name:
        return f"{username}@{domain}"
    if not _PLAIN_NAME.fullmatch(name):
        return None
    return f"{name} <{username}@{domain}>"


def _fold_words(name: str, value: str) -> bytes | None:
    """An unstructured header of ``_WORDS`` folded as ``_refold_parse_tree`` folds it: on
    one line if it fits; else the whole value on a line of its own after the name if it
    fits there; else word by word, each word that does not fit starting a new line with
    the space before it."""
    head = f"{name}: "
    if len(value) <= _MAX_LINE - len(head):
        return f"{head}{value}\r\n".encode("ascii")
    if len(value) + 1 <= _MAX_LINE:
        return f"{name}:\r\n {value}\r\n".encode("ascii")
    lines = [head]
    for piece in _SPACE.split(value):  # the words and the single spaces between them
        if len(piece) <= _MAX_LINE - len(lines[-1]):
            lines[-1] += piece
            continue
        space = " " if lines[-1].endswith(" ") else ""  # moved to the new line
        if space:
            lines[-1] = lines[-1][:-1]
        elif not piece.isspace():
            return None  # not a case this writes: the stdlib folds it
        lines.append(space + piece)
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


class Encoded(NamedTuple):
    """A text part: its header objects (name, object) and its encoded body."""

    headers: tuple[tuple[str, Any], ...]
    payload: str


class Draft:
    """One email's headers and encoded parts, from which both the message object
    (``message``) and the bytes to send (``flat``) are made: the bytes directly, as
    BytesGenerator writes the message with ``email.policy.SMTP`` (8-bit bodies, no
    SMTPUTF8), without building and walking the message. The size estimate (``size``) is
    ``renderer.flattened_size`` of the message, without making it."""

    __slots__ = ("_builder", "_folded", "_parts", "headers", "message_id")

    def __init__(
        self,
        builder: MimeBuilder,
        headers: Sequence[tuple[str, Any]],
        *,
        text: str,
        html: str,
        attachment: str | None,
        filename: str,
    ) -> None:
        self._builder = builder
        fields: list[tuple[str, Any]] = []
        self._folded: list[bytes] = []
        for name, given in [*headers, ("MIME-Version", builder.header("MIME-Version", "1.0"))]:
            # Address headers as header objects (their addresses are checked in the bytes),
            # but for a plain Reply-To address, written directly (``direct_fold``).
            parsed = given
            if name.lower() in _ADDRESS_FIELDS and not isinstance(given, Address):
                parsed = builder.parsed(name, given)
            value, folded = builder.field(name, parsed)
            fields.append((name, value))
            self._folded.append(folded)
        self.headers = tuple(fields)
        parts = [builder.encoded(text, "plain"), builder.encoded(html, "html")]
        if attachment is not None:
            parts.append(builder.encoded(attachment, "plain", filename))
        self._parts = tuple(parts)
        self.message_id = self._message_id()

    def _message_id(self) -> str:
        """The Message-ID header's value as the message object gives it ("" without one)."""
        for name, value in self.headers:
            if name.lower() == "message-id":
                if isinstance(value, str) and _MESSAGE_ID.fullmatch(value):
                    return value
                return str(self._builder.parsed(name, value))
        return ""

    def message(self) -> EmailMessage:
        """The message object: multipart/alternative of the text and HTML parts, or
        multipart/mixed of that and the attached text file."""
        builder = self._builder
        message = builder.message()
        for name, value in self.headers:
            message[name] = value
        text, html, *attached = (builder.encoded_part(part) for part in self._parts)
        if not attached:
            builder.multipart(message, "alternative", [text, html])
            return message
        inner = builder.message()
        builder.multipart(inner, "alternative", [text, html])
        builder.multipart(message, "mixed", [inner, attached[0]])
        return message

    def size(self) -> int:
        """``renderer.flattened_size(self.message(), builder.folded)``: at least the length
        of the bytes sent, the same for the message object and for ``flat``."""
        fold = self._builder.fold
        parts = [self._part_size(part) for part in self._parts]
        alternative = sum(parts[:2]) + 4 * BOUNDARY_BYTES
        size = sum(map(len, self._folded)) + 2
        if len(parts) == 2:
            return size + len(fold("Content-Type", self._multipart("alternative"))) + alternative
        inner = len(fold("Content-Type", self._multipart("alternative"))) + 2 + alternative
        mixed = inner + parts[2] + 4 * BOUNDARY_BYTES
        return size + len(fold("Content-Type", self._multipart("mixed"))) + mixed

    def _multipart(self, subtype: str) -> Any:
        return self._builder.header("Content-Type", f"multipart/{subtype}")

    def _part_size(self, part: Encoded) -> int:
        fold = self._builder.fold
        size = sum(len(fold(name, header)) for name, header in part.headers) + 2
        # Each line end becomes CRLF; a last line without one gets one.
        body = part.payload
        return size + len(body.encode("utf-8", "surrogateescape")) + body.count("\n") + 2

    def flat(self) -> bytes | None:
        """The bytes BytesGenerator makes of ``message()`` with ``email.policy.SMTP`` (but
        for the random boundaries), checked as ``headers.flatten`` checks its bytes; None
        if the check fails (the message object is then flattened and refused as before)."""
        builder = self._builder
        names = [name.lower() for name, _ in self.headers]
        if any(name.lower() in names for name in UNSENT_HEADERS):
            return None
        if any(map(unsafe_fold, self._folded)):
            return None
        try:
            text, html, *attached = map(self._part_bytes, self._parts)
            alternative, inner = self._multipart_body([text, html])
            if attached:
                nested = builder.boundary_header("alternative", alternative) + LINESEP + inner
                outer, body = self._multipart_body([nested, attached[0]])
                content_type = builder.boundary_header("mixed", outer)
            else:
                content_type, body = builder.boundary_header("alternative", alternative), inner
        except ValueError:
            return None
        data = b"".join(self._folded) + content_type + LINESEP + body
        addresses = {
            name.lower(): (
                [value.addr_spec.lower()]
                if isinstance(value, Address)
                else builder.addresses(value)
            )
            for name, value in self.headers
            if name.lower() in _ADDRESS_FIELDS
        }
        if fields_problem([*names, "content-type"], addresses, data) is not None:
            return None
        return data

    def _part_bytes(self, part: Encoded) -> bytes:
        fold = self._builder.fold
        head = b"".join(fold(name, header) for name, header in part.headers)
        # BytesGenerator writes each line with CRLF; the payload's line ends are LF only.
        body = part.payload.encode("ascii", "surrogateescape").replace(b"\n", LINESEP)
        return head + LINESEP + body

    @staticmethod
    def _multipart_body(parts: list[bytes]) -> tuple[str, bytes]:
        """(boundary, body) of a multipart of ``parts``, as ``Generator._handle_multipart``
        writes it; the boundary appears in none of the parts."""
        joined = LINESEP.join(parts)
        boundary = new_boundary()
        while b"--" + boundary.encode("ascii") in joined:
            boundary = new_boundary()
        delimiter = b"--" + boundary.encode("ascii")
        between = LINESEP + delimiter + LINESEP
        body = delimiter + LINESEP + between.join(parts) + LINESEP + delimiter + b"--" + LINESEP
        return boundary, body


_ADDRESS_FIELDS = frozenset(("from", "to", "cc", "reply-to"))
