"""Odd text and odd answers through the whole path: HTTP, store, worker, a real aiosmtpd
server, the fake Slack API and a local webhook endpoint."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import pytest
from litestar.testing import TestClient
from slack_sdk.models.blocks import Block

from relay.app import create_app
from relay.config.settings import Settings, SlackSettings
from relay.delivery.retry import RetryAt, RetryPolicy, decide
from relay.senders.slack import DEFAULT_RETRY_AFTER as SLACK_DEFAULT
from relay.senders.slack import SlackSender
from relay.senders.slack import retry_after_seconds as slack_retry_after
from relay.senders.webhook import DEFAULT_RETRY_AFTER_SECONDS as WEBHOOK_DEFAULT
from relay.senders.webhook import retry_after_seconds as webhook_retry_after
from tests.support.app import wait_settled
from tests.support.data import TOKEN, sample
from tests.support.slack import FakeSlack, Reply
from tests.support.smtp import SmtpServer
from tests.support.store import deliveries

EVERYWHERE = {
    "name": "everything",
    "actions": [
        {"type": "email", "to": ["sales@shop.test"]},
        {"type": "slack", "channel": "#alerts"},
    ],
}


def delivering_settings(
    make_settings: Callable[..., Settings], smtp: SmtpServer, slack: FakeSlack
) -> Settings:
    return make_settings(
        smtp={"host": "127.0.0.1", "port": smtp.port, "from_address": "R <r@shop.test>"},
        slack={"token": "xoxb-test", "api_url": slack.url},
        rules=[EVERYWHERE],
    )


def post_and_deliver(
    settings: Settings, smtp: SmtpServer, slack: FakeSlack, raw: bytes
) -> tuple[EmailMessage, dict[str, Any]]:
    """Post one body; return the one email and the one chat.postMessage it produced. The
    email's bytes on the wire are 7-bit clean with CRLF line ends (no raw NUL or bare LF)."""
    with TestClient(create_app(settings)) as client:
        answer = client.post(f"/hooks/smartsupp/{TOKEN}", content=raw)
        assert answer.status_code == 200, answer.text
        assert answer.json()["deliveries"] == 2
        [received] = smtp.handler.wait_for(1)
        [call] = slack.wait_for(1)
        wait_settled(client)
    assert [row.status for row in deliveries(settings)] == ["sent", "sent"]
    assert received.rcpt_tos == ["sales@shop.test"]
    assert received.data.isascii() and b"\0" not in received.data
    assert b"\n" not in received.data.replace(b"\r\n", b"")
    return received.message, call.body


def parts(message: EmailMessage) -> tuple[str, str]:
    html = message.get_body(preferencelist=("html",))
    text = message.get_body(preferencelist=("plain",))
    assert html is not None and text is not None
    return html.get_content(), text.get_content()


def slack_strings(body: dict[str, Any]) -> str:
    return body["text"] + "\n" + json.dumps(body["blocks"], ensure_ascii=False)


@pytest.mark.usefixtures("backend")  # on each store
def test_unicode_edge_cases_reach_email_and_slack_intact(
    make_settings: Callable[..., Settings], smtp_server: SmtpServer, fake_slack: FakeSlack
) -> None:
    rtl = "\u05e9\u05dc\u05d5\u05dd \u202eevil.exe\u202c"  # Hebrew and an RTL override
    emoji = "\U0001f600\U0001f1e8\U0001f1ff\U0001f469\u200d\U0001f4bb"  # ZWJ sequence, flag
    combining = "Zdene\u030ck"  # e + combining caron
    data = sample("v1")
    data["channel"].update(rating=1, ratingDesc=f"{emoji} bad")
    data["visitor"].update(name=f"{rtl} {combining}", note="tab\there\0nul")
    data["messages"][0]["content"] = f"Hello {emoji} {rtl}"
    data["messages"][4]["content"] = "PLACEHOLDER"
    # A lone surrogate, as an ES2019 encoder writes a string cut inside an emoji.
    raw = json.dumps(data, ensure_ascii=True).encode().replace(b"PLACEHOLDER", b"cut \\ud83d")

    message, slack = post_and_deliver(
        delivering_settings(make_settings, smtp_server, fake_slack), smtp_server, fake_slack, raw
    )

    html, text = parts(message)
    for content in (html, text):
        assert emoji in content
        assert rtl in content
        assert combining in content
        assert "cut \ufffd" in content
    assert "tab\there" in text  # (a NUL in the content travels quoted-printable encoded)
    assert combining in str(message["Subject"])
    assert [a.addr_spec for a in message["Reply-To"].addresses] == ["dusan@domain.com"]
    for name, value in message.items():
        assert "\0" not in str(value) and "\r" not in str(value) and "\n" not in str(value), name

    shown = slack_strings(slack)
    assert emoji in shown and rtl in shown and combining in shown
    assert "cut \ufffd" in shown
    assert not re.search("[\ud800-\udfff]", shown)
    for block in slack["blocks"]:
        Block.parse(block).validate_json()  # slack-sdk's own limits


