"""A destination's answer is read only up to a bound: against a real `relay serve` and a real
loopback server whose answers never end, the relay's peak memory stays small and each delivery
gets a clear outcome (a refusal's status, Slack's missing reply) instead of a read that lasts
until the deadline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.config import write_config
from tests.support.data import sample
from tests.support.flood import FloodServer
from tests.support.process import RelayProcess
from tests.support.smtp import free_port

pytestmark = pytest.mark.slow

PEAK_LIMIT = 300 * 2**20  # far above a relay's own use, far below an unbounded read


@pytest.fixture
def flood() -> Iterator[FloodServer]:
    server = FloodServer()
    server.start()
    yield server
    server.stop()


def peak_memory(pid: int) -> int:
    """The process's resident high-water mark (VmHWM) in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for process {pid}")


def test_endless_answers_are_read_only_up_to_a_bound(tmp_path: Path, flood: FloodServer) -> None:
    port = free_port()
    config, _ = write_config(tmp_path, server={"port": port})
    config.write_text(
        config.read_text()
        + f"""
[slack]
token = "xoxb-test"
api_url = "{flood.url("/api/")}"
timeout_seconds = 5
[destinations.webhook.busy]
url = "{flood.url("/busy")}"
timeout_seconds = 5
[destinations.webhook.taken]
url = "{flood.url("/taken")}"
timeout_seconds = 5
[[rules]]
name = "all"
actions = [
  {{ type = "slack", channel = "#ops" }},
  {{ type = "webhook", destination = "busy" }},
  {{ type = "webhook", destination = "taken" }},
]
"""
    )
    relay = RelayProcess(config, port)
    relay.start()
    try:
        assert relay.proc is not None
        before = peak_memory(relay.proc.pid)
        data = sample("v1")
        data["channel"]["isMissed"] = True
        with httpx.Client(timeout=30) as client:
            assert relay.post(client, json.dumps(data).encode()).status_code == 200
        slack = relay.wait_for_line(r"failed \(attempt 1\).*Slack answered with no Slack reply")
        busy = relay.wait_for_line(r"failed \(attempt 1\).*webhook answered HTTP 503: x")
        relay.wait_for_line(r"delivery \d+ sent: channel=webhook")
        after = peak_memory(relay.proc.pid)
    finally:
        relay.terminate()
    assert "over 65536 bytes" in slack
    assert "x" * 300 not in busy  # the error text quotes a short snippet of the answer
    assert after < PEAK_LIMIT, (
        f"relay peak memory {after / 2**20:.0f} MiB (at start {before / 2**20:.0f} MiB);"
        f" the server streamed {flood.sent / 2**20:.0f} MiB"
    )
