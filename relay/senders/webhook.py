"""POST to an HTTP endpoint with httpx, sign the body (HMAC-SHA256) and sort failures."""

from __future__ import annotations

import hashlib
import hmac
import time
from functools import partial

import httpx

from relay.config.settings import WebhookDestination
from relay.model.content import Content, WebhookContent
from relay.model.errors import (
    PermanentDeliveryError,
    RateLimited,
    TransientDeliveryError,
)
from relay.model.urls import redact_text, redact_url
from relay.senders.answers import HTTPX_ERRORS, read_bounded, transport_failure
from relay.senders.base import WEBHOOK_TIMEOUT_SECONDS as DEFAULT_TIMEOUT_SECONDS
from relay.senders.base import retry_after_seconds as _retry_after_seconds

DEFAULT_RETRY_AFTER_SECONDS = 5.0
USER_AGENT = "smartsupp-relay"
# Retry-After as seconds or an HTTP date, with this sender's default.
retry_after_seconds = partial(_retry_after_seconds, default=DEFAULT_RETRY_AFTER_SECONDS)


def signature(secret: bytes, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 of the exact body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def _snippet(body: bytes) -> str:
    text = body[:200].decode("utf-8", "replace")
    text = redact_text(text.replace("\r", " ").replace("\n", " ").strip())
    return f": {text}" if text else ""


def classify_response(response: httpx.Response, now: float, body: bytes = b"") -> Exception | None:
    """None for 2xx; RateLimited for 429; transient for 408/425/5xx; permanent otherwise.
    ``body`` is what was read of the answer (bounded by ``answers.read_bounded``)."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    if status == 429:
        seconds = retry_after_seconds(response.headers.get("retry-after"), now)
        return RateLimited(f"webhook rate limit: retry after {seconds:g} s", retry_after=seconds)
    if status >= 500 or status in (408, 425):
        return TransientDeliveryError(f"webhook answered HTTP {status}{_snippet(body)}")
    if 300 <= status < 400:
        where = redact_url(response.headers.get("location", "?"))
        return PermanentDeliveryError(f"webhook redirects to {where} (not followed; fix the URL)")
    return PermanentDeliveryError(f"webhook refused the body: HTTP {status}{_snippet(body)}")


class WebhookSender:
    """One sender per named destination (URL, secret, headers, timeout), and one without a
    destination for actions that give their own ``url``. Each POST carries the delivery id in
    ``X-Relay-Delivery`` so the receiver can drop a repeat after a lost answer."""

    def __init__(self, destination: WebhookDestination | None = None) -> None:
        self.destination = destination
        # The whole request, from connecting to the last byte of the answer.
        self.deadline_seconds: float | None = (
            destination.timeout_seconds if destination else DEFAULT_TIMEOUT_SECONDS
        )

    async def send(self, content: Content, *, delivery_id: int, skip: tuple[str, ...] = ()) -> None:
        if not isinstance(content, WebhookContent):
            raise PermanentDeliveryError(f"webhook sender cannot send {type(content).__name__}")
        dest = self.destination
        url = content.url or (dest.url if dest else None)
        if url is None:
            raise PermanentDeliveryError("webhook action has no url and no destination")
        headers = {
            "User-Agent": USER_AGENT,
            **(dest.headers if dest else {}),
            "Content-Type": content.content_type,
            # Answers are read raw and bounded: no compressed answer to inflate.
            "Accept-Encoding": "identity",
            "X-Relay-Delivery": str(delivery_id),
        }
        if dest is not None and dest.secret is not None:
            secret = dest.secret.get_secret_value().encode()
            headers[dest.signature_header] = signature(secret, content.body)
        timeout = dest.timeout_seconds if dest else DEFAULT_TIMEOUT_SECONDS
        shown = redact_url(url)  # errors end up in logs, last_error and `relay queue`
        try:
            async with (
                httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client,
                client.stream("POST", url, content=content.body, headers=headers) as response,
            ):
                # A bounded part of a refusal, for its error text; a 2xx answer's body is
                # never read.
                ok = 200 <= response.status_code < 300
                body = b"" if ok else await read_bounded(response)
        except HTTPX_ERRORS as exc:
            raise transport_failure(f"webhook url {shown}", exc) from None
        failure = classify_response(response, time.time(), body)
        if failure is not None:
            raise failure
