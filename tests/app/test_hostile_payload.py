"""Hostile content through the whole path (HTTP, store, worker, aiosmtpd, fake Slack) is inert."""

from __future__ import annotations

import json
from collections.abc import Callable

from litestar.testing import TestClient

from relay.app import create_app
from relay.config.settings import Settings
from tests.support.app import wait_settled
from tests.support.data import TOKEN, sample
from tests.support.slack import FakeSlack
from tests.support.smtp import SmtpServer

EVE = "Eve\r\nBcc: x@evil.test"


def hostile() -> bytes:
    data = sample("v1")
    data["channel"]["isMissed"] = True
    data["channel"]["rating"] = 1
    data["channel"]["ratingDesc"] = "<!channel> {{ 7*7 }}"
    data["visitor"]["name"] = EVE
    data["visitor"]["email"] = "eve@evil.test\r\nBcc: y@evil.test"
    data["visitor"]["note"] = "</td><img src=x onerror=alert(1)>"
    data["messages"][0]["content"] = "<script>alert('x')</script>"
    data["messages"][1]["content"] = "<!channel> <https://evil.test|click here> & {{ 7*7 }}"
    data["messages"][2]["content"] = "{% for x in range(3) %}loop{% endfor %}"
    return json.dumps(data).encode()


def test_hostile_content_cannot_add_recipients_headers_markup_or_mentions(
    make_settings: Callable[..., Settings], smtp_server: SmtpServer, fake_slack: FakeSlack
) -> None:
    rule = {
        "name": "everything",
        "match": {"category": ["missed"]},
        "actions": [
            {"type": "email", "to": ["sales@shop.test"]},
            {"type": "slack", "channel": "#alerts"},
        ],
    }
    settings = make_settings(
        smtp={"host": "127.0.0.1", "port": smtp_server.port, "from_address": "R <r@shop.test>"},
        slack={"token": "xoxb-test", "api_url": fake_slack.url},
        rules=[rule],
    )
    with TestClient(create_app(settings)) as client:
        answer = client.post(f"/hooks/smartsupp/{TOKEN}", content=hostile()).json()
        assert (answer["category"], answer["deliveries"]) == ("missed", 2)
        [envelope] = smtp_server.handler.wait_for(1)
        [call] = fake_slack.wait_for(1)
        wait_settled(client)

    # Email: the envelope and the headers name only the configured recipient.
    assert envelope.rcpt_tos == ["sales@shop.test"]
    message = envelope.message
    assert message["Bcc"] is None
    assert message.get_all("To") == ["sales@shop.test"]
    assert message["Cc"] is None
    header_block = envelope.data.split(b"\r\n\r\n", 1)[0].decode("ascii", "replace")
    for name, value in message.items():
        assert "\r" not in str(value) and "\n" not in str(value), name
        assert not str(value).lstrip().lower().startswith("bcc:"), name
    assert "Bcc:" not in [line.split(" ", 1)[0] for line in header_block.split("\r\n")]
    html_part = message.get_body(preferencelist=("html",))
    text_part = message.get_body(preferencelist=("plain",))
    assert html_part is not None and text_part is not None
    html, text = html_part.get_content(), text_part.get_content()
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "<img src=x" not in html
    assert "{{ 7*7 }}" in html and "{{ 7*7 }}" in text
    assert "{% for x in range(3) %}loop{% endfor %}" in text
    assert "looploop" not in text

    # Slack: no mention, link or command can form; template syntax is literal.
    assert call.body["channel"] == "#alerts"
    rendered = call.body["text"] + json.dumps(call.body["blocks"], ensure_ascii=False)
    assert "&lt;!channel&gt;" in call.body["text"]
    assert "&lt;!channel&gt;" in json.dumps(call.body["blocks"], ensure_ascii=False)
    assert "{{ 7*7 }}" in call.body["text"]
    assert "<!channel>" not in rendered
    assert "<https://evil.test" not in rendered
    assert "&lt;https://evil.test|click here&gt;" in rendered
    assert "&amp; {{ 7*7 }}" in rendered
