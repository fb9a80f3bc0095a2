"""The email's MIME tree built directly, with header objects parsed once per renderer."""

from __future__ import annotations

import binascii
import email.policy
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import EmailPolicy
from typing import Any


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


def text_payload(text: str, max_line_length: int) -> tuple[str, str]:
    """(Content-Transfer-Encoding, encoded body) for UTF-8 ``text``, chosen as
    ``email.contentmanager`` chooses them for a policy that allows 8bit: 7bit for short ASCII
    lines, 8bit for short lines with other characters, else quoted-printable or base64,
    whichever is shorter for the first ten lines (for SMTP's CRLF line ends). Quoted-printable
    comes from binascii (C), not the pure-Python quoprimime."""
    lines = text.encode("utf-8").splitlines()
    body = b"\n".join(lines) + b"\n"
    if max(map(len, lines), default=0) <= max_line_length:
        if body.isascii():
            return "7bit", body.decode("ascii")
        return "8bit", body.decode("ascii", "surrogateescape")
    sniff = b"\n".join(lines[:10]) + b"\n"
    if len(binascii.b2a_qp(sniff, istext=True)) > len(binascii.b2a_base64(sniff)):
        # As email.contentmanager: the policy's line ends inside the encoded body (so the
        # decoded text has CRLF, as the stdlib's has), 76-character lines.
        embedded = b"\r\n".join(lines) + b"\r\n"
        step = max_line_length // 4 * 3
        chunks = (embedded[i : i + step] for i in range(0, len(embedded), step))
        return "base64", "".join(binascii.b2a_base64(c).decode("ascii") for c in chunks)
    return "quoted-printable", binascii.b2a_qp(body, istext=True).decode("ascii")


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

    def header(self, name: str, value: str) -> Any:
        """The parsed header ``name: value``, made on first use."""
        key = (name, value)
        found = self._headers.get(key)
        if found is None:
            found = self._headers[key] = self.policy.header_factory(name, value)
            self.folded[id(found)] = len(self.policy.fold_binary(name, found))
        return found

    def message(self) -> EmailMessage:
        return EmailMessage(policy=self.policy)

    def text_part(self, text: str, subtype: str, filename: str | None = None) -> EmailMessage:
        cte, payload = text_payload(text, self.policy.max_line_length or 78)
        part = self.message()
        part["Content-Type"] = self.header("Content-Type", f'text/{subtype}; charset="utf-8"')
        part["Content-Transfer-Encoding"] = self.header("Content-Transfer-Encoding", cte)
        if filename is not None:
            disposition = f'attachment; filename="{filename}"'
            part["Content-Disposition"] = self.header("Content-Disposition", disposition)
        part.set_payload(payload)
        return part

    def multipart(self, message: EmailMessage, subtype: str, parts: list[EmailMessage]) -> None:
        """Make ``message`` a multipart/``subtype`` of ``parts`` (boundary chosen when sent)."""
        message["Content-Type"] = self.header("Content-Type", f"multipart/{subtype}")
        for part in parts:
            message.attach(part)

    def alternative(
        self, message: EmailMessage, text: str, html: str, attachment: str | None, filename: str
    ) -> None:
        """``message`` (its other headers set) as multipart/alternative of ``text`` and
        ``html``, or, with ``attachment``, multipart/mixed of that and the text file."""
        message["MIME-Version"] = self.header("MIME-Version", "1.0")
        parts = [self.text_part(text, "plain"), self.text_part(html, "html")]
        if attachment is None:
            self.multipart(message, "alternative", parts)
            return
        inner = self.message()
        self.multipart(inner, "alternative", parts)
        self.multipart(message, "mixed", [inner, self.text_part(attachment, "plain", filename)])
