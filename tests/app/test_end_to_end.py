"""The whole path with real protocols: HTTP in, SQLite, worker, aiosmtpd out, fake Slack out."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from litestar.testing import TestClient

from relay.app import create_app
from relay.config.settings import Settings
from tests.support.app import wait_settled
from tests.support.data import TOKEN, body, sample
from tests.support.slack import FakeSlack
from tests.support.smtp import SmtpServer

# The store and the worker on each backend (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")


def test_missed_chat_arrives_as_one_multipart_email(
    make_settings: Callable[..., Settings], smtp_server: SmtpServer
) -> None:
    settings = make_settings(
        smtp={
            "host": "127.0.0.1",
            "port": smtp_server.port,
            "from_address": "Relay <relay@shop.test>",
        },
        routing={"sales_inbox": "sales@shop.test"},
    )
    data = sample("v1")
    data["channel"]["isMissed"] = True
    with TestClient(create_app(settings)) as client:
        response = client.post(f"/hooks/smartsupp/{TOKEN}", content=body(data))
        assert response.status_code == 200
        received = smtp_server.handler.wait_for(1)
    assert len(received) == 1
    envelope = received[0]
    assert envelope.rcpt_tos == ["sales@shop.test"]
    message = envelope.message
    assert message.get_content_type() == "multipart/alternative"
    assert message["To"] == "sales@shop.test"
    assert [a.addr_spec for a in message["Reply-To"].addresses] == ["dusan@domain.com"]
    assert message["Message-ID"].endswith("@shop.test>")
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    text_content, html_content = text.get_content(), html.get_content()
    for part in (text_content, html_content):
        for content in ("Hello", "This is triggered message", "Hi, how can i help you ?", "tanks."):
            assert content in part
    assert smtp_server.handler.attempts == 1


def test_low_rated_chat_posts_once_to_the_configured_channel(
    make_settings: Callable[..., Settings], fake_slack: FakeSlack
) -> None:
    settings = make_settings(
        slack={"token": "xoxb-test", "api_url": fake_slack.url},
        routing={"low_rating_channel": "#cx-alerts"},
    )
    data = sample("v2")
    data["channel"]["rating"] = 1
    data["channel"]["ratingDesc"] = "Nobody could tell me the delivery date"
    with TestClient(create_app(settings)) as client:
        response = client.post(f"/hooks/smartsupp/{TOKEN}", content=body(data))
        assert response.json()["category"] == "low-rated"
        calls = fake_slack.wait_for(1)
        # The worker records the outcome after the call; the queue drains to "sent".
    assert len(calls) == 1
    call = calls[0]
    assert call.path == "/chat.postMessage"
    assert call.headers["Authorization"] == "Bearer xoxb-test"
    assert call.body["channel"] == "#cx-alerts"
    rendered = call.body["text"] + str(call.body["blocks"])
    assert "Nobody could tell me the delivery date" in rendered
    assert "★☆☆☆☆" in rendered or "1/5" in rendered


def test_without_smtp_or_slack_deliveries_land_in_the_outbox(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    missed = sample("v1")
    missed["channel"]["isMissed"] = True
    rated = sample("v2")
    rated["channel"]["id"] = 99
    rated["channel"]["rating"] = 2
    app = create_app(settings)
    outbox = settings.storage.state_dir / "outbox"
    with TestClient(app) as client:
        client.post(f"/hooks/smartsupp/{TOKEN}", content=body(missed))
        client.post(f"/hooks/smartsupp/{TOKEN}", content=body(rated))
        wait_settled(client)
    names = sorted(p.suffix for p in outbox.iterdir() if not p.name.startswith("."))
    assert names == [".eml", ".json"]
