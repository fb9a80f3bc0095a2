"""The running relay's parts, shared by the HTTP handlers: settings, store, worker, metrics."""

from __future__ import annotations

import ipaddress
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

from litestar import Request
from litestar.types import Scope

from relay.config.settings import Settings
from relay.delivery.worker import Worker
from relay.leads.scheduler import FollowUpScheduler
from relay.ops.health import Readiness, backlog_age, readiness, store_state
from relay.ops.logthrottle import Throttle
from relay.ops.metrics import Metrics
from relay.ops.secretfile import kept_secret
from relay.senders.registry import SenderRegistry
from relay.snapshot import Snapshot
from relay.store.opening import lease_counts
from relay.store.storethread import StoreThread

log = logging.getLogger(__name__)

Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network


def hook_token(settings: Settings) -> str:
    """The configured token, or one generated once and kept in <state_dir>/hook_token."""
    if settings.server.hook_token is not None:
        return settings.server.hook_token.get_secret_value()
    path = Path(settings.storage.state_dir) / "hook_token"
    token, made = kept_secret(
        path, lambda: secrets.token_urlsafe(24), min_length=16, what="the hook's token"
    )
    if made:
        log.warning("no server.hook_token configured; generated one in %s", path)
    return token


@dataclass
class Runtime:
    """``snapshot`` is replaced whole on reload (one assignment); everything built from the
    settings is read through it. A request reads it once (``receive`` does not await between
    reading settings and routing), a delivery attempt reads it once."""

    snapshot: Snapshot
    metrics: Metrics = field(default_factory=Metrics)
    clock: Callable[[], float] = time.time  # the wall clock of readiness and queue ages
    # Hook calls with a wrong token: the first logged, then one summary line per minute.
    wrong_tokens: Throttle = field(
        default_factory=lambda: Throttle(
            "hook called with a wrong token", "hook calls with a wrong token"
        )
    )
    # Owns what senders share across reloads (SMTP connections); closed with the runtime.
    senders: SenderRegistry = field(default_factory=SenderRegistry)
    _store: StoreThread | None = None
    _worker: Worker | None = None
    _follow_up: FollowUpScheduler | None = None

    def attach(
        self, store: StoreThread, worker: Worker, follow_up: FollowUpScheduler | None = None
    ) -> None:
        """The app started: requests use this store and wake this worker until ``close``;
        ``follow_up`` escalates leads and sends the digest (stopped by ``close``)."""
        self._store, self._worker, self._follow_up = store, worker, follow_up

    async def close(self, grace_seconds: float) -> None:
        """The app is stopping: stop the follow-up scheduler and the worker (in-flight sends
        get ``grace_seconds``), close the senders' connections and the store."""
        worker, store, follow_up = self._worker, self._store, self._follow_up
        if follow_up is not None:
            await follow_up.stop()
        if worker is not None:
            await worker.stop(grace_seconds)
        await self.senders.close()
        if store is not None:
            store.close()
        self._store = self._worker = self._follow_up = None

    @property
    def settings(self) -> Settings:
        return self.snapshot.settings

    @property
    def hook_token(self) -> str:
        return self.snapshot.hook_token

    @property
    def store(self) -> StoreThread:
        if self._store is None:
            raise RuntimeError("the store is not open (app not started)")
        return self._store

    @property
    def worker(self) -> Worker:
        if self._worker is None:
            raise RuntimeError("the worker is not running (app not started)")
        return self._worker

    def client_address(self, request: Request[Any, Any, Any]) -> str | None:
        peer = request.client.host if request.client else None
        # Every X-Forwarded-For line in order: a proxy may append its own line instead of
        # extending the client's, and the right-most entry is the nearest proxy's.
        forwarded = ", ".join(request.headers.getall("x-forwarded-for", []))
        return client_address(peer, forwarded, self.settings.server.trusted_proxies)

    def scope_client_address(self, scope: Scope) -> str | None:
        """``client_address`` for a low-level (ASGI) handler's scope."""
        client = scope.get("client")
        trusted = self.settings.server.trusted_proxies
        if client is None or not trusted:
            return client[0] if client else None
        forwarded = ", ".join(
            value.decode("latin-1")
            for name, value in scope["headers"]
            if name.lower() == b"x-forwarded-for"
        )
        return client_address(client[0], forwarded, trusted)

    def hook_allowed(self, remote: str | None) -> bool:
        allow = self.settings.server.hook_allowlist
        return allow is None or (remote is not None and _in(remote, allow))

    @property
    def worker_running(self) -> bool:
        return self._worker is not None and self._worker.running

    async def readiness(self) -> Readiness:
        health = self.settings.health
        return await readiness(
            self._store,
            worker_running=self.worker_running,
            now=self.clock(),
            max_backlog_age=health.max_backlog_age_seconds,
            within=health.probe_timeout_seconds,
        )

    async def refresh_queue_metrics(self) -> None:
        """Set the queue gauges from the store (at scrape time). TimeoutError if it is stuck."""
        state = await store_state(self.store, self.settings.health.probe_timeout_seconds)
        self.metrics.set_queue(state.counts, backlog_age(state, self.clock()))
        now = self.clock()
        leases = await self.store.call(lambda store: lease_counts(store, now))
        if leases is not None:
            self.metrics.set_leases(leases)


def client_address(peer: str | None, forwarded: str, trusted: Sequence[Network]) -> str | None:
    """The client's address: the TCP peer, unless the peer is a trusted proxy. Then walk
    X-Forwarded-For from the right (the entry the nearest proxy added) and take the first hop
    that is not itself a trusted proxy; entries further left are whatever the client claimed.
    An entry that is not an address stops the walk at the last trusted hop."""
    if peer is None or not trusted or not _in(peer, trusted):
        return peer
    nearest = peer
    for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
        address = _address(hop)
        if address is None:
            return nearest
        if not _in(address, trusted):
            return address
        nearest = address
    return nearest


def _address(text: str) -> str | None:
    """An IP address written as-is or as ``[v6]``, normalised; None if it is not one."""
    try:
        return str(ipaddress.ip_address(text.removeprefix("[").removesuffix("]")))
    except ValueError:
        return None


def _in(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d
    return any(ip in net for net in networks)
