"""The ASGI server that runs the relay: one place for its options, shared with the benchmarks."""

from __future__ import annotations

import ipaddress
import logging
import resource
import socket
from typing import TYPE_CHECKING, Any

from relay.config.settings import ServerSettings

if TYPE_CHECKING:
    from relay.intake.connections import ConnectionGuard

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
    more_sockets: list[socket.socket] | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
    graceful_seconds: float,
    server: ServerSettings | None = None,
) -> None:
    """Serve ``app`` with uvicorn on ``sock`` (else on host:port) until SIGINT/SIGTERM, then
    shut down gracefully. ``server`` gives the connection limits and timeouts (default: the
    defaults). ``more_sockets``: further listeners of the same app (the console's own)."""
    import uvicorn  # noqa: PLC0415 -- only serving needs the server

    from relay.intake.connections import BusyLogFilter  # noqa: PLC0415 -- imports uvicorn

    limits = server or ServerSettings()
    guard = connection_guard(limits)
    busy = BusyLogFilter(guard.busy)
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addFilter(busy)
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
        http=guard.protocol(),
        timeout_keep_alive=limits.keep_alive_seconds,
        limit_concurrency=guard.limit_concurrency,
    )

    from relay.ops.heap import freeze_long_lived  # noqa: PLC0415 -- with the server
    from relay.ops.sdnotify import notify  # noqa: PLC0415 -- with the server

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                # Started: what exists now lives as long as the process (docs/benchmarks.md).
                freeze_long_lived()
            if self.started and sockets:
                address = sockets[0].getsockname()
                log.info("relay ready: listening on http://%s:%d", address[0], address[1])
                # Bound, store open, worker running: systemd (Type=notify) now counts the
                # relay as started, and only now delivers ExecReload's SIGHUP.
                notify(f"READY=1\nSTATUS=listening on {address[0]}:{address[1]}")

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            notify("STOPPING=1")
            await super().shutdown(sockets)

    try:
        Server(config).run(sockets=None if sock is None else [sock, *(more_sockets or [])])
    finally:
        uvicorn_log.removeFilter(busy)


def connection_guard(server: ServerSettings) -> ConnectionGuard:
    """The guard for ``server``'s limits, lowered to what the open-file limit allows."""
    from relay.intake.connections import ConnectionGuard, connection_limits  # noqa: PLC0415 -- as above

    open_files = _open_file_limit()
    cap, concurrency = connection_limits(
        server.max_connections, server.limit_concurrency, open_files
    )
    if cap < server.max_connections:
        log.warning(
            "server.max_connections is %d, but only %s files may be open (RLIMIT_NOFILE,"
            " LimitNOFILE= in the systemd unit): at most %d connections are accepted, requests"
            " get 503 from %d on",
            server.max_connections,
            open_files,
            cap,
            concurrency,
        )
    return ConnectionGuard(
        header_timeout=server.header_timeout_seconds,
        body_timeout=server.body_timeout_seconds,
        max_connections=cap,
        limit_concurrency=concurrency,
    )


def _open_file_limit() -> int | None:
    """The soft limit on open files, or None if unlimited or unknown."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return None
    return None if soft == resource.RLIM_INFINITY else soft
