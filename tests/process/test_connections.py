"""Idle and excess connections: the header timeout, the connection limits and their log lines,
and the open-file limit, through a real `relay serve` process on 127.0.0.1."""

from __future__ import annotations

import contextlib
import errno
import logging
import re
import selectors
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from relay.config.settings import Settings, load_settings
from relay.intake.connections import RESERVED_FILES, RateLimitedLog, connection_limits
from relay.model.errors import ConfigError
from relay.reload import restart_only_changes
from relay.serving import bind
from tests.support.config import write_sections
from tests.support.data import TOKEN, body, sample
from tests.support.process import RelayProcess
from tests.support.smtp import free_port

# Bounds the waits for the server to close connections, so that a server that never does
# fails the test instead of hanging it; far above every header timeout used here.
CLOSE_WAIT_LIMIT = 30.0
STALLED_BODY = (
    b"POST /hooks/smartsupp/" + TOKEN.encode() + b" HTTP/1.1\r\nHost: relay\r\n"
    b"Content-Length: 1000\r\n\r\n{"
)
PARTIAL_HEADERS = b"POST /hooks/smartsupp/" + TOKEN.encode() + b" HTTP/1.1\r\nHost: relay\r\n"


# --- the limits and the log, without a server ----------------------------------------------


@pytest.mark.parametrize(
    ("open_files", "expected"),
    [
        (None, (1000, 900)),  # no open-file limit
        (20_000, (1000, 900)),  # room enough
        (1000 + RESERVED_FILES, (1000, 900)),  # exactly enough
        (1024, (1024 - RESERVED_FILES, 900 * (1024 - RESERVED_FILES) // 1000)),
        (RESERVED_FILES, (1, 1)),  # never below one connection
    ],
)
def test_connection_limits_leave_files_for_the_relay(
    open_files: int | None, expected: tuple[int, int]
) -> None:
    assert connection_limits(1000, 900, open_files) == expected


class Timers:
    """Stands in for the event loop's call_later; the test fires the timers itself."""

    def __init__(self) -> None:
        self.pending: list[tuple[float, Callable[..., None], tuple[Any, ...]]] = []

    def call_later(self, delay: float, callback: Callable[..., None], *args: Any) -> None:
        self.pending.append((delay, callback, args))

    def fire(self) -> None:
        _, callback, args = self.pending.pop(0)
        callback(*args)


def test_rate_limited_log_logs_a_flood_as_one_line_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    timers = Timers()
    flood = RateLimitedLog("refused %d", interval=10.0, clock=lambda: now[0])
    loop: Any = timers
    with caplog.at_level(logging.WARNING, logger="relay.connections"):
        for _ in range(500):
            flood.event(loop)
        assert [r.getMessage() for r in caplog.records] == ["refused 1"]
        assert [delay for delay, _, _ in timers.pending] == [10.0]
        now[0] = 10.0
        timers.fire()  # the rest of the first interval, counted
        now[0] = 20.0
        timers.fire()  # nothing new: no line, no further timer
        assert timers.pending == []
        now[0] = 25.0
        flood.event(loop)  # quiet long enough: logged at once again
    assert [r.getMessage() for r in caplog.records] == ["refused 1", "refused 499", "refused 1"]


def test_limit_concurrency_must_not_exceed_max_connections(tmp_path: Path) -> None:
    config = write_sections(
        tmp_path / "relay.toml", {"server": {"max_connections": 50, "limit_concurrency": 60}}
    )
    with pytest.raises(ConfigError, match="limit_concurrency"):
        load_settings(config)


def test_connection_settings_are_restart_only() -> None:
    # uvicorn reads them once, at start: a reload that changes them must say so.
    before = Settings()
    after = Settings(
        server={
            "header_timeout_seconds": 3,
            "body_timeout_seconds": 4,
            "keep_alive_seconds": 2,
            "limit_concurrency": 5,
            "max_connections": 10,
        }
    )
    assert restart_only_changes(before, after) == [
        "server.header_timeout_seconds",
        "server.body_timeout_seconds",
        "server.keep_alive_seconds",
        "server.limit_concurrency",
        "server.max_connections",
    ]


# --- a real server -------------------------------------------------------------------------


def serve(
    tmp_path: Path, open_files: int | None = None, **server: object
) -> tuple[RelayProcess, int]:
    port = free_port()
    config = write_sections(
        tmp_path / "relay.toml",
        {
            "server": {"host": "127.0.0.1", "port": port, "hook_token": TOKEN, **server},
            "storage": {"state_dir": str(tmp_path / "state")},
            "delivery": {"render_processes": 0},
        },
    )
    return RelayProcess(config, port, open_files=open_files), port


def idle_connections(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that never complete a request: every other one sends only
    the first lines of its headers, the others send nothing."""
    sockets = []
    for index in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sockets.append(sock)
        if index % 2:
            # Beyond the cap the server may have answered and closed it already.
            with contextlib.suppress(OSError):
                sock.sendall(PARTIAL_HEADERS)
    return sockets


def wait_closed(sockets: list[socket.socket], limit: float) -> tuple[list[bytes], int]:
    """Read every socket until the server closes it (end of file or reset), for at most
    ``limit`` seconds in all: what each one received, and how many were still open then."""
    received = {sock: b"" for sock in sockets}
    still_open = set(sockets)
    deadline = time.monotonic() + limit
    with selectors.DefaultSelector() as selector:
        for sock in sockets:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        while still_open and (left := deadline - time.monotonic()) > 0:
            for key, _ in selector.select(left):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    chunk = sock.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""  # reset by the server: closed as well
                if chunk:
                    received[sock] += chunk
                else:
                    selector.unregister(sock)
                    still_open.discard(sock)
    for sock in sockets:
        sock.close()
    return [received[sock] for sock in sockets], len(still_open)


@pytest.fixture
def missed() -> bytes:
    data = sample("v1")
    data["channel"]["isMissed"] = True
    return body(data)


def post(port: int, content: bytes) -> httpx.Response:
    # A fresh connection each time, closed after the answer: no kept-alive connection of the
    # test's own counts against the limits.
    with httpx.Client(timeout=20, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        return client.post(f"http://127.0.0.1:{port}/hooks/smartsupp/{TOKEN}", content=content)


@pytest.mark.slow
def test_idle_connections_are_closed_after_the_header_timeout(
    tmp_path: Path, missed: bytes
) -> None:
    process, port = serve(tmp_path, header_timeout_seconds=1)
    with process:
        idle = idle_connections(port, 200)
        # Below both limits: a good client is served while they hang.
        assert post(port, missed).status_code == 200
        received, still_open = wait_closed(idle, CLOSE_WAIT_LIMIT)
        assert still_open == 0, f"{still_open} of 200 idle connections are still open"
        assert set(received) == {b""}  # closed without an answer: they asked nothing
        process.wait_for_line(re.escape("sent no complete request headers within 1 s"))
        # Closed for good, not just forgotten: the server still answers.
        assert post(port, missed).status_code == 200


@pytest.mark.slow
def test_a_stalled_request_body_is_answered_408_and_closed(tmp_path: Path, missed: bytes) -> None:
    # Complete headers announcing 1000 bytes, then one byte and nothing more: without a body
    # deadline each holds a connection (and a slot of limit_concurrency) for as long as the
    # client likes.
    process, port = serve(tmp_path, body_timeout_seconds=1)
    with process:
        stalled = []
        for _ in range(50):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(STALLED_BODY)
            stalled.append(sock)
        assert post(port, missed).status_code == 200
        received, still_open = wait_closed(stalled, CLOSE_WAIT_LIMIT)
        assert still_open == 0, f"{still_open} of 50 stalled-body connections are still open"
        assert {answer.split(b"\r\n", 1)[0] for answer in received} == {
            b"HTTP/1.1 408 Request Timeout"
        }
        process.wait_for_line(re.escape("whose body was not complete within 1 s of its headers"))
        assert post(port, missed).status_code == 200


@pytest.mark.slow
def test_connection_limits_answer_503_log_and_keep_files_for_good_clients(
    tmp_path: Path, missed: bytes
) -> None:
    # 400 connections would take more files than the relay may open (300): without a cap
    # accept() fails with EMFILE and good clients get resets, with nothing logged.
    process, port = serve(
        tmp_path, open_files=300, header_timeout_seconds=5, max_connections=40, limit_concurrency=30
    )
    with process:
        idle = idle_connections(port, 35)
        # Past limit_concurrency: a request is answered 503, and that is logged.
        busy = post(port, missed)
        assert busy.status_code == 503, busy.text
        process.wait_for_line(re.escape("concurrency limit reached (30 connections open"))
        # Past max_connections: new connections get 503 at once and are closed.
        idle += idle_connections(port, 365)
        line = process.wait_for_line(
            re.escape("connection limit reached (40 open, server.max_connections)")
        )
        assert line.split(": ", 1)[1].startswith("connection limit reached")
        received, still_open = wait_closed(idle, CLOSE_WAIT_LIMIT)
        assert still_open == 0, f"{still_open} of 400 idle connections are still open"
        refused = [data for data in received if data]
        assert refused, "no connection was refused with an answer"
        assert all(data.startswith(b"HTTP/1.1 503 Service Unavailable\r\n") for data in refused)
        assert all(data.endswith(b"\r\n\r\ntoo many open connections\n") for data in refused)
        # The idle ones gone, a good client is served again.
        accepted = post(port, missed)
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["status"] == "accepted"
    # One line per kind and interval, not one per refused connection.
    limit_lines = [line for line in process.lines if "connection limit reached" in line]
    assert 1 <= len(limit_lines) <= 3, limit_lines


@pytest.mark.slow
def test_a_low_open_file_limit_lowers_the_connection_limits(tmp_path: Path) -> None:
    process, port = serve(tmp_path, open_files=300)
    with process:
        line = process.wait_for_line(
            re.escape("server.max_connections is 1000, but only 300 files")
        )
        cap = 300 - RESERVED_FILES
        assert f"at most {cap} connections are accepted" in line
        assert f"requests get 503 from {900 * cap // 1000} on" in line
        idle = idle_connections(port, cap + 10)
        process.wait_for_line(re.escape(f"connection limit reached ({cap} open"))
        for sock in idle:
            sock.close()


# --- the listening socket ----------------------------------------------------------------------


def test_bind_resolves_a_host_name_and_refuses_a_port_in_use() -> None:
    first = bind("localhost", 0)
    try:
        host, port = first.getsockname()[:2]
        assert host in ("127.0.0.1", "::1")
        with pytest.raises(OSError) as clash:
            bind(host, port)
        assert clash.value.errno == errno.EADDRINUSE
    finally:
        first.close()
