"""The two apps the ingest benchmark compares, importable by any ASGI server.

``bare``: a Litestar app whose hook handler reads the body and answers 200 with a small JSON
object (no token check, no parsing, no storage) - the framework-and-server baseline.
``relay_app()``: the relay's own ``create_app`` for the settings in ``$RELAY_CONFIG``, with the
same logging set-up as ``relay serve``.
"""

from __future__ import annotations

import logging
import sys
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
    from relay.app import create_app  # noqa: PLC0415 -- the bare app must not import the relay
    from relay.settings import load_settings  # noqa: PLC0415 -- as above

    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return create_app(load_settings())
