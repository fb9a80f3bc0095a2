"""Logging: one line per event (text or JSON), journald priorities, and request ids."""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import os
import queue
import re
import secrets
import sys
import threading
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.logging.config import BaseLoggingConfig
from litestar.types import ASGIApp, GetLogger, Message, Receive, Scope, Send

from relay.config.settings import LoggingSettings
from relay.model.urls import redact_text

REQUEST_ID: ContextVar[str | None] = ContextVar("relay_request_id", default=None)
REQUEST_ID_HEADER = "x-request-id"
# An incoming X-Request-ID is kept only if it is a short token that is safe in any log line.
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# sd-daemon(3) priority prefixes: journald reads them from the start of each line.
SYSLOG_PRIORITY = {"DEBUG": 7, "INFO": 6, "WARNING": 4, "ERROR": 3, "CRITICAL": 2}
# Control characters (CR, LF, ESC...) are escaped so one event is one line that nothing forges.
_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F]} | {0x0A: "\\n", 0x0D: "\\r"}
_CONTROL[0x09] = " "
# HTTP client libraries that log request URLs: httpx ("HTTP Request: POST <url> ..." at INFO),
# slack_sdk (the incoming-webhook URL, itself a credential, and the message body at DEBUG).
HTTP_CLIENT_LOGGERS = ("httpx", "httpcore", "slack_sdk")


def escape_controls(text: str) -> str:
    """Control characters (CR, LF, ESC, ...) as visible escapes: one record, one line."""
    if text.isprintable():  # no control character at all (nor other unprintable ones)
        return text
    return text.translate(_CONTROL)


class RequestIdFilter(logging.Filter):
    """Puts the id of the request being handled (or None) on every record as ``request_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class RedactUrls(logging.Filter):
    """Masks credentials in every URL of a record's message (``relay.model.urls.redact_url``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def quiet_http_clients() -> None:
    """Keep HTTP client libraries from logging a line per request (the relay logs each
    delivery itself), and mask credentials in URLs of what they still log, for every handler.
    A logger's own filters see its records before any handler does; idempotent."""
    for name in HTTP_CLIENT_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
        if not any(isinstance(f, RedactUrls) for f in logger.filters):
            logger.addFilter(RedactUrls())


class TextFormatter(logging.Formatter):
    """``[<prio>][time ]LEVEL logger [request-id]: message`` on one line."""

    def __init__(self, *, journal: bool) -> None:
        super().__init__()
        self.journal = journal
        # The local time of the last whole second seen, in two parts around the milliseconds
        # (every line of one second shares them; the offset is looked up once per second).
        self._second = -1
        self._stamp = ("", "")

    def _when(self, created: float) -> str:
        """As ``datetime.fromtimestamp(created).astimezone().isoformat("T", "milliseconds")``
        (microseconds rounded half to even first, as datetime does), at a fraction of the cost."""
        fraction, whole = math.modf(created)
        micro = round(fraction * 1_000_000)
        if micro >= 1_000_000:
            whole, micro = whole + 1, micro - 1_000_000
        second = int(whole)
        if second != self._second:
            stamp = datetime.fromtimestamp(second).astimezone().isoformat("T", "seconds")
            self._second, self._stamp = second, (stamp[:19], stamp[19:])
        head, offset = self._stamp
        return f"{head}.{micro // 1000:03d}{offset}"

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        text = redact_text(text)
        rid = getattr(record, "request_id", None)
        head = f"{record.levelname} {record.name}" + (f" [{rid}]" if rid else "")
        if self.journal:
            # journald records the time itself, and the level from the <N> prefix.
            return f"<{SYSLOG_PRIORITY.get(record.levelname, 6)}>{head}: {escape_controls(text)}"
        return f"{self._when(record.created)} {head}: {escape_controls(text)}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, exception."""

    def __init__(self, *, journal: bool) -> None:
        super().__init__()
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat("T", "milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact_text(record.getMessage()),
        }
        rid = getattr(record, "request_id", None)
        if rid:
            event["request_id"] = rid
        if record.exc_info:
            event["exception"] = redact_text(self.formatException(record.exc_info))
        line = json.dumps(event, ensure_ascii=False, default=str)
        if self.journal:
            return f"<{SYSLOG_PRIORITY.get(record.levelname, 6)}>{line}"
        return line


def under_journald(stream: IO[str], environ: Mapping[str, str] = os.environ) -> bool:
    """True if ``stream`` is the journal stream systemd announced in $JOURNAL_STREAM."""
    announced = environ.get("JOURNAL_STREAM", "")
    device, _, inode = announced.partition(":")
    try:
        stat = os.fstat(stream.fileno())
        return (stat.st_dev, stat.st_ino) == (int(device), int(inode))
    except (OSError, ValueError, AttributeError):
        return False


