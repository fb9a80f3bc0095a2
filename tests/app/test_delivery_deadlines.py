"""Every send has a total deadline, and a slow destination keeps only its share of the slots:
against a real server that answers one byte per second, and a real aiosmtpd beside it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from litestar.testing import TestClient

from relay.app import create_app
from relay.config.settings import Settings
from relay.delivery.worker import rounds_ahead
from tests.support.app import runtime
from tests.support.data import TOKEN, sample
from tests.support.drip import DripServer
from tests.support.smtp import RecordingHandler, SmtpServer
from tests.support.store import deliveries

# The store and the worker on each backend (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")

HOOK = f"/hooks/smartsupp/{TOKEN}"
# A delivery that failed is retried no sooner than half an hour later, so the row a test reads
# after the first outcome is that outcome, not the next attempt's claim. The first retry waits
# half to all of the smaller of the two settings, and the suite's base settings cap it at
# 0.2 s (tests/support/data.py): a backoff_initial_seconds alone left 0.1-0.2 s, less than
# the test's own read (a new connection) may take under load, so it found ("sending", 2).
NO_RETRY_SOON = {"backoff_initial_seconds": 3600, "backoff_max_seconds": 3600}


@dataclass
class SlowStepsHandler(RecordingHandler):
    """Answers MAIL, RCPT and DATA each after ``delay`` seconds: every reply comes within the
    client's per-command timeout, the whole transaction does not."""

    delay: float = 1.2

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: Any
    ) -> str:
        await asyncio.sleep(self.delay)
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        await asyncio.sleep(self.delay)
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def drip() -> Iterator[DripServer]:
    server = DripServer(interval=1.0)
    server.start()
    yield server
    server.stop()


def conversation(n: int, *, missed: bool) -> bytes:
    data = sample("v1")
    data["channel"]["id"] = 5_000 + n
    data["channel"]["isMissed"] = missed
    data["channel"]["rating"] = None
    return json.dumps(data).encode()


def low_rated() -> bytes:
    data = sample("v2")
    data["channel"]["rating"] = 1
    return json.dumps(data).encode()


def wait_attempts(client: TestClient[Any], count: int, timeout: float = 30.0) -> None:
    async def attempted() -> None:
        await asyncio.wait_for(runtime(client).worker.attempted(count), timeout)

    client.blocking_portal.call(attempted)


def slow_webhook_settings(
    make_settings: Callable[..., Settings], drip: DripServer, timeout: float, **sections: Any
) -> Settings:
    """Missed conversations go to the dripping webhook, every other one by email."""
    return make_settings(
        destinations={"webhook": {"slow": {"url": drip.url("/hook"), "timeout_seconds": timeout}}},
        rules=[
            {
                "name": "missed-to-slow-webhook",
                "match": {"category": ["missed"]},
                "actions": [{"type": "webhook", "destination": "slow"}],
            },
            {"name": "rest-by-email", "actions": [{"type": "email", "to": ["ops@shop.test"]}]},
        ],
        **sections,
    )


def test_a_webhook_answer_dripped_byte_by_byte_fails_transiently_at_the_deadline(
    make_settings: Callable[..., Settings], drip: DripServer
) -> None:
    # Each byte comes well within httpx's 2 s read timeout; only the whole answer is late.
    settings = slow_webhook_settings(
        make_settings,
        drip,
        timeout=2.0,
        delivery={**NO_RETRY_SOON, "shutdown_grace_seconds": 0.2},
    )
    with TestClient(create_app(settings)) as client:
        assert client.post(HOOK, content=conversation(1, missed=True)).status_code == 200
        wait_attempts(client, 1)
        [row] = deliveries(settings)
    assert (row.status, row.attempts) == ("retrying", 1)
    assert row.next_attempt_at - row.updated_at >= 1800  # read before any retry could start
    assert row.last_error == "no complete answer within the 2 s deadline"
    assert drip.finished == 0


def test_a_slack_answer_dripped_byte_by_byte_fails_transiently_at_the_deadline(
    make_settings: Callable[..., Settings], drip: DripServer
) -> None:
    settings = make_settings(
        slack={"token": "xoxb-test", "api_url": drip.url("/api/"), "timeout_seconds": 2},
        delivery={**NO_RETRY_SOON, "shutdown_grace_seconds": 0.2},
    )
    with TestClient(create_app(settings)) as client:
        assert client.post(HOOK, content=low_rated()).status_code == 200
        wait_attempts(client, 1)
        [row] = deliveries(settings)
    assert (row.status, row.attempts) == ("retrying", 1)
    assert row.next_attempt_at - row.updated_at >= 1800  # read before any retry could start
    # The worker's deadline or slack-sdk's own total timeout, whichever fires first.
    assert row.last_error is not None
    assert row.last_error == "no complete answer within the 2 s deadline" or (
        row.last_error.startswith("Slack request timed out")
    )
    assert drip.finished == 0


