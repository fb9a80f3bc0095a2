"""In-Reply-To and References name only emails that were sent: the store keeps each sent email's
Message-ID and hands the visitor's earlier ones to rendering (both backends)."""

from __future__ import annotations

import json
from collections.abc import Callable
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from relay.app import create_app
from relay.config.settings import RenderSettings, Settings
from relay.model.category import Category
from relay.model.content import EmailContent
from relay.render.pool import RenderJob
from relay.render.pool import render as pool_render
from tests.support.app import wait_settled
from tests.support.data import TOKEN, body, sample
from tests.support.render import EMAIL_ACTION, FROM_ADDRESS, category_body
from tests.support.smtp import SmtpServer
from tests.support.store import deliveries


def missed_chat(channel: int, **visitor: Any) -> dict[str, Any]:
    data = sample("v1")
    data["channel"].update(id=channel, isMissed=True)
    data["visitor"].update(visitor)
    return data


def post(client: TestClient[Any], data: dict[str, Any]) -> None:
    assert client.post(f"/hooks/smartsupp/{TOKEN}", content=body(data)).status_code == 200
    wait_settled(client)


@pytest.mark.usefixtures("backend")
def test_first_email_has_no_thread_and_later_ones_reference_the_sent_ones(
    make_settings: Callable[..., Settings], smtp_server: SmtpServer
) -> None:
    settings = make_settings(smtp={"host": "127.0.0.1", "port": smtp_server.port})
    with TestClient(create_app(settings)) as client:
        post(client, missed_chat(1))
        post(client, missed_chat(2, id=999, email="someone@else.example"))  # another visitor
        post(client, missed_chat(3))
        post(client, missed_chat(4))
    first, other, second, third = (m.message for m in smtp_server.handler.wait_for(4))
    assert first["In-Reply-To"] is None
    assert first["References"] is None
    assert other["In-Reply-To"] is None  # the first email was about someone else
    assert second["In-Reply-To"] == first["Message-ID"]
    assert second["References"] == first["Message-ID"]
    assert third["In-Reply-To"] == second["Message-ID"]
    assert third["References"] == f"{first['Message-ID']} {second['Message-ID']}"


@pytest.mark.usefixtures("backend")
def test_an_email_that_went_dead_is_never_referenced(
    make_settings: Callable[..., Settings], smtp_server: SmtpServer
) -> None:
    smtp_server.handler.data_replies.append("550 mailbox unavailable")
    settings = make_settings(smtp={"host": "127.0.0.1", "port": smtp_server.port})
    with TestClient(create_app(settings)) as client:
        post(client, missed_chat(1))  # refused for good: dead
        post(client, missed_chat(2))
    statuses = sorted(row.status for row in deliveries(settings))
    assert statuses == ["dead", "sent"]
    [after_dead] = (m.message for m in smtp_server.handler.wait_for(1))
    assert after_dead["In-Reply-To"] is None
    assert after_dead["References"] is None


@pytest.mark.usefixtures("backend")
def test_an_email_written_to_the_outbox_is_never_referenced(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Without an SMTP server the emails go to the local outbox: written, not sent."""
    with TestClient(create_app(make_settings())) as client:
        post(client, missed_chat(1))
        post(client, missed_chat(2))
    files = sorted((tmp_path / "state" / "outbox").glob("*-email.eml"))
    assert len(files) == 2
    for file in files:
        message = message_from_bytes(file.read_bytes(), policy=policy.default)
        assert message["Message-ID"] is not None
        assert message["In-Reply-To"] is None
        assert message["References"] is None


def test_references_reach_the_email_rendered_in_a_helper() -> None:
    raw = json.dumps(category_body(Category.MISSED)).encode()
    settings = RenderSettings()
    sent = ("<one@relay.example>", "<two@relay.example>")
    for job, thread in (
        (RenderJob(settings, FROM_ADDRESS, raw, "missed", EMAIL_ACTION, references=sent), sent),
        (RenderJob(settings, FROM_ADDRESS, raw, "missed", EMAIL_ACTION), ()),
    ):
        content = pool_render(job)
        assert isinstance(content, EmailContent)
        message = content.message
        assert message["In-Reply-To"] == (thread[-1] if thread else None)
        assert message["References"] == (" ".join(thread) if thread else None)
