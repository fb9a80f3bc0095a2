"""The hook is served ahead of Litestar's layers (``relay.intake.http.hook_first``) and still
does what they did for it: an uncaught exception is answered 500 and logged once, without the
token; the answer carries the request's id. The fault is a server whose ``receive`` fails
(the ASGI seam), the app is the real one."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from relay.app import create_app
from relay.config.settings import Settings
from tests.support.data import TOKEN


def scope(path: str, headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers or [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8080),
    }


async def test_an_uncaught_exception_is_answered_500_and_logged_without_the_token(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(make_settings())
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        raise ConnectionResetError(104, "Connection reset by peer")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"host", b"127.0.0.1"), (b"x-request-id", b"edge-7")]
    await app(scope(f"/hooks/smartsupp/{TOKEN}", headers), receive, send)  # type: ignore[arg-type]
    start, body = sent
    assert start["status"] == 500
    assert (b"x-request-id", b"edge-7") in start["headers"]
    assert body["body"] == b'{"status_code":500,"detail":"Internal Server Error"}'
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1
    assert errors[0].getMessage() == "uncaught exception handling POST /hooks/smartsupp/{token}"
    assert "Connection reset by peer" in caplog.text  # the traceback
    assert TOKEN not in caplog.text


async def test_every_answer_of_the_hook_carries_a_request_id(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings())
    for path in ("/hooks/smartsupp", "/hooks/smartsupp/a/b", "/hooks/smartsupp/wrong-token"):
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"{}", "more_body": False}

        async def send(message: dict[str, Any], sent: list[dict[str, Any]] = sent) -> None:
            sent.append(message)

        await app(scope(path), receive, send)  # type: ignore[arg-type]
        assert sent[0]["status"] == 404, path
        (rid,) = [value for name, value in sent[0]["headers"] if name == b"x-request-id"]
        assert re.fullmatch(rb"[0-9a-f]{16}", rid), path
