"""Persistent SMTP connections reused across deliveries: one small pool per destination."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import aiosmtplib

from relay.config.settings import SmtpSettings

log = logging.getLogger(__name__)

Destination = tuple[object, ...]
Login = Callable[[aiosmtplib.SMTP], Awaitable[object]]
T = TypeVar("T")
# A connection back in the pool for less than this is reused without a NOOP first: under load
# connections come back every few milliseconds, and the NOOP was one of five round trips per
# message. A send that finds such a connection closed is run again on a new one (``run``).
TRUST_SECONDS = 2.0
# What a connection the server closed meanwhile raises on its next command.
STALE = (aiosmtplib.SMTPServerDisconnected, ConnectionError)


def destination(settings: SmtpSettings) -> Destination:
    """What makes two settings reach the same server as the same client."""
    s = settings
    password = s.password.get_secret_value() if s.password else None
    return (
        s.host,
        s.effective_port,
        s.security,
        s.username,
        password,
        s.ca_file,
        s.timeout_seconds,
        s.auth,
        s.oauth2_token_url,
        s.oauth2_client_id,
    )


def open_connection(settings: SmtpSettings) -> aiosmtplib.SMTP:
    """An unconnected client for ``settings``: TLS mode, CA, AUTH and timeout as configured."""
    s = settings
    return aiosmtplib.SMTP(
        hostname=s.host,
        port=s.effective_port,
        # With auth = "oauth2" the pool logs in (AUTH XOAUTH2) after connecting.
        username=s.username if s.auth == "password" else None,
        password=s.password.get_secret_value() if s.password else None,
        use_tls=s.security == "tls",
        start_tls=True if s.security == "starttls" else False,  # noqa: SIM210 -- None would mean "opportunistic"
        timeout=s.timeout_seconds,
        cert_bundle=str(s.ca_file) if s.ca_file else None,
    )


class SmtpPool:
    """Keeps up to ``max_idle`` connected clients between sends.

    ``connection()`` hands out an idle client after a NOOP shows it is still alive (a dead one
    is closed and replaced), or connects a new one. A client goes back to the pool only if the
    block using it finished without an exception; otherwise it is closed, because its state
    is unknown. Idle clients older than ``max_idle_seconds`` are closed instead of reused
    (servers drop idle sessions after a few minutes). ``run()`` does the same for one
    function, but reuses a client idle for less than ``trust_seconds`` without the NOOP, and
    runs the function once more on a new connection if that client turns out closed.
    """

    def __init__(
        self,
        factory: Callable[[], aiosmtplib.SMTP],
        *,
        max_idle: int = 4,
        max_idle_seconds: float = 60.0,
        trust_seconds: float = TRUST_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = factory
        self._trust_seconds = trust_seconds
        self._max_idle = max_idle
        self._max_idle_seconds = max_idle_seconds
        self._clock = clock
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []
        self._closed = False
        self.opened = 0  # connections opened so far (for logs and tests)

    @contextlib.asynccontextmanager
    async def connection(self, login: Login | None = None) -> AsyncIterator[aiosmtplib.SMTP]:
        """``login`` runs on a newly connected client (a reused one is logged in already)."""
        smtp, _ = await self._checkout(login)
        try:
            yield smtp
        except BaseException as exc:
            await goodbye(smtp, exc)
            raise
        await self._give_back(smtp)

    async def run(
        self, work: Callable[[aiosmtplib.SMTP], Awaitable[T]], login: Login | None = None
    ) -> T:
        """``work`` on a pooled client, as ``connection()`` would run it, except that a client
        back for less than ``trust_seconds`` is taken without a NOOP. If such a client fails
        as closed by the server (its first command finds the connection gone), ``work`` runs
        once more on a new connection: at worst the message goes out twice, never not at all
        (the server may have closed it after taking the message but before answering)."""
        smtp, checked = await self._checkout(login, trust=True)
        try:
            result = await work(smtp)
        except STALE as exc:
            await goodbye(smtp, exc)
            if checked:
                raise
            log.info("a pooled SMTP connection was closed by the server; sending on a new one")
            smtp, _ = await self._checkout(login, fresh=True)
            try:
                result = await work(smtp)
            except BaseException as again:
                await goodbye(smtp, again)
                raise
        except BaseException as exc:
            await goodbye(smtp, exc)
            raise
        await self._give_back(smtp)
        return result

    async def _give_back(self, smtp: aiosmtplib.SMTP) -> None:
        if self._closed or len(self._idle) >= self._max_idle or not smtp.is_connected:
            await goodbye(smtp)
        else:
            self._idle.append((smtp, self._clock()))

    async def close(self) -> None:
        """QUIT every idle connection; clients still in use are closed when they come back."""
        self._closed = True
        idle, self._idle = self._idle, []
        for smtp, _ in idle:
            await goodbye(smtp)

    async def _checkout(
        self, login: Login | None = None, *, trust: bool = False, fresh: bool = False
    ) -> tuple[aiosmtplib.SMTP, bool]:
        """A client, and whether it is known to work (new, or it answered a NOOP just now):
        with ``trust`` one back for less than ``trust_seconds`` is not checked; ``fresh``: a
        new connection whatever is idle."""
        while self._idle and not fresh:
            smtp, since = self._idle.pop()
            idle = self._clock() - since
            if idle > self._max_idle_seconds or not smtp.is_connected:
                await goodbye(smtp)
                continue
            if trust and idle < self._trust_seconds:
                return smtp, False
            try:
                await smtp.noop()
            except (aiosmtplib.SMTPException, OSError) as exc:
                log.info("dropping a pooled SMTP connection that failed NOOP: %s", exc)
                await goodbye(smtp, exc)
                continue
            return smtp, True
        smtp = self._factory()
        try:
            await smtp.connect()
            if login is not None:
                await login(smtp)
        except BaseException as exc:
            await goodbye(smtp, exc)
            raise
        self.opened += 1
        return smtp, True


async def goodbye(client: aiosmtplib.SMTP, failure: BaseException | None = None) -> None:
    """QUIT politely when the connection is healthy; just close it when it is not, or when
    the send was cancelled (shutdown): a QUIT to a stalled server waits a whole timeout."""
    stalled = isinstance(failure, ConnectionError | TimeoutError | asyncio.CancelledError)
    try:
        if client.is_connected and not stalled:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit()
    finally:
        client.close()


class SmtpPools:
    """One pool per destination, shared by every sender built from the same settings: senders
    are rebuilt on every settings reload, and keying by destination lets the new ones reuse
    the pools (and connections) of the old ones. Clients belong to the event loop that
    connected them: the owner (the sender registry of one running relay) closes the pools
    before its loop ends; later sends open new ones."""

    def __init__(self) -> None:
        self._pools: dict[Destination, SmtpPool] = {}

    def pool(self, settings: SmtpSettings, max_idle: int = 4) -> SmtpPool:
        """The pool for ``settings``' destination (created on first use)."""
        key = destination(settings)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = SmtpPool(lambda: open_connection(settings), max_idle=max_idle)
        return pool

    async def close(self) -> None:
        """QUIT every pool's idle connections and forget the pools."""
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            await pool.close()
