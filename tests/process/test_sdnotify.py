"""`relay serve` speaks systemd's readiness protocol: READY=1 to $NOTIFY_SOCKET once its port
accepts connections, STOPPING=1 when it shuts down; a real process and a real socket."""

from __future__ import annotations

import json
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from relay.ops.sdnotify import notify, notify_address
from tests.support.config import write_config
from tests.support.data import sample
from tests.support.process import RelayProcess
from tests.support.smtp import free_port

WAIT = 30.0  # bounds each wait for a datagram, so a relay that never sends fails the test


@pytest.fixture
def listener() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket standing in for systemd's, at a short path (AF_UNIX paths are
    limited to 107 bytes), and that path."""
    directory = tempfile.mkdtemp(prefix="notify-", dir="/tmp")
    path = os.path.join(directory, "sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(WAIT)
    yield sock, path
    sock.close()
    os.unlink(path)
    os.rmdir(directory)


def test_the_abstract_namespace_and_unusable_addresses() -> None:
    assert notify_address({"NOTIFY_SOCKET": "@relay/notify"}) == "\0relay/notify"
    assert notify_address({"NOTIFY_SOCKET": "/run/systemd/notify"}) == "/run/systemd/notify"
    assert notify_address({"NOTIFY_SOCKET": "vsock:2:1234"}) is None
    assert notify_address({}) is None
    assert notify("READY=1", {}) is False

    name = f"relay-notify-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(WAIT)
        assert notify("READY=1", {"NOTIFY_SOCKET": "@" + name}) is True
        assert sock.recv(4096) == b"READY=1"


def test_a_missing_socket_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    assert notify("READY=1", {"NOTIFY_SOCKET": "/nonexistent/notify"}) is False
    assert "could not tell the service manager 'READY=1'" in caplog.text


@pytest.mark.slow
def test_ready_once_the_port_accepts_and_stopping_at_sigterm(
    tmp_path: Path, listener: tuple[socket.socket, str]
) -> None:
    sock, path = listener
    port = free_port()
    config, _ = write_config(tmp_path, server={"port": port})
    relay = RelayProcess(config, port, env={"NOTIFY_SOCKET": path})
    relay.start(ready=None)
    try:
        ready = sock.recv(4096).decode()
        assert ready.splitlines()[0] == "READY=1", ready
        # Ready means ready: the hook is served at once, nothing to wait for.
        data = sample("v1")
        data["channel"]["isMissed"] = True
        with httpx.Client(timeout=WAIT) as client:
            assert relay.post(client, json.dumps(data).encode()).status_code == 200
        assert relay.terminate() == 0
        assert sock.recv(4096) == b"STOPPING=1"
    finally:
        relay.ensure_stopped()
