"""The running relay's parts, shared by the HTTP handlers: settings, store, worker, metrics."""

from __future__ import annotations

import ipaddress
import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from litestar import Request

from relay.metrics import Metrics
from relay.settings import Rule, Settings
from relay.storethread import StoreThread
from relay.worker import Worker

log = logging.getLogger(__name__)


def hook_token(settings: Settings) -> str:
    """The configured token, or one generated once and kept in <state_dir>/hook_token."""
    if settings.server.hook_token is not None:
        return settings.server.hook_token.get_secret_value()
    path = Path(settings.storage.state_dir) / "hook_token"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    path.touch(mode=0o600)
    path.write_text(token + "\n", encoding="utf-8")
    log.warning("no server.hook_token configured; generated one in %s", path)
    return token


@dataclass
class Runtime:
    settings: Settings
    hook_token: str
    metrics: Metrics = field(default_factory=Metrics)
    _store: StoreThread | None = None
    _worker: Worker | None = None

    @property
    def rules(self) -> list[Rule]:
        return self.settings.effective_rules

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
        proxies = self.settings.server.trusted_proxies
        if peer is None or not proxies or not _in(peer, proxies):
            return peer
        forwarded = request.headers.get("x-forwarded-for", "")
        # Walk from the right: the first address that is not a trusted proxy is the client.
        for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
            if not _in(hop, proxies):
                return hop
        return peer

    def hook_allowed(self, remote: str | None) -> bool:
        allow = self.settings.server.hook_allowlist
        return allow is None or (remote is not None and _in(remote, allow))


def _in(address: str, networks: list[Any]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)
