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
        self._client: AsyncWebClient | None = None
        self._webhook: AsyncWebhookClient | None = None
        # slack-sdk wants whole seconds; int() would turn 0.5 into 0 (no wait at all).
        timeout = max(math.ceil(settings.timeout_seconds), 1)
        if settings.token is not None:
            kwargs: dict[str, Any] = {"base_url": settings.api_url} if settings.api_url else {}
            self._client = AsyncWebClient(
                token=settings.token.get_secret_value(),
                timeout=timeout,
                retry_handlers=[],
                **kwargs,
            )
        elif settings.webhook_url is not None:
            self._webhook = AsyncWebhookClient(
                settings.webhook_url.get_secret_value(), timeout=timeout, retry_handlers=[]
            )
        else:
            raise ValueError("SlackSender needs slack.token or slack.webhook_url")

    async def send(self, content: Content, *, delivery_id: int, skip: tuple[str, ...] = ()) -> None:
        if not isinstance(content, SlackContent):
            raise PermanentDeliveryError(f"Slack sender cannot send {type(content).__name__}")
        try:
            if self._client is not None:
                if not content.channel:
                    raise PermanentDeliveryError(
                        "Slack action has no channel and no webhook is set"
                    )
                await self._client.chat_postMessage(
                    channel=content.channel, text=content.text, blocks=list(content.blocks)
                )
                return
            assert self._webhook is not None
            response = await self._webhook.send(text=content.text, blocks=list(content.blocks))
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
