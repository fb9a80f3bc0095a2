"""Webhook, archive and named destinations end to end: HTTP in, worker, real servers out."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from relay.app import create_app
from relay.config.settings import Settings
from relay.model.content import ArchiveContent, Content, WebhookContent
from relay.model.errors import PermanentDeliveryError, TransientDeliveryError
from relay.senders.archive import ArchiveSender
from relay.store import DeliveryRow
from tests.support.app import runtime, wait_settled
from tests.support.data import TOKEN, body, sample
from tests.support.slack import FakeSlack
from tests.support.smtp import SmtpServer
from tests.support.webhook import Answer, FakeEndpoint

SECRET = "shared-secret-for-tests"


@pytest.fixture
def endpoint() -> Iterator[FakeEndpoint]:
    fake = FakeEndpoint()
    fake.start()
    yield fake
    fake.stop()


def deliveries(client: TestClient[Any]) -> list[DeliveryRow]:
    statuses = ("pending", "sending", "retrying", "sent", "dead")
    rows: list[DeliveryRow] = client.blocking_portal.call(
        runtime(client).store.call, lambda s: s.deliveries(statuses)
    )
    return rows


def post(client: TestClient[Any], data: dict[str, Any]) -> bytes:
    raw = body(data)
    response = client.post(f"/hooks/smartsupp/{TOKEN}", content=raw)
    assert response.status_code == 200, response.text
    return raw


def webhook_settings(
    make_settings: Callable[..., Settings], endpoint: FakeEndpoint, **action: Any
) -> Settings:
    return make_settings(
        destinations={
            "webhook": {
                "helpdesk": {
                    "url": endpoint.url("/hooks/chats"),
                    "secret": SECRET,
                    "headers": {"Authorization": "Bearer helpdesk-token"},
                }
            }
        },
        rules=[
            {
                "name": "copy-to-helpdesk",
                "actions": [{"type": "webhook", "destination": "helpdesk", **action}],
            }
        ],
    )


@pytest.mark.usefixtures("backend")  # on each store
def test_webhook_posts_the_signed_body_and_retries_a_500(
    make_settings: Callable[..., Settings], endpoint: FakeEndpoint
) -> None:
    endpoint.answers = [Answer(500, b"upstream broke")]
    with TestClient(create_app(webhook_settings(make_settings, endpoint))) as client:
        raw = post(client, sample("v1"))
        first, second = endpoint.wait_for(2)
        wait_settled(client)
        (row,) = deliveries(client)
    assert (row.status, row.attempts, row.channel, row.rule) == (
        "sent",
        2,
        "webhook",
        "copy-to-helpdesk",
    )
    for call in (first, second):
        assert call.path == "/hooks/chats"
        assert call.body == raw  # the conversation exactly as Smartsupp posted it
        expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(call.headers["x-relay-signature-256"], expected)
        assert call.headers["authorization"] == "Bearer helpdesk-token"
        assert call.headers["content-type"] == "application/json"
        assert call.headers["x-relay-delivery"] == str(row.id)
    assert len(endpoint.received) == 2


@pytest.mark.usefixtures("backend")  # on each store
def test_webhook_json_template_keeps_hostile_text_inert(
    make_settings: Callable[..., Settings], endpoint: FakeEndpoint
) -> None:
    template = {
        "subject": "Chat {{ key }} ({{ category }}) from {{ conversation.visitor.name }}",
        "rating": "{{ conversation.channel.rating }}",
        "visitor": "{{ conversation.visitor }}",
        "missing": "{{ conversation.visitor.nothing.here }}",
        "fixed": [1, True, "plain"],
    }
    settings = webhook_settings(make_settings, endpoint, body=template)
    data = sample("v1")
    data["visitor"]["name"] = '"}, {{ 7*7 }} <b>\r\nX: y'
    with TestClient(create_app(settings)) as client:
        post(client, data)
        (call,) = endpoint.wait_for(1)
        wait_settled(client)
    sent = json.loads(call.body)
    assert sent["subject"] == 'Chat 208-55039 (normal) from "}, {{ 7*7 }} <b>\r\nX: y'
    assert sent["rating"] == 5
    assert sent["visitor"]["countryCode"] == "CZ"
    assert sent["missing"] is None
    assert sent["fixed"] == [1, True, "plain"]
    expected = "sha256=" + hmac.new(SECRET.encode(), call.body, hashlib.sha256).hexdigest()
    assert call.headers["x-relay-signature-256"] == expected


@pytest.mark.parametrize(
    "case",
    [
        (Answer(429, headers={"Retry-After": "0"}), "sent", 2, None),
        (Answer(503), "sent", 2, None),
        (Answer(404, b"no such hook"), "dead", 1, "HTTP 404: no such hook"),
        (Answer(302, headers={"Location": "http://elsewhere/"}), "dead", 1, "not followed"),
    ],
    ids=["429-retried", "503-retried", "404-dead", "redirect-dead"],
)
@pytest.mark.usefixtures("backend")  # on each store
def test_webhook_answers_are_sorted(
    make_settings: Callable[..., Settings],
    endpoint: FakeEndpoint,
    case: tuple[Answer, str, int, str | None],
) -> None:
    answer, status, attempts, error = case
    endpoint.answers = [answer]
    with TestClient(create_app(webhook_settings(make_settings, endpoint))) as client:
        post(client, sample("v1"))
        endpoint.wait_for(attempts)
        wait_settled(client)
        (row,) = deliveries(client)
    assert (row.status, row.attempts) == (status, attempts)
    if error is not None:
        assert row.last_error is not None and error in row.last_error


@pytest.mark.usefixtures("backend")  # on each store
def test_archive_appends_one_fsynced_line_per_delivery(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(
        rules=[{"name": "keep", "actions": [{"type": "archive", "path": "archive/chats.jsonl"}]}]
    )
    with TestClient(create_app(settings)) as client:
        other = sample("v2")
        other["channel"]["id"] = 99
        raw1 = post(client, sample("v1"))
        raw2 = post(client, other)
        wait_settled(client)
        rows = deliveries(client)
    lines = (tmp_path / "state" / "archive" / "chats.jsonl").read_bytes().splitlines()
    # One line per delivery; two deliveries in flight together may append in either order.
    records = sorted((json.loads(line) for line in lines), key=lambda r: int(r["delivery_id"]))
    assert [r["delivery_id"] for r in records] == sorted(row.id for row in rows)
    assert [r["conversation"] for r in records] == [json.loads(raw1), json.loads(raw2)]
    assert {r["rule"] for r in records} == {"keep"}
    assert [row.status for row in rows] == ["sent", "sent"]


def test_archive_does_not_repeat_a_written_delivery(tmp_path: Path) -> None:
    sender = ArchiveSender(tmp_path)
    content = ArchiveContent(path="a.jsonl", line=b'{"delivery_id":7,"x":1}')
    other = ArchiveContent(path="a.jsonl", line=b'{"delivery_id":70,"x":2}')

    async def send_all() -> None:
        await sender.send(content, delivery_id=7)
        await sender.send(other, delivery_id=70)
        await sender.send(content, delivery_id=7)  # a retry after a lost "sent" record

    asyncio.run(send_all())
    assert (
        tmp_path / "a.jsonl"
    ).read_bytes() == b'{"delivery_id":7,"x":1}\n{"delivery_id":70,"x":2}\n'


def test_an_archive_that_cannot_be_written_fails_transiently_and_a_bad_line_permanently(
    tmp_path: Path,
) -> None:
    sender = ArchiveSender(tmp_path)
    (tmp_path / "taken").mkdir()  # a directory where the archive file should be
    line = b'{"delivery_id":7,"x":1}'

    async def send(content: Content, delivery_id: int = 7) -> None:
        await sender.send(content, delivery_id=delivery_id)

    with pytest.raises(TransientDeliveryError, match=r"^archive taken: \[Errno 21\] Is a direc"):
        asyncio.run(send(ArchiveContent(path="taken", line=line)))
    for malformed, delivery_id in ((line + b"\n{}", 7), (line, 8)):  # two lines; another id
        with pytest.raises(PermanentDeliveryError, match=r"^archive line is malformed$"):
            asyncio.run(send(ArchiveContent(path="a.jsonl", line=malformed), delivery_id))
    with pytest.raises(PermanentDeliveryError, match=r"^archive sender cannot send Webhook"):
        asyncio.run(send(WebhookContent(url=None, body=b"{}")))
    assert not (tmp_path / "a.jsonl").exists()


@pytest.mark.usefixtures("backend")  # on each store
def test_named_smtp_and_slack_destinations(
    make_settings: Callable[..., Settings], smtp_server: SmtpServer, fake_slack: FakeSlack
) -> None:
    settings = make_settings(
        destinations={
            "smtp": {
                "billing": {
                    "host": "127.0.0.1",
                    "port": smtp_server.port,
                    "from_address": "Billing <billing@shop.test>",
                }
            },
            "slack": {"ops": {"webhook_url": fake_slack.url + "ops-hook"}},
        },
        rules=[
            {
                "name": "vip",
                "match": {"variables": {"chatPackage": {"equals": "pro"}}},
                "actions": [
                    {"type": "email", "to": ["owner@shop.test"], "destination": "billing"},
                    {"type": "slack", "destination": "ops"},
                ],
            }
        ],
    )
    with TestClient(create_app(settings)) as client:
        post(client, sample("v1"))
        (mail,) = smtp_server.handler.wait_for(1)
        (slack_call,) = fake_slack.wait_for(1)
        wait_settled(client)
        rows = deliveries(client)
    assert mail.rcpt_tos == ["owner@shop.test"]
    assert mail.mail_from == "billing@shop.test"
    assert mail.message["From"] == "Billing <billing@shop.test>"
    assert slack_call.path == "/ops-hook"
    assert [r.status for r in rows] == ["sent", "sent"]
