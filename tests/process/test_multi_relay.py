"""Two `relay serve` processes on one PostgreSQL database: a relay SIGKILLed mid-delivery
loses nothing answered 2xx and its leased deliveries go to the survivor; identical posts
spread over both relays are accepted once."""

from __future__ import annotations

import json
import re
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.support.config import write_config
from tests.support.data import sample
from tests.support.holding_smtp import HoldingHandler
from tests.support.process import RelayProcess
from tests.support.smtp import Received, SmtpServer, free_port

pytestmark = pytest.mark.slow

# Longer than a held send lasts before the test releases it, so only a dead relay's
# deliveries change hands; and, as a relay requires, longer than a send's deadline.
LEASE_SECONDS = 10
SMTP_DEADLINE_SECONDS = 8
CONCURRENCY = 2
MARKER = re.compile(r"multirelay-(\d+)")


def conversation(n: int) -> bytes:
    data = sample("v1")
    data["channel"]["id"] = 20_000 + n
    data["channel"]["isMissed"] = True
    data["messages"][0]["content"] = f"multirelay-{n}"
    return json.dumps(data).encode()


def number(message: Received) -> int:
    """The conversation number of one received email."""
    text = message.message.get_body(preferencelist=("plain",))
    assert text is not None
    found = MARKER.search(text.get_content())
    assert found, "delivered email without its conversation marker"
    return int(found.group(1))


@pytest.fixture
def holding_smtp() -> Iterator[tuple[SmtpServer, HoldingHandler]]:
    handler = HoldingHandler()
    server = SmtpServer(handler)
    server.start()
    yield server, handler
    handler.release()
    server.stop()


@pytest.fixture
def start_relay(tmp_path: Path, postgres_url: str) -> Iterator[Callable[..., RelayProcess]]:
    """Starts relays on one database, each with its own state directory."""
    started: list[RelayProcess] = []

    def start(name: str, smtp_port: int) -> RelayProcess:
        port = free_port()
        (tmp_path / name).mkdir()
        config, _ = write_config(
            tmp_path / name,
            server={"port": port},
            storage={"url": postgres_url, "lease_seconds": LEASE_SECONDS},
            smtp={
                "host": "127.0.0.1",
                "port": smtp_port,
                "from_address": "Relay <r@shop.test>",
                "timeout_seconds": SMTP_DEADLINE_SECONDS,
            },
            routing={"sales_inbox": "sales@shop.test"},
            delivery={
                "backoff_initial_seconds": 0.05,
                "backoff_max_seconds": 0.2,
                "concurrency": CONCURRENCY,
                "per_destination_concurrency": CONCURRENCY,
            },
        )
        relay = RelayProcess(config, port)
        started.append(relay)
        relay.start()
        return relay

    yield start
    for relay in started:
        relay.ensure_stopped()


def held_by(url: str, state_dir: Path) -> list[int]:
    """The deliveries the relay with this state directory holds now."""
    holder = (state_dir / "relay-id").read_text().strip()
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT id FROM deliveries WHERE status = 'sending' AND claimed_by = %s ORDER BY id",
            (holder,),
        ).fetchall()
    return [int(row[0]) for row in rows]


def delivery_states(url: str, ids: list[int]) -> list[tuple[str, int]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT status, attempts FROM deliveries WHERE id = ANY(%s) ORDER BY id", (ids,)
        ).fetchall()
    return [(str(status), int(attempts)) for status, attempts in rows]


def test_a_relay_killed_mid_delivery_hands_its_leases_to_the_survivor(
    tmp_path: Path,
    postgres_url: str,
    holding_smtp: tuple[SmtpServer, HoldingHandler],
    start_relay: Callable[..., RelayProcess],
    capsys: pytest.CaptureFixture[str],
) -> None:
    total = 20
    server, handler = holding_smtp
    handler.hold_after = 4  # from the 5th email on, the server has it but does not answer
    doomed, survivor = start_relay("a", server.port), start_relay("b", server.port)
    pid = survivor.proc.pid if survivor.proc else None

    answered: set[int] = set()
    with httpx.Client(timeout=10) as client:
        for n in range(total):  # alternately
            relay = doomed if n % 2 == 0 else survivor
            response = relay.post(client, conversation(n))
            assert response.status_code == 200, response.text
            answered.add(n)
    # Every slot of both relays is in the middle of DATA.
    handler.wait_held(2 * CONCURRENCY)
    in_flight = held_by(postgres_url, tmp_path / "a" / "state")
    assert len(in_flight) == CONCURRENCY
    assert doomed.kill() == -signal.SIGKILL
    handler.release()  # the dead relay's emails arrived; it never hears so

    # The survivor takes each leased delivery over once the lease expires (its second
    # attempt), without a restart of anything.
    for delivery_id in in_flight:
        survivor.wait_for_line(rf"delivery {delivery_id} sent: .* attempt=2", timeout=60)

    def all_arrived() -> bool:
        return answered <= {number(m) for m in handler.messages}

    with handler.arrived:
        arrived = handler.arrived.wait_for(all_arrived, timeout=60)
    missing = answered - {number(m) for m in handler.messages}
    assert arrived, f"never delivered: {sorted(missing)}"
    assert survivor.proc is not None and survivor.proc.pid == pid
    assert survivor.terminate() == 0  # in-flight sends finish and are recorded

    per_conversation = Counter(number(m) for m in handler.messages)
    duplicates = sum(c - 1 for c in per_conversation.values())
    report = (
        f"two relays, one killed: {len(answered)}/{total} answered 2xx,"
        f" {len(handler.messages)} emails for {len(per_conversation)} conversations,"
        f" {duplicates} duplicates, {len(in_flight)} in flight on the killed relay"
    )
    with capsys.disabled():
        print(f"\n{report}")
    assert set(per_conversation) == answered
    assert duplicates <= len(in_flight), report
    with psycopg.connect(postgres_url) as conn:
        counts = dict(conn.execute("SELECT status, COUNT(*) FROM deliveries GROUP BY 1").fetchall())
    assert counts == {"sent": total}


def test_identical_posts_spread_over_two_relays_are_accepted_once(
    postgres_url: str,
    start_relay: Callable[..., RelayProcess],
    smtp_server: SmtpServer,
) -> None:
    relays = [start_relay("a", smtp_server.port), start_relay("b", smtp_server.port)]
    posts = 50
    content = conversation(1)
    start = threading.Barrier(posts)

    def post(n: int) -> dict[str, Any]:
        with httpx.Client(timeout=30) as client:
            start.wait(30)
            response = relays[n % 2].post(client, content)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    with ThreadPoolExecutor(posts) as pool:
        answers = list(pool.map(post, range(posts)))
    statuses = Counter(answer["status"] for answer in answers)
    assert statuses == {"accepted": 1, "duplicate": posts - 1}
    assert {answer["version"] for answer in answers} == {1}
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute("SELECT COUNT(*) FROM conversations").fetchone()
    assert row == (1,)
