"""An HTTP server on 127.0.0.1 that reads each request whole, then sends its reply one byte at a
time, a second apart: every read gets data long before any per-read timeout, yet the whole
reply takes minutes (the slow destination of a total-deadline test)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BODY = json.dumps({"ok": True, "note": "sent one byte at a time"}).encode()


def reply_bytes(body: bytes = BODY) -> bytes:
    head = (
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


class DripServer:
    """Counts requests as they arrive (``wait_for``); each reply drips ``interval`` seconds a
    byte until it is complete, the client hangs up, or the server stops."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.requests = 0
        self.finished = 0  # replies sent to the end
        self.changed = threading.Condition()
        self._stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with server.changed:
                    server.requests += 1
                    server.changed.notify_all()
                try:
                    for byte in reply_bytes():
                        if server._stopping.wait(server.interval):
                            return
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                except OSError:  # the client gave up and closed the connection
                    return
                with server.changed:
                    server.finished += 1
                    server.changed.notify_all()
                self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int, timeout: float = 20.0) -> int:
        """Block until ``count`` requests have arrived; returns how many have."""
        with self.changed:
            ok = self.changed.wait_for(lambda: self.requests >= count, timeout=timeout)
            assert ok, f"expected {count} requests, got {self.requests}"
            return self.requests
