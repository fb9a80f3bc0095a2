"""HTTP destinations' answers read only up to a bound, and their transport failures sorted."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from relay.model.errors import (
    DeliveryConnectionError,
    DeliveryError,
    DeliveryTimeout,
    PermanentDeliveryError,
    TransientDeliveryError,
)

# At most this much of an answer is read: enough for any error text or JSON reply a
# destination sends; an answer that goes on is cut there and never read further.
MAX_ANSWER_BYTES = 64 * 1024


# httpx's exceptions, most specific first: the kind of failure, and what is said after the
# destination's name. Only the exception's class is named: its text may quote the URL,
# and with a token in the query or a password in it, the URL is a secret.
TRANSPORT_FAILURES: tuple[tuple[type[Exception], type[DeliveryError], str], ...] = (
    (httpx.TimeoutException, DeliveryTimeout, "timed out: {name}"),
    (httpx.UnsupportedProtocol, PermanentDeliveryError, "is unusable: not an http(s) URL"),
    (httpx.InvalidURL, PermanentDeliveryError, "is unusable: not a valid URL"),
    (httpx.TransportError, DeliveryConnectionError, "connection failed: {name}"),
)


# What a sender catches around an httpx call (InvalidURL is not an HTTPError).
HTTPX_ERRORS = (httpx.HTTPError, httpx.InvalidURL)


def transport_failure(who: str, exc: Exception) -> DeliveryError:
    """The DeliveryError for an httpx exception; ``who`` names the destination as it may be
    shown (its URL redacted)."""
    for cls, kind, said in TRANSPORT_FAILURES:
        if isinstance(exc, cls):
            return kind(f"{who} " + said.format(name=type(exc).__name__))
    return TransientDeliveryError(f"{who} request failed: {type(exc).__name__}")


class Readable(Protocol):
    """What a failure table reads of an answer: an ``httpx.Response`` or an ``Answer``."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> httpx.Headers: ...

    @property
    def content(self) -> bytes: ...

    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...


@dataclass(frozen=True)
class Answer:
    """A status, the headers, and at most ``limit`` bytes of body (``cut`` when there was
    more). ``json()`` of a cut answer raises ValueError, as for any body that is not JSON."""

    status_code: int
    headers: httpx.Headers
    content: bytes
    cut: bool = False

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        if self.cut:
            raise ValueError(f"answer over {len(self.content)} bytes, not read to its end")
        return json.loads(self.content)


async def read_bounded(response: httpx.Response, limit: int = MAX_ANSWER_BYTES) -> bytes:
    """At most ``limit`` + 1 bytes of a streamed answer (one more than ``limit`` says there
    was more), however long it is or claims to be; the rest is never read: the connection
    is closed with the response."""
    body = bytearray()
    async for chunk in response.aiter_raw():
        body += chunk[: limit + 1 - len(body)]
        if len(body) > limit:
            break
    return bytes(body)


async def request(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    limit: int = MAX_ANSWER_BYTES,
    headers: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> Answer:
    """One request whose answer is read up to ``limit`` bytes. Answers are asked for
    uncompressed and read raw, so a small compressed answer cannot inflate past the bound.
    httpx's exceptions are left to the caller, for ``transport_failure``."""
    sent = {**(headers or {}), "Accept-Encoding": "identity"}
    async with client.stream(method, url, headers=sent, **kwargs) as response:
        body = await read_bounded(response, limit)
    return Answer(response.status_code, response.headers, body[:limit], cut=len(body) > limit)
