"""OAuth2 access tokens (client-credentials grant) cached per sender, and the token endpoint's
failures sorted into transient and permanent."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from relay.model.errors import (
    DeliveryError,
    PermanentDeliveryError,
    RateLimited,
    TransientDeliveryError,
)
from relay.model.urls import redact_url
from relay.senders.answers import HTTPX_ERRORS, request, transport_failure
from relay.senders.base import retry_after_seconds

# RFC 6749 section 5.2 error codes that no retry can fix: the registration, the secret, the
# grant or the scope must change first.
PERMANENT_ERRORS = frozenset(
    {
        "invalid_client",
        "unauthorized_client",
        "invalid_grant",
        "invalid_scope",
        "invalid_request",
        "unsupported_grant_type",
    }
)
# Answers that say "later": Microsoft's identity platform and RFC 6749's authorization
# endpoint codes used by token endpoints too.
TRANSIENT_ERRORS = frozenset({"temporarily_unavailable", "server_error", "slow_down"})
# A token is renewed this long before the endpoint said it expires (a send in flight then
# never presents a token that lapses on the way), or at half its lifetime if that is shorter.
REFRESH_MARGIN_SECONDS = 300.0
DESCRIPTION_LIMIT = 500
DEFAULT_RETRY_AFTER = 5.0


@dataclass(frozen=True)
class ClientCredentials:
    """What the client-credentials grant (RFC 6749 section 4.4) posts to the token endpoint."""

    token_url: str
    client_id: str
    client_secret: str
    scope: str

    def form(self) -> dict[str, str]:
        return {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "scope": self.scope,
        }


class Grant(Protocol):
    """What a token request posts: the client-credentials grant or a signed JWT assertion."""

    @property
    def token_url(self) -> str: ...

    def form(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: float  # by the cache's clock
    refresh_at: float


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= DESCRIPTION_LIMIT else flat[: DESCRIPTION_LIMIT - 1] + "…"


def _json(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def token_failure(
    status: int, body: bytes, retry_after: str | None, *, now: float | None = None
) -> DeliveryError:
    """The token endpoint did not issue a token: permanent for the RFC 6749 errors that need a
    changed registration (quoting the endpoint's ``error_description``), transient for 5xx,
    408, ``temporarily_unavailable`` and answers that are no OAuth2 error; RateLimited for 429."""
    data = _json(body) or {}
    error = str(data.get("error") or "")
    description = _one_line(str(data.get("error_description") or ""))
    words = f"{error}: {description}" if error and description else error or description
    said = f" ({words})" if words else ""
    if status == 429:
        seconds = retry_after_seconds(retry_after, now, default=DEFAULT_RETRY_AFTER)
        return RateLimited(
            f"OAuth2 token endpoint rate limit: retry after {seconds:g} s{said}",
            retry_after=seconds,
        )
    if status >= 500 or status == 408 or error in TRANSIENT_ERRORS:
        return TransientDeliveryError(f"OAuth2 token endpoint answered HTTP {status}{said}")
    if error in PERMANENT_ERRORS or (400 <= status < 500 and error):
        return PermanentDeliveryError(f"OAuth2 token endpoint refused the client: {words}")
    if 400 <= status < 500:
        return PermanentDeliveryError(f"OAuth2 token endpoint refused with HTTP {status}")
    return TransientDeliveryError(f"OAuth2 token endpoint answered HTTP {status} without a token")


def parse_token(body: bytes, now: float) -> Token | None:
    """A token from a 200 answer (``access_token``, ``expires_in`` seconds); None when the body
    is no token answer (a proxy page, a cut body)."""
    data = _json(body)
    if data is None:
        return None
    value = data.get("access_token")
    if not isinstance(value, str) or not value:
        return None
    try:
        lifetime = float(data.get("expires_in", 3600))
    except (TypeError, ValueError):
        lifetime = 3600.0
    lifetime = max(lifetime, 0.0)
    margin = min(REFRESH_MARGIN_SECONDS, lifetime / 2)
    return Token(value, now + lifetime, now + lifetime - margin)


class TokenCache:
    """One client's access token: fetched on first use, reused until shortly before it
    expires, fetched again after ``invalidate`` (the server refused it). Concurrent callers
    share one request to the endpoint. Failures raise DeliveryError subclasses."""

    def __init__(
        self,
        credentials: Grant,
        *,
        timeout_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.credentials = credentials
        self._timeout = timeout_seconds
        self._clock = clock
        self._token: Token | None = None
        self._lock = asyncio.Lock()
        self.fetched = 0  # tokens issued to this cache so far (for logs and tests)

    async def token(self) -> str:
        token = self._token
        if token is not None and self._clock() < token.refresh_at:
            return token.value
        async with self._lock:
            token = self._token
            if token is None or self._clock() >= token.refresh_at:
                token = self._token = await self._fetch()
            return token.value

    def invalidate(self, value: str) -> None:
        """The server refused ``value``: the next ``token()`` fetches a new one (unless a
        concurrent caller already did)."""
        if self._token is not None and self._token.value == value:
            self._token = None

    async def _fetch(self) -> Token:
        url = self.credentials.token_url
        shown = redact_url(url)
        try:
            async with httpx.AsyncClient(timeout=self._timeout, follow_redirects=False) as client:
                response = await request(
                    client,
                    "POST",
                    url,
                    data=self.credentials.form(),
                    headers={"Accept": "application/json"},
                )
        except HTTPX_ERRORS as exc:
            raise transport_failure(f"OAuth2 token endpoint {shown}", exc) from None
        now = self._clock()
        if response.status_code == 200:
            token = parse_token(response.content, now)
            if token is not None:
                self.fetched += 1
                return token
        raise token_failure(
            response.status_code, response.content, response.headers.get("retry-after")
        )
