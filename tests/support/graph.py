"""A fake Microsoft Graph ``sendMail`` endpoint on 127.0.0.1 that checks what it is sent."""

from __future__ import annotations

import base64
import binascii
import json
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.oauth import FakeTokenEndpoint

GRAPH_SCOPE = "https://graph.microsoft.com/.default"


@dataclass(frozen=True)
class GraphAnswer:
    status: int
    error: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Submitted:
    path: str
    token: str
    mime: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.mime, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


def _error(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


class FakeGraph:
    """Accepts ``POST /v1.0/users/{mailbox}/sendMail`` (202) only with a bearer token the
    token endpoint issued and has not revoked (else 401 InvalidAuthenticationToken),
    ``Content-Type: text/plain`` and a base64 MIME body (else 400). ``answers`` are
    scripted replies given, in order, to requests that passed those checks."""

    def __init__(self, tokens: FakeTokenEndpoint, mailbox: str) -> None:
        self.tokens = tokens
        self.mailbox = mailbox
        self.answers: list[GraphAnswer] = []
        self.submitted: list[Submitted] = []
        self.requests = 0
        self.changed = threading.Condition()
        graph = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                data = self.rfile.read(length)
                answer = graph.answer(self.path, dict(self.headers.items()), data)
                body = json.dumps({"error": answer.error}).encode() if answer.error else b""
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                if body:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def answer(self, path: str, headers: dict[str, str], data: bytes) -> GraphAnswer:
        headers = {k.lower(): v for k, v in headers.items()}
        with self.changed:
            self.requests += 1
            self.changed.notify_all()
            token = headers.get("authorization", "").removeprefix("Bearer ")
            if not self.tokens.is_valid(token):
                return GraphAnswer(
                    401,
                    _error(
                        "InvalidAuthenticationToken",
                        "Access token has expired or is not yet valid.",
                    ),
                )
            if path != f"/v1.0/users/{self.mailbox}/sendMail":
                return GraphAnswer(404, _error("ErrorInvalidUser", f"no mailbox at {path}"))
            if headers.get("content-type") != "text/plain":
                return GraphAnswer(
                    415, _error("UnsupportedMediaType", "MIME content must be text/plain")
                )
            try:
                mime = base64.b64decode(data, validate=True)
            except binascii.Error:
                return GraphAnswer(
                    400, _error("ErrorMimeContentInvalidBase64String", "Invalid base64 string")
                )
            if self.answers:
                return self.answers.pop(0)
            self.submitted.append(Submitted(path, token, mime))
            self.changed.notify_all()
            return GraphAnswer(202)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
