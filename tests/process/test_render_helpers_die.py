"""A SIGKILLed `relay serve` leaves no render helper (nor multiprocessing's resource tracker)
behind: every process it started ends with it."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.config import write_config
from tests.support.data import sample
from tests.support.process import RelayProcess
from tests.support.smtp import SmtpServer, free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc, uses pidfds"),
]

DEADLINE = 30.0  # seconds the children get to end after the parent was killed


def children(parent: int) -> dict[int, str]:
    """The processes whose parent is ``parent``, by PID, with their command lines."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # ended meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        ppid = int(stat.rpartition(")")[2].split()[1])
        if ppid == parent:
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found


@pytest.fixture
def relay(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[RelayProcess]:
    port = free_port()
    config, _ = write_config(
        tmp_path,
        server={"port": port},
        smtp={"host": "127.0.0.1", "port": smtp_server.port, "from_address": "R <r@shop.test>"},
        routing={"sales_inbox": "sales@shop.test"},
        delivery={"render_processes": 1},
    )
    process = RelayProcess(config, port)
    process.start()
    yield process
    process.ensure_stopped()


def test_render_helpers_and_the_resource_tracker_die_with_a_sigkilled_relay(
    relay: RelayProcess, smtp_server: SmtpServer
) -> None:
    data = sample("v1")
    data["channel"]["isMissed"] = True
    with httpx.Client(timeout=30) as client:
        assert relay.post(client, json.dumps(data).encode()).status_code == 200
    smtp_server.handler.wait_for(1)  # rendered in the helper process, which is now running
    assert relay.proc is not None
    started = children(relay.proc.pid)
    assert any("spawn_main" in cmdline for cmdline in started.values()), started
    # A pidfd refers to one process for good (no PID reuse) and is readable once it ended.
    pidfds = {pid: os.pidfd_open(pid) for pid in started}
    try:
        relay.kill()
        deadline = time.monotonic() + DEADLINE
        alive = dict(pidfds)
        while alive and (left := deadline - time.monotonic()) > 0:
            ended, _, _ = select.select(list(alive.values()), [], [], left)
            alive = {pid: fd for pid, fd in alive.items() if fd not in ended}
        assert not alive, {pid: started[pid] for pid in alive}
    finally:
        for fd in pidfds.values():
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(fd, signal.SIGKILL)  # leave no orphan if it failed
            os.close(fd)
