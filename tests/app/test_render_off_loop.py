"""The delivery worker never renders on the event loop: without helper processes, or when the
helper died, an email is rendered in a thread while the loop goes on serving other tasks."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace

import pytest
from litestar.testing import TestClient

from relay.app import create_app
from relay.config.settings import EmailAction, RenderSettings, Settings
from relay.leads.links import LeadLinks
from relay.model.category import Category
from relay.model.content import EmailContent
from relay.model.conversation import Conversation
from relay.render.renderer import Renderer
from tests.support.app import runtime
from tests.support.data import TOKEN, sample
from tests.support.smtp import SmtpServer

BOUND = 30.0  # how long a renderer stuck on the event loop waits before it gives up


class WatchedRenderer(Renderer):
    """Renders like any Renderer, after noting whether it runs on an event loop and waiting
    (up to BOUND) for the loop to run another task meanwhile."""

    def __init__(self, settings: RenderSettings, *, from_address: str) -> None:
        super().__init__(settings, from_address=from_address)
        self.started = threading.Event()
        self.loop_served = threading.Event()
        self.on_a_loop: list[bool] = []
        self.served_meanwhile: list[bool] = []

    def email(
        self,
        conversation: Conversation,
        category: Category,
        action: EmailAction,
        *,
        message_id: str,
        earlier: Sequence[tuple[str, float]] = (),
        follow_up: LeadLinks | None = None,
        references: Sequence[str] = (),
    ) -> EmailContent:
        try:
            asyncio.get_running_loop()
            self.on_a_loop.append(True)
        except RuntimeError:
            self.on_a_loop.append(False)
        self.started.set()
        self.served_meanwhile.append(self.loop_served.wait(BOUND))
        return super().email(
            conversation,
            category,
            action,
            message_id=message_id,
            earlier=earlier,
            follow_up=follow_up,
            references=references,
        )


def conversation(channel_id: int) -> bytes:
    data = sample("v1")
    data["channel"]["id"] = channel_id
    data["channel"]["isMissed"] = True
    return json.dumps(data).encode()


@pytest.mark.parametrize("helper", ["none", "dead"])
def test_emails_are_rendered_off_the_event_loop_without_a_working_helper(
    helper: str, make_settings: Callable[..., Settings], smtp_server: SmtpServer
) -> None:
    settings = make_settings(
        smtp={"host": "127.0.0.1", "port": smtp_server.port, "from_address": "R <r@shop.test>"},
        routing={"sales_inbox": "sales@shop.test"},
        delivery={"render_processes": 1 if helper == "dead" else 0},
    )
    with TestClient(create_app(settings)) as client:
        hook = f"/hooks/smartsupp/{TOKEN}"
        if helper == "dead":
            assert client.post(hook, content=conversation(1)).status_code == 200
            smtp_server.handler.wait_for(1)  # rendered by the helper, which now exists
            helpers = multiprocessing.active_children()
            assert helpers
            for process in helpers:
                process.kill()
                process.join()
        relay = runtime(client)
        watched = WatchedRenderer(settings.render, from_address=settings.smtp.from_address)
        relay.snapshot = replace(relay.snapshot, renderers={settings.smtp.from_address: watched})

        async def another_task() -> None:
            await asyncio.to_thread(watched.started.wait, BOUND)
            watched.loop_served.set()

        assert client.post(hook, content=conversation(2)).status_code == 200
        client.blocking_portal.call(another_task)
        received = smtp_server.handler.wait_for(2 if helper == "dead" else 1)
    assert watched.on_a_loop == [False]
    assert watched.served_meanwhile == [True]
    text = received[-1].message.get_body(preferencelist=("plain",))
    assert text is not None
    assert "Chat 2 · account 208" in text.get_content()  # the watched renderer's email
