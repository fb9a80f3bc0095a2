"""Render emails and Slack messages in helper processes, so templating and CSS inlining run on
another core than the HTTP intake and the senders. Jobs and results cross each helper's socket
as length-prefixed pickles, written and read by the event loop itself (``relay.render.pipe``)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
from dataclasses import dataclass
from email.utils import parseaddr
from typing import TYPE_CHECKING

from relay.config.settings import EmailAction, RenderSettings, Settings, SlackAction
from relay.intake.payload import parse
from relay.leads.links import LeadLinks
from relay.model.category import Category
from relay.model.content import Content, EmailContent, FlatEmail
from relay.render.dispatch import Job
from relay.render.dispatch import render as dispatch
from relay.render.pipe import Helper, spawn_helper
from relay.render.pipe import PoolUnavailable as PoolUnavailable  # noqa: PLC0414 -- re-exported

if TYPE_CHECKING:  # helpers only: the relay's own process does not import the renderer
    from relay.render.renderer import Renderer

log = logging.getLogger("relay.renderpool")  # the published logger name (docs/operations.md)


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
# A helper silent this long with renders in flight (its watchdog looks every this many
# seconds, so a hang is noticed this long to twice this long after its last answer), or a
# template check not answered in this time, means a hung helper (stopped, stuck in the
# kernel): it is killed and the work done in-process. A render takes milliseconds, the
# check of every template a second or two, a helper's start a few seconds on a busy machine.
DEADLINE_SECONDS = 60.0


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
    render_niceness``, 0 by default; above 0 rendering gives way to every other process when
    the CPU is short; intake goes first by the worker's own yield either way), and tie its
    life to the relay's."""
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

    utf8 = not (_envelope_sender(from_address) + "".join(content.recipients)).isascii()
    try:
        data = email_bytes(content, utf8=utf8, eight_bit=True)
    except UnsafeHeaders:
        return content
    return content.with_flat(FlatEmail(data, utf8, content.message_id))


# A bounded cache: the From addresses are the settings' own, the same few for every email.
@functools.lru_cache(maxsize=64)
def _envelope_sender(from_address: str) -> str:
    """The envelope sender of a From address (the address as given when it parses to none)."""
    return parseaddr(from_address)[1] or from_address


def check_templates(settings: Settings) -> list[str]:
    """Run in a helper process: ``relay.snapshot.template_problems(settings)``, so that the
    relay's own process never loads what checking the templates loads (compiled templates,
    Babel's locale data: several MB that would stay in it)."""
    from relay.snapshot import template_problems  # noqa: PLC0415 -- helpers only

    return template_problems(settings)


class RenderPool:
    """``processes`` helper processes (``relay.render.pipe.Helper``), started on first use.

    Renders go to the helper with the fewest jobs in flight, over its socket, read and
    written by the event loop. When a helper dies, or hangs (answers no render for
    ``deadline_seconds``: it is then killed), every render then in flight on it raises
    ``PoolUnavailable`` at once, so the caller renders in-process (a helper's death is never
    a failure of the delivery), and the next render starts a new helper in its place. A
    helper that died with nothing in flight makes the first render or check after it fall
    back instead."""

    def __init__(
        self, processes: int, niceness: int = 0, deadline_seconds: float = DEADLINE_SECONDS
    ) -> None:
        self.processes = processes
        self.niceness = niceness  # added to each helper's niceness (``start_helper``)
        # For a helper with renders in flight to answer one (else it counts as hung and is
        # ended), and for each template check to be answered.
        self.deadline_seconds = deadline_seconds
        self._helpers: list[Helper] = []
        self._disabled = False
        self._lock = threading.Lock()  # guards _helpers: renders on the loop, checks, close

    def _helper(self, loop: asyncio.AbstractEventLoop | None) -> Helper:
        """The helper to use next (on ``loop``, attached to it), starting helpers up to
        ``processes``; OSError if one cannot start, ``PoolUnavailable`` if one was found dead
        or none can serve ``loop`` (all attached to another loop that still runs)."""
        with self._lock:
            alive = [h for h in self._helpers if not h.dead]
            if len(alive) < len(self._helpers):
                # A helper died. When no call was in flight on it to fall back, this one
                # does (as a call to a dead helper would); the next starts a new helper.
                unnoticed = any(not h.noticed for h in self._helpers if h.dead)
                self._helpers = alive
                if unnoticed:
                    raise PoolUnavailable
            while len(self._helpers) < self.processes:
                self._helpers.append(spawn_helper(start_helper, (self.niceness,)))
            if loop is None:
                return self._helpers[0]
            usable = [h for h in self._helpers if h.usable_on(loop)]
            if not usable:
                raise PoolUnavailable
            helper = min(usable, key=lambda h: h.in_flight)
            helper.attach(loop)
            helper.deadline = self.deadline_seconds
            return helper

    async def render(self, job: RenderJob) -> Content:
        """Render in a helper process; ``PoolUnavailable`` if none can run it (a sandbox that
        forbids processes, a helper that died). Rendering errors propagate."""
        if self._disabled:
            raise PoolUnavailable
        try:
            helper = self._helper(asyncio.get_running_loop())
        except OSError as exc:
            log.warning("render helper processes unavailable (%s); rendering in-process", exc)
            self._disabled = True
            raise PoolUnavailable from None
        content: Content = await helper.call(render, job)
        return content

    def check(self, settings: Settings) -> list[str]:
        """``check_templates(settings)`` in a helper process (starting the helpers if none
        runs), waiting for its answer on this thread; ``PoolUnavailable`` if no helper can run
        it, as for ``render``. ConfigError (bad render settings) propagates. Called where the
        relay starts (its main thread) or reloads (a thread of the event loop's executor,
        which lives as long as the loop: a helper started there dies with that thread)."""
        if self._disabled:
            raise PoolUnavailable
        try:
            helper = self._helper(None)
        except OSError as exc:
            log.warning("render helper processes unavailable (%s); checking in-process", exc)
            self._disabled = True
            raise PoolUnavailable from None
        try:
            problems: list[str] = helper.call_blocking(
                check_templates, settings, self.deadline_seconds
            )
        except PoolUnavailable:
            log.warning("a render helper process died; starting new ones")
            if helper.loop is None:  # no loop reads its socket: nobody else ends it
                helper.close()
            raise
        return problems

    def close(self) -> None:
        """End the helpers (from any thread); idempotent. A later render starts new ones."""
        with self._lock:
            helpers, self._helpers = self._helpers, []
        for helper in helpers:
            helper.close()
