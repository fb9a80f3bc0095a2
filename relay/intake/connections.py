"""The HTTP server's guard against idle, slow and excess connections: header and body timeouts,
connection cap."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("relay.connections")  # the published logger name (docs/operations.md)

# File descriptors kept free for everything but client connections: the store, render
# helpers, outgoing SMTP and HTTP connections, logs.
RESERVED_FILES = 256
# Within this many seconds, repeated events of one kind are counted and logged as one line.
LOG_INTERVAL_SECONDS = 10.0


def connection_limits(
    max_connections: int, limit_concurrency: int, open_files: int | None
) -> tuple[int, int]:
    """``(max_connections, limit_concurrency)`` lowered in proportion so that client
    connections never take the descriptors the relay needs for its own files and sockets,
    given the open-file limit (None: unlimited)."""
    if open_files is None or open_files - RESERVED_FILES >= max_connections:
        return max_connections, limit_concurrency
    cap = max(1, open_files - RESERVED_FILES)
    return cap, max(1, limit_concurrency * cap // max_connections)


@dataclass
class RateLimitedLog:
    """Logs the first event at once; further ones within ``interval`` seconds are counted and
    logged as one line when the interval ends, so a flood gives a line per interval, not one
    per event."""

    message: str  # a %-format with one %d: how many events the line stands for
    interval: float = LOG_INTERVAL_SECONDS
    clock: Callable[[], float] = time.monotonic
    _quiet_until: float = field(default=float("-inf"), init=False)
    _pending: int = field(default=0, init=False)

    def event(self, loop: asyncio.AbstractEventLoop) -> None:
        now = self.clock()
        if now >= self._quiet_until:
            log.warning(self.message, 1)
            self._quiet_until = now + self.interval
            loop.call_later(self.interval, self._flush, loop)
        else:
            self._pending += 1

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._pending:
            log.warning(self.message, self._pending)
            self._pending = 0
            self._quiet_until = self.clock() + self.interval
            loop.call_later(self.interval, self._flush, loop)


@dataclass
class ConnectionGuard:
    """Limits shared by every connection of one server, and the logs of what they refused."""

    header_timeout: float
    max_connections: int
    limit_concurrency: int
    body_timeout: float = 15.0
    over_limit: RateLimitedLog = field(init=False)
    busy: RateLimitedLog = field(init=False)
    timed_out: RateLimitedLog = field(init=False)
    body_timed_out: RateLimitedLog = field(init=False)

    def __post_init__(self) -> None:
        self.over_limit = RateLimitedLog(
            f"connection limit reached ({self.max_connections} open, server.max_connections):"
            " answered 503 to %d new connection(s) and closed them"
        )
        self.busy = RateLimitedLog(
            f"concurrency limit reached ({self.limit_concurrency} connections open or requests"
            " in progress, server.limit_concurrency): answered 503 to %d request(s)"
        )
        self.timed_out = RateLimitedLog(
            "closed %d connection(s) that sent no complete request headers within"
            f" {self.header_timeout:g} s (server.header_timeout_seconds)"
        )
        self.body_timed_out = RateLimitedLog(
            "answered 408 to %d request(s) whose body was not complete within"
            f" {self.body_timeout:g} s of its headers (server.body_timeout_seconds), and closed"
            " their connections"
        )

    def protocol(self) -> type[asyncio.Protocol]:
        """uvicorn's httptools protocol, with this guard's limits applied to each connection."""
        return _guarded(self)


_BUSY_BODY = b"too many open connections\n"
SERVICE_UNAVAILABLE = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: " + str(len(_BUSY_BODY)).encode() + b"\r\n"
    b"retry-after: 5\r\n"
    b"connection: close\r\n"
    b"\r\n" + _BUSY_BODY
)
_SLOW_BODY = b"request body not received in time\n"
REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: " + str(len(_SLOW_BODY)).encode() + b"\r\n"
    b"connection: close\r\n"
    b"\r\n" + _SLOW_BODY
)
# What uvicorn logs (once per request) when server.limit_concurrency answers a request 503.
UVICORN_BUSY = "Exceeded concurrency limit."


class BusyLogFilter(logging.Filter):
    """Replaces uvicorn's line per request refused for ``limit_concurrency`` with the guard's
    rate-limited one."""

    def __init__(self, busy: RateLimitedLog) -> None:
        super().__init__()
        self.busy = busy

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != UVICORN_BUSY:
            return True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return True
        self.busy.event(loop)
        return False


def _guarded(guard: ConnectionGuard) -> type[asyncio.Protocol]:
    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        """Closes a connection that does not complete a request's headers within the header
        timeout (from its start, or from the first byte of a later request on it); answers
        408 and closes one whose request body is not complete within the body timeout of its
        headers; answers 503 and closes a connection beyond the cap as soon as it is
        accepted."""

        _header_timer: asyncio.TimerHandle | None = None
        _body_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > guard.max_connections:
                guard.over_limit.event(self.loop)
                transport.write(SERVICE_UNAVAILABLE)
                transport.close()
                return
            self._arm_header_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_header_timer()
            self._disarm_body_timer()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._header_timer is None:
                self._arm_header_timer()

        def on_headers_complete(self) -> None:
            self._disarm_header_timer()
            super().on_headers_complete()
            self._disarm_body_timer()
            self._body_timer = self.loop.call_later(guard.body_timeout, self._body_expired)

        def on_message_complete(self) -> None:
            self._disarm_body_timer()
            super().on_message_complete()

        def _disarm_body_timer(self) -> None:
            if self._body_timer is not None:
                self._body_timer.cancel()
                self._body_timer = None

        def _body_expired(self) -> None:
            self._body_timer = None
            if self.transport.is_closing():
                return
            guard.body_timed_out.event(self.loop)
            cycle = self.cycle
            if cycle is None or not cycle.response_started:
                self.transport.write(REQUEST_TIMEOUT)
            self.transport.close()

        def _arm_header_timer(self) -> None:
            self._header_timer = self.loop.call_later(guard.header_timeout, self._header_expired)

        def _disarm_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_expired(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                guard.timed_out.event(self.loop)
                self.transport.close()

    return GuardedHttpToolsProtocol
