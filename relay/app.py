"""Wiring: ``create_app(settings)`` builds the Litestar app, its store, senders and worker."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from litestar import Litestar
from litestar.plugins.prometheus import PrometheusConfig

from relay.api import MetricsController, build_handlers
from relay.logs import RequestIdMiddleware, StdlibLogging
from relay.render import Renderer
from relay.retry import RetryPolicy
from relay.runtime import Runtime, hook_token
from relay.senders.base import Sender
from relay.senders.outbox import OutboxSender
from relay.senders.slack import SlackSender
from relay.senders.smtp import SmtpSender
from relay.settings import Settings
from relay.store import Store
from relay.storethread import StoreThread
from relay.worker import Observer, Worker

log = logging.getLogger(__name__)


def database_path(settings: Settings) -> Path:
    return Path(settings.storage.state_dir) / "relay.db"


def outbox_path(settings: Settings) -> Path:
    return Path(settings.storage.state_dir) / "outbox"


def build_senders(settings: Settings) -> dict[str, Sender]:
    """SMTP and Slack where configured; the local outbox directory for whatever is not."""
    outbox = OutboxSender(outbox_path(settings))
    email: Sender = SmtpSender(settings.smtp) if settings.smtp.host else outbox
    slack_configured = settings.slack.token is not None or settings.slack.webhook_url is not None
    slack: Sender = SlackSender(settings.slack) if slack_configured else outbox
    return {"email": email, "slack": slack}


def retry_policy(settings: Settings) -> RetryPolicy:
    d = settings.delivery
    return RetryPolicy(
        initial_seconds=d.backoff_initial_seconds,
        max_seconds=d.backoff_max_seconds,
        max_age_seconds=d.max_age_hours * 3600,
    )


def build_worker(settings: Settings, store: StoreThread, observe: Observer | None = None) -> Worker:
    return Worker(
        store,
        Renderer(settings.render, from_address=settings.smtp.from_address),
        build_senders(settings),
        from_address=settings.smtp.from_address,
        policy=retry_policy(settings),
        concurrency=settings.delivery.concurrency,
        observe=observe,
    )


def create_app(settings: Settings) -> Litestar:
    runtime = Runtime(settings=settings, hook_token=hook_token(settings))

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        store = StoreThread(Store(database_path(settings)))
        worker = build_worker(settings, store, observe=runtime.metrics.delivery)
        runtime._store, runtime._worker = store, worker
        worker.start()
        log.info("relay started: state in %s", settings.storage.state_dir)
        try:
            yield
        finally:
            await worker.stop(settings.delivery.shutdown_grace_seconds)
            store.close()
            runtime._store = runtime._worker = None
            log.info("relay stopped")

    # HTTP request metrics by path template: the hook's real path carries the secret token.
    http_metrics = PrometheusConfig(app_name="relay", prefix="relay_http", group_path=True)
    app = Litestar(
        route_handlers=[*build_handlers(runtime), MetricsController],
        middleware=[RequestIdMiddleware, http_metrics.middleware],
        logging_config=StdlibLogging(),
        lifespan=[lifespan],
        debug=False,
    )
    app.state.runtime = runtime
    return app
