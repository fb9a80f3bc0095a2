"""Render emails and Slack messages in helper processes, so templating and CSS inlining run on
another core than the HTTP intake and the senders."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import partial

from relay.classify import Category
from relay.payload import parse
from relay.render import Renderer
from relay.senders.base import EmailContent, SlackContent
from relay.settings import EmailAction, RenderSettings, SlackAction

log = logging.getLogger(__name__)


class PoolUnavailable(Exception):
    """The helper processes cannot render right now; render in-process instead."""


# In a helper process: one Renderer per (render settings, From address) of the newest
# settings generation seen, built on first use.
_RENDERERS: dict[tuple[str, str], Renderer] = {}
_GENERATION = [0]


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


def render(job: RenderJob) -> EmailContent | SlackContent:
    if job.generation != _GENERATION[0]:
        _RENDERERS.clear()
        _GENERATION[0] = job.generation
    key = (job.settings.model_dump_json(), job.from_address)
    renderer = _RENDERERS.get(key)
    if renderer is None:
        renderer = _RENDERERS[key] = Renderer(job.settings, from_address=job.from_address)
    conversation, category = parse(job.raw), Category(job.category)
    if isinstance(job.action, EmailAction):
        return renderer.email(conversation, category, job.action, message_id=job.message_id)
    return renderer.slack(conversation, category, job.action)


class RenderPool:
    """``processes`` helper processes, started on first use with "spawn" (the relay's own
    process runs threads, which do not survive a fork)."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None
        self._disabled = False

    async def render(self, job: RenderJob) -> EmailContent | SlackContent:
        """Render in a helper process; ``PoolUnavailable`` if none can run it (a sandbox that
        forbids processes or semaphores, a helper that died). Rendering errors propagate."""
        if self._disabled:
            raise PoolUnavailable
        try:
            if self._pool is None:
                context = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(self.processes, mp_context=context)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, partial(render, job))
        except BrokenProcessPool:
            log.warning("a render helper process died; starting new ones")
            await asyncio.to_thread(self.close)
            raise PoolUnavailable from None
        except OSError as exc:
            log.warning("render helper processes unavailable (%s); rendering in-process", exc)
            self._disabled = True
            raise PoolUnavailable from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
