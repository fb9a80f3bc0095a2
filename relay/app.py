"""Wiring: ``create_app(settings)`` builds the Litestar app, its store, senders and worker."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

from litestar import Litestar
from litestar.plugins import PluginProtocol
from litestar.plugins.core import MsgspecDIPlugin
from litestar.types import ASGIApp, Receive, Scope, Send

from relay.config.settings import Settings
from relay.console.auth import check_key_file
from relay.delivery.retry import RetryPolicy
from relay.delivery.worker import Observer, Worker
from relay.intake.http import MetricsController, answer, build_handlers, hook_first
from relay.leads.links import link_key
from relay.leads.scheduler import FollowUpScheduler
from relay.model.errors import ConfigError
from relay.ops.logs import RequestIdMiddleware, StdlibLogging, quiet_http_clients
from relay.reload import Reloader
from relay.render.pool import PoolUnavailable, RenderPool
from relay.runtime import Runtime, hook_token
from relay.senders.registry import SenderRegistry
from relay.snapshot import Renderers, Snapshot, lease_problem, template_problems
from relay.store import opening
from relay.store.opening import describe, open_store, wake_on_new_work
from relay.store.storethread import StoreThread

log = logging.getLogger(__name__)


def database_path(settings: Settings) -> Path:
    """The SQLite store's file (unused, but still named, with a PostgreSQL ``[storage] url``)."""
    return opening.database_path(settings)


def build_snapshot(
    settings: Settings,
    senders: SenderRegistry | None = None,
    render_pool: RenderPool | None = None,
) -> Snapshot:
    """Everything the request path and the worker build from settings; raises ConfigError
    (bad render settings, or templates that do not render) without side effects.
    ``senders``: the running relay's registry (a snapshot alone gets its own);
    ``render_pool``: the running relay's helpers, which check the templates (else, or when
    they cannot, this process checks them)."""
    problems = checked_templates(settings, render_pool)
    if problems:
        raise ConfigError("templates: " + "; ".join(problems))
    built = (SenderRegistry() if senders is None else senders).build(settings)
    lease = lease_problem(settings, built)
    if lease is not None:
        raise ConfigError(lease)
    return Snapshot(
        settings=settings,
        rules=settings.rule_set,
        hook_token=hook_token(settings),
        senders=built,
        renderers=Renderers(settings),
        link_key=lead_link_key(settings),
    )


def checked_templates(settings: Settings, render_pool: RenderPool | None) -> list[str]:
    """``template_problems(settings)``, in a render helper process when there is one."""
    if render_pool is not None:
        try:
            return render_pool.check(settings)
        except PoolUnavailable:
            pass
    return template_problems(settings)


def new_render_pool(settings: Settings) -> RenderPool | None:
    """The helper processes ``[delivery] render_processes`` asks for (None: render here)."""
    n = settings.delivery.render_processes
    return RenderPool(n, settings.delivery.render_niceness) if n else None


def lead_link_key(settings: Settings) -> bytes:
    if not settings.follow_up.enabled:
        return b""
    return link_key(settings.follow_up, Path(settings.storage.state_dir))


def retry_policy(settings: Settings) -> RetryPolicy:
    d = settings.delivery
    return RetryPolicy(
        initial_seconds=d.backoff_initial_seconds,
        max_seconds=d.backoff_max_seconds,
        max_age_seconds=d.max_age_hours * 3600,
    )


def build_worker(
    runtime: Runtime,
    store: StoreThread,
    observe: Observer | None = None,
    render_pool: RenderPool | None = None,
) -> Worker:
    """The worker reads senders and renderers from the runtime's current snapshot.
    ``render_pool``: the helpers it renders in (default: new ones, as the settings ask);
    the worker closes them when it stops."""
    settings = runtime.settings
    return Worker(
        store,
        lambda: runtime.snapshot,
        policy=retry_policy(settings),
        concurrency=settings.delivery.concurrency,
        per_destination=settings.delivery.per_destination_concurrency,
        observe=observe,
        render_pool=render_pool or new_render_pool(settings),
        # Claims ahead of their send must not outlive their lease (PostgreSQL only).
        lease_seconds=settings.storage.lease_seconds if settings.storage.url else None,
        yield_at_intakes=settings.delivery.yield_at_intakes,
        yield_concurrency=settings.delivery.yield_concurrency,
        yield_per_second=settings.delivery.yield_per_second,
    )


def check_store(settings: Settings) -> None:
    """Open the database (creating it if new) and check its integrity (``PRAGMA quick_check``);
    StoreError naming the file and the problem if it is damaged, or the PostgreSQL database
    if it cannot be reached."""
    open_store(settings, check=True).close()