class WriterThread(logging.Handler):
    """Formats and writes records on a thread of its own, in the order they were logged: the
    caller only fills in the message (so later changes to its arguments do not show) and
    queues the record. Each wake-up writes every queued line with one write and one flush.
    ``flush()`` returns once everything logged before it is written; ``close()`` (logging's
    shutdown at exit calls it) writes the rest and ends the thread."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__()
        self.stream = stream
        self._queue: queue.SimpleQueue[logging.LogRecord | threading.Event | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name="relay-log", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            record.msg = record.getMessage()
            record.args = None
        except Exception:
            self.handleError(record)
            return
        self._queue.put(record)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            lines: list[str] = []
            done: list[threading.Event] = []
            stop = False
            while True:
                if item is None:
                    stop = True
                elif isinstance(item, threading.Event):
                    done.append(item)
                else:
                    try:
                        lines.append(self.format(item) + "\n")
                    except Exception:
                        self.handleError(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            try:
                if lines:
                    self._write(lines)
            finally:
                for event in done:
                    event.set()
            if stop:
                return

    def _write(self, lines: list[str]) -> None:
        """All lines with one write; a closed or broken stream (OSError, ValueError) loses
        them, as there is nowhere else to say so. Any other failure (a missing stderr, None
        under ``2>&-``; a line the stream refuses) loses only the lines that fail one by one,
        and never ends the thread: what is logged later is still written."""
        try:
            self.stream.write("".join(lines))
            self.stream.flush()
        except (OSError, ValueError):
            return
        except Exception:
            for line in lines:
                with contextlib.suppress(Exception):
                    self.stream.write(line)
            with contextlib.suppress(Exception):
                self.stream.flush()

    def flush(self) -> None:
        if threading.current_thread() is self._thread or not self._thread.is_alive():
            return
        written = threading.Event()
        self._queue.put(written)
        written.wait(timeout=10)

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=10)
        super().close()


def configure_logging(
    settings: LoggingSettings,
    stream: IO[str] | None = None,
    *,
    journal: bool | None = None,
    threaded: bool = False,
) -> logging.Handler:
    """Send every logger (the relay's, uvicorn's, Litestar's) through one handler on the root
    logger. ``journal`` defaults to detecting journald from $JOURNAL_STREAM; ``threaded``
    (`relay serve`) formats and writes the lines on a thread of their own (``WriterThread``),
    off the event loop."""
    stream = sys.stderr if stream is None else stream
    journal = under_journald(stream) if journal is None else journal
    handler: logging.Handler = WriterThread(stream) if threaded else logging.StreamHandler(stream)
    formatter_class = JsonFormatter if settings.format == "json" else TextFormatter
    handler.setFormatter(formatter_class(journal=journal))
    handler.addFilter(RequestIdFilter())
    handler.set_name("relay")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "relay"]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(settings.level.upper())
    quiet_http_clients()
    return handler


def lighten_records() -> None:
    """Records without what no line of the relay shows: the thread, the process and its
    name, and the caller's file, function and line (found by walking the stack for every
    record). The cheap-logging settings of the logging HOWTO ("Optimization"); process-wide,
    so for `relay serve` only. A log line costs ~2.5 us less of the event loop's time."""
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # the documented way to skip finding the caller's frame


def request_id(scope: Scope, new: Callable[[], str] = lambda: secrets.token_hex(8)) -> str:
    """The caller's X-Request-ID if it is a safe short token, else ``new()``."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"x-request-id":
            text = value.decode("latin-1")
            if SAFE_REQUEST_ID.fullmatch(text):
                return text
            break
    return new()


class RequestIds:
    """New request ids: a random prefix per process start and a counter, 16 hex digits.
    Unique within a run and unlikely to repeat across runs, without a system call each."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(4)
        self._count = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._count) & 0xFFFFFFFF:08x}"


class RequestIdMiddleware:
    """Gives each HTTP request an id: set for the logs while it is handled, and returned in
    the X-Request-ID response header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.new_id = RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        rid = request_id(scope, self.new_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), (b"x-request-id", rid.encode())]
                message = {**message, "headers": headers}
            await send(message)

        token = REQUEST_ID.set(rid)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)


def _log_uncaught(logger: Any, scope: Scope, tb: list[str]) -> None:
    exc = sys.exc_info()[1]
    if isinstance(exc, HTTPException) and exc.status_code < 500:
        return  # an answer like 404 or 405, not a failure of the relay
    # The path template, not the path: the hook's path carries the secret token.
    where = scope.get("path_template") or "(unrouted)"
    logger.error("uncaught exception handling %s %s\n%s", scope.get("method"), where, "".join(tb))


class StdlibLogging(BaseLoggingConfig):
    """Litestar's logging hook that leaves the configuration to ``configure_logging`` (instead
    of installing its own root handler) and always logs uncaught exceptions, without the URL."""

    def __init__(self) -> None:
        self.log_exceptions = "always"
        self.exception_logging_handler = _log_uncaught
        self.disable_stack_trace = set()
        self.traceback_line_limit = -1

    def configure(self) -> GetLogger:
        return logging.getLogger

    @staticmethod
    def set_level(logger: Any, level: int) -> None:
        logger.setLevel(level)
