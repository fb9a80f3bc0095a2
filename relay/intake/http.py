"""HTTP endpoints: the Smartsupp hook, /healthz, /readyz and /metrics."""

from __future__ import annotations

import contextlib
import hmac
import logging
import time
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, asgi, get
from litestar.enums import ScopeType
from litestar.handlers import ASGIRouteHandler, HTTPRouteHandler
from litestar.plugins.prometheus import PrometheusController
from litestar.types import Receive, Scope, Send
from prometheus_client import CONTENT_TYPE_LATEST

from relay.config.destinations import mode, targets
from relay.intake.payload import content_hash
from relay.intake.pipeline import take
from relay.leads.http import build_lead_handlers
from relay.leads.model import lead_facts, wants_follow_up
from relay.leads.slack_http import build_slack_handlers
from relay.model.errors import PayloadError, PayloadTooLarge, StoreError
from relay.ops.logs import REQUEST_ID, RequestIds, request_id
from relay.runtime import Runtime
from relay.store import Intake
from relay.store.records import begin_seconds

log = logging.getLogger("relay.api")  # the published logger name (docs/operations.md)
HOOK_PATH = "/hooks/smartsupp"
_json = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


async def read_limited(receive: Receive, limit: int) -> tuple[bytes, bool] | None:
    """Read at most ``limit`` bytes of the request body; the flag says whether it was longer.
    None if the client went away first (or the body deadline, server.body_timeout_seconds,
    answered 408 and closed the connection)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk: bytes = message.get("body", b"")
        if size + len(chunk) > limit:
            chunks.append(chunk[: limit - size])
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False


async def answer(
    send: Send,
    status: int,
    body: dict[str, Any],
    request_id: bytes | None = None,
    extra: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    """One JSON response, as Litestar would write it for a ``Response(body)``; with the
    request's id in X-Request-ID when given (else the request-id middleware adds it) and
    the ``extra`` headers."""
    data = _json(body)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
        *extra,
    ]
    if request_id is not None:
        headers.append((b"x-request-id", request_id))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data, "more_body": False})


async def receive_body(runtime: Runtime, body: bytes, remote: str | None) -> Answer:
    """Parse, classify, route and durably store one body. 2xx only after the commit."""
    try:
        intake = prepare(runtime, body)
    except PayloadError as exc:
        return await refuse(runtime, exc, body, remote)
    except Exception:
        # A body that parses but trips a bug further on is kept, so it can be replayed once
        # the bug is fixed; the answer admits the fault is ours.
        log.exception("could not process a body from %s", remote or "?")
        failed = PayloadError("processing_failed", "the relay could not process this body")
        answer = await refuse(runtime, failed, body, remote)
        return Answer(500, answer.body)
    try:
        accepted = await runtime.store.accept(intake)
    except StoreError as exc:  # the store logged the problem once; no traceback per request
        log.error("could not store conversation %s: %s", intake.conv_key, exc)
        return Answer(503, {"error": "storage_unavailable", "message": "the store cannot write"})
    except Exception:
        log.exception("could not store conversation %s", intake.conv_key)
        return Answer(503, {"error": "storage_unavailable", "message": "the store cannot write"})
    if accepted.deliveries:
        runtime.worker.wake()
    # One line per conversation; "matched no rule" says the fallback dropped it (stored,
    # nothing sent).
    log.info(
        "conversation %s v%d accepted: category=%s deliveries=%d duplicate=%s%s",
        intake.conv_key,
        accepted.version,
        intake.category,
        accepted.deliveries,
        accepted.duplicate,
        "; matched no rule, fallback is drop: nothing will be sent" if intake.dropped else "",
    )
    runtime.metrics.received(intake.category, duplicate=accepted.duplicate)
    return Answer(
        200,
        {
            "status": "duplicate" if accepted.duplicate else "accepted",
            "conversation": intake.conv_key,
            "version": accepted.version,
            "category": intake.category,
            "deliveries": accepted.deliveries,
        },
    )


def prepare(runtime: Runtime, body: bytes) -> Intake:
    """Parse, classify and route ``body``; raises ``PayloadError`` naming what is wrong."""
    snapshot = runtime.snapshot  # read once: a reload swaps it whole
    routed = take(
        body,
        snapshot.rules,
        low_rating_threshold=snapshot.settings.classify.low_rating_threshold,
        now=runtime.clock(),
    )
    conversation, category, decision = routed.conversation, routed.category, routed.decision
    return Intake(
        raw=body,
        conv_key=conversation.key,
        account_id=conversation.account_id,
        channel_id=conversation.channel.id,
        content_hash=content_hash(body),
        category=category.value,
        planned=decision.planned,
        dropped=decision.dropped,
        begin_at=begin_seconds(conversation.begin_at),
        lead=lead_facts(
            conversation,
            category,
            wants_follow_up(
                category, (o.rule.follow_up for o in decision.outcomes if o.verdict == "matched")
            ),
        ),
    )


async def refuse(runtime: Runtime, exc: PayloadError, body: bytes, remote: str | None) -> Answer:
    storage = runtime.settings.storage
    try:
        entry = await runtime.store.call(
            lambda s: s.quarantine(
                exc.reason,
                exc.message,
                body,
                remote,
                max_rows=storage.quarantine_max_rows,
                max_bytes=storage.quarantine_max_bytes,
                max_body=runtime.settings.server.max_body_bytes,
                now=time.time(),
            )
        )
    except Exception:
        log.exception("could not quarantine a refused body")
        entry = None
    log.warning(
        "refused body from %s: %s (%s), %d bytes, quarantine id %s",
        remote or "?",
        exc.reason,
        exc.message,
        len(body),
        entry,
    )
    runtime.metrics.rejected(exc.reason)
    return Answer(
        exc.status_code, {"error": exc.reason, "message": exc.message, "quarantine_id": entry}
    )


def gatekeep(runtime: Runtime, token: str, remote: str | None) -> Answer | None:
    """The answer for a caller who may not post, or None. The address is checked first, so a
    caller outside ``server.hook_allowlist`` cannot tell a right token from a wrong one."""
    if not runtime.hook_allowed(remote):
        log.warning("hook call from %s refused: not in server.hook_allowlist", remote)
        runtime.metrics.rejected("forbidden_address")
        return Answer(403, {"error": "forbidden", "message": f"address {remote} may not post"})
    if not hmac.compare_digest(token.encode(), runtime.hook_token.encode()):
        line = runtime.wrong_tokens.occurred(f"from {remote}")
        if line is not None:
            log.warning("%s", line)
        runtime.metrics.rejected("wrong_token")
        return Answer(404, {"error": "not_found", "message": "no such hook"})
    return None


async def hook(
    runtime: Runtime,
    rest: str,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    request_id: bytes | None = None,
) -> None:
    """``POST /hooks/smartsupp/<token>``: ``rest`` is the path after /hooks/smartsupp."""
    token = rest.strip("/")
    if not token or "/" in token:
        await answer(send, 404, {"status_code": 404, "detail": "Not Found"}, request_id)
        return
    if scope.get("method") != "POST":
        refusal = {"status_code": 405, "detail": "Method Not Allowed"}
        await answer(send, 405, refusal, request_id, extra=((b"allow", b"POST"),))
        return
    remote = runtime.scope_client_address(scope)
    refused = gatekeep(runtime, token, remote)
    if refused is not None:
        await answer(send, refused.status, refused.body, request_id)
        return
    limit = runtime.settings.server.max_body_bytes
    read = await read_limited(receive, limit)
    if read is None:
        # The client left, or the body deadline (server.body_timeout_seconds) answered
        # 408 and closed the connection (logged there). Nothing was stored and no one
        # reads this answer.
        await answer(send, 408, {"error": "client_disconnected"}, request_id)
        return
    body, too_long = read
    if too_long:
        result = await refuse(runtime, PayloadTooLarge(limit), body, remote)
    else:
        result = await receive_body(runtime, body, remote)
    await answer(send, result.status, result.body, request_id)


def hook_first(app: Litestar, runtime: Runtime, *, console_port: int | None) -> None:
    """Hand requests for /hooks/smartsupp/... to ``hook`` before Litestar's exception
    middleware, router and the request-id middleware, doing here what those do for it (the
    request id for the log lines and the X-Request-ID header; a 500 and one logged line for
    an uncaught exception). The hook is the one request that comes in volume: those layers
    cost a quarter of its CPU time on the event loop (the app called in process, without
    the server: 81-86 us per request through them, 61 us without). Everything else,
    and the hook on the console's own listener (which answers nothing but the console),
    goes through Litestar as before."""
    framework = app.asgi_handler
    new_id = RequestIds()
    prefix = HOOK_PATH + "/"

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if (
            scope["type"] != ScopeType.HTTP
            or not (path == HOOK_PATH or path.startswith(prefix))
            or (console_port is not None and (scope.get("server") or ("", 0))[1] == console_port)
        ):
            await framework(scope, receive, send)
            return
        rid = request_id(scope, new_id)
        token = REQUEST_ID.set(rid)
        try:
            rest = path[len(HOOK_PATH) :]
            await hook(runtime, rest, scope, receive, send, request_id=rid.encode())
        except Exception:
            # As Litestar's exception middleware would: the path template, not the path
            # (it carries the token).
            log.exception(
                "uncaught exception handling %s %s/{token}", scope.get("method"), HOOK_PATH
            )
            with contextlib.suppress(Exception):  # the answer may have begun
                error = {"status_code": 500, "detail": "Internal Server Error"}
                await answer(send, 500, error, rid.encode())
        finally:
            REQUEST_ID.reset(token)

    app.asgi_handler = dispatch


def build_handlers(runtime: Runtime) -> list[HTTPRouteHandler | ASGIRouteHandler]:
    # A low-level (ASGI) route handler: the hook is the one request that comes in volume, and
    # Litestar's request and response objects, parameter parsing and serialisation cost more
    # than everything the relay does with a body apart from the commit (docs/benchmarks.md).
    # Mounted (the rest of the path is the token): Litestar 2 cannot route a path parameter
    # to a low-level handler. Paths and methods the hook does not take get Litestar's answers.
    @asgi(HOOK_PATH, is_mount=True, copy_scope=False)  # it only reads the scope
    async def smartsupp_hook(scope: Scope, receive: Receive, send: Send) -> None:
        await hook(runtime, scope["path"], scope, receive, send)

    @get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return [
        smartsupp_hook,
        healthz,
        *build_operations_handlers(runtime),
        *build_lead_handlers(runtime),
        *build_slack_handlers(runtime),
    ]


def build_operations_handlers(runtime: Runtime) -> list[HTTPRouteHandler]:
    @get("/readyz", include_in_schema=False)
    async def readyz() -> Response[dict[str, Any]]:
        verdict = await runtime.readiness()
        body = verdict.as_json()
        # Said, not judged: outbox mode is a choice, but nobody should mistake it for sending.
        found = targets(runtime.settings)
        body["delivery"] = {
            "mode": mode(found),
            "outbox": [f"{t.where}: {t.action}" for t in found if t.outbox],
        }
        return Response(body, status_code=200 if verdict.ready else 503)

    return [readyz]


class MetricsController(PrometheusController):
    """``/metrics``: the relay's own metrics (queue gauges counted from the store at each
    scrape), then the process-wide registry (process, Python and HTTP request metrics)."""

    @get(include_in_schema=False)
    async def get(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        runtime: Runtime = request.app.state.runtime
        try:
            await runtime.refresh_queue_metrics()
        except TimeoutError:
            # Prometheus records the failed scrape (up == 0); stale gauges would mislead.
            return Response(b"the store did not answer\n", status_code=503, media_type="text/plain")
        except Exception as exc:
            log.error("metrics: reading the store failed: %s: %s", type(exc).__name__, exc)
            text = f"the store failed: {type(exc).__name__}\n".encode()
            return Response(text, status_code=503, media_type="text/plain")
        # As a header: given as media_type, Litestar would append a second charset.
        headers = {"Content-Type": CONTENT_TYPE_LATEST}
        return Response(runtime.metrics.exposition(), status_code=200, headers=headers)
