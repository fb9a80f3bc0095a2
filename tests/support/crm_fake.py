"""A fake JSON API on 127.0.0.1 that checks every request: the base of the CRM fakes.

A subclass lists its routes and says how it authenticates and how its errors look; the base
records each request, answers scripted faults first (a 429 with Retry-After, a 401) and
records every request it finds wrong in ``problems`` (answered 400 in the system's format),
so a test asserts ``problems == []`` as well as what was created."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class Invalid(Exception):
    """A request the real API would refuse (or one the relay should never send)."""

    def __init__(self, message: str, status: int = 400, field_name: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.field_name = field_name


Handler = Callable[[Request, re.Match[str]], Reply]


def need(condition: bool, message: str, field_name: str | None = None) -> None:
    if not condition:
        raise Invalid(message, field_name=field_name)


class FakeApi:
    """Subclasses set ``routes`` (method, path regex, handler) and the hooks below."""

    system = "fake"

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.problems: list[str] = []
        self.faults: list[Reply] = []  # answered, in order, before any route runs
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        # Called with the kind of object just created, before its answer is written.
        self.on_create: Callable[[str], None] | None = None
        self.answered = threading.Event()  # set once an answer to ``watch`` went out
        self.watch: str | None = None
        self.next_id = 1000
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                api._serve(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # -- what a subclass provides ------------------------------------------------------------
    routes: tuple[tuple[str, str, str], ...] = ()  # (method, regex, handler method name)

    def authorized(self, request: Request) -> bool:
        raise NotImplementedError

    def error_body(self, status: int, message: str, field_name: str | None) -> Any:
        raise NotImplementedError

    def unauthorized(self) -> Reply:
        raise NotImplementedError

    def rate_limited(self, seconds: int) -> Reply:
        raise NotImplementedError

    def common_headers(self) -> dict[str, str]:
        return {}

    # -- the server --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeApi:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def new_id(self) -> int:
        with self.lock:
            self.next_id += 1
            return self.next_id

    def created(self, kind: str) -> None:
        if self.on_create is not None:
            self.on_create(kind)

    def count(self, method: str, pattern: str) -> int:
        regex = re.compile(pattern)
        with self.lock:
            return sum(1 for r in self.requests if r.method == method and regex.fullmatch(r.path))

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        with self.changed:
            ok = self.changed.wait_for(predicate, timeout=timeout)
        assert ok, f"{self.system}: condition not reached; requests: {self.summary()}"

    def summary(self) -> list[str]:
        with self.lock:
            return [f"{r.method} {r.path}" for r in self.requests]

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in handler.headers.items()}
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        body: Any = None
        reply: Reply | None = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                reply = self._invalid(Invalid("body is not JSON"))
        request = Request(handler.command, parts.path, query, headers, body)
        with self.lock:
            self.requests.append(request)
            fault = self.faults.pop(0) if self.faults else None
        if reply is None and fault is not None:
            reply = fault
        if reply is None and not self.authorized(request):
            reply = self.unauthorized()
        if reply is None and raw and "application/json" not in headers.get("content-type", ""):
            reply = self._invalid(Invalid("Content-Type must be application/json"))
        if reply is None:
            reply = self._route(request)
        data = b"" if reply.body is None else json.dumps(reply.body).encode()
        handler.send_response(reply.status)
        for name, value in {**self.common_headers(), **reply.headers}.items():
            handler.send_header(name, value)
        if data:
            handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
        handler.wfile.flush()
        with self.changed:
            if self.watch is not None and re.fullmatch(
                self.watch, f"{request.method} {request.path}"
            ):
                self.answered.set()
            self.changed.notify_all()

    def _route(self, request: Request) -> Reply:
        for method, pattern, name in self.routes:
            found = re.fullmatch(pattern, request.path)
            if method == request.method and found:
                try:
                    with self.lock:
                        reply: Reply = getattr(self, name)(request, found)
                        return reply
                except Invalid as exc:
                    return self._invalid(exc)
        return self._invalid(Invalid(f"no such endpoint {request.method} {request.path}", 404))

    def _invalid(self, exc: Invalid) -> Reply:
        with self.lock:
            self.problems.append(f"{exc.status} {exc.message}")
        return Reply(exc.status, self.error_body(exc.status, exc.message, exc.field_name))
