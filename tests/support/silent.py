"""A TCP server on 127.0.0.1 that accepts connections and never answers: the socket listens,
the kernel completes each handshake, and nothing is ever read or sent."""

from __future__ import annotations

import socket
from types import TracebackType


class SilentServer:
    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(16)  # never accept()ed: connections wait in the backlog

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._socket.close()
