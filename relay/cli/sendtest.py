"""``relay send-test``: one real email and Slack message through the configured path."""

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
from relay.senders.smtp import classify_failure, envelope_sender
from relay.senders.smtp_pool import open_connection


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


async def send_email(settings: Settings, to: str) -> Result:
    smtp = settings.smtp
    if not smtp.host:
        return Result(
            f"email to {to}",
            False,
            f"NOT sent: [smtp] has no host, so deliveries go to {outbox_dir(settings)}/",
        )
    what = f"email to {to} via SMTP {smtp.host}:{smtp.effective_port} ({smtp.security})"
    client = open_connection(smtp)
    try:
        greeting = await client.connect()
        try:
            # Step by step rather than send_message, to print each reply with its code.
            mail = await client.mail(envelope_sender(smtp.from_address))
            rcpt = await client.rcpt(to)
            data = await client.data(test_email(settings, to).as_bytes(policy=SMTP))
        finally:
            try:
                await client.quit()
            except aiosmtplib.SMTPException:
                client.close()
    except (aiosmtplib.SMTPException, ssl.SSLError, OSError) as exc:
        return Result(what, False, classify_failure(exc).message)
    replies = (("greeting", greeting), ("MAIL", mail), ("RCPT", rcpt), ("DATA", data))
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


async def send_test_messages(settings: Settings, *, to: str, channel: str | None) -> list[Result]:
    try:
        to = check_address(to)
    except ValueError as exc:
        return [Result("email", False, f"--to: {exc}")]
    results = [await send_email(settings, to)]
    if channel is not None:
        results.append(await asyncio.to_thread(send_slack, settings, channel))
    return results