def console_listener_only(port: int) -> Callable[[ASGIApp], ASGIApp]:
    """Middleware for ``[console] port``: on that listener only /console answers; the hook,
    metrics, probes and links get 404 there (the console answers 404 on the others)."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def only_console(scope: Scope, receive: Receive, send: Send) -> None:
            server = scope.get("server")
            path = scope.get("path", "")
            if server is not None and server[1] == port and not under_console(path):
                await answer(send, 404, {"status_code": 404, "detail": "Not Found"})
                return
            await app(scope, receive, send)

        return only_console

    return middleware


class RelayLitestar(Litestar):
    """Litestar without the plugins it adds to every app for pydantic and attrs models: the
    relay's handlers take and answer no such models, and importing those plugins (with
    pydantic.v1 and attrs) was ~2.5 MiB of every relay's resident memory."""

    @staticmethod
    def _get_default_plugins(plugins: list[PluginProtocol]) -> list[PluginProtocol]:
        return [*plugins, MsgspecDIPlugin()]


def under_console(path: str) -> bool:
    return path == "/console" or path.startswith("/console/")


def console_app(runtime: Runtime) -> Litestar:
    """The console's pages as an app of their own: its routes, and its handler that makes
    Litestar's own 4xx answers under /console console pages."""
    from relay.console.http import build_console  # noqa: PLC0415 -- see console_apart

    console = build_console(runtime)
    app = RelayLitestar(
        route_handlers=console.handlers,
        middleware=[RequestIdMiddleware],
        exception_handlers=console.exception_handlers,
        logging_config=StdlibLogging(),
        openapi_config=None,
        debug=False,
    )
    app.state.runtime = runtime
    return app


def console_apart(app: Litestar, runtime: Runtime) -> None:
    """Hand requests for /console to the console's own app, built (and the console's modules
    imported) on the first of them: a relay whose console nobody opens keeps neither its
    modules nor its two dozen routes in memory (0.7 MiB of an idle relay's resident memory)."""
    rest = app.asgi_handler
    built: list[Litestar] = []

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        if not under_console(scope.get("path", "")):
            await rest(scope, receive, send)
            return
        if not built:
            built.append(console_app(runtime))
        await built[0](scope, receive, send)

    app.asgi_handler = dispatch


def create_app(
    settings: Settings,
    *,
    reload: Callable[[], Settings] | None = None,
    reload_asked: threading.Event | None = None,
) -> Litestar:
    """``reload``: how to read the settings again; with it, SIGHUP reloads them.
    ``reload_asked``: set when a SIGHUP came before the reloader was installed (during start);
    that reload then runs as soon as it is."""
    quiet_http_clients()  # webhook URLs can carry credentials; see relay.model.urls
    senders = SenderRegistry()
    # Started here: the templates are checked in a helper (build_snapshot), which the worker
    # then renders in; the worker closes it when the relay stops.
    render_pool = new_render_pool(settings)
    try:
        runtime = Runtime(snapshot=build_snapshot(settings, senders, render_pool), senders=senders)
        check_store(settings)
        check_key_file(settings.console, Path(settings.storage.state_dir))
    except BaseException:
        if render_pool is not None:
            render_pool.close()
        raise
    rebuild = partial(build_snapshot, senders=senders, render_pool=render_pool)
    reloader = Reloader(runtime, reload, rebuild) if reload is not None else None

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        store = StoreThread(open_store(settings, relay=True))
        worker = build_worker(
            runtime, store, observe=runtime.metrics.delivery, render_pool=render_pool
        )
        loop = asyncio.get_running_loop()
        # Another relay's intake (PostgreSQL) wakes this worker too; the store stops listening
        # when it is closed, while this loop still runs.
        wake_on_new_work(store.store, lambda: loop.call_soon_threadsafe(worker.wake))
        follow_up = FollowUpScheduler(store, lambda: runtime.snapshot, wake=worker.wake)
        runtime.attach(store, worker, follow_up)
        worker.start()
        follow_up.start()
        if reloader is not None:
            reloader.install()
            if reload_asked is not None and reload_asked.is_set():
                log.info("SIGHUP received while starting: reloading the settings now")
                reloader.request()
        log.info(
            "relay started: state in %s, store %s", settings.storage.state_dir, describe(settings)
        )
        try:
            yield
        finally:
            if reloader is not None:
                reloader.uninstall()
            await runtime.close(settings.delivery.shutdown_grace_seconds)
            if (counted := runtime.wrong_tokens.flush()) is not None:
                log.warning("%s", counted)
            log.info("relay stopped")

    # No per-request HTTP metrics middleware: it cost about an eighth of the hook's CPU time
    # (docs/benchmarks.md); the relay's own counters say what was received and refused why.
    app = RelayLitestar(
        route_handlers=[*build_handlers(runtime), MetricsController],
        middleware=[
            RequestIdMiddleware,
            *(
                [console_listener_only(settings.console.port)]
                if settings.console.port is not None
                else []
            ),
        ],
        logging_config=StdlibLogging(),
        # No /schema: the relay publishes no API description (and builds none).
        openapi_config=None,
        lifespan=[lifespan],
        debug=False,
    )
    app.state.runtime = runtime
    console_apart(app, runtime)
    hook_first(app, runtime, console_port=settings.console.port)
    return app
