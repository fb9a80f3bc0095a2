"""``POST /slack/interactivity``: Slack's Claim and Done buttons, verified, then the posted
message is updated in place (chat.update) to say who took the lead."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from litestar import Request, Response, post
from litestar.handlers import HTTPRouteHandler

from relay.leads.model import Lead, Refused, claim, clean_name, finish
from relay.leads.slack import (
    MAX_AGE_SECONDS,
    ButtonPress,
    button_press,
    signature_problem,
    status_line,
    updated_blocks,
)
from relay.render.i18n import Translator
from relay.render.slack_text import slack_escape

if TYPE_CHECKING:
    from relay.config.settings import Settings
    from relay.runtime import Runtime
    from relay.store import StoreProtocol

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64_000
REPLAY = "replay"


def _apply(
    store: StoreProtocol, press: ButtonPress, signature: str, now: float
) -> Lead | Refused | str | None:
    """In one transaction: refuse a replay, else apply the button to the lead."""
    if store.slack_request_seen(signature, now, 2 * MAX_AGE_SECONDS):
        return REPLAY
    name = clean_name(press.user) or "Slack"
    if press.action == "claim":
        return store.change_lead(press.lead_id, lambda lead: claim(lead, name, now))
    return store.change_lead(press.lead_id, lambda lead: finish(lead, name, now))


class SlackInteractivity:
    def __init__(self, runtime: Runtime, clock: Callable[[], float] = time.time) -> None:
        self._runtime = runtime
        self._clock = clock

    async def handle(self, request: Request[Any, Any, Any]) -> Response[Any]:
        settings = self._runtime.settings
        body = await request.body()
        secret = settings.slack.signing_secret
        problem = signature_problem(
            secret.get_secret_value().encode() if secret is not None else b"",
            request.headers.get("x-slack-request-timestamp", ""),
            body,
            request.headers.get("x-slack-signature", ""),
            self._clock(),
        )
        if problem is not None:
            log.warning("Slack interactivity request refused: %s", problem)
            return Response({"error": "unauthorized"}, status_code=401)
        press = button_press(body)
        if press is None:
            return Response(b"", status_code=200)  # not a lead button: nothing to do
        signature = request.headers.get("x-slack-signature", "")
        now = self._clock()
        result = await self._runtime.store.call(lambda s: _apply(s, press, signature, now))
        if result == REPLAY:
            log.warning("Slack interactivity request refused: a replay")
            return Response({"error": "unauthorized"}, status_code=401)
        if result is None or isinstance(result, str):
            return Response({"text": "no such lead"}, status_code=200)
        lead = result.lead if isinstance(result, Refused) else result
        log.info("lead %d %s by %r from Slack", lead.id, press.action, press.user)
        if isinstance(result, Lead):
            await update_message(settings, press, lead)
        return Response(b"", status_code=200)


async def update_message(settings: Settings, press: ButtonPress, lead: Lead) -> None:
    """chat.update the posted message: who claimed (or finished) the lead, and when. A failure
    is logged; the lead is claimed either way."""
    slack = settings.slack
    if slack.token is None or press.channel is None or press.ts is None:
        return
    translator = Translator(settings.render.locale, ZoneInfo(settings.render.timezone))
    line = status_line(lead, translator)
    # slack_sdk's async client and aiohttp (~9 MB resident) only once a button is pressed.
    from slack_sdk.errors import SlackApiError  # noqa: PLC0415
    from slack_sdk.web.async_client import AsyncWebClient  # noqa: PLC0415

    kwargs: dict[str, Any] = {"base_url": slack.api_url} if slack.api_url else {}
    client = AsyncWebClient(
        token=slack.token.get_secret_value(),
        timeout=max(math.ceil(slack.timeout_seconds), 1),
        retry_handlers=[],
        **kwargs,
    )
    try:
        await client.chat_update(
            channel=press.channel,
            ts=press.ts,
            text=slack_escape(line),
            blocks=updated_blocks(press.blocks, lead, line, translator.locale),
        )
    except (SlackApiError, OSError, TimeoutError) as exc:
        log.warning("lead %d: chat.update failed: %s", lead.id, exc)


def build_slack_handlers(runtime: Runtime) -> list[HTTPRouteHandler]:
    endpoint = SlackInteractivity(runtime)

    @post(
        "/slack/interactivity",
        include_in_schema=False,
        status_code=200,
        request_max_body_size=MAX_BODY_BYTES,
    )
    async def slack_interactivity(request: Request[Any, Any, Any]) -> Response[Any]:
        return await endpoint.handle(request)

    return [slack_interactivity]
