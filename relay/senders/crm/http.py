"""The HTTP client every CRM sender shares, and how an answer or a failure is sorted.

One table maps an HTTP status to the kind of failure and one maps an httpx exception; the
API's own error text (pulled out by each system's ``error_text``) goes into the message, so
`relay queue` shows what the system said. Credentials never appear in a message."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from relay.model.errors import (
    DeliveryError,
    PermanentDeliveryError,
    RateLimited,
    TransientDeliveryError,
)
from relay.senders.answers import HTTPX_ERRORS, Readable, request, transport_failure
from relay.senders.base import retry_after_seconds

USER_AGENT = "smartsupp-relay"
DEFAULT_RETRY_AFTER_SECONDS = 10.0
MAX_ERROR_TEXT = 300
# Search answers list objects: more room than other destinations' answers, still bounded.
MAX_CRM_ANSWER_BYTES = 1024 * 1024

# (first status, last status, failure kind): the first row that holds wins. 404 and 409 are
# permanent here; a sender that expects them (a deleted ticket) asks for them with ``allow``.
STATUS_TABLE: tuple[tuple[int, int, type[DeliveryError]], ...] = (
    (429, 429, RateLimited),
    (408, 408, TransientDeliveryError),
    (425, 425, TransientDeliveryError),
    (500, 599, TransientDeliveryError),
    (300, 499, PermanentDeliveryError),
)
# The first class in this order that a transport exception is an instance of.
ErrorText = Callable[[Any], str]


def failure_kind(status: int) -> type[DeliveryError] | None:
    """None for 2xx; otherwise the DeliveryError class ``STATUS_TABLE`` gives the status."""
    if 200 <= status < 300:
        return None
    for low, high, kind in STATUS_TABLE:
        if low <= status <= high:
            return kind
    return PermanentDeliveryError


def _clean(text: str) -> str:
    text = " ".join(text.split())
    return text[:MAX_ERROR_TEXT] + ("…" if len(text) > MAX_ERROR_TEXT else "")


def answer_text(response: Readable, error_text: ErrorText) -> str:
    """The API's own words about a failure: its error body as ``error_text`` reads it, or the
    start of the raw body."""
    try:
        said = error_text(response.json())
    except (ValueError, TypeError, KeyError, AttributeError, IndexError):
        said = response.text
    return _clean(said) if said and said.strip() else "(no error text)"


def classify(
    system: str,
    response: Readable,
    error_text: ErrorText,
    *,
    now: float,
    reset_header: str | None = None,
) -> DeliveryError | None:
    """None for 2xx, else the failure to raise: RateLimited with the server's Retry-After
    (or, without one, the seconds ``reset_header`` gives), transient or permanent."""
    kind = failure_kind(response.status_code)
    if kind is None:
        return None
    said = answer_text(response, error_text)
    message = f"{system} answered HTTP {response.status_code}: {said}"
    if kind is RateLimited:
        value = response.headers.get("retry-after")
        if value is None and reset_header is not None:
            value = response.headers.get(reset_header)
        seconds = retry_after_seconds(value, now, default=DEFAULT_RETRY_AFTER_SECONDS)
        return RateLimited(f"{message} (retry after {seconds:g} s)", retry_after=seconds)
    return kind(message)


class Api:
    """One system's base URL, authentication and error reading; ``call`` does one request
    on a client opened per send (connections never outlive the send's deadline)."""

    def __init__(
        self,
        system: str,
        base_url: str,
        *,
        error_text: ErrorText,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float,
        reset_header: str | None = None,
    ) -> None:
        self.system = system
        self.base_url = base_url
        self._error_text = error_text
        self._headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}
        self._params = dict(params or {})
        self._auth = auth
        self._timeout = timeout
        self._reset_header = reset_header

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url,
            headers=self._headers,
            params=self._params,
            auth=self._auth,
            timeout=self._timeout,
            follow_redirects=False,
        )

    async def call(
        self,
        client: httpx.AsyncClient,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
        allow: tuple[int, ...] = (),
    ) -> tuple[int, Any]:
        """(status, decoded JSON body or None); raises the sorted DeliveryError unless the
        answer is 2xx or a status in ``allow``."""
        try:
            response = await request(
                client, method, path, json=json, params=params, limit=MAX_CRM_ANSWER_BYTES
            )
        except HTTPX_ERRORS as exc:
            raise transport_failure(self.system, exc) from None
        if response.status_code not in allow:
            failure = classify(
                self.system,
                response,
                self._error_text,
                now=time.time(),
                reset_header=self._reset_header,
            )
            if failure is not None:
                raise failure
        if response.cut and response.status_code not in allow:
            raise TransientDeliveryError(
                f"{self.system} answered HTTP {response.status_code} with an answer over "
                f"{MAX_CRM_ANSWER_BYTES} bytes (not read further)"
            )
        if not response.content:
            return response.status_code, None
        try:
            return response.status_code, response.json()
        except ValueError:
            if response.status_code in allow:
                return response.status_code, None
            raise TransientDeliveryError(
                f"{self.system} answered HTTP {response.status_code} with a body that is no JSON"
            ) from None
