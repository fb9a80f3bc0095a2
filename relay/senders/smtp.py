"""Send email over SMTP with aiosmtplib and sort failures into transient and permanent."""

from __future__ import annotations

import contextlib
import functools
import re
import ssl
import time
from collections.abc import Callable
from email.utils import parseaddr

import aiosmtplib
from aiosmtplib.email import quote_address
from aiosmtplib.protocol import normalize_message_line_endings

from relay.config.settings import SmtpSettings
from relay.model.content import Content, EmailContent
from relay.model.errors import (
    DeliveryConnectionError,
    DeliveryError,
    DeliveryTimeout,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from relay.render.headers import UnsafeHeaders, email_bytes
from relay.senders.smtp_oauth2 import token_cache, xoauth2_login
from relay.senders.smtp_pool import Login, SmtpPool, SmtpPools


def envelope_sender(from_address: str) -> str:
    return parseaddr(from_address)[1] or from_address


def _reply(code: int, message: str) -> str:
    return f"{code} {message}".strip()


class SmtpSender:
    """Sends over persistent connections pooled per destination (``SmtpPools``);
    STARTTLS/implicit TLS and AUTH from settings."""

    # Sends an email's bytes: the render helper flattens and checks them (``EmailContent.flat``).
    sends_flat_email = True

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        pool_size: int = 4,
        pools: SmtpPools | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``pools``: shared with the other senders of a relay (a sender alone keeps its own)."""
        self.settings = settings
        self._pools = SmtpPools() if pools is None else pools
        self._sender = envelope_sender(settings.from_address)
        self._pool_size = pool_size
        # The whole transaction, from connecting or reusing a connection to the reply to DATA.
        self.deadline_seconds: float | None = settings.timeout_seconds
        # auth = "oauth2": this sender's access token, fetched and renewed as needed.
        self.tokens = token_cache(settings, clock=clock)
        self._login: Login | None = None
        if self.tokens is not None:
            user, tokens = settings.username or self._sender, self.tokens
            self._login = lambda client: xoauth2_login(client, user, tokens)

    @property
    def pool(self) -> SmtpPool:
        return self._pools.pool(self.settings, self._pool_size)

    async def _transmit(
        self, content: EmailContent, recipients: list[str]
    ) -> dict[str, aiosmtplib.SMTPResponse]:
        """Send over a pooled connection. Returns the recipients the server refused.

        What aiosmtplib's send_message does, except that the bytes sent are the ones
        ``flatten`` checked: SMTPUTF8 for non-ASCII addresses, 8BITMIME when offered."""

        async def transaction(client: aiosmtplib.SMTP) -> dict[str, aiosmtplib.SMTPResponse]:
            await _greet(client)
            utf8 = not (self._sender + "".join(recipients)).isascii()
            if utf8 and not client.supports_extension("smtputf8"):
                raise aiosmtplib.SMTPNotSupported("non-ASCII addresses need SMTPUTF8")
            eight_bit = client.supports_extension("8bitmime")
            options = ["SMTPUTF8"] * utf8 + ["BODY=8BITMIME"] * eight_bit
            # Flattened and checked by the render helper when made for these options.
            data = email_bytes(content, utf8=utf8, eight_bit=eight_bit)
            return await sendmail(client, self._sender, recipients, data, options)

        return await self.pool.run(transaction, self._login)

    async def send(self, content: Content, *, delivery_id: int, skip: tuple[str, ...] = ()) -> None:
        if not isinstance(content, EmailContent):
            raise PermanentDeliveryError(f"SMTP sender cannot send {type(content).__name__}")
        recipients = [r for r in content.recipients if r not in skip]
        if not recipients:
            return
        try:
            refused = await self._transmit(content, recipients)
        except DeliveryError:
            raise  # the OAuth2 token endpoint's failure, already sorted
        except (aiosmtplib.SMTPException, ssl.SSLError, OSError) as exc:
            raise classify_failure(exc) from None
        except UnsafeHeaders as exc:
            raise PermanentDeliveryError(f"email not sent, its headers are unsafe: {exc}") from None
        if refused:
            accepted = [r for r in recipients if r not in refused]
            raise _refused({r: (v.code, v.message) for r, v in refused.items()}, (*skip, *accepted))


async def sendmail(
    client: aiosmtplib.SMTP,
    sender: str,
    recipients: list[str],
    data: bytes,
    options: list[str],
) -> dict[str, aiosmtplib.SMTPResponse]:
    """What ``aiosmtplib.SMTP.sendmail`` does with a message of bytes on a greeted
    connection, for the recipients the server refused (all refused: SMTPRecipientsRefused):
    MAIL (with the message's SIZE where the server offers it), RCPT per recipient, DATA, and
    RSET after a refusal. Unlike sendmail it does not copy the whole message once more to
    count its SIZE, nor parse each address once more for every message (``envelope_path``),
    and it makes what DATA sends in one pass that leaves a message alone where it is already
    fit to send (``data_payload``).

    Its commands wait for their replies without a timeout of their own (each such timeout
    was a timer and a ``wait_for`` per reply): every caller of ``SmtpSender.send`` bounds
    the whole transaction with the sender's deadline (``deadline_seconds``: the worker and
    the follow-up digest through ``relay.senders.base.send_within_deadline``, `relay
    send-test` with the same value), which cancels it and closes the connection however the
    server stalls."""
    encoding = "utf-8" if "SMTPUTF8" in options else "ascii"
    payload, size = data_payload(data)
    if client.supports_extension("size"):
        options = [f"size={size}", *options]
    refused: list[aiosmtplib.SMTPRecipientRefused] = []
    try:
        words = [option.encode("ascii") for option in options]
        path = envelope_path(sender, encoding)
        reply = await client.execute_command(b"MAIL", b"FROM:" + path, *words, timeout=None)
        if reply.code != aiosmtplib.SMTPStatus.completed:
            raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, sender)
        for recipient in recipients:
            path = envelope_path(recipient, encoding)
            reply = await client.execute_command(b"RCPT", b"TO:" + path, timeout=None)
            if reply.code not in RCPT_ACCEPTED:
                refused.append(
                    aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, recipient)
                )
        if len(refused) == len(recipients):
            raise aiosmtplib.SMTPRecipientsRefused(refused)
        await _data(client, payload)
    except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused):
        # The envelope is reset, so the connection can take the next message.
        with contextlib.suppress(ConnectionError, aiosmtplib.SMTPResponseException):
            await client.rset()
        raise
    return {exc.recipient: aiosmtplib.SMTPResponse(exc.code, exc.message) for exc in refused}


# RCPT replies that accept the recipient (as aiosmtplib's SMTP.rcpt).
RCPT_ACCEPTED = (aiosmtplib.SMTPStatus.completed, aiosmtplib.SMTPStatus.will_forward)


@functools.lru_cache(maxsize=256)
def envelope_path(address: str, encoding: str) -> bytes:
    """``<address>`` as MAIL FROM and RCPT TO send it, made as aiosmtplib's SMTP.mail and
    SMTP.rcpt make it (``quote_address``: parsed, refused with ValueError if it holds a
    character unsafe on a command line), once per address: the same few every time."""
    return quote_address(address).encode(encoding)


async def _data(client: aiosmtplib.SMTP, payload: bytes) -> aiosmtplib.SMTPResponse:
    """DATA, then ``payload`` (``data_payload``: line ends, periods and the final line done),
    as ``aiosmtplib.SMTP.data`` sends a message: SMTPDataError unless the server answers 354,
    then 250; a connection lost meanwhile is closed (SMTPServerDisconnected)."""
    start = await client.execute_command(b"DATA", timeout=None)
    if start.code != aiosmtplib.SMTPStatus.start_input:
        raise aiosmtplib.SMTPDataError(start.code, start.message)
    protocol = client.protocol
    try:
        if protocol is None:
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        # Nothing awaited between the write and read_response, which expects the reply
        # before the loop can hand it over: it is never taken for unsolicited data.
        protocol.write(payload)
        response = await protocol.read_response(timeout=None)
    except aiosmtplib.SMTPServerDisconnected:
        client.close()
        raise
    if response.code != aiosmtplib.SMTPStatus.completed:
        raise aiosmtplib.SMTPDataError(response.code, response.message)
    return response


# A period at the start of a line, which DATA doubles (RFC 5321 4.5.2), as aiosmtplib does.
_LEADING_PERIOD = re.compile(rb"(?m)^\.")


def data_payload(data: bytes) -> tuple[bytes, int]:
    """What DATA sends for the message ``data``, and the message's SIZE (RFC 1870): the same
    bytes as aiosmtplib's ``execute_data_command`` makes of it (every line end a CRLF, the
    message ending in one, each line beginning with a period given a second one, then the
    line with the single period), and the length before the periods were doubled. Its two
    passes over the whole message are skipped where they would change nothing: the
    flattened emails end every line with a CRLF and seldom begin one with a period."""
    normal = _normalized(data)
    size = len(normal)
    if normal.startswith(b".") or b"\n." in normal:
        normal = _LEADING_PERIOD.sub(b"..", normal)
    return normal + b".\r\n", size


def _normalized(data: bytes) -> bytes:
    """``normalize_message_line_endings(data)``, without its copy when every CR and LF in
    ``data`` is already part of a CRLF."""
    pairs = data.count(b"\r\n")
    if data.count(b"\r") == pairs and data.count(b"\n") == pairs:
        return data if data.endswith(b"\r\n") else data + b"\r\n"
    return normalize_message_line_endings(data)


async def _greet(client: aiosmtplib.SMTP) -> None:
    """EHLO (HELO if refused) unless this connection has greeted already: the server's
    extensions decide how the message is flattened."""
    if client.is_ehlo_or_helo_needed:
        try:
            await client.ehlo()
        except aiosmtplib.SMTPHeloError:
            await client.helo()


def classify_failure(  # noqa: PLR0911 -- one return per failure class reads best
    exc: BaseException,
) -> TransientDeliveryError | PermanentDeliveryError:
    """Map an aiosmtplib/socket failure to transient (4xx, connection, timeout) or permanent
    (5xx, authentication, certificate verification, a missing extension the settings need)."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return _refused({r.recipient: (r.code, r.message) for r in exc.recipients}, ())
    if isinstance(exc, aiosmtplib.SMTPTimeoutError):
        return DeliveryTimeout(f"SMTP timeout: {exc}")
    if isinstance(exc, ssl.SSLCertVerificationError) or isinstance(
        exc.__cause__, ssl.SSLCertVerificationError
    ):
        return PermanentDeliveryError(f"TLS certificate verification failed: {exc}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        # Includes a refusing greeting (SMTPConnectResponseError): its code decides.
        reply = _reply(exc.code, exc.message)
        what = "authentication" if isinstance(exc, aiosmtplib.SMTPAuthenticationError) else None
        if 500 <= exc.code < 600:
            if what:
                return PermanentDeliveryError(f"SMTP authentication failed: {reply}")
            return PermanentDeliveryError(f"SMTP server refused: {reply}")
        return TransientDeliveryError(f"SMTP server deferred{' ' + what if what else ''}: {reply}")
    if isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected | OSError):
        return DeliveryConnectionError(f"SMTP connection failed: {exc}")
    if isinstance(exc, aiosmtplib.SMTPException):
        # STARTTLS or AUTH required by the settings but not offered: retrying cannot help.
        return PermanentDeliveryError(f"SMTP server cannot do what the settings require: {exc}")
    return TransientDeliveryError(f"SMTP error: {exc}")


def _refused(
    refused: dict[str, tuple[int, str]], done: tuple[str, ...]
) -> TransientDeliveryError | PermanentDeliveryError:
    """Some recipients were refused. Permanently refused ones count as done (retrying cannot
    help them); if any refusal was temporary, the delivery is retried for those only."""
    detail = "; ".join(f"{r}: {_reply(code, msg)}" for r, (code, msg) in sorted(refused.items()))
    temporary = [r for r, (code, _) in refused.items() if 400 <= code < 500]
    permanent = [r for r in refused if r not in temporary]
    if temporary:
        return TransientDeliveryError(f"recipients deferred: {detail}", done=(*done, *permanent))
    return PermanentDeliveryError(f"recipients refused: {detail}", done=done)
