"""Reload on SIGHUP: read and validate the settings again, then swap the snapshot atomically.

On any error the running snapshot stays in force and the log says why. Requests are never
paused or dropped: the new snapshot is built in a worker thread and swapped in with one
assignment on the event loop; a request uses the snapshot it read when it started.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from relay.runtime import Runtime
from relay.settings import Settings
from relay.snapshot import Snapshot

log = logging.getLogger(__name__)

# Keys read once at start-up: the listening socket, the store, the worker (pool and retry
# policy) and the log handler.
RESTART_ONLY = (
    "server.host",
    "server.port",
    "server.header_timeout_seconds",
    "server.keep_alive_seconds",
    "server.limit_concurrency",
    "server.max_connections",
    "storage.state_dir",
    "delivery",
    "logging",
)


def restart_only_changes(old: Settings, new: Settings) -> list[str]:
    changed = []
    for key in RESTART_ONLY:
        section, _, field = key.partition(".")
        before, after = getattr(old, section), getattr(new, section)
        if field:
            before, after = getattr(before, field), getattr(after, field)
        if before != after:
            changed.append(key)
    return changed


def reload_runtime(
    runtime: Runtime, load: Callable[[], Settings], build: Callable[[Settings], Snapshot]
) -> bool:
    """Load and build a new snapshot and swap it in; False (old one kept) on any error."""
    try:
        snapshot = build(load())
    except Exception as exc:
        _failed(exc)
        return False
    apply(runtime, snapshot)
    return True


def _failed(exc: Exception) -> None:
    log.error("reload failed, still running on the previous settings: %s", exc)


def apply(runtime: Runtime, snapshot: Snapshot) -> None:
    ignored = restart_only_changes(runtime.settings, snapshot.settings)
    runtime.snapshot = snapshot
    if ignored:
        log.warning("reload: changes to %s take effect after a restart", ", ".join(ignored))
    log.info(
        "settings reloaded: %d rules, fallback %s",
        len(snapshot.rules.rules),
        "drop" if snapshot.rules.drops_unmatched else f"{len(snapshot.rules.fallback)} actions",
    )


class Reloader:
    """Installs a SIGHUP handler on the running loop; reloads run one at a time, and a
    SIGHUP that arrives during a reload triggers one more afterwards."""

    def __init__(
        self,
        runtime: Runtime,
        load: Callable[[], Settings],
        build: Callable[[Settings], Snapshot],
    ) -> None:
        self.runtime = runtime
        self.load = load
        self.build = build
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, self.request)
        except (ValueError, RuntimeError, NotImplementedError) as exc:
            # Not the main thread (e.g. an in-process test client) or no signals here.
            log.warning("SIGHUP reload is not available: %s", exc)
            return
        self._loop = loop
        log.info("SIGHUP reloads the settings")

    def uninstall(self) -> None:
        if self._loop is not None:
            self._loop.remove_signal_handler(signal.SIGHUP)
            self._loop = None
        if self._task is not None and not self._task.done():
            self._task.cancel()  # a reload cut short leaves the running snapshot in force

    def request(self) -> None:
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.create_task(self.run(), name="relay-reload")

    async def run(self) -> None:
        self._again = True
        while self._again:
            self._again = False
            log.info("SIGHUP: reloading settings")
            try:
                snapshot = await asyncio.to_thread(lambda: self.build(self.load()))
            except Exception as exc:
                _failed(exc)
                continue
            apply(self.runtime, snapshot)
