"""Email through Microsoft Graph sendMail against a fake Graph API and token endpoint."""

from __future__ import annotations

import json
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from litestar.testing import TestClient

from relay.app import create_app
from relay.config.settings import Settings, SmtpSettings, load_settings
from relay.model.content import EmailContent, SlackContent
from relay.model.errors import (
    DeliveryConnectionError,
    DeliveryTimeout,
    PermanentDeliveryError,
    RateLimited,
    TransientDeliveryError,
)
from relay.senders.graph import GraphSender, classify_graph
from tests.support.app import wait_settled
from tests.support.config import to_toml
from tests.support.data import TOKEN, base_sections, sample
from tests.support.graph import GRAPH_SCOPE, FakeGraph, GraphAnswer
from tests.support.oauth import CLIENT_ID, CLIENT_SECRET, FakeTokenEndpoint
from tests.support.silent import SilentServer
from tests.support.smtp import free_port
from tests.support.store import deliveries

HOOK = f"/hooks/smartsupp/{TOKEN}"
MAILBOX = "relay@shop.test"


@pytest.fixture
def token_endpoint() -> Iterator[FakeTokenEndpoint]:
    endpoint = FakeTokenEndpoint(scope=GRAPH_SCOPE)
    endpoint.start()
    yield endpoint
    endpoint.stop()


@pytest.fixture
def graph(token_endpoint: FakeTokenEndpoint) -> Iterator[FakeGraph]:
    fake = FakeGraph(token_endpoint, MAILBOX)
    fake.start()
    yield fake
    fake.stop()


def graph_settings(tmp_path: Path, graph: FakeGraph, token_url: str, **delivery: float) -> Settings:
    sections = base_sections(tmp_path / "state")
    sections["smtp"] = {
        "transport": "graph",
        "graph_sender": MAILBOX,
        "graph_url": graph.url,
        "from_address": f"Relay <{MAILBOX}>",
        "auth": "oauth2",
        "oauth2_token_url": token_url,
        "oauth2_client_id": CLIENT_ID,
        "oauth2_scope": GRAPH_SCOPE,
    }
    sections["delivery"].update(delivery)
    sections["routing"] = {"sales_inbox": "sales@shop.test"}
    text = to_toml(sections) + (
        '[[rules]]\nname = "all"\n[[rules.actions]]\ntype = "email"\n'
        'to = "sales@shop.test"\nbcc = "audit@shop.test"\n'
    )
    path = tmp_path / "relay.toml"
    path.write_text(text, encoding="utf-8")
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "smtp__oauth2_client_secret").write_text(CLIENT_SECRET, encoding="utf-8")
    return load_settings(path, secrets_dir=credentials)


def conversation() -> bytes:
    data = sample("v1")
    data["channel"]["isMissed"] = True
    data["messages"][0]["content"] = "Do you ship to Brno? ref Q-4711"
    return json.dumps(data).encode()


def test_the_rendered_message_is_submitted_as_base64_mime_with_the_bearer_token(
    tmp_path: Path, token_endpoint: FakeTokenEndpoint, graph: FakeGraph
) -> None:
    settings = graph_settings(tmp_path, graph, token_endpoint.url())
    with TestClient(create_app(settings)) as client:
        assert client.post(HOOK, content=conversation()).status_code == 200
        wait_settled(client)
    [row] = deliveries(settings)
    assert (row.status, row.last_error) == ("sent", None)
    [submitted] = graph.submitted
    assert submitted.path == f"/v1.0/users/{MAILBOX}/sendMail"
    assert submitted.token == "tok-1"
    message = submitted.message
    assert message["From"] == f"Relay <{MAILBOX}>"
    assert message["To"] == "sales@shop.test"
    assert message["Bcc"] == "audit@shop.test"  # Graph reads recipients from the headers
    assert message["Message-ID"]
    assert message["Subject"]
    text = message.get_body(("plain",))
    assert text is not None
    assert "Do you ship to Brno? ref Q-4711" in text.get_content()
    assert b"\r\n" in submitted.mime and all(b < 128 for b in submitted.mime)


def test_429_retry_after_is_honoured(
    tmp_path: Path, token_endpoint: FakeTokenEndpoint, graph: FakeGraph
) -> None:
    graph.answers = [
        GraphAnswer(
            429,
            {"code": "ApplicationThrottled", "message": "Application is over its limit."},
            {"Retry-After": "120"},
        )
    ]
    settings = graph_settings(tmp_path, graph, token_endpoint.url())
    with TestClient(create_app(settings)) as client:
        assert client.post(HOOK, content=conversation()).status_code == 200

        async def attempted() -> None:
            await client.app.state.runtime.worker.attempted(1)

        client.blocking_portal.call(attempted)
        [row] = deliveries(settings)
    assert (row.status, row.attempts) == ("retrying", 1)
    assert row.next_attempt_at - row.updated_at >= 120.0
    assert row.last_error is not None and "ApplicationThrottled" in row.last_error
    assert graph.submitted == []


def test_503_with_retry_after_is_retried_and_delivered_once(
    tmp_path: Path, token_endpoint: FakeTokenEndpoint, graph: FakeGraph
) -> None:
    graph.answers = [GraphAnswer(503, {"code": "ServiceUnavailable"}, {"Retry-After": "0"})]
    settings = graph_settings(tmp_path, graph, token_endpoint.url())
    with TestClient(create_app(settings)) as client:
        assert client.post(HOOK, content=conversation()).status_code == 200
        wait_settled(client)
    [row] = deliveries(settings)
    assert (row.status, row.attempts) == ("sent", 2)
    assert len(graph.submitted) == 1


