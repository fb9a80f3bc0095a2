"""Post to Slack with slack-sdk's asyncio clients (chat.postMessage or an incoming webhook) and
sort failures."""

from __future__ import annotations

import json
import math
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from relay.config.settings import SlackSettings
from relay.model.content import Content, SlackContent
from relay.model.errors import (
    DeliveryConnectionError,
    PermanentDeliveryError,
    RateLimited,
    TransientDeliveryError,
)
from relay.senders.base import retry_after_seconds

# ok:false errors that say "try again later" rather than "this will never work".
TRANSIENT_API_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


DEFAULT_RETRY_AFTER = 1.0
# At most this much of a Slack answer is read; a real reply is a few hundred bytes.
MAX_ANSWER_BYTES = 64 * 1024


class AnswerTooLarge(aiohttp.ClientPayloadError):
    """An answer longer than ``MAX_ANSWER_BYTES``: not a Slack reply, and not read further."""


class BoundedResponse(aiohttp.ClientResponse):
    """An aiohttp response whose body (``read``, and so ``text`` and ``json``) is read up to
    ``MAX_ANSWER_BYTES`` and no further: slack-sdk reads whole answers into memory."""

    async def read(self) -> bytes:
        if self._body is None:
            declared = self.content_length
            if declared is not None and declared > MAX_ANSWER_BYTES:
                self.close()
                raise AnswerTooLarge(f"answer of {declared} bytes is over {MAX_ANSWER_BYTES}")
            body = bytearray()
            try:
                while len(body) <= MAX_ANSWER_BYTES:
                    chunk = await self.content.read(MAX_ANSWER_BYTES + 1 - len(body))
                    if not chunk:
                        break
                    body += chunk
            except BaseException:
                self.close()
                raise
            if len(body) > MAX_ANSWER_BYTES:
                self.close()
                raise AnswerTooLarge(f"answer is over {MAX_ANSWER_BYTES} bytes")
            self._body = bytes(body)
        return await super().read()


def _session(timeout: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout), response_class=BoundedResponse
    )


def _retry_after(headers: Any) -> float:
    for name in ("Retry-After", "retry-after"):
        value = headers.get(name) if headers else None
        if isinstance(value, list):
            value = value[0] if value else None
        if value is not None:
            return retry_after_seconds(str(value), default=DEFAULT_RETRY_AFTER)
    return DEFAULT_RETRY_AFTER


def _classify_http(status: int, error: str, headers: Any) -> Exception:
    if status == 429:
        seconds = _retry_after(headers)
        return RateLimited(f"Slack rate limit: retry after {seconds:g} s", retry_after=seconds)
    if status >= 500:
        return TransientDeliveryError(f"Slack answered HTTP {status}: {error}")
    if error in TRANSIENT_API_ERRORS:
        return TransientDeliveryError(f"Slack error: {error}")
    return PermanentDeliveryError(f"Slack refused the message: {error} (HTTP {status})")


def _from_api_error(exc: SlackApiError) -> Exception:
    """A Slack API reply (JSON with ``ok``) is sorted by its error; anything else by the HTTP
    status alone: a 200 whose body is not a Slack reply (an HTML page from a proxy, a cut
    body) says nothing about the message, so it is worth another try."""
    response = exc.response
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    status = status if isinstance(status, int) else 0
    headers = getattr(response, "headers", None)
    data = getattr(response, "data", None)
    if isinstance(data, dict) and "ok" in data:
        return _classify_http(status, str(data.get("error") or data), headers)
    if 200 <= status < 300:
        return TransientDeliveryError(f"Slack answered HTTP {status} without a Slack API reply")
    return _classify_http(status, "no Slack API reply", headers)


class SlackSender:
    """Uses the bot token when set, else the incoming-webhook URL. slack-sdk's own retries are
    switched off: the relay's worker owns retrying. The clients are asyncio ones, so the
    worker's deadline (``deadline_seconds``) cancels a send that is still going on."""

    def __init__(self, settings: SlackSettings) -> None:
        self.settings = settings
        self.deadline_seconds: float | None = settings.timeout_seconds
        # slack-sdk wants whole seconds; int() would turn 0.5 into 0 (no wait at all).
        self.timeout = max(math.ceil(settings.timeout_seconds), 1)  # given to slack-sdk
        if settings.token is None and settings.webhook_url is None:
            raise ValueError("SlackSender needs slack.token or slack.webhook_url")

    async def send(self, content: Content, *, delivery_id: int, skip: tuple[str, ...] = ()) -> None:
        if not isinstance(content, SlackContent):
            raise PermanentDeliveryError(f"Slack sender cannot send {type(content).__name__}")
        # A session per send whose responses read at most MAX_ANSWER_BYTES (slack-sdk's own
        # session would read any answer whole); slack-sdk leaves a session it is given open.
        async with _session(self.timeout) as session:
            await self._send(content, session)

    async def _send(self, content: SlackContent, session: aiohttp.ClientSession) -> None:
        settings = self.settings
        try:
            if settings.token is not None:
                if not content.channel:
                    raise PermanentDeliveryError(
                        "Slack action has no channel and no webhook is set"
                    )
                kwargs: dict[str, Any] = {"base_url": settings.api_url} if settings.api_url else {}
                client = AsyncWebClient(
                    token=settings.token.get_secret_value(),
                    timeout=self.timeout,
                    retry_handlers=[],
                    session=session,
                    **kwargs,
                )
                await client.chat_postMessage(
                    channel=content.channel, text=content.text, blocks=list(content.blocks)
                )
                return
            assert settings.webhook_url is not None
            webhook = AsyncWebhookClient(
                settings.webhook_url.get_secret_value(),
                timeout=self.timeout,
                retry_handlers=[],
                session=session,
            )
            response = await webhook.send(text=content.text, blocks=list(content.blocks))
        except AnswerTooLarge as exc:
            raise TransientDeliveryError(f"Slack answered with no Slack reply: {exc}") from None
        except SlackApiError as exc:
            raise _from_api_error(exc) from None
        except json.JSONDecodeError as exc:
            raise TransientDeliveryError(f"Slack answered with a non-JSON body: {exc}") from None
        except TimeoutError as exc:
            raise DeliveryConnectionError(f"Slack request timed out: {exc}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise DeliveryConnectionError(f"Slack connection failed: {exc}") from None
        if response.status_code != 200:
            raise _classify_http(response.status_code, response.body, response.headers)
