"""Send the rendered MIME message through Microsoft Graph ``POST /users/{id}/sendMail``."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from email.utils import getaddresses
from urllib.parse import quote

import httpx

from relay.config.settings import SmtpSettings
from relay.model.content import Content, EmailContent
from relay.model.errors import (
    DeliveryError,
    PermanentDeliveryError,
    RateLimited,
    TransientDeliveryError,
)
from relay.model.urls import redact_url
from relay.render.headers import UnsafeHeaders, flatten
from relay.senders.answers import HTTPX_ERRORS, Answer, request, transport_failure
from relay.senders.base import retry_after_seconds
from relay.senders.oauth2 import TokenCache
from relay.senders.smtp_oauth2 import token_cache

DEFAULT_RETRY_AFTER = 5.0
MESSAGE_LIMIT = 500


def graph_error(body: bytes) -> str:
    """``code: message`` from Graph's ``{"error": {"code", "message"}}``; "" otherwise."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return ""
    text = ": ".join(str(error[k]) for k in ("code", "message") if error.get(k))
    flat = " ".join(text.split())
    return flat if len(flat) <= MESSAGE_LIMIT else flat[: MESSAGE_LIMIT - 1] + "…"


def classify_graph(
    status: int, body: bytes, retry_after: str | None, *, now: float | None = None
) -> DeliveryError | None:
    """None for 2xx. 429 and 503 are RateLimited by their Retry-After (503 without one is
    transient); other 5xx, 408 transient; 4xx (a missing Mail.Send permission, an unknown
    mailbox, a refused message) permanent, with Graph's error code and message."""
    if 200 <= status < 300:
        return None
    words = graph_error(body)
    said = f": {words}" if words else ""
    if status == 429 or (status == 503 and retry_after):
        seconds = retry_after_seconds(retry_after, now, default=DEFAULT_RETRY_AFTER)
        return RateLimited(
            f"Microsoft Graph HTTP {status}, retry after {seconds:g} s{said}", retry_after=seconds
        )
    if status >= 500 or status == 408:
        return TransientDeliveryError(f"Microsoft Graph answered HTTP {status}{said}")
    return PermanentDeliveryError(f"Microsoft Graph refused the message: HTTP {status}{said}")


def mime_body(content: EmailContent, recipients: list[str]) -> bytes:
    """The message as sendMail takes MIME: base64 of the flattened message. Graph reads the
    recipients from the headers, so envelope-only recipients (bcc) get a Bcc header."""
    message = content.message
    shown = {
        address.lower()
        for _, address in getaddresses(
            [str(v) for k in ("To", "Cc") for v in message.get_all(k, [])]
        )
    }
    hidden = [r for r in recipients if r.lower() not in shown]
    utf8 = not "".join(recipients).isascii()
    data = flatten(message, utf8=utf8, eight_bit=False)
    if hidden:
        data = b"Bcc: " + ", ".join(hidden).encode() + b"\r\n" + data
    return base64.b64encode(data)


class GraphSender:
    """``[smtp] transport = "graph"``: one POST per message to
    ``{graph_url}/v1.0/users/{graph_sender}/sendMail`` with an application token
    (client-credentials grant, permission Mail.Send). A 401 drops the token and tries once
    more with a fresh one."""

    def __init__(
        self, settings: SmtpSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if settings.graph_sender is None:
            raise ValueError('transport = "graph" needs graph_sender')
        tokens = token_cache(settings, clock=clock)
        if tokens is None:
            raise ValueError('transport = "graph" needs auth = "oauth2"')
        self.settings = settings
        self.tokens: TokenCache = tokens
        self.url = (
            f"{settings.graph_url.rstrip('/')}/v1.0/users/"
            f"{quote(settings.graph_sender, safe='@')}/sendMail"
        )
        self.deadline_seconds: float | None = settings.timeout_seconds

    async def send(self, content: Content, *, delivery_id: int, skip: tuple[str, ...] = ()) -> None:
        if not isinstance(content, EmailContent):
            raise PermanentDeliveryError(f"Graph sender cannot send {type(content).__name__}")
        recipients = list(content.recipients)
        if not [r for r in recipients if r not in skip]:
            return
        try:
            body = mime_body(content, recipients)
        except UnsafeHeaders as exc:
            raise PermanentDeliveryError(f"email not sent, its headers are unsafe: {exc}") from None
        for attempt in (1, 2):
            token = await self.tokens.token()
            response = await self._post(token, body)
            if response.status_code == 401 and attempt == 1:
                self.tokens.invalidate(token)
                continue
            failure = classify_graph(
                response.status_code, response.content, response.headers.get("retry-after")
            )
            if failure is not None:
                raise failure
            return

    async def _post(self, token: str, body: bytes) -> Answer:
        shown = redact_url(self.url)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/plain"}
        try:
            async with httpx.AsyncClient(
                timeout=self.settings.timeout_seconds, follow_redirects=False
            ) as client:
                return await request(client, "POST", self.url, content=body, headers=headers)
        except HTTPX_ERRORS as exc:
            raise transport_failure(f"Microsoft Graph graph_url {shown}", exc) from None
