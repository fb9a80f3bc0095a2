"""Render emails and Slack messages in helper processes, so templating and CSS inlining run on
another core than the HTTP intake and the senders."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from email.utils import parseaddr
from functools import partial
from typing import TYPE_CHECKING

from relay.config.settings import EmailAction, RenderSettings, Settings, SlackAction
from relay.intake.payload import parse
from relay.leads.links import LeadLinks
from relay.model.category import Category
from relay.model.content import Content, EmailContent, FlatEmail
from relay.render.dispatch import Job
from relay.render.dispatch import render as dispatch

if TYPE_CHECKING:  # helpers only: the relay's own process does not import the renderer
    from relay.render.renderer import Renderer

log = logging.getLogger("relay.renderpool")  # the published logger name (docs/operations.md)


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class PoolUnavailable(Exception):
    """The helper processes cannot render right now; render in-process instead."""


@dataclass(frozen=True)
class RenderJob:
    """Everything a helper process needs (all picklable); ``message_id`` for emails only."""

    settings: RenderSettings
    from_address: str
    raw: bytes
    category: str
    action: EmailAction | SlackAction
    message_id: str = ""
    # Changes with every settings reload, so helpers also pick up edited template files.
    generation: int = 0
    rule: str = ""
    delivery_id: int = 0
    # The visitor's earlier conversations: (category, Unix seconds), from the store.
    earlier: tuple[tuple[str, float], ...] = ()
    follow_up: LeadLinks | None = None  # an email about a lead: its claim and done links
    # Message-IDs of the visitor's earlier emails that were sent (In-Reply-To, References).
    references: tuple[str, ...] = ()
    # An email goes back as its flattened, checked bytes (the sender sends bytes: SMTP, outbox).
    flat: bool = False


class HelperRenderers:
    """One Renderer per (render settings, From address) of the newest settings generation
    seen, built on first use. Lives in a helper process only: ``HELPER`` below is that
    process's own state (each helper has one; the relay's process never touches it)."""

    def __init__(self) -> None:
        self._renderers: dict[tuple[str, str], Renderer] = {}
        self._generation = 0

    def renderer(self, job: RenderJob) -> Renderer:
        if job.generation != self._generation:
            self._renderers.clear()
            self._generation = job.generation
        key = (job.settings.model_dump_json(), job.from_address)
        renderer = self._renderers.get(key)
        if renderer is None:
            from relay.render.renderer import Renderer  # noqa: PLC0415 -- see the imports

            renderer = self._renderers[key] = Renderer(job.settings, from_address=job.from_address)
        return renderer


HELPER = HelperRenderers()


def start_helper(niceness: int) -> None:
    """Run first in every helper: lower its CPU priority by ``niceness`` (``[delivery]
    render_niceness``: when the CPU is short, the hook's answers and the store's commits go
    first and rendering takes what is left; on an idle machine it changes nothing), and tie
    its life to the relay's."""
    if niceness:
        with contextlib.suppress(OSError):  # a limit on niceness leaves the priority as it is
            os.nice(niceness)
    die_with_parent()


def die_with_parent() -> None:
    """End this helper as soon as the relay's process ends, however that ends (SIGKILL
    included) and whoever supervises it, so that no helper is left behind, and with the last
    helper gone, multiprocessing's resource tracker ends too."""
    if sys.platform == "linux":
        # The kernel kills the helper when the thread that started it ends (the relay's
        # event loop thread, which lives as long as the process).
        import ctypes  # noqa: PLC0415 -- in the helper only: 0.4 MiB the relay's process spares

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    # Anywhere: the pipe from the parent reaches end-of-file when the parent's process ends.
    # Checked after prctl(), so a parent that died in between is noticed here.
    if not parent.is_alive():
        os._exit(1)
    watcher = threading.Thread(
        target=_exit_at_end_of_file, args=(parent.sentinel,), name="parent-watch", daemon=True
    )
    watcher.start()


