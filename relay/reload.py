"""Reload on SIGHUP: read and validate the settings again, then swap the snapshot atomically.

On any error the running snapshot stays in force and the log says why. A reload that would
change a setting read only at start-up, or drop the hook token, a destination or the configured
rules the relay had (an empty or truncated file), is refused whole: nothing of it is applied.
Requests are never paused or dropped: the new snapshot is built in a worker thread and swapped
in with one assignment on the event loop; a request uses the snapshot it read when it started.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from relay.config.settings import Settings, SlackSettings, SmtpSettings
from relay.ops.heap import refreeze_if_frozen
from relay.runtime import Runtime
from relay.snapshot import Snapshot

log = logging.getLogger(__name__)

# Keys read once at start-up: the listening socket, the store, the worker (pool and retry
# policy) and the log handler.
RESTART_ONLY = (
    "server.host",
    "server.port",
    "server.header_timeout_seconds",
    "server.body_timeout_seconds",
    "server.keep_alive_seconds",
    "server.limit_concurrency",
    "server.max_connections",
    "storage.state_dir",
    # The store is opened once: its database and the lease its claims take.
    "storage.url",
    "storage.password",
    "storage.lease_seconds",
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


def _sends(destination: object) -> bool:
    """False for an SMTP or Slack destination that would only write to the outbox."""
    if isinstance(destination, SmtpSettings):
        return destination.host is not None
    if isinstance(destination, SlackSettings):
        return destination.token is not None or destination.webhook_url is not None
    return True


def dropped(old: Settings, new: Settings) -> list[str]:
    """What the relay had and ``new`` would take away: the hook token, a configured SMTP or
    Slack destination (mail and messages would go to the outbox), a named destination, the
    configured rules (the built-in ones would apply) or the fallback actions."""
    lost = []
    if old.server.hook_token is not None and new.server.hook_token is None:
        lost.append("server.hook_token is removed (Smartsupp's calls would get 404)")
    if _sends(old.smtp) and not _sends(new.smtp):
        lost.append("smtp.host is removed (mail would go to the outbox)")
    if _sends(old.slack) and not _sends(new.slack):
        lost.append("[slack] token and webhook_url are removed (messages would go to the outbox)")
    for kind in ("smtp", "slack", "webhook"):
        before, after = getattr(old.destinations, kind), getattr(new.destinations, kind)
        gone = sorted(set(before) - set(after))
        if gone:
            lost.append(f"destinations.{kind} {', '.join(map(repr, gone))} removed")
        lost.extend(
            f"destinations.{kind} {name!r} would write to the outbox"
            for name in sorted(set(before) & set(after))
            if _sends(before[name]) and not _sends(after[name])
        )
    if old.rules is not None and new.rules is None:
        lost.append(f"the {len(old.rules)} [[rules]] are removed (the built-in rules would apply)")
    if old.routing.fallback and not new.routing.fallback:
        lost.append("the routing.fallback actions are removed")
    return lost


def refusals(old: Settings, new: Settings) -> list[str]:
    """Why ``new`` must not replace ``old`` in a running relay; empty if it may."""
    return [
        *(
            f"{key} changed (read only at start-up: restart to apply)"
            for key in restart_only_changes(old, new)
        ),
        *dropped(old, new),
    ]


class Refused(ValueError):
    """A reload that was refused as a whole; the message says why."""


def load_checked(runtime: Runtime, load: Callable[[], Settings]) -> Settings:
    """Load the settings again; Refused if they may not replace the running ones. Checked
    before anything is built from them: building reads (and may create) the state directory."""
    settings = load()
    problems = refusals(runtime.settings, settings)
    if problems:
        raise Refused("; ".join(problems))
    return settings


def reload_runtime(
    runtime: Runtime, load: Callable[[], Settings], build: Callable[[Settings], Snapshot]
) -> bool:
    """Load and build a new snapshot and swap it in; False (old one kept) on any error."""
    try:
        snapshot = build(load_checked(runtime, load))
    except Exception as exc:
        _failed(exc)
        return False
    apply(runtime, snapshot)
    return True


def _failed(exc: Exception) -> None:
    if isinstance(exc, Refused):
        log.error("reload refused, still running on the previous settings: %s", exc)
    else:
        log.error("reload failed, still running on the previous settings: %s", exc)


def apply(runtime: Runtime, snapshot: Snapshot) -> None:
    runtime.snapshot = snapshot
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
                snapshot = await asyncio.to_thread(
                    lambda: self.build(load_checked(self.runtime, self.load))
                )
            except Exception as exc:
                _failed(exc)
                continue
            apply(self.runtime, snapshot)
            # The old snapshot was frozen with the rest at start (relay.ops.heap): unfreeze
            # so that it is collected, then freeze again.
            refreeze_if_frozen()
