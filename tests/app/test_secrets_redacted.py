"""Credentials in URLs never reach logs, stored errors or CLI output (relay.model.urls)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

from relay.app import create_app, database_path
from relay.cli.main import main
from relay.config.settings import LoggingSettings, Settings, load_settings
from relay.model.content import WebhookContent
from relay.model.errors import DeliveryConnectionError, PermanentDeliveryError
from relay.model.urls import http_url, redact_text, redact_url
from relay.ops.logs import configure_logging
from relay.senders.webhook import WebhookSender
from relay.store import Store
from tests.support.app import wait_settled
from tests.support.config import to_toml
from tests.support.data import TOKEN, base_sections, sample
from tests.support.smtp import free_port
from tests.support.store import deliveries
from tests.support.webhook import Answer, FakeEndpoint

SECRET = "SECRET-k3y-4711"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://h/p?apikey=S&x=1", "https://h/p?apikey=***&x=1"),
        ("https://u:S@h:8443/p", "https://u:***@h:8443/p"),
        ("https://u@h/p", "https://u@h/p"),
        ("http://h/?API_KEY=S&Access-Token=S&sig=S&signature=S&page=2",
         "http://h/?API_KEY=***&Access-Token=***&sig=***&signature=***&page=2"),
        ("http://h/?X-Amz-Credential=S&X-Amz-Security-Token=S&private_key=S&monkey=ok",
         "http://h/?X-Amz-Credential=***&X-Amz-Security-Token=***&private_key=***&monkey=ok"),
        ("http://h/?key=S&token=S&secret=S&password=S&flag&empty=",
         "http://h/?key=***&token=***&secret=***&password=***&flag&empty="),
        ("https://h/cb#access_token=S&state=1", "https://h/cb#access_token=***&state=1"),
        # Invalid URLs are masked as far as they can be split.
        ("http:/u:S@h/x", "http:/u:***@h/x"),
        ("ftp://u:S@h/", "ftp://u:***@h/"),
        ("http://u:S@[::1/x?token=S", "http://u:***@[::1/x?token=***"),
        ("http://u:pa/S@h/x", "http://u:***@h/x"),
        ("http://h:8080/users/@me", "http://h:8080/users/***"),
        # Tokens in the path (Discord, Slack, Zapier webhooks): only the first segment shows.
        ("https://discord.com/api/webhooks/123/S", "https://discord.com/api/***"),
        ("https://hooks.slack.com/services/T0/B0/S", "https://hooks.slack.com/services/***"),
        ("https://h/hook", "https://h/hook"),
        ("https://h/api/", "https://h/api/"),
        ("not a url", "not a url"),
    ],
)  # fmt: skip
def test_redact_url_masks_passwords_and_credential_parameters(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_text_masks_every_url_in_a_message() -> None:
    text = "POST http://h/a?apikey=S1 failed; 'https://u:S2@h/b' and URL('http://h/?sig=S3')"
    redacted = redact_text(text)
    assert redacted == (
        "POST http://h/a?apikey=*** failed; 'https://u:***@h/b' and URL('http://h/?sig=***')"
    )


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_log_lines_mask_credentials_in_urls(log_format: str) -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = configure_logging(LoggingSettings(format=log_format), stream, journal=False)
    try:
        logger = logging.getLogger("relay.test_secrets")
        logger.warning("calling %s", f"http://h/x?token={SECRET}")
        try:
            raise ValueError(f"http://user:{SECRET}@h/")
        except ValueError:
            logger.exception("failed")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    output = stream.getvalue()
    assert "token=***" in output and "user:***@h" in output
    assert SECRET not in output


@pytest.fixture
def endpoint() -> Iterator[FakeEndpoint]:
    fake = FakeEndpoint()
    fake.start()
    yield fake
    fake.stop()


def webhook_config(tmp_path: Path, url: str) -> Path:
    rule = '[[rules]]\nname = "crm"\n[[rules.actions]]\ntype = "webhook"\n'
    rule += f"url = {json.dumps(url)}\n"
    path = tmp_path / "relay.toml"
    path.write_text(to_toml(base_sections(tmp_path / "state")) + rule, encoding="utf-8")
    return path


def test_webhook_credentials_stay_out_of_logs_last_error_and_queue(
    tmp_path: Path, endpoint: FakeEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = endpoint.url(f"/hook?apikey={SECRET}")
    # A failing answer whose text names the URL: a redirect keeping the query string.
    endpoint.answers = [Answer(308, b"", {"Location": url.replace("http:", "https:")})]
    config = webhook_config(tmp_path, url)
    settings = load_settings(config)
    with TestClient(create_app(settings)) as client:
        response = client.post(f"/hooks/smartsupp/{TOKEN}", content=json.dumps(sample("v1")))
        assert response.status_code == 200, response.text
        [call] = endpoint.wait_for(1)
        wait_settled(client)
    assert call.path == f"/hook?apikey={SECRET}"  # the real URL was used

    [row] = deliveries(settings)
    assert row.status == "dead"
    assert row.last_error is not None
    assert "redirects to https://127.0.0.1:" in row.last_error
    assert "apikey=***" in row.last_error and SECRET not in row.last_error

    messages = [record.getMessage() for record in caplog.records]
    assert any(f"delivery {row.id} is dead" in m for m in messages), messages
    assert not [m for m in messages if SECRET in m]
    assert SECRET not in caplog.text
    # httpx's own line per request ("HTTP Request: POST <url> ...") is not logged at all.
    assert not [r for r in caplog.records if r.name == "httpx" and r.levelno < logging.WARNING]

    queue = CliRunner().invoke(main, ["queue", "--config", str(config)])
    assert queue.exit_code == 0, queue.output
    assert "apikey=***" in queue.output and SECRET not in queue.output

    # A row written by an earlier version, with the URL as it was, is masked when shown.
    store = Store(database_path(settings))
    try:
        store.mark_dead(row.id, f"webhook {url} connection failed: ConnectError()")
    finally:
        store.close()
    queue = CliRunner().invoke(main, ["queue", "--config", str(config)])
    assert queue.exit_code == 0, queue.output
    assert "/hook?apikey=*** connection failed" in queue.output
    assert SECRET not in queue.output


def test_a_token_in_a_webhook_path_stays_out_of_logs_last_error_and_queue(
    tmp_path: Path, endpoint: FakeEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = endpoint.url(f"/api/webhooks/123/{SECRET}")
    # A refusal whose text quotes the URL it was posted to.
    endpoint.answers = [Answer(404, f"no webhook at {url}".encode(), {})]
    config = webhook_config(tmp_path, url)
    settings = load_settings(config)
    with TestClient(create_app(settings)) as client:
        response = client.post(f"/hooks/smartsupp/{TOKEN}", content=json.dumps(sample("v1")))
        assert response.status_code == 200, response.text
        [call] = endpoint.wait_for(1)
        wait_settled(client)
    assert call.path == f"/api/webhooks/123/{SECRET}"  # the real URL was used

    [row] = deliveries(settings)
    assert row.status == "dead"
    assert row.last_error is not None
    assert "HTTP 404: no webhook at http://127.0.0.1:" in row.last_error
    assert "/api/***" in row.last_error and SECRET not in row.last_error
    assert SECRET not in caplog.text
    queue = CliRunner().invoke(main, ["queue", "--config", str(config)])
    assert queue.exit_code == 0, queue.output
    assert "/api/***" in queue.output and SECRET not in queue.output

    dead_port = f"http://127.0.0.1:{free_port()}/api/webhooks/123/{SECRET}"
    with pytest.raises(DeliveryConnectionError) as failure:
        asyncio.run(WebhookSender().send(WebhookContent(url=dead_port, body=b"{}"), delivery_id=1))
    assert "/api/*** connection failed" in failure.value.message
    assert SECRET not in str(failure.value) and SECRET not in caplog.text


def test_a_connection_failure_names_the_url_without_its_credentials(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"http://relay:{SECRET}@127.0.0.1:{free_port()}/hook?token={SECRET}&page=1"
    content = WebhookContent(url=url, body=b"{}")
    with pytest.raises(DeliveryConnectionError) as failure:
        asyncio.run(WebhookSender().send(content, delivery_id=1))
    message = failure.value.message
    assert "http://relay:***@127.0.0.1:" in message and "token=***&page=1" in message
    assert SECRET not in message and SECRET not in str(failure.value)
    assert SECRET not in caplog.text


def test_an_unusable_url_is_named_without_its_credentials() -> None:
    # An unencoded "/" in the password: httpx reads "user:pa" as host and port and its
    # error message quotes the "port".
    url = f"http://user:pa/{SECRET}@127.0.0.1/hook"
    content = WebhookContent(url=url, body=b"{}")
    with pytest.raises(PermanentDeliveryError) as failure:
        asyncio.run(WebhookSender().send(content, delivery_id=1))
    assert (
        failure.value.message
        == "webhook url http://user:***@127.0.0.1/hook is unusable: not a valid URL"
    )


@pytest.mark.parametrize(
    "url",
    [
        f"http:/user:{SECRET}@example.com/hook",  # one slash
        f"ftp://user:{SECRET}@example.com/hook",
        f"http://user:{SECRET}@example.com:99999/hook",  # port out of range
        f"http://user:{SECRET}@[::1/hook",  # unclosed IPv6 bracket
        "http:///hook",  # no host
    ],
)
def test_check_names_a_bad_webhook_url_without_its_password(tmp_path: Path, url: str) -> None:
    config = tmp_path / "relay.toml"
    sections = base_sections(tmp_path / "state")
    config.write_text(
        to_toml(sections) + f"[destinations.webhook.crm]\nurl = {json.dumps(url)}\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["check", "--config", str(config)])
    assert result.exit_code == 1, result.output
    assert "destinations.webhook.crm.url" in result.output
    assert SECRET not in result.output
    if "user:" in url:
        assert "user:***@" in result.output


def test_settings_accept_a_good_webhook_url_unchanged() -> None:
    url = f"https://user:{SECRET}@example.com:8443/hook?apikey={SECRET}"
    assert http_url(url) == url
    settings = Settings(
        **base_sections(Path("/nonexistent")),
        destinations={"webhook": {"crm": {"url": url}}},
    )
    assert settings.destinations.webhook["crm"].url == url


def test_http_client_libraries_log_warnings_only_and_with_urls_masked() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    # Configured twice, as a reload does: the second handler replaces the first.
    configure_logging(LoggingSettings(), io.StringIO(), journal=False)
    handler = configure_logging(LoggingSettings(), stream, journal=False)
    try:
        assert [h for h in root.handlers if h.get_name() == "relay"] == [handler]
        client = logging.getLogger("httpx")
        client.info("HTTP Request: POST %s", f"http://h/hook?token={SECRET}")
        client.warning("retrying %s", f"https://relay:{SECRET}@h/hook")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    output = stream.getvalue()
    assert "HTTP Request" not in output  # below WARNING
    assert "retrying https://relay:***@h/hook" in output
    assert SECRET not in output
