"""The ASGI server that runs the relay: one place for its options, shared with the benchmarks."""

from __future__ import annotations

import ipaddress
import logging
import socket
from typing import Any

log = logging.getLogger("relay")


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything else starts: a port clash then stops
    ``relay serve`` before the store is opened or the delivery worker runs."""
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:  # a host name: let the resolver pick
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def run_server(
    app: Any,
    *,
    sock: socket.socket | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
    graceful_seconds: float,
) -> None:
    """Serve ``app`` with uvicorn on ``sock`` (else on host:port) until SIGINT/SIGTERM, then
    shut down gracefully."""
    import uvicorn  # noqa: PLC0415 -- only serving needs the server

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        # Client addresses come from [server] trusted_proxies alone; uvicorn's own handling
        # would believe X-Forwarded-For from 127.0.0.1 whatever the settings say.
        proxy_headers=False,
        timeout_graceful_shutdown=int(graceful_seconds) + 5,
    )

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started and sockets:
                address = sockets[0].getsockname()
                log.info("relay ready: listening on http://%s:%d", address[0], address[1])

    Server(config).run(sockets=None if sock is None else [sock])
