"""The senders of one running relay, built from the settings and keyed by ``sender_key``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relay.config.settings import (
    DestinationSettings,
    Settings,
    SlackSettings,
    SmtpSettings,
    TeamsSettings,
    WebhookDestination,
)
from relay.senders.archive import ArchiveSender
from relay.senders.base import WEBHOOK_TIMEOUT_SECONDS, Sender, SendResult
from relay.senders.outbox import OutboxSender

if TYPE_CHECKING:
    from relay.model.content import Content
    from relay.senders.smtp_pool import SmtpPools

# Each kind of sender is imported where the settings name a destination of that kind: the
# HTTP client (httpx), aiosmtplib, slack_sdk and aiohttp take ~15 MB of memory in every
# relay that imports them, and the built-in defaults use none of them (docs/benchmarks.md).


def sender_key(action: Mapping[str, Any]) -> str:
    """``type`` for the default destination of a type, ``type:NAME`` for a named one."""
    kind = str(action.get("type"))
    destination = action.get("destination")
    return f"{kind}:{destination}" if destination else kind


def outbox_path(settings: Settings) -> Path:
    return Path(settings.storage.state_dir) / "outbox"


def _slack_configured(slack: SlackSettings) -> bool:
    return slack.token is not None or slack.webhook_url is not None


class DeferredSender:
    """A sender built (and its module imported) on first use: the webhook sender of actions
    that give their own URL exists in every relay, and is used by few. Its deadline is given,
    so that reading it (the worker's claim-ahead rule, the lease check) builds nothing."""

    def __init__(self, build: Callable[[], Sender], deadline_seconds: float | None) -> None:
        self._build = build
        self.deadline_seconds = deadline_seconds
        self._sender: Sender | None = None
        self._lock = threading.Lock()

    @property
    def sender(self) -> Sender:
        with self._lock:
            if self._sender is None:
                self._sender = self._build()
            return self._sender

    async def send(
        self, content: Content, *, delivery_id: int, skip: tuple[str, ...] = ()
    ) -> SendResult | None:
        return await self.sender.send(content, delivery_id=delivery_id, skip=skip)


def _webhook_sender() -> Sender:
    from relay.senders.webhook import WebhookSender  # noqa: PLC0415 -- see the module's top

    return WebhookSender()


class SenderRegistry:
    """Builds the senders for each settings generation; owns what they share across reloads
    (the SMTP connection pools) and closes it when the relay stops."""

    def __init__(self) -> None:
        self._smtp_pools: SmtpPools | None = None

    @property
    def smtp_pools(self) -> SmtpPools:
        """The SMTP connection pools, made when the first SMTP sender is built."""
        if self._smtp_pools is None:
            from relay.senders.smtp_pool import SmtpPools  # noqa: PLC0415 -- see the top

            self._smtp_pools = SmtpPools()
        return self._smtp_pools

    def build(self, settings: Settings) -> dict[str, Sender]:
        """Senders by ``sender_key``: "email", "slack", "webhook", "archive", "teams" for the
        default destinations, "email:NAME", "slack:NAME", "webhook:NAME", "teams:NAME" (and
        "hubspot:NAME", "pipedrive:NAME", "freshdesk:NAME", "zendesk:NAME") for named ones.
        SMTP (or Microsoft Graph), Slack and Teams where configured; the local outbox directory
        for whatever is not."""
        outbox = OutboxSender(outbox_path(settings))

        def email(smtp: SmtpSettings) -> Sender:
            if smtp.transport == "graph":
                from relay.senders.graph import GraphSender  # noqa: PLC0415 -- see the top

                return GraphSender(smtp)
            if not smtp.host:
                return outbox
            from relay.senders.smtp import SmtpSender  # noqa: PLC0415 -- see the top

            pool_size = settings.delivery.concurrency
            return SmtpSender(smtp, pool_size=pool_size, pools=self.smtp_pools)

        def slack(config: SlackSettings) -> Sender:
            if not _slack_configured(config):
                return outbox
            from relay.senders.slack import SlackSender  # noqa: PLC0415 -- see the top

            return SlackSender(config)

        def teams(config: TeamsSettings) -> Sender:
            if config.webhook_url is None:
                return outbox
            from relay.senders.teams import TeamsSender  # noqa: PLC0415 -- see the top

            return TeamsSender(config)

        def webhook(destination: WebhookDestination) -> Sender:
            from relay.senders.webhook import WebhookSender  # noqa: PLC0415 -- see the top

            return WebhookSender(destination)

        def crm(named: DestinationSettings) -> dict[str, Sender]:
            if not (named.hubspot or named.pipedrive or named.freshdesk or named.zendesk):
                return {}
            from relay.senders.crm.registry import crm_senders  # noqa: PLC0415 -- see the top

            return crm_senders(named)

        named = settings.destinations
        return {
            "email": email(settings.smtp),
            "slack": slack(settings.slack),
            "webhook": DeferredSender(_webhook_sender, WEBHOOK_TIMEOUT_SECONDS),
            "archive": ArchiveSender(Path(settings.storage.state_dir)),
            **{f"email:{name}": email(smtp) for name, smtp in named.smtp.items()},
            **{f"slack:{name}": slack(config) for name, config in named.slack.items()},
            **{f"webhook:{name}": webhook(hook) for name, hook in named.webhook.items()},
            "teams": teams(settings.teams),
            **{f"teams:{name}": teams(config) for name, config in named.teams.items()},
            **crm(named),
        }

    async def close(self) -> None:
        """Close the shared SMTP connections (the relay is stopping)."""
        if self._smtp_pools is not None:
            await self._smtp_pools.close()
