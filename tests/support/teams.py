"""A fake Microsoft Teams Workflows webhook on 127.0.0.1 that validates every card against
the Adaptive Card schema kept in tests/schemas/ and answers as scripted."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from jsonschema import Draft6Validator

from tests.support.paths import SCHEMAS

SCHEMA = SCHEMAS / "teams-adaptive-card-1.4.json"


def card_validator() -> Draft6Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    Draft6Validator.check_schema(schema)
    return Draft6Validator(schema)


@dataclass(frozen=True)
class TeamsAnswer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class FakeTeams:
    """Records each POST. A body that is not a valid Workflows message with one Adaptive
    Card gets 400 and lands in ``invalid`` with the schema's complaints; a valid one gets the
    next scripted answer, or 202 and lands in ``cards``."""

    def __init__(self) -> None:
        self.validator = card_validator()
        self.cards: list[dict[str, Any]] = []
        self.invalid: list[list[str]] = []
        self.answers: list[TeamsAnswer] = []
        self.posts = 0
        self.paths: list[str] = []
        self.lock = threading.Lock()
        teams = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                answer = teams.answer(
                    self.path, self.headers.get("Content-Type", ""), self.rfile.read(length)
                )
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def answer(self, path: str, content_type: str, data: bytes) -> TeamsAnswer:
        with self.lock:
            self.posts += 1
            self.paths.append(path)
            try:
                body = json.loads(data)
            except ValueError:
                self.invalid.append(["not JSON"])
                return TeamsAnswer(400, b"Invalid JSON")
            problems = [
                f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                for e in self.validator.iter_errors(body)
            ]
            if not content_type.startswith("application/json"):
                problems.append(f"Content-Type {content_type}")
            if problems:
                self.invalid.append(problems)
                return TeamsAnswer(400, b"The request body is not a valid card")
            if self.answers:
                return self.answers.pop(0)
            self.cards.append(body["attachments"][0]["content"])
            return TeamsAnswer(202)

    def url(self, name: str = "flow-1") -> str:
        port = self.server.server_address[1]
        return f"http://127.0.0.1:{port}/workflows/{name}/triggers/manual/paths/invoke?sig=s3cr3t"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
