"""The ASGI server that runs the relay: one place for its options, shared with the benchmarks."""

from __future__ import annotations

from typing import Any


def run_server(app: Any, *, host: str, port: int, graceful_seconds: float) -> None:
    """Serve ``app`` with uvicorn until SIGINT/SIGTERM, then shut down gracefully."""
    import uvicorn  # noqa: PLC0415 -- only serving needs the server

    uvicorn.run(
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
