"""Each sender's own failures, against real loopback servers: a server that accepts and never
answers (the sender's own timeout, not the worker's deadline), a server without SMTPUTF8, a
Slack answer too long to be a reply or not JSON, a rate limit without Retry-After, and
content or settings a sender cannot use. Each failure is sorted transient or permanent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import pytest

from relay.config.settings import SlackSettings, SmtpSettings, TeamsSettings, WebhookDestination
from relay.model.content import Content, EmailContent, SlackContent, TeamsContent, WebhookContent
from relay.model.errors import (
    DeliveryTimeout,
    PermanentDeliveryError,
    RateLimited,
    TransientDeliveryError,
)
from relay.senders.slack import MAX_ANSWER_BYTES, SlackSender
from relay.senders.smtp import SmtpSender
from relay.senders.smtp_pool import SmtpPools
from relay.senders.teams import TeamsSender
from relay.senders.webhook import WebhookSender
from tests.support.silent import SilentServer
from tests.support.slack import FakeSlack, Reply
from tests.support.smtp import RecordingHandler, SmtpServer

SLACK_POST = SlackContent(channel="#sales", text="A missed chat", blocks=())


def email(*recipients: str) -> EmailContent:
    """A message to ``recipients`` (the envelope); its To header names the team."""
    message = EmailMessage()
    message["From"] = "relay@shop.test"
    message["To"] = "team@shop.test"
    message["Subject"] = "A missed chat"
    message["Message-ID"] = "<1@shop.test>"
    message.set_content("Hello")
    return EmailContent(message, recipients)


@pytest.fixture
async def pools() -> AsyncIterator[SmtpPools]:
    shared = SmtpPools()
    yield shared
    await shared.close()


def smtp_sender(port: int, pools: SmtpPools, timeout: float = 30.0) -> SmtpSender:
    settings = SmtpSettings(host="127.0.0.1", port=port, timeout_seconds=timeout)
    return SmtpSender(settings, pools=pools)


async def test_an_smtp_server_that_never_greets_times_out_transiently(pools: SmtpPools) -> None:
    with SilentServer() as silent:
        sender = smtp_sender(silent.port, pools, timeout=0.5)
        with pytest.raises(DeliveryTimeout, match=r"^SMTP timeout: "):
            await sender.send(email("sales@shop.test"), delivery_id=1)


async def test_a_webhook_that_never_answers_times_out_transiently() -> None:
    with SilentServer() as silent:
        url = silent.url("/hook")
        sender = WebhookSender(WebhookDestination(url=url, timeout_seconds=0.5))
        with pytest.raises(
            DeliveryTimeout,
            match=r"^webhook url http://127\.0\.0\.1:\d+/hook timed out: ReadTimeout$",
        ):
            await sender.send(WebhookContent(url=None, body=b"{}"), delivery_id=1)


async def test_a_slack_webhook_that_never_answers_fails_transiently() -> None:
    with SilentServer() as silent:
        settings = SlackSettings(webhook_url=silent.url("/services/T/B/x"), timeout_seconds=0.5)
        with pytest.raises(TransientDeliveryError, match=r"^Slack request timed out"):
            await SlackSender(settings).send(SLACK_POST, delivery_id=1)


async def test_a_non_ascii_address_without_smtputf8_is_refused_permanently(
    pools: SmtpPools,
) -> None:
    server = SmtpServer(RecordingHandler(), enable_SMTPUTF8=False)
    server.start()
    try:
        sender = smtp_sender(server.port, pools)
        with pytest.raises(PermanentDeliveryError) as refused:
            await sender.send(email("jana@příklad.cz"), delivery_id=1)
    finally:
        server.stop()
    assert refused.value.message == (
        "SMTP server cannot do what the settings require: non-ASCII addresses need SMTPUTF8"
    )
    assert server.handler.attempts == 0


async def test_recipients_all_done_already_are_not_sent_again(
    smtp_server: SmtpServer, pools: SmtpPools
) -> None:
    sender = smtp_sender(smtp_server.port, pools)
    await sender.send(email("a@shop.test", "b@shop.test"), delivery_id=1, skip=("b@shop.test",))
    await sender.send(email("a@shop.test"), delivery_id=1, skip=("a@shop.test",))
    [only] = smtp_server.handler.wait_for(1)
    assert only.rcpt_tos == ["a@shop.test"]
    assert smtp_server.handler.attempts == 1


@pytest.fixture
def slack_api(fake_slack: FakeSlack) -> SlackSender:
    return SlackSender(SlackSettings(token="xoxb-test", api_url=fake_slack.url))


async def test_a_slack_answer_declared_too_long_is_not_read_and_retried(
    fake_slack: FakeSlack, slack_api: SlackSender
) -> None:
    fake_slack.replies = [Reply(body="x" * (MAX_ANSWER_BYTES + 1))]
    with pytest.raises(TransientDeliveryError) as failed:
        await slack_api.send(SLACK_POST, delivery_id=1)
    assert not isinstance(failed.value, PermanentDeliveryError)
    assert failed.value.message == (
        f"Slack answered with no Slack reply: answer of {MAX_ANSWER_BYTES + 1} bytes is over"
        f" {MAX_ANSWER_BYTES}"
    )


async def test_a_slack_rate_limit_without_retry_after_waits_the_default(
    fake_slack: FakeSlack, slack_api: SlackSender
) -> None:
    fake_slack.replies = [Reply(status=429, body={"ok": False, "error": "ratelimited"})]
    with pytest.raises(RateLimited) as limited:
        await slack_api.send(SLACK_POST, delivery_id=1)
    assert limited.value.retry_after == 1.0


async def test_a_slack_answer_that_says_json_but_is_not_is_retried(
    fake_slack: FakeSlack, slack_api: SlackSender
) -> None:
    # A proxy's page labelled JSON says nothing about the message: worth another try.
    fake_slack.replies = [Reply(body="<html>gateway</html>", content_type="application/json")]
    with pytest.raises(TransientDeliveryError) as failed:
        await slack_api.send(SLACK_POST, delivery_id=1)
    assert failed.value.message == "Slack answered HTTP 200 without a Slack API reply"


async def test_a_slack_post_without_channel_needs_a_webhook(slack_api: SlackSender) -> None:
    no_channel = SlackContent(channel=None, text="A missed chat", blocks=())
    with pytest.raises(PermanentDeliveryError, match="has no channel and no webhook is set"):
        await slack_api.send(no_channel, delivery_id=1)


def test_a_slack_sender_needs_a_token_or_a_webhook() -> None:
    with pytest.raises(ValueError, match=r"needs slack\.token or slack\.webhook_url"):
        SlackSender(SlackSettings())


async def test_a_webhook_action_without_url_or_destination_is_dead() -> None:
    with pytest.raises(PermanentDeliveryError, match="has no url and no destination"):
        await WebhookSender().send(WebhookContent(url=None, body=b"{}"), delivery_id=1)


@pytest.mark.parametrize(
    ("kind", "content"),
    [
        ("SMTP", SLACK_POST),
        ("Slack", email("sales@shop.test")),
        ("webhook", SLACK_POST),
    ],
)
async def test_a_sender_given_content_of_another_channel_refuses_it_permanently(
    kind: str, content: Content, pools: SmtpPools
) -> None:
    senders = {
        "SMTP": smtp_sender(9, pools),
        "Slack": SlackSender(SlackSettings(webhook_url="http://127.0.0.1:9/hook")),
        "webhook": WebhookSender(),
    }
    with pytest.raises(PermanentDeliveryError) as refused:
        await senders[kind].send(content, delivery_id=1)
    assert refused.value.message == (f"{kind} sender cannot send {type(content).__name__}")


async def test_a_teams_webhook_that_never_answers_times_out_transiently() -> None:
    with SilentServer() as silent:
        sender = TeamsSender(TeamsSettings(webhook_url=silent.url("/w"), timeout_seconds=0.5))
        with pytest.raises(
            DeliveryTimeout, match=r"^Teams webhook_url http://127\.0\.0\.1 timed out: ReadTimeout$"
        ):
            await sender.send(TeamsContent({"type": "AdaptiveCard"}), delivery_id=1)


async def test_teams_refuses_what_it_cannot_post() -> None:
    with pytest.raises(ValueError, match=r"needs teams\.webhook_url"):
        TeamsSender(TeamsSettings())
    sender = TeamsSender(TeamsSettings(webhook_url="http://127.0.0.1:9/w"))
    with pytest.raises(PermanentDeliveryError, match=r"^Teams sender cannot send SlackContent$"):
        await sender.send(SLACK_POST, delivery_id=1)


@dataclass
class NoEhloHandler(RecordingHandler):
    """An old server: EHLO is not implemented, HELO is."""

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        return ["502 5.5.1 EHLO not implemented"]


async def test_a_server_that_refuses_ehlo_is_greeted_with_helo(pools: SmtpPools) -> None:
    server = SmtpServer(NoEhloHandler())
    server.start()
    try:
        await smtp_sender(server.port, pools).send(email("sales@shop.test"), delivery_id=1)
        [received] = server.handler.wait_for(1)
    finally:
        server.stop()
    assert received.rcpt_tos == ["sales@shop.test"]