def _exit_at_end_of_file(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(1)  # no cleanup: the helper holds nothing that outlives it


def render(job: RenderJob) -> Content:
    """Run in a helper process: the job's content, by the one dispatch of action to content."""
    conversation = parse(job.raw)
    dispatched = Job(
        job.raw,
        conversation,
        Category(job.category),
        job.action,
        rule=job.rule,
        delivery_id=job.delivery_id,
        message_id=job.message_id,
        earlier=job.earlier,
        follow_up=job.follow_up,
        references=job.references,
    )
    content = dispatch(dispatched, HELPER.renderer(job))
    if job.flat and isinstance(content, EmailContent):
        return flattened(content, job.from_address)
    return content


def flattened(content: EmailContent, from_address: str) -> EmailContent:
    """The email as bytes for a server with 8BITMIME (SMTPUTF8 headers when the envelope
    needs them), flattened (``EmailContent.flat_for``: written directly from the renderer's
    draft, without SMTPUTF8) and checked here, in the helper: only those bytes go back to the
    relay's process. Headers that cannot be written safely leave the message as it is, and
    the sender refuses it exactly as it would without this step."""
    from relay.render.headers import UnsafeHeaders, email_bytes  # noqa: PLC0415 -- helpers only

    envelope = parseaddr(from_address)[1] or from_address
    utf8 = not (envelope + "".join(content.recipients)).isascii()
    try:
        data = email_bytes(content, utf8=utf8, eight_bit=True)
    except UnsafeHeaders:
        return content
    return content.with_flat(FlatEmail(data, utf8, content.message_id))


def check_templates(settings: Settings) -> list[str]:
    """Run in a helper process: ``relay.snapshot.template_problems(settings)``, so that the
    relay's own process never loads what checking the templates loads (compiled templates,
    Babel's locale data: several MB that would stay in it)."""
    from relay.snapshot import template_problems  # noqa: PLC0415 -- helpers only

    return template_problems(settings)


class RenderPool:
    """``processes`` helper processes, started on first use with "spawn" (the relay's own
    process runs threads, which do not survive a fork).

    One executor at a time is current. When a helper dies, every render then in flight fails
    at once; the first of them to notice takes the broken executor out of service (under one
    lock, so exactly one caller shuts each executor down, once) and the next render starts a
    new one. Every render that failed because a helper died raises ``PoolUnavailable``, so
    the caller renders in-process: a helper's death is never a failure of the delivery."""

    def __init__(self, processes: int, niceness: int = 0) -> None:
        self.processes = processes
        self.niceness = niceness  # added to each helper's niceness (``start_helper``)
        self._pool: ProcessPoolExecutor | None = None
        self._disabled = False
        self._lock = threading.Lock()  # guards _pool: taking it out of service is one step

    def _current(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                context = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(
                    self.processes,
                    mp_context=context,
                    initializer=start_helper,
                    initargs=(self.niceness,),
                )
            return self._pool

    def _take(self, pool: ProcessPoolExecutor | None = None) -> ProcessPoolExecutor | None:
        """Take ``pool`` (default: whichever is current) out of service; it is returned only
        to the one caller that took it, who alone shuts it down."""
        with self._lock:
            if self._pool is None or (pool is not None and self._pool is not pool):
                return None
            taken, self._pool = self._pool, None
            return taken

    async def render(self, job: RenderJob) -> Content:
        """Render in a helper process; ``PoolUnavailable`` if none can run it (a sandbox that
        forbids processes or semaphores, a helper that died). Rendering errors propagate."""
        if self._disabled:
            raise PoolUnavailable
        pool: ProcessPoolExecutor | None = None
        try:
            pool = self._current()
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(pool, partial(render, job))
        except BrokenProcessPool:
            assert pool is not None
            broken = self._take(pool)
            if broken is not None:
                log.warning("a render helper process died; starting new ones")
                await asyncio.to_thread(_shut_down, broken)
            raise PoolUnavailable from None
        except RuntimeError:
            if pool is None or pool is self._pool:
                raise  # not a retired executor refusing work: the rendering's own error
            raise PoolUnavailable from None  # shut down meanwhile (the relay is stopping)
        except OSError as exc:
            log.warning("render helper processes unavailable (%s); rendering in-process", exc)
            self._disabled = True
            raise PoolUnavailable from None

    def check(self, settings: Settings) -> list[str]:
        """``check_templates(settings)`` in a helper process (starting the helpers if none
        runs), waiting for its answer; ``PoolUnavailable`` if no helper can run it, as for
        ``render``. ConfigError (bad render settings) propagates. Called where the relay
        starts (its main thread) or reloads (a thread of the event loop's executor, which
        lives as long as the loop: a helper started there dies with that thread)."""
        if self._disabled:
            raise PoolUnavailable
        pool: ProcessPoolExecutor | None = None
        try:
            pool = self._current()
            return pool.submit(check_templates, settings).result()
        except BrokenProcessPool:
            assert pool is not None
            broken = self._take(pool)
            if broken is not None:
                log.warning("a render helper process died; starting new ones")
                _shut_down(broken)
            raise PoolUnavailable from None
        except RuntimeError:
            if pool is None or pool is self._pool:
                raise
            raise PoolUnavailable from None  # shut down meanwhile (the relay is stopping)
        except OSError as exc:
            log.warning("render helper processes unavailable (%s); checking in-process", exc)
            self._disabled = True
            raise PoolUnavailable from None

    def close(self) -> None:
        """Shut the helpers down; idempotent, and safe beside renders that retire a pool."""
        pool = self._take()
        if pool is not None:
            _shut_down(pool)


def _shut_down(pool: ProcessPoolExecutor) -> None:
    try:
        pool.shutdown(wait=True, cancel_futures=True)
    except OSError as exc:  # a broken executor's cleanup; nothing is left to release
        log.warning("render helpers ended untidily: %s", exc)
