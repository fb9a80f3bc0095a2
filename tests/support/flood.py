"""An HTTP server on 127.0.0.1 whose every answer is endless: a status line, then a chunked body
streamed as fast as the client reads it, until the client hangs up or the server stops."""

from __future__ import annotations

import socketserver
import threading

CHUNK = b"x" * (1 << 20)


class FloodServer:
    """Answers 503 to request paths that start with ``/busy`` and 200 to any other; counts the
    bytes of body it sent (``sent``)."""

    def __init__(self) -> None:
        self.sent = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                head = b""
                while b"\r\n\r\n" not in head:
                    data = self.request.recv(65536)
                    if not data:
                        return
                    head += data
                path = head.split(b" ", 2)[1]
                status = b"503 Busy" if path.startswith(b"/busy") else b"200 OK"
                try:
                    self.request.sendall(
                        b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n"
                    )
                    while not server._stopping.is_set():
                        self.request.sendall(b"%x\r\n" % len(CHUNK) + CHUNK + b"\r\n")
                        with server._lock:
                            server.sent += len(CHUNK)
                except OSError:  # the client hung up
                    return

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
