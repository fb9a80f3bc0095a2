"""/metrics: the Prometheus text format, counters that move with traffic, queue gauges."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from relay.app import create_app, database_path
from relay.config.settings import Settings
from relay.routing.rules import EmailAction, PlannedDelivery
from relay.store import Intake, Store
from relay.store.opening import postgres_url
from relay.store.postgres import PostgresStore
from relay.store.storethread import StoreThread
from tests.support.app import runtime, wait_settled
from tests.support.data import TOKEN, body, sample
from tests.support.holding_smtp import HoldingHandler
from tests.support.smtp import SmtpServer

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient[Any]) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def missed(channel_id: int = 55039) -> bytes:
    data = sample("v1")
    data["channel"]["isMissed"] = True
    data["channel"]["id"] = channel_id
    return body(data)


def test_counters_move_with_traffic(
    make_settings: Callable[..., Settings], smtp_server: SmtpServer
) -> None:
    settings = make_settings(smtp={"host": "127.0.0.1", "port": smtp_server.port})
    # The first delivery is deferred once, then refused for good.
    smtp_server.handler.data_replies.extend(["451 4.3.0 busy", "550 5.1.1 no such mailbox"])
    hook = f"/hooks/smartsupp/{TOKEN}"
    with TestClient(create_app(settings)) as client:
        before = scrape(client)
        assert client.post(hook, content=missed()).status_code == 200
        assert client.post(hook, content=missed()).json()["status"] == "duplicate"
        assert client.post(hook, content=body(sample("v2"))).json()["category"] == "normal"
        assert client.post(hook, content=b"{not json").status_code == 400
        assert client.post("/hooks/smartsupp/guess", content=missed()).status_code == 404
        wait_settled(client)
        middle = scrape(client)
        assert client.post(hook, content=missed(channel_id=1)).status_code == 200
        smtp_server.handler.wait_for(1)
        wait_settled(client)
        after = scrape(client)

    received = "relay_conversations_received_total"
    assert moved(before, middle, received, category="missed", duplicate="false") == 1
    assert moved(before, middle, received, category="missed", duplicate="true") == 1
    assert moved(before, middle, received, category="normal", duplicate="false") == 1
    rejected = "relay_conversations_rejected_total"
    assert moved(before, middle, rejected, reason="invalid_json") == 1
    assert moved(before, middle, rejected, reason="wrong_token") == 1
    assert moved(before, middle, rejected, reason="forbidden_address") == 0

    deliveries = "relay_deliveries_total"
    assert moved(before, middle, deliveries, channel="email", outcome="retry") == 1
    assert moved(before, middle, deliveries, channel="email", outcome="dead") == 1
    assert moved(before, middle, deliveries, channel="email", outcome="sent") == 0
    assert moved(middle, after, deliveries, channel="email", outcome="sent") == 1
    assert moved(before, after, deliveries, channel="slack", outcome="sent") == 0
    latency = "relay_delivery_send_duration_seconds"
    assert moved(before, after, f"{latency}_count", channel="email") == 3
    assert value(after, f"{latency}_sum", channel="email") > 0
    assert value(after, f"{latency}_bucket", channel="email", le="+Inf") == 3

    depth = "relay_delivery_queue_depth"
    assert value(middle, depth, status="dead") == 1
    assert value(after, depth, status="sent") == 1
    assert value(after, depth, status="pending") == 0
    assert value(after, "relay_oldest_pending_delivery_age_seconds") == 0


def test_queue_gauges_show_the_backlog_and_its_age(
    make_settings: Callable[..., Settings], smtp_server: SmtpServer
) -> None:
    settings = make_settings(smtp={"host": "127.0.0.1", "port": smtp_server.port})
    smtp_server.handler.rcpt_replies["sales@localhost"] = "451 4.2.1 try later"
    with TestClient(create_app(settings)) as client:
        assert client.post(f"/hooks/smartsupp/{TOKEN}", content=missed()).status_code == 200
        runtime(client).clock = lambda: time.time() + 300
        samples = scrape(client)
    depth = "relay_delivery_queue_depth"
    active = sum(value(samples, depth, status=s) for s in ("pending", "sending", "retrying"))
    assert active == 1
    assert value(samples, depth, status="sent") == 0
    assert value(samples, "relay_oldest_pending_delivery_age_seconds") >= 300


def test_each_app_counts_for_itself_and_the_token_is_no_label(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    first = create_app(make_settings())
    second = create_app(make_settings(storage={"state_dir": str(tmp_path / "second")}))
    name = "relay_conversations_received_total"
    with TestClient(first) as one, TestClient(second) as two:
        assert one.post(f"/hooks/smartsupp/{TOKEN}", content=missed()).status_code == 200
        assert value(scrape(one), name, category="missed", duplicate="false") == 1
        assert value(scrape(two), name, category="missed", duplicate="false") == 0
        text = one.get("/metrics").text
    assert TOKEN not in text


class DamagedQueue(Store):
    """A store whose deliveries cannot be read (as with a corrupt page of their index)."""

    def counts(self) -> dict[str, int]:
        raise sqlite3.DatabaseError("database disk image is malformed")


def test_metrics_answer_503_not_500_when_the_store_fails(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    with TestClient(create_app(settings)) as client:
        rt = runtime(client)
        healthy, worker = rt.store, rt.worker
        damaged = StoreThread(DamagedQueue(database_path(settings)))
        rt.attach(damaged, worker)
        try:
            response = client.get("/metrics")
        finally:
            rt.attach(healthy, worker)
            damaged.close()
        assert response.status_code == 503
        assert response.text == "the store failed: DatabaseError\n"
        assert client.get("/metrics").status_code == 200


def test_refusal_series_start_at_zero_including_invalid_utf8(
    make_settings: Callable[..., Settings],
) -> None:
    with TestClient(create_app(make_settings())) as client:
        samples = scrape(client)
    name = "relay_conversations_rejected_total"
    for reason in ("forbidden_address", "wrong_token", "invalid_json", "invalid_utf8"):
        assert (name, frozenset({("reason", reason)})) in samples, reason
        assert value(samples, name, reason=reason) == 0


@pytest.mark.usefixtures("backend")
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_lease_gauges_count_this_relays_other_relays_and_expired_leases(
    make_settings: Callable[..., Settings],
) -> None:
    handler = HoldingHandler()
    handler.holding.set()
    server = SmtpServer(handler)
    server.start()
    settings = make_settings(
        smtp={"host": "127.0.0.1", "port": server.port},
        # One send to the one SMTP server at a time: an expired lease to it waits for room.
        delivery={"concurrency": 2, "per_destination_concurrency": 1},
    )
    url = postgres_url(settings)
    assert url is not None
    other = PostgresStore(url, lease_seconds=60)
    try:
        with TestClient(create_app(settings)) as client:
            assert client.post(f"/hooks/smartsupp/{TOKEN}", content=missed()).status_code == 200
            handler.wait_held(1)  # this relay holds its delivery, in the middle of DATA
            # Due now, to the busy SMTP server: this relay's worker leaves it to the other.
            other.accept(email_intake(1))
            assert len(other.claim_due(1)) == 1  # another relay's live lease
            other.accept(email_intake(2), now=0)
            assert len(other.claim_due(1, now=0)) == 1  # expired since 1970
            samples = scrape(client)
            handler.release()
    finally:
        handler.release()
        server.stop()
        other.close()
    leases = "relay_delivery_leases"
    assert value(samples, leases, holder="this_relay") == 1
    assert value(samples, leases, holder="other_relays") == 1
    assert value(samples, leases, holder="expired") == 1


def email_intake(n: int) -> Intake:
    action = EmailAction(type="email", to=["sales@localhost"])
    return Intake(
        raw=b"{}",
        conv_key=f"9-{n}",
        account_id=9,
        channel_id=n,
        content_hash=f"h{n}",
        category="missed",
        planned=(PlannedDelivery(rule="r", action=action),),
    )


def test_delivery_series_start_at_zero_for_every_action_type_including_teams(
    make_settings: Callable[..., Settings],
) -> None:
    with TestClient(create_app(make_settings())) as client:
        samples = scrape(client)
    name = "relay_deliveries_total"
    for channel in ("email", "slack", "webhook", "archive", "teams"):
        for outcome in ("sent", "outbox", "retry", "dead"):
            labels = frozenset({("channel", channel), ("outcome", outcome)})
            assert (name, labels) in samples, (channel, outcome)
            assert samples[(name, labels)] == 0