MENTIONS = (
    "<!channel> <!here|here> <@U0123> <#C0123> <!subteam^S0123> "
    "<https://evil.test/x|click> <mailto:a@evil.test|mail> & *bold*"
)
# Slack's date tokens (<!date^1427470439^{time}|…>) are the only "<!" the relay writes.
SLACK_MARKUP = re.compile(r"<(?:[@#]|!(?!date\^\d+\^\{))|<(?:https?|mailto):")


def _everywhere(value: Any) -> Any:
    if isinstance(value, str):
        return MENTIONS
    if isinstance(value, dict):
        return {k: _everywhere(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_everywhere(v) for v in value]
    return value


@pytest.mark.usefixtures("backend")  # on each store
def test_slack_markup_in_any_field_stays_text_in_every_slack_field(
    make_settings: Callable[..., Settings], smtp_server: SmtpServer, fake_slack: FakeSlack
) -> None:
    data = _everywhere(sample("v2"))
    data["channel"].update(rating=1, ratingDesc=MENTIONS)
    data["messages"].append({"type": "system", "content": "agent.join", "name": MENTIONS})
    data["visitor"]["email"] = None  # the only link the relay itself writes is a mailto

    message, slack = post_and_deliver(
        delivering_settings(make_settings, smtp_server, fake_slack),
        smtp_server,
        fake_slack,
        json.dumps(data).encode(),
    )

    assert message["Reply-To"] is None
    fields: list[tuple[str, str]] = [("text (fallback)", slack["text"])]
    for index, block in enumerate(slack["blocks"]):
        fields.extend((f"blocks.{index}.{block['type']}", s) for s in _strings(block))
    assert any(kind.endswith("header") for kind, _ in fields)
    assert any(kind.endswith("context") for kind, _ in fields)
    for where, value in fields:
        assert not SLACK_MARKUP.search(value), f"{where}: {value!r}"
    assert "&lt;!channel&gt;" in slack["text"]
    assert "&lt;@U0123&gt;" in slack_strings(slack)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() if k not in ("type", "block_id") for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


@pytest.mark.usefixtures("backend")  # on each store
def test_a_long_visitor_name_with_address_syntax_cannot_redirect_replies(
    make_settings: Callable[..., Settings], smtp_server: SmtpServer, fake_slack: FakeSlack
) -> None:
    data = sample("v1")
    # Long enough that the Reply-To header folds: folding must not turn it into addresses.
    data["visitor"]["name"] = 'Eve, "x" <eve@evil.test>; Mallory (m) <m@evil.test> ' + "pad " * 20
    data["channel"]["rating"] = 1
    message, _ = post_and_deliver(
        delivering_settings(make_settings, smtp_server, fake_slack),
        smtp_server,
        fake_slack,
        json.dumps(data).encode(),
    )
    [address] = message["Reply-To"].addresses
    assert address.addr_spec == "dusan@domain.com"
    assert address.display_name.startswith("Eve x eve evil.test Mallory m m evil.test pad")
    assert message["Cc"] is None and message["Bcc"] is None


@pytest.mark.usefixtures("backend")  # on each store
def test_a_non_numeric_retry_after_is_retried_not_left_sending(
    make_settings: Callable[..., Settings], fake_slack: FakeSlack
) -> None:
    fake_slack.replies = [Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "nan"})]
    settings = make_settings(slack={"token": "xoxb-test", "api_url": fake_slack.url})
    data = sample("v1")
    data["channel"]["rating"] = 1
    with TestClient(create_app(settings)) as client:
        answer = client.post(f"/hooks/smartsupp/{TOKEN}", content=json.dumps(data))
        assert answer.json()["deliveries"] == 1
        fake_slack.wait_for(2)
        wait_settled(client)
    [row] = deliveries(settings)
    assert (row.status, row.attempts) == ("sent", 2)


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "1e999"])
def test_retry_after_that_is_no_number_of_seconds_gets_the_default(value: str) -> None:
    assert slack_retry_after(value) == SLACK_DEFAULT
    assert webhook_retry_after(value, now=0.0) == WEBHOOK_DEFAULT
    decision = decide(RetryPolicy(), attempts=1, created_at=0.0, now=0.0, jitter=0.0,
                      retry_after=float(value))  # fmt: skip
    assert isinstance(decision, RetryAt) and math.isfinite(decision.at)


@pytest.mark.parametrize(("seconds", "whole"), [(0.5, 1), (1.0, 1), (2.2, 3), (30.0, 30)])
def test_a_fractional_slack_timeout_rounds_up_not_to_zero(seconds: float, whole: int) -> None:
    bot = SlackSender(SlackSettings(token="xoxb-test", timeout_seconds=seconds))
    hook = SlackSender(SlackSettings(webhook_url="http://127.0.0.1:9/x", timeout_seconds=seconds))
    assert bot.timeout == whole and hook.timeout == whole
