"""`relay serve` as a real process: SIGKILL mid-delivery loses nothing answered 2xx; SIGTERM
finishes in-flight sends, leaves the rest pending and exits 0."""

from __future__ import annotations

import json
import re
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from relay.store import Store
from tests.support.config import write_config
from tests.support.data import sample
from tests.support.holding_smtp import HoldingHandler
from tests.support.process import RelayProcess
from tests.support.smtp import Received, SmtpServer, free_port

pytestmark = pytest.mark.slow

MARKER = re.compile(r"crashtest-(\d+)")


def conversation(n: int) -> bytes:
    data = sample("v1")
    data["channel"]["id"] = 10_000 + n
    data["channel"]["isMissed"] = True
    data["messages"][0]["content"] = f"crashtest-{n}"
    return json.dumps(data).encode()


def delivered(message: Received) -> tuple[int, str]:
    """(conversation number, Message-ID) of one received email."""
    email = message.message
    text = email.get_body(preferencelist=("plain",))
    assert text is not None
    found = MARKER.search(text.get_content())
    assert found, "delivered email without its conversation marker"
    return int(found.group(1)), str(email["Message-ID"])


@pytest.fixture
def holding_smtp() -> Iterator[tuple[SmtpServer, HoldingHandler]]:
    handler = HoldingHandler()
    server = SmtpServer(handler)
    server.start()
    yield server, handler
    handler.release()  # held DATA replies must end before the server can stop
    server.stop()


@pytest.fixture
def start_relay(tmp_path: Path) -> Iterator[Callable[..., RelayProcess]]:
    started: list[RelayProcess] = []

    def start(smtp_port: int, **delivery: Any) -> RelayProcess:
        port = free_port()
        config, _ = write_config(
            tmp_path,
            server={"port": port},
            smtp={"host": "127.0.0.1", "port": smtp_port, "from_address": "Relay <r@shop.test>"},
            routing={"sales_inbox": "sales@shop.test"},
            delivery={"backoff_initial_seconds": 0.05, "backoff_max_seconds": 0.2, **delivery},
        )
        relay = RelayProcess(config, port)
        started.append(relay)
        relay.start()
        return relay

    yield start
    for relay in started:
        relay.ensure_stopped()


def store_counts(state_dir: Path) -> dict[str, int]:
    store = Store(state_dir / "relay.db")
    try:
        return store.counts()
    finally:
        store.close()


def test_sigkill_mid_delivery_loses_no_answered_conversation(
    tmp_path: Path,
    holding_smtp: tuple[SmtpServer, HoldingHandler],
    start_relay: Callable[..., RelayProcess],
    record_property: Callable[[str, object], None],
) -> None:
    total, concurrency = 40, 4
    server, handler = holding_smtp
    handler.hold_after = 5  # the 6th email onwards: the server has it, the relay never hears
    relay = start_relay(server.port, concurrency=concurrency)

    answered: set[int] = set()
    refused: list[str] = []
    halfway = threading.Event()

    def post_all() -> None:
        with httpx.Client(timeout=10) as client:
            for n in range(total):
                try:
                    response = relay.post(client, conversation(n))
                except httpx.HTTPError as exc:  # the relay was killed under us
                    refused.append(f"{n}: {type(exc).__name__}")
                    continue
                if response.status_code == 200:
                    answered.add(n)
                if len(answered) >= total // 2:
                    halfway.set()

    poster = threading.Thread(target=post_all)
    poster.start()
    handler.wait_held(1)  # a send is in the middle of DATA
    assert halfway.wait(20), "half of the posts were never answered"
    assert relay.kill() == -signal.SIGKILL
    poster.join(30)
    assert not poster.is_alive()

    handler.release()
    relay = start_relay(server.port, concurrency=concurrency)
    relay.wait_for_line(r"requeued \d+ deliveries interrupted")

    def all_answered_arrived() -> bool:
        return answered <= {delivered(m)[0] for m in handler.messages}

    with handler.arrived:
        arrived = handler.arrived.wait_for(all_answered_arrived, timeout=30)
    missing = answered - {delivered(m)[0] for m in handler.messages}
    assert arrived, f"never delivered after the restart: {sorted(missing)}"
    assert relay.terminate() == 0

    received = [delivered(m) for m in handler.messages]
    per_conversation = Counter(n for n, _ in received)
    duplicates = sum(c - 1 for c in per_conversation.values())
    report = (
        f"SIGKILL test: {len(answered)}/{total} posts answered 2xx, {len(refused)} failed at the"
        f" kill, {len(received)} emails for {len(per_conversation)} conversations,"
        f" {duplicates} duplicates"
    )
    print(report)
    record_property("answered", len(answered))
    record_property("emails", len(received))
    record_property("duplicates", duplicates)
    # At least once for everything answered; repeats only for sends that were in flight.
    assert answered <= set(per_conversation)
    assert duplicates <= concurrency, report
    # A repeat carries the same Message-ID, so the recipient's mail system can fold it.
    ids = {n: {mid for m, mid in received if m == n} for n in per_conversation}
    assert all(len(mids) == 1 for mids in ids.values())
    final = store_counts(tmp_path / "state")
    assert final["pending"] == final["retrying"] == final["sending"] == final["dead"] == 0
    assert final["sent"] == len(per_conversation)


def test_sigterm_finishes_in_flight_sends_leaves_the_rest_pending_and_exits_0(
    tmp_path: Path,
    holding_smtp: tuple[SmtpServer, HoldingHandler],
    start_relay: Callable[..., RelayProcess],
) -> None:
    server, handler = holding_smtp
    handler.holding.set()  # hold every DATA reply from the start
    # Both sends go to the one SMTP server: let it have both slots.
    relay = start_relay(
        server.port, concurrency=2, per_destination_concurrency=2, shutdown_grace_seconds=20
    )
    with httpx.Client(timeout=10) as client:
        statuses = [relay.post(client, conversation(n)).status_code for n in range(5)]
    assert statuses == [200] * 5
    handler.wait_held(2)

    assert relay.proc is not None
    relay.proc.send_signal(signal.SIGTERM)
    relay.wait_for_line(r"worker stopping: waiting up to 20 s for 2 in-flight deliveries")
    handler.release()  # the two in-flight sends now complete during the grace period
    assert relay.proc.wait(timeout=30) == 0

    assert len(handler.messages) == 2
    assert store_counts(tmp_path / "state") == {
        "pending": 3,
        "sending": 0,
        "retrying": 0,
        "sent": 2,
        "outbox": 0,
        "dead": 0,
    }

    relay = start_relay(server.port, concurrency=2)
    received = handler.wait_for(5)
    assert relay.terminate() == 0
    assert sorted(delivered(m)[0] for m in received) == [0, 1, 2, 3, 4]
    assert len(handler.messages) == 5
