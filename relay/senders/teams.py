"""Post Adaptive Cards to a Microsoft Teams Workflows webhook with httpx and sort failures."""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import httpx

from relay.config.settings import TeamsSettings
from relay.model.content import Content, TeamsContent
from relay.model.errors import (
    DeliveryError,
    PermanentDeliveryError,
    RateLimited,
    TransientDeliveryError,
)
from relay.senders.answers import HTTPX_ERRORS, Readable, request, transport_failure
from relay.senders.base import retry_after_seconds

DEFAULT_RETRY_AFTER = 1.0
SNIPPET = 200


def _where(url: str) -> str:
    """Scheme and host only: the path and query of a Workflows URL are its credential."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}"


def _snippet(response: Readable) -> str:
    text = " ".join(response.text[:SNIPPET].split())
    return f": {text}" if text else ""


def classify_teams(response: Readable, now: float) -> DeliveryError | None:
    """As for Slack: 2xx sent (Workflows answers 202), 429 RateLimited by Retry-After, 5xx,
    408 and 425 transient, anything else (a deleted flow, a malformed card) permanent."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    if status == 429:
        seconds = retry_after_seconds(
            response.headers.get("retry-after"), now, default=DEFAULT_RETRY_AFTER
        )
        return RateLimited(f"Teams rate limit: retry after {seconds:g} s", retry_after=seconds)
    if status >= 500 or status in (408, 425):
        return TransientDeliveryError(f"Teams answered HTTP {status}{_snippet(response)}")
    return PermanentDeliveryError(f"Teams refused the card: HTTP {status}{_snippet(response)}")


class TeamsSender:
    """One POST of ``{"type": "message", "attachments": [card]}`` per delivery."""

    def __init__(self, settings: TeamsSettings) -> None:
        if settings.webhook_url is None:
            raise ValueError("TeamsSender needs teams.webhook_url")
        self._url = settings.webhook_url.get_secret_value()
        self._timeout = settings.timeout_seconds
        self.deadline_seconds: float | None = settings.timeout_seconds

    async def send(self, content: Content, *, delivery_id: int, skip: tuple[str, ...] = ()) -> None:
        if not isinstance(content, TeamsContent):
            raise PermanentDeliveryError(f"Teams sender cannot send {type(content).__name__}")
        body = json.dumps(content.body(), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "smartsupp-relay"}
        shown = _where(self._url)
        try:
            async with httpx.AsyncClient(timeout=self._timeout, follow_redirects=False) as client:
                response = await request(client, "POST", self._url, content=body, headers=headers)
        except HTTPX_ERRORS as exc:
            raise transport_failure(f"Teams webhook_url {shown}", exc) from None
        failure = classify_teams(response, time.time())
        if failure is not None:
            raise failure
