"""A small fake of Slack's Web API and incoming webhooks on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass
class SlackCall:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float


@dataclass
class Reply:
    status: int = 200
    body: dict[str, Any] | str = field(default_factory=lambda: {"ok": True})
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None  # None: JSON for a dict body, text/plain for a string


class FakeSlack:
    """Records every call; answers with the scripted replies in order, then ``{"ok": true}``."""

    def __init__(self) -> None:
        self.calls: list[SlackCall] = []
        self.replies: list[Reply] = []
        self.changed = threading.Condition()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                import time  # noqa: PLC0415 -- keep the handler self-contained

                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length).decode()
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    body = json.loads(raw) if raw else {}
                else:
                    body = {k: v[0] for k, v in parse_qs(raw).items()}
                    if isinstance(body.get("blocks"), str):
                        body["blocks"] = json.loads(body["blocks"])
                with fake.changed:
                    reply = fake.replies.pop(0) if fake.replies else Reply()
                    fake.calls.append(
                        SlackCall(self.path, dict(self.headers), body, time.monotonic())
                    )
                    fake.changed.notify_all()
                data = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
                self.send_response(reply.status)
                ctype = reply.content_type or (
                    "text/plain" if isinstance(reply.body, str) else "application/json"
                )
                self.send_header("Content-Type", ctype)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data.encode())))
                self.end_headers()
                self.wfile.write(data.encode())

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int, timeout: float = 20.0) -> list[SlackCall]:
        with self.changed:
            ok = self.changed.wait_for(lambda: len(self.calls) >= count, timeout=timeout)
        assert ok, f"expected {count} Slack calls, got {len(self.calls)}"
        return list(self.calls)