@pytest.mark.parametrize(
    "limits",
    [(2, 2, 2), (None, 2, 3)],
    ids=["a cap of 2", "unset: a share of 2, borrowing up to 3"],
)
def test_deliveries_hanging_on_a_slow_destination_leave_room_for_the_others(
    make_settings: Callable[..., Settings],
    drip: DripServer,
    smtp_server: SmtpServer,
    smtp_handler: RecordingHandler,
    limits: tuple[int | None, int, int],
) -> None:
    """Five deliveries to a destination that takes minutes to answer (its deadline is far
    off) and then one email: the email is sent while they hang, because one destination may
    hold only its share of the worker's 4 slots (``per_destination_concurrency``) or, when
    that is unset, borrow idle ones up to all but one."""
    per_destination, share, most = limits  # the setting, its share, the most it may hold
    settings = slow_webhook_settings(
        make_settings,
        drip,
        timeout=120.0,
        smtp={"host": "127.0.0.1", "port": smtp_server.port},
        delivery={
            "concurrency": 4,
            "per_destination_concurrency": per_destination,
            "shutdown_grace_seconds": 0.2,
        },
    )
    # Where the worker claims ahead (no lease on SQLite; on PostgreSQL the default 300 s
    # lease is shorter than 4 x the webhook's 120 s deadline, so not there) it claims
    # several times all it may use (``most``): all five here; otherwise its share only.
    rounds = rounds_ahead(
        None if settings.storage.url is None else settings.storage.lease_seconds, [120.0]
    )
    ahead = rounds > 1
    claimed = min(most * rounds, 5) if ahead else share
    hanging_expected = most if ahead else share
    with TestClient(create_app(settings)) as client:
        for n in range(5):
            assert client.post(HOOK, content=conversation(n, missed=True)).status_code == 200
        drip.wait_for(hanging_expected)
        assert client.post(HOOK, content=conversation(99, missed=False)).status_code == 200
        [email] = smtp_handler.wait_for(1, timeout=20)
        wait_attempts(client, 1)  # the email's outcome, the only one recorded so far
        rows = deliveries(settings)
        hanging = drip.requests
    assert email.rcpt_tos == ["ops@shop.test"]
    assert hanging == hanging_expected  # the destination's limit, not the worker's 4
    # Claimed: the sends and those rendered and waiting for a connection; the rest pending.
    by_status = sorted((row.rule, row.status) for row in rows)
    assert by_status == [
        *[("missed-to-slow-webhook", "pending")] * (5 - claimed),
        *[("missed-to-slow-webhook", "sending")] * claimed,
        ("rest-by-email", "sent"),
    ]
    assert drip.finished == 0


def test_two_slow_destinations_together_leave_a_slot_for_mail(
    make_settings: Callable[..., Settings],
    drip: DripServer,
    smtp_server: SmtpServer,
    smtp_handler: RecordingHandler,
) -> None:
    """Twenty deliveries to two dripping destinations, queued ahead of three emails: once both
    have run into their deadline they hold at most concurrency - 1 slots together, so the
    emails are sent while most of the slow deliveries still wait their turn (with each
    destination allowed concurrency - 1, the two took all 4 slots until the queue drained)."""
    slow = {"timeout_seconds": 1.0}
    settings = make_settings(
        destinations={
            "webhook": {"a": {"url": drip.url("/a"), **slow}, "b": {"url": drip.url("/b"), **slow}}
        },
        rules=[
            {
                "name": "missed-to-slow-webhooks",
                "match": {"category": ["missed"]},
                "actions": [
                    {"type": "webhook", "destination": "a"},
                    {"type": "webhook", "destination": "b"},
                ],
            },
            {"name": "rest-by-email", "actions": [{"type": "email", "to": ["ops@shop.test"]}]},
        ],
        smtp={"host": "127.0.0.1", "port": smtp_server.port},
        delivery={"concurrency": 4, **NO_RETRY_SOON, "shutdown_grace_seconds": 0.2},
    )
    with TestClient(create_app(settings)) as client:
        for n in range(10):
            assert client.post(HOOK, content=conversation(n, missed=True)).status_code == 200
        drip.wait_for(4)  # every slot is on a slow destination
        for n in range(3):
            assert client.post(HOOK, content=conversation(90 + n, missed=False)).status_code == 200
        emails = smtp_handler.wait_for(3, timeout=60)
        tried = drip.requests
    assert [email.rcpt_tos for email in emails] == [["ops@shop.test"]] * 3
    assert tried < 20, f"the emails waited until all {tried} slow deliveries had been tried"


def test_an_smtp_server_slow_at_every_step_fails_transiently_at_the_deadline(
    make_settings: Callable[..., Settings],
) -> None:
    handler = SlowStepsHandler(delay=1.2)
    server = SmtpServer(handler)
    server.start()
    try:
        settings = make_settings(
            smtp={"host": "127.0.0.1", "port": server.port, "timeout_seconds": 2},
            routing={"sales_inbox": "sales@shop.test"},
            delivery={**NO_RETRY_SOON, "shutdown_grace_seconds": 0.2},
        )
        with TestClient(create_app(settings)) as client:
            assert client.post(HOOK, content=conversation(1, missed=True)).status_code == 200
            wait_attempts(client, 1)
            [row] = deliveries(settings)
    finally:
        server.stop()
    assert (row.status, row.attempts) == ("retrying", 1)
    assert row.next_attempt_at - row.updated_at >= 1800  # read before any retry could start
    assert row.last_error == "no complete answer within the 2 s deadline"