def test_an_expired_token_is_renewed_on_401_and_the_message_sent_once(
    tmp_path: Path, token_endpoint: FakeTokenEndpoint, graph: FakeGraph
) -> None:
    settings = graph_settings(tmp_path, graph, token_endpoint.url())
    with TestClient(create_app(settings)) as client:
        assert client.post(HOOK, content=conversation()).status_code == 200
        wait_settled(client)
        token_endpoint.revoke("tok-1")  # Graph's idea of expiry comes first
        second = json.loads(conversation())
        second["channel"]["id"] = 99
        assert client.post(HOOK, content=json.dumps(second).encode()).status_code == 200
        wait_settled(client)
    assert [row.status for row in deliveries(settings)] == ["sent", "sent"]
    assert [s.token for s in graph.submitted] == ["tok-1", "tok-2"]
    assert graph.requests == 3  # the second message: refused once with tok-1, then sent


def test_a_missing_permission_is_dead_with_graphs_words(
    tmp_path: Path, token_endpoint: FakeTokenEndpoint, graph: FakeGraph
) -> None:
    graph.answers = [
        GraphAnswer(403, {"code": "ErrorAccessDenied", "message": "Access is denied."})
    ]
    settings = graph_settings(tmp_path, graph, token_endpoint.url())
    with TestClient(create_app(settings)) as client:
        assert client.post(HOOK, content=conversation()).status_code == 200
        wait_settled(client)
    [row] = deliveries(settings)
    assert (row.status, row.attempts) == ("dead", 1)
    assert row.last_error is not None
    assert "HTTP 403: ErrorAccessDenied: Access is denied." in row.last_error


def test_graph_answers_are_sorted() -> None:
    assert classify_graph(202, b"", None) is None
    limited = classify_graph(503, b"", "7", now=0.0)
    assert isinstance(limited, RateLimited) and limited.retry_after == 7.0
    unavailable = classify_graph(503, b"", None)
    assert isinstance(unavailable, TransientDeliveryError)
    assert not isinstance(unavailable, RateLimited | PermanentDeliveryError)
    assert isinstance(classify_graph(404, b"{}", None), PermanentDeliveryError)
    assert isinstance(classify_graph(504, b"<html>", None), TransientDeliveryError)


def test_graph_transport_needs_oauth2_and_a_sender() -> None:
    with pytest.raises(ValueError, match="needs auth"):
        SmtpSettings(transport="graph", graph_sender=MAILBOX)
    with pytest.raises(ValueError, match="graph_sender"):
        SmtpSettings(
            transport="graph",
            auth="oauth2",
            oauth2_token_url="https://login.example/token",
            oauth2_client_id="id",
            oauth2_client_secret="s",
        )


def graph_sender(token_endpoint: FakeTokenEndpoint, graph_url: str) -> GraphSender:
    return GraphSender(
        SmtpSettings(
            transport="graph",
            graph_sender=MAILBOX,
            graph_url=graph_url,
            auth="oauth2",
            oauth2_token_url=token_endpoint.url(),
            oauth2_client_id=CLIENT_ID,
            oauth2_client_secret=CLIENT_SECRET,
            oauth2_scope=GRAPH_SCOPE,
            timeout_seconds=0.5,
        )
    )


def an_email(*recipients: str) -> EmailContent:
    message = EmailMessage()
    message["From"] = f"Relay <{MAILBOX}>"
    message["To"] = "sales@shop.test"
    message["Subject"] = "A missed chat"
    message["Message-ID"] = "<1@shop.test>"
    message.set_content("Hello")
    return EmailContent(message, recipients)


async def test_a_graph_api_that_never_answers_times_out_transiently(
    token_endpoint: FakeTokenEndpoint,
) -> None:
    with SilentServer() as silent:
        sender = graph_sender(token_endpoint, silent.url())
        with pytest.raises(
            DeliveryTimeout,
            match=r"^Microsoft Graph graph_url http://127\.0\.0\.1:\d+/v1\.0/\*\*\* timed out: ",
        ):
            await sender.send(an_email("sales@shop.test"), delivery_id=1)


async def test_an_unreachable_graph_api_is_a_transient_connection_failure(
    token_endpoint: FakeTokenEndpoint,
) -> None:
    sender = graph_sender(token_endpoint, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(
        DeliveryConnectionError,
        match=r"^Microsoft Graph graph_url http://127\.0\.0\.1:\d+/v1\.0/\*\*\* connection failed: "
        r"ConnectError$",
    ):
        await sender.send(an_email("sales@shop.test"), delivery_id=1)


async def test_graph_sends_nothing_when_every_recipient_is_done_or_the_content_is_no_email(
    token_endpoint: FakeTokenEndpoint, graph: FakeGraph
) -> None:
    sender = graph_sender(token_endpoint, graph.url)
    await sender.send(an_email("sales@shop.test"), delivery_id=1, skip=("sales@shop.test",))
    slack = SlackContent(channel="#sales", text="hi", blocks=())
    with pytest.raises(PermanentDeliveryError, match=r"^Graph sender cannot send SlackContent$"):
        await sender.send(slack, delivery_id=1)
    assert graph.submitted == []
