"""``relay send-test``: one real email, Slack message and Teams card through the configured
path (SMTP with a password or XOAUTH2, or Microsoft Graph)."""

from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

import aiosmtplib

from relay.config.addresses import check_address
from relay.config.destinations import outbox_dir
from relay.config.settings import Settings
from relay.model.content import EmailContent, TeamsContent
from relay.model.errors import DeliveryError
from relay.model.urls import redact_url
from relay.senders.base import send_within_deadline
from relay.senders.graph import GraphSender
from relay.senders.smtp import classify_failure, envelope_sender
from relay.senders.smtp_oauth2 import token_cache, xoauth2_login
from relay.senders.smtp_pool import open_connection
from relay.senders.teams import TeamsSender


@dataclass(frozen=True)
class Result:
    what: str  # "email to a@example.com via SMTP smtp.example.com:587"
    ok: bool
    answer: str  # what the server said, word for word


def test_email(settings: Settings, to: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.smtp.from_address
    message["To"] = to
    message["Subject"] = "relay test message"
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid("relay-test", domain=socket.getfqdn() or "localhost")
    message.set_content(
        "This is a test message sent by `relay send-test`.\n"
        "If you can read it, the relay's [smtp] settings work.\n"
    )
    return message


async def send_graph(settings: Settings, to: str) -> Result:
    smtp = settings.smtp
    what = f"email to {to} via Microsoft Graph sendMail as {smtp.graph_sender}"
    try:
        sender = GraphSender(smtp)
        content = EmailContent(test_email(settings, to), (to,))
        await send_within_deadline(sender, content, delivery_id=0)
    except DeliveryError as exc:  # its deadline passed (DeliveryTimeout) included
        return Result(what, False, exc.message)
    issued = f"token from {redact_url(sender.tokens.credentials.token_url)}"
    return Result(what, True, f"sendMail accepted the message (202); {issued}")


async def send_email(settings: Settings, to: str) -> Result:
    smtp = settings.smtp
    if smtp.transport == "graph":
        return await send_graph(settings, to)
    if not smtp.host:
        return Result(
            f"email to {to}",
            False,
            f"NOT sent: [smtp] has no host, so deliveries go to {outbox_dir(settings)}/",
        )
    what = f"email to {to} via SMTP {smtp.host}:{smtp.effective_port} ({smtp.security})"
    client = open_connection(smtp)
    tokens = token_cache(smtp)
    replies: list[tuple[str, aiosmtplib.SMTPResponse]] = []
    try:
        greeting = await client.connect()
        replies.append(("greeting", greeting))
        try:
            if tokens is not None:
                user = smtp.username or envelope_sender(smtp.from_address)
                replies.append(("AUTH XOAUTH2", await xoauth2_login(client, user, tokens)))
            # Step by step rather than send_message, to print each reply with its code.
            mail = await client.mail(envelope_sender(smtp.from_address))
            rcpt = await client.rcpt(to)
            data = await client.data(test_email(settings, to).as_bytes(policy=SMTP))
        finally:
            try:
                await client.quit()
            except aiosmtplib.SMTPException:
                client.close()
    except DeliveryError as exc:  # the OAuth2 token endpoint's answer
        return Result(what, False, exc.message)
    except (aiosmtplib.SMTPException, ssl.SSLError, OSError) as exc:
        return Result(what, False, classify_failure(exc).message)
    replies += [("MAIL", mail), ("RCPT", rcpt), ("DATA", data)]
    return Result(what, True, "; ".join(f"{step} {r.code} {r.message}" for step, r in replies))


def send_slack(settings: Settings, channel: str) -> Result:
    from slack_sdk import WebClient, WebhookClient  # noqa: PLC0415
    from slack_sdk.errors import SlackApiError  # noqa: PLC0415

    slack = settings.slack
    text = "relay test message: if you can read it, the relay's [slack] settings work."
    timeout = max(int(slack.timeout_seconds), 1)
    try:
        if slack.token is not None:
            client = WebClient(slack.token.get_secret_value(), timeout=timeout)
            if slack.api_url:
                client.base_url = slack.api_url
            data = client.chat_postMessage(channel=channel, text=text).data
            if not isinstance(data, dict):
                data = {"ok": None}
            answer = f"ok={data.get('ok')} channel={data.get('channel')} ts={data.get('ts')}"
            return Result(f"Slack message to {channel} (chat.postMessage)", True, answer)
        if slack.webhook_url is not None:
            hook = WebhookClient(slack.webhook_url.get_secret_value(), timeout=timeout)
            response = hook.send(text=text)
            ok = response.status_code == 200
            return Result(
                "Slack incoming webhook", ok, f"HTTP {response.status_code} {response.body}"
            )
    except SlackApiError as exc:
        return Result(f"Slack message to {channel}", False, f"Slack refused: {exc.response.data}")
    except OSError as exc:
        return Result(f"Slack message to {channel}", False, f"connection failed: {exc}")
    where = outbox_dir(settings)
    answer = f"NOT sent: [slack] has no token or webhook_url, so deliveries go to {where}/"
    return Result(f"Slack message to {channel}", False, answer)


async def check_crm(settings: Settings) -> list[Result]:
    """One read-only request per CRM and help desk destination, with its credential: what
    `relay send-test --crm` prints. Nothing is created."""
    from relay.model.errors import DeliveryError  # noqa: PLC0415
    from relay.senders.crm.registry import crm_probes  # noqa: PLC0415

    results = []
    for key, probe in crm_probes(settings.destinations).items():
        kind, _, name = key.partition(":")
        what = f"{kind} destination {name!r}"
        try:
            answer = await probe()
        except DeliveryError as exc:
            results.append(Result(what, False, exc.message))
        else:
            results.append(Result(what, "NOT accepted" not in answer, answer))
    if not results:
        results.append(Result("CRM destinations", False, "none configured"))
    return results


TEST_CARD = {
    "type": "AdaptiveCard",
    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
    "version": "1.4",
    "body": [
        {
            "type": "RichTextBlock",
            "inlines": [
                {
                    "type": "TextRun",
                    "text": "relay test message: if you can read it, the relay's [teams] "
                    "settings work.",
                }
            ],
        }
    ],
}


async def send_teams(settings: Settings) -> Result:
    teams = settings.teams
    if teams.webhook_url is None:
        where = outbox_dir(settings)
        answer = f"NOT sent: [teams] has no webhook_url, so deliveries go to {where}/"
        return Result("Teams card", False, answer)
    what = "Teams card via the Workflows webhook"
    try:
        sender = TeamsSender(teams)
        content = TeamsContent(TEST_CARD)
        await send_within_deadline(sender, content, delivery_id=0)
    except DeliveryError as exc:  # its deadline passed (DeliveryTimeout) included
        return Result(what, False, exc.message)
    return Result(what, True, "the webhook accepted the card")


async def send_test_messages(
    settings: Settings, *, to: str, channel: str | None, teams: bool = False
) -> list[Result]:
    try:
        to = check_address(to)
    except ValueError as exc:
        return [Result("email", False, f"--to: {exc}")]
    results = [await send_email(settings, to)]
    if channel is not None:
        results.append(await asyncio.to_thread(send_slack, settings, channel))
    if teams:
        results.append(await send_teams(settings))
    return results
