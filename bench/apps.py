"""The apps the ingest benchmark compares, importable by any ASGI server.

``bare``: a Litestar app whose hook handler reads the body and answers 200 with a small JSON
object (no token check, no parsing, no storage) - the framework-and-server baseline.
``relay_app()``: the relay's own ``create_app`` for the settings in ``$RELAY_CONFIG``, with the
same logging set-up as ``relay serve``. ``$BENCH_WITHOUT`` (comma-separated) takes parts out
for the cost breakdown ONLY - such a relay is not durable and must never serve real traffic:
  store  StoreThread.accept answers at once without writing anything;
  logs   INFO log records are dropped (logging.disable(INFO)).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from litestar import Litestar, Request, get, post


@post("/hooks/smartsupp/{token:str}", status_code=200, request_max_body_size=None)
async def bare_hook(request: Request[Any, Any, Any], token: str) -> dict[str, Any]:
    body = await request.body()
    return {"status": "accepted", "bytes": len(body)}


@get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


bare = Litestar(route_handlers=[bare_hook, healthz], debug=False)


def relay_app() -> Litestar:
    """Factory for servers that import the app by name (the relay needs its settings first)."""
    # The bare app must not import the relay, hence the local imports.
    from relay.app import create_app  # noqa: PLC0415
    from relay.config.settings import load_settings  # noqa: PLC0415
    from relay.ops.logs import configure_logging  # noqa: PLC0415
    from relay.store import Accepted, Intake  # noqa: PLC0415
    from relay.store.storethread import StoreThread  # noqa: PLC0415

    settings = load_settings()
    configure_logging(settings.logging)
    without = {part for part in os.environ.get("BENCH_WITHOUT", "").split(",") if part}
    if "store" in without:

        async def accept_nothing(self: StoreThread, intake: Intake) -> Accepted:
            return Accepted(1, 1, duplicate=False, deliveries=len(intake.planned))

        StoreThread.accept = accept_nothing  # type: ignore[method-assign]
    if "logs" in without:
        logging.disable(logging.INFO)
    return create_app(settings)
