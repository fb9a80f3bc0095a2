"""Helpers for driving the app through Litestar's test client."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar.testing import TestClient

from relay.runtime import Runtime


def runtime(client: TestClient[Any]) -> Runtime:
    found: Runtime = client.app.state.runtime
    return found


def wait_settled(client: TestClient[Any], timeout: float = 20.0) -> None:
    """Block until the worker has nothing pending, retrying or in flight."""

    async def settled() -> None:
        await asyncio.wait_for(runtime(client).worker.settled(), timeout)

    client.blocking_portal.call(settled)
