"""`relay serve` as a real process: SIGTERM while a Slack send hangs on a server that answers one
byte per second. The process exits within its grace period and the delivery stays queued."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.config import write_config
from tests.support.data import sample
from tests.support.drip import DripServer
from tests.support.process import RelayProcess
from tests.support.smtp import free_port
from tests.support.store import deliveries

pytestmark = pytest.mark.slow

GRACE = 1.0


@pytest.fixture
def drip() -> Iterator[DripServer]:
    server = DripServer(interval=1.0)
    server.start()
    yield server
    server.stop()


def test_sigterm_with_a_send_hanging_on_a_dripping_server_exits_within_the_grace(
    tmp_path: Path, drip: DripServer
) -> None:
    port = free_port()
    config, settings = write_config(
        tmp_path,
        server={"port": port},
        # The send's own deadline is far off: only the shutdown can end it in time.
        slack={"token": "xoxb-test", "api_url": drip.url("/api/"), "timeout_seconds": 300},
        delivery={"shutdown_grace_seconds": GRACE},
    )
    data = sample("v2")
    data["channel"]["rating"] = 1  # low-rated: the built-in rule posts it to Slack
    relay = RelayProcess(config, port)
    relay.start()
    try:
        with httpx.Client(timeout=10) as client:
            assert relay.post(client, json.dumps(data).encode()).status_code == 200
        drip.wait_for(1)  # the send is hanging on the dripping answer

        assert relay.proc is not None
        relay.proc.send_signal(signal.SIGTERM)
        relay.wait_for_line(r"worker stopping: waiting up to 1 s for 1 in-flight deliveries")
        # Before the fix the process outlived this by a minute and more (the thread that
        # ran the Slack call was still reading the dripping answer).
        assert relay.proc.wait(timeout=GRACE + 15) == 0
    finally:
        relay.ensure_stopped()

    relay.wait_for_line(r"shutdown: 1 unfinished deliveries left pending")
    [row] = deliveries(settings)
    assert (row.channel, row.status, row.attempts) == ("slack", "pending", 0)
    assert drip.finished == 0
