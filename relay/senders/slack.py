"""Post to Slack with slack-sdk (chat.postMessage or an incoming webhook) and sort failures."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from relay.errors import (
    DeliveryConnectionError,
    PermanentDeliveryError,
    RateLimited,
    TransientDeliveryError,
)
from relay.senders.base import Content, SlackContent, retry_after_seconds
from relay.settings import SlackSettings

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


class SlackSender:
    """Uses the bot token when set, else the incoming-webhook URL. slack-sdk's own retries are
    switched off: the relay's worker owns retrying."""

    def __init__(self, settings: SlackSettings) -> None:
        self.settings = settings
        self._client: WebClient | None = None
        self._webhook: WebhookClient | None = None
        # slack-sdk wants whole seconds; int() would turn 0.5 into 0 (no wait at all).
        timeout = max(math.ceil(settings.timeout_seconds), 1)
        if settings.token is not None:
            kwargs: dict[str, Any] = {"base_url": settings.api_url} if settings.api_url else {}
            self._client = WebClient(
                token=settings.token.get_secret_value(),
                timeout=timeout,
                retry_handlers=[],
                **kwargs,
            )
        elif settings.webhook_url is not None:
            self._webhook = WebhookClient(
                settings.webhook_url.get_secret_value(), timeout=timeout, retry_handlers=[]
            )
        else:
            raise ValueError("SlackSender needs slack.token or slack.webhook_url")

    async def send(self, content: Content, *, delivery_id: int, skip: tuple[str, ...] = ()) -> None:
        if not isinstance(content, SlackContent):
            raise PermanentDeliveryError(f"Slack sender cannot send {type(content).__name__}")
        await asyncio.to_thread(self._send, content)

    def _send(self, content: SlackContent) -> None:
        try:
            if self._client is not None:
                if not content.channel:
                    raise PermanentDeliveryError(
                        "Slack action has no channel and no webhook is set"
                    )
                self._client.chat_postMessage(
                    channel=content.channel, text=content.text, blocks=list(content.blocks)
                )
                return
            assert self._webhook is not None
            response = self._webhook.send(text=content.text, blocks=list(content.blocks))
        except SlackApiError as exc:
            body = exc.response.data if isinstance(exc.response.data, dict) else {}
            error = str(body.get("error") or exc.response.data)
            raise _classify_http(exc.response.status_code, error, exc.response.headers) from None
        except json.JSONDecodeError as exc:
            raise TransientDeliveryError(f"Slack answered with a non-JSON body: {exc}") from None
        except TimeoutError as exc:
            raise DeliveryConnectionError(f"Slack request timed out: {exc}") from None
        except OSError as exc:  # urllib's URLError is an OSError
            raise DeliveryConnectionError(f"Slack connection failed: {exc}") from None
        if response.status_code != 200:
            raise _classify_http(response.status_code, response.body, response.headers)
