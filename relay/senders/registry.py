"""The senders of one running relay, built from the settings and keyed by ``sender_key``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from relay.config.settings import Settings, SlackSettings, SmtpSettings, TeamsSettings
from relay.senders.archive import ArchiveSender
from relay.senders.base import Sender
from relay.senders.crm.registry import crm_senders
from relay.senders.graph import GraphSender
from relay.senders.outbox import OutboxSender
from relay.senders.smtp import SmtpSender
from relay.senders.smtp_pool import SmtpPools
from relay.senders.teams import TeamsSender
from relay.senders.webhook import WebhookSender


def sender_key(action: Mapping[str, Any]) -> str:
    """``type`` for the default destination of a type, ``type:NAME`` for a named one."""
    kind = str(action.get("type"))
    destination = action.get("destination")
    return f"{kind}:{destination}" if destination else kind


def outbox_path(settings: Settings) -> Path:
    return Path(settings.storage.state_dir) / "outbox"


def _slack_configured(slack: SlackSettings) -> bool:
    return slack.token is not None or slack.webhook_url is not None


class SenderRegistry:
    """Builds the senders for each settings generation; owns what they share across reloads
    (the SMTP connection pools) and closes it when the relay stops."""

    def __init__(self) -> None:
        self.smtp_pools = SmtpPools()

    def build(self, settings: Settings) -> dict[str, Sender]:
        """Senders by ``sender_key``: "email", "slack", "webhook", "archive", "teams" for the
        default destinations, "email:NAME", "slack:NAME", "webhook:NAME", "teams:NAME" (and
        "hubspot:NAME", "pipedrive:NAME", "freshdesk:NAME", "zendesk:NAME") for named ones.
        SMTP (or Microsoft Graph), Slack and Teams where configured; the local outbox directory
        for whatever is not."""
        outbox = OutboxSender(outbox_path(settings))

        def email(smtp: SmtpSettings) -> Sender:
            if smtp.transport == "graph":
                return GraphSender(smtp)
            if not smtp.host:
                return outbox
            pool_size = settings.delivery.concurrency
            return SmtpSender(smtp, pool_size=pool_size, pools=self.smtp_pools)

        def slack(config: SlackSettings) -> Sender:
            if not _slack_configured(config):
                return outbox
            # slack_sdk's client and aiohttp (~9 MB resident) only where Slack is configured.
            from relay.senders.slack import SlackSender  # noqa: PLC0415

            return SlackSender(config)

        def teams(config: TeamsSettings) -> Sender:
            return TeamsSender(config) if config.webhook_url is not None else outbox

        named = settings.destinations
        return {
            "email": email(settings.smtp),
            "slack": slack(settings.slack),
            "webhook": WebhookSender(),
            "archive": ArchiveSender(Path(settings.storage.state_dir)),
            **{f"email:{name}": email(smtp) for name, smtp in named.smtp.items()},
            **{f"slack:{name}": slack(config) for name, config in named.slack.items()},
            **{f"webhook:{name}": WebhookSender(hook) for name, hook in named.webhook.items()},
            "teams": teams(settings.teams),
            **{f"teams:{name}": teams(config) for name, config in named.teams.items()},
            **crm_senders(named),
        }

    async def close(self) -> None:
        """Close the shared SMTP connections (the relay is stopping)."""
        await self.smtp_pools.close()
