"""Slack delivery against the fake Slack server: rate limits, server errors, refusals, outages."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from litestar.testing import TestClient

from relay.app import create_app
from relay.config.settings import Settings
from tests.support.app import runtime, wait_settled
from tests.support.data import TOKEN, sample
from tests.support.slack import FakeSlack, Reply
from tests.support.smtp import free_port
from tests.support.store import deliveries

# The store and the worker on each backend (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")

HOOK = f"/hooks/smartsupp/{TOKEN}"


def low_rated() -> bytes:
    data = sample("v2")
    data["channel"]["rating"] = 1
    return json.dumps(data).encode()


def wait_attempts(client: TestClient[Any], count: int) -> None:
    async def attempted() -> None:
        await asyncio.wait_for(runtime(client).worker.attempted(count), 20)

    client.blocking_portal.call(attempted)


def post_and_settle(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        assert client.post(HOOK, content=low_rated()).json()["deliveries"] == 1
        wait_settled(client)


@pytest.fixture
def bot_settings(make_settings: Callable[..., Settings], fake_slack: FakeSlack) -> Settings:
    return make_settings(slack={"token": "xoxb-test", "api_url": fake_slack.url})


def test_429_is_retried_no_sooner_than_retry_after_and_delivered_once(
    bot_settings: Settings, fake_slack: FakeSlack
) -> None:
    fake_slack.replies = [
        Reply(429, {"ok": False, "error": "ratelimited"}, headers={"Retry-After": "2"})
    ]
    post_and_settle(bot_settings)
    first, second = fake_slack.calls  # exactly two calls: the refused one and the delivery
    assert second.at - first.at >= 2.0
    [row] = deliveries(bot_settings)
    assert (row.status, row.attempts) == ("sent", 2)


def test_the_worker_keeps_sending_while_a_rate_limited_delivery_waits(
    make_settings: Callable[..., Settings], fake_slack: FakeSlack
) -> None:
    """Retry-After reschedules the delivery; it does not put the worker to sleep."""
    settings = make_settings(
        slack={"token": "xoxb-test", "api_url": fake_slack.url}, delivery={"concurrency": 1}
    )
    fake_slack.replies = [
        Reply(429, {"ok": False, "error": "ratelimited"}, headers={"Retry-After": "30"})
    ]
    other = json.loads(low_rated())
    other["channel"]["id"] = 4242
    with TestClient(create_app(settings)) as client:
        client.post(HOOK, content=low_rated())
        fake_slack.wait_for(1)
        client.post(HOOK, content=json.dumps(other).encode())
        calls = fake_slack.wait_for(2, timeout=10)
        wait_attempts(client, 2)
        statuses = sorted(row.status for row in deliveries(settings))
    assert len(calls) == 2
    assert statuses == ["retrying", "sent"]


def test_http_500_is_retried(bot_settings: Settings, fake_slack: FakeSlack) -> None:
    fake_slack.replies = [Reply(500, "upstream exploded")]
    post_and_settle(bot_settings)
    assert len(fake_slack.calls) == 2
    [row] = deliveries(bot_settings)
    assert (row.status, row.attempts) == ("sent", 2)


@pytest.mark.parametrize("error", ["channel_not_found", "invalid_auth", "not_in_channel"])
def test_ok_false_refusals_are_dead_after_one_attempt(
    bot_settings: Settings, fake_slack: FakeSlack, error: str
) -> None:
    fake_slack.replies = [Reply(200, {"ok": False, "error": error})]
    post_and_settle(bot_settings)
    assert len(fake_slack.calls) == 1
    [row] = deliveries(bot_settings)
    assert (row.status, row.attempts) == ("dead", 1)
    assert row.last_error == f"Slack refused the message: {error} (HTTP 200)"


def test_transient_ok_false_errors_are_retried(
    bot_settings: Settings, fake_slack: FakeSlack
) -> None:
    fake_slack.replies = [Reply(200, {"ok": False, "error": "service_unavailable"})]
    post_and_settle(bot_settings)
    assert len(fake_slack.calls) == 2
    assert deliveries(bot_settings)[0].status == "sent"


def test_incoming_webhook_refusal_is_dead_and_5xx_is_retried(
    make_settings: Callable[..., Settings], fake_slack: FakeSlack
) -> None:
    settings = make_settings(slack={"webhook_url": fake_slack.url + "services/T0/B0/secret"})
    fake_slack.replies = [Reply(503, "try later"), Reply(404, "channel_not_found")]
    post_and_settle(settings)
    assert [c.path for c in fake_slack.calls] == ["/services/T0/B0/secret"] * 2
    [row] = deliveries(settings)
    assert (row.status, row.attempts) == ("dead", 2)
    assert row.last_error == "Slack refused the message: channel_not_found (HTTP 404)"


def test_slack_unreachable_is_retried_not_dead(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        slack={"token": "xoxb-test", "api_url": f"http://127.0.0.1:{free_port()}/"}
    )
    with TestClient(create_app(settings)) as client:
        client.post(HOOK, content=low_rated())
        wait_attempts(client, 2)
        [row] = deliveries(settings)
    assert row.status in ("retrying", "sending")
    assert row.last_error is not None and row.last_error.startswith("Slack connection failed")


def test_a_200_with_an_html_body_is_retried_not_dead(
    bot_settings: Settings, fake_slack: FakeSlack
) -> None:
    """A proxy's error page with status 200 is no Slack reply: it says nothing about the
    message, so the delivery is tried again (and then sent)."""
    page = "<html><body><h1>Service temporarily unavailable</h1></body></html>"
    fake_slack.replies = [Reply(200, page, content_type="text/html; charset=utf-8")]
    post_and_settle(bot_settings)
    assert len(fake_slack.calls) == 2
    [row] = deliveries(bot_settings)
    assert (row.status, row.attempts) == ("sent", 2)


def test_retry_after_0_is_not_sooner_than_the_minimum_backoff(
    make_settings: Callable[..., Settings], fake_slack: FakeSlack
) -> None:
    """``Retry-After: 0`` does not make a hot loop: the next attempt is stored no sooner than
    the fixed half of the first backoff (15 s here) after the attempt was recorded."""
    settings = make_settings(
        slack={"token": "xoxb-test", "api_url": fake_slack.url},
        delivery={"backoff_initial_seconds": 30, "backoff_max_seconds": 60},
    )
    fake_slack.replies = [
        Reply(429, {"ok": False, "error": "ratelimited"}, headers={"Retry-After": "0"})
    ]
    with TestClient(create_app(settings)) as client:
        client.post(HOOK, content=low_rated())
        wait_attempts(client, 1)
        [row] = deliveries(settings)
    assert (row.status, row.attempts) == ("retrying", 1)
    # Both times come from the worker's clock at the moment the outcome was recorded.
    assert row.next_attempt_at - row.updated_at >= 15.0
    assert len(fake_slack.calls) == 1
