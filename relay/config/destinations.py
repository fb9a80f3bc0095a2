"""Where each action's output really goes: a mail server, Slack, a URL, or the local outbox."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from relay.config.settings import Settings, SlackSettings, SmtpSettings
from relay.routing.crm_describe import SYSTEM_NAMES, host_of
from relay.routing.rules import (
    AnyAction,
    ArchiveAction,
    CrmAction,
    EmailAction,
    SlackAction,
    TeamsAction,
    WebhookAction,
)

Mode = Literal["live", "outbox", "mixed"]


@dataclass(frozen=True)
class Target:
    """One configured action and the place its deliveries end up."""

    where: str  # "rule 'x': actions.0" or "routing.fallback.0"
    action: str  # "email to sales@example.com"
    goes_to: str  # "SMTP smtp.example.com:587 (starttls)" / "outbox ./var/outbox (...)"
    outbox: bool


def outbox_dir(settings: Settings) -> Path:
    return Path(settings.storage.state_dir) / "outbox"


def _host_only(url: str) -> str:
    """Scheme, host and port of a URL: never its credentials, path or query."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or '?'}{port}"


def _smtp(smtp: SmtpSettings, section: str, outbox: Path) -> tuple[str, bool]:
    if smtp.transport == "graph":
        return (
            f"Microsoft Graph sendMail as {smtp.graph_sender} ({_host_only(smtp.graph_url)})",
            False,
        )
    if not smtp.host:
        return f"outbox {outbox}/ as .eml files, NOT sent ({section} has no host)", True
    login = f", login {smtp.username}" if smtp.username else ""
    if smtp.auth == "oauth2":
        mailbox = smtp.username or parseaddr(smtp.from_address)[1] or smtp.from_address
        login = f", XOAUTH2 as {mailbox}"
    return f"SMTP {smtp.host}:{smtp.effective_port} ({smtp.security}{login})", False


def _slack(slack: SlackSettings, section: str, outbox: Path) -> tuple[str, bool]:
    if slack.token is not None:
        return f"Slack chat.postMessage ({section} token)", False
    if slack.webhook_url is not None:
        return f"Slack incoming webhook {_host_only(slack.webhook_url.get_secret_value())}", False
    return (
        f"outbox {outbox}/ as .json files, NOT sent ({section} has no token or webhook_url)",
        True,
    )


def target(settings: Settings, where: str, action: AnyAction) -> Target:  # noqa: PLR0911 -- one per action type
    outbox = outbox_dir(settings)
    named = settings.destinations
    if isinstance(action, EmailAction):
        name = action.destination
        smtp = settings.smtp if name is None else named.smtp[name]
        goes_to, to_outbox = _smtp(
            smtp, "[smtp]" if name is None else f"[destinations.smtp.{name}]", outbox
        )
        return Target(where, f"email to {', '.join(action.to)}", goes_to, to_outbox)
    if isinstance(action, SlackAction):
        name = action.destination
        slack = settings.slack if name is None else named.slack[name]
        section = "[slack]" if name is None else f"[destinations.slack.{name}]"
        goes_to, to_outbox = _slack(slack, section, outbox)
        return Target(
            where, f"slack to {action.channel or '(webhook channel)'}", goes_to, to_outbox
        )
    if isinstance(action, WebhookAction):
        url = action.url if action.destination is None else named.webhook[action.destination].url
        via = "" if action.destination is None else f" (destination {action.destination!r})"
        return Target(where, "webhook", f"HTTP POST {_host_only(url or '')}{via}", False)
    if isinstance(action, TeamsAction):
        name = action.destination
        teams = settings.teams if name is None else named.teams[name]
        section = "[teams]" if name is None else f"[destinations.teams.{name}]"
        if teams.webhook_url is None:
            goes_to = f"outbox {outbox}/ as .json files, NOT sent ({section} has no webhook_url)"
            return Target(where, "teams card", goes_to, True)
        url = _host_only(teams.webhook_url.get_secret_value())
        return Target(where, "teams card", f"Teams Workflows webhook {url}", False)
    if isinstance(action, ArchiveAction):
        path = Path(settings.storage.state_dir) / action.path
        return Target(where, "archive", f"file {path}", False)
    if isinstance(action, CrmAction):
        named_crm: dict[str, dict[str, object]] = {
            "hubspot": dict(named.hubspot),
            "pipedrive": dict(named.pipedrive),
            "freshdesk": dict(named.freshdesk),
            "zendesk": dict(named.zendesk),
        }
        dest = named_crm[action.type][action.destination]
        url = str(getattr(dest, "api_url", ""))
        system = SYSTEM_NAMES[action.type]
        goes_to = f"{system} API {host_of(url)} (destination {action.destination!r})"
        return Target(where, action.type, goes_to, False)
    raise TypeError(f"unknown action {action!r}")  # pragma: no cover - the union is closed


def preset_notes(settings: Settings) -> list[str]:
    """One line per SMTP section whose ``provider`` filled in settings, naming them."""
    sections = [("[smtp]", settings.smtp)] + [
        (f"[destinations.smtp.{name}]", smtp) for name, smtp in settings.destinations.smtp.items()
    ]
    return [
        f'{section} provider = "{smtp.provider}" filled in: '
        + ", ".join(f"{key} = {value!r}" for key, value in smtp.preset_filled.items())
        for section, smtp in sections
        if smtp.preset_filled
    ]


def targets(settings: Settings) -> tuple[Target, ...]:
    return tuple(target(settings, where, action) for where, action in settings.actions_by_place())


def mode(found: tuple[Target, ...]) -> Mode:
    """``outbox``: nothing configured is really sent; ``mixed``: some of it; ``live``: all."""
    outboxed = sum(t.outbox for t in found)
    if outboxed == 0:
        return "live"
    return "outbox" if outboxed == len(found) else "mixed"
