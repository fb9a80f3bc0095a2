"""HTTP endpoints: the Smartsupp hook, /healthz, /readyz and /metrics."""

from __future__ import annotations

import hmac
import logging
import time
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Request, Response, asgi, get
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
from relay.runtime import Runtime
from relay.store import Intake

log = logging.getLogger("relay.api")  # the published logger name (docs/operations.md)
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


async def answer(send: Send, status: int, body: dict[str, Any]) -> None:
    """One JSON response, as Litestar would write it for a ``Response(body)``."""
    data = _json(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
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


def build_handlers(runtime: Runtime) -> list[HTTPRouteHandler | ASGIRouteHandler]:
    # A low-level (ASGI) route handler: the hook is the one request that comes in volume, and
    # Litestar's request and response objects, parameter parsing and serialisation cost more
    # than everything the relay does with a body apart from the commit (docs/benchmarks.md).
    # Mounted (the rest of the path is the token): Litestar 2 cannot route a path parameter
    # to a low-level handler. Paths and methods the hook does not take get Litestar's answers.
    @asgi("/hooks/smartsupp", is_mount=True, copy_scope=False)  # it only reads the scope
    async def smartsupp_hook(scope: Scope, receive: Receive, send: Send) -> None:
        token = scope["path"].strip("/")
        if not token or "/" in token:
            await answer(send, 404, {"status_code": 404, "detail": "Not Found"})
            return
        if scope.get("method") != "POST":
            await answer(send, 405, {"status_code": 405, "detail": "Method Not Allowed"})
            return
        remote = runtime.scope_client_address(scope)
        refused = gatekeep(runtime, token, remote)
        if refused is not None:
            await answer(send, refused.status, refused.body)
            return
        limit = runtime.settings.server.max_body_bytes
        read = await read_limited(receive, limit)
        if read is None:
            # The client left, or the body deadline (server.body_timeout_seconds) answered
            # 408 and closed the connection (logged there). Nothing was stored and no one
            # reads this answer.
            await answer(send, 408, {"error": "client_disconnected"})
            return
        body, too_long = read
        if too_long:
            result = await refuse(runtime, PayloadTooLarge(limit), body, remote)
        else:
            result = await receive_body(runtime, body, remote)
        await answer(send, result.status, result.body)

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
