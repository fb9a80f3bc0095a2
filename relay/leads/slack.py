"""Slack for leads: Claim and Done buttons on lead posts, Slack's request signatures, and the
blocks that replace the buttons once someone took the lead. Pure apart from ``update``."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qs

from relay.leads.model import Lead, LeadState, Refused
from relay.leads.texts import text
from relay.model.content import SlackContent
from relay.render.i18n import Translator
from relay.render.slack_text import slack_escape

BLOCK_ID = "relay_lead"
CLAIM = "relay_lead_claim"
DONE = "relay_lead_done"
MAX_AGE_SECONDS = 300  # Slack's advice: refuse requests whose timestamp is older


def with_buttons(content: SlackContent, lead_id: int, locale: str) -> SlackContent:
    """``content`` with an actions block: Claim and Done for lead ``lead_id``."""
    block = {
        "type": "actions",
        "block_id": BLOCK_ID,
        "elements": [
            _button(CLAIM, text(locale, "claim_button"), lead_id, primary=True),
            _button(DONE, text(locale, "done_button"), lead_id),
        ],
    }
    return SlackContent(content.channel, content.text, (*content.blocks, block))


def _button(action_id: str, label: str, lead_id: int, *, primary: bool = False) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label},
        "value": str(lead_id),
    }
    if primary:
        button["style"] = "primary"
    return button


def signature_problem(
    secret: bytes, timestamp: str, body: bytes, signature: str, now: float
) -> str | None:
    """Why a request is not Slack's (None if it is): v0 HMAC-SHA256 of ``v0:timestamp:body``
    with the signing secret, compared in constant time, timestamp within five minutes."""
    if not secret:
        return "no slack.signing_secret is configured"
    try:
        sent = float(timestamp)
    except ValueError:
        return "no usable X-Slack-Request-Timestamp"
    if not math.isfinite(sent) or abs(now - sent) > MAX_AGE_SECONDS:
        return "the request timestamp is more than five minutes off"
    base = b"v0:" + timestamp.encode() + b":" + body
    wanted = "v0=" + hmac.new(secret, base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(wanted.encode(), signature.encode()):
        return "the signature does not match"
    return None


@dataclass(frozen=True)
class ButtonPress:
    action: Literal["claim", "done"]
    lead_id: int
    user: str
    channel: str | None
    ts: str | None
    blocks: tuple[dict[str, Any], ...]


def button_press(body: bytes) -> ButtonPress | None:
    """The lead button a block_actions payload reports, or None for anything else."""
    try:
        form = parse_qs(body.decode(), max_num_fields=4)
        payload = json.loads(form["payload"][0])
    except (UnicodeDecodeError, ValueError, KeyError, IndexError):
        return None
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        return None
    actions = payload.get("actions")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
        return None
    pressed = actions[0]
    kind = {CLAIM: "claim", DONE: "done"}.get(str(pressed.get("action_id")))
    value = str(pressed.get("value") or "")
    if kind is None or not value.isdigit() or len(value) > 18:
        return None
    user = payload.get("user") if isinstance(payload.get("user"), dict) else {}
    assert isinstance(user, dict)
    name = str(user.get("name") or user.get("username") or user.get("id") or "Slack")
    container = payload.get("container") if isinstance(payload.get("container"), dict) else {}
    message = payload.get("message") if isinstance(payload.get("message"), dict) else {}
    assert isinstance(container, dict) and isinstance(message, dict)
    blocks = message.get("blocks") if isinstance(message.get("blocks"), list) else []
    assert isinstance(blocks, list)
    return ButtonPress(
        action="claim" if kind == "claim" else "done",
        lead_id=int(value),
        user=name,
        channel=_text(container.get("channel_id")),
        ts=_text(container.get("message_ts")),
        blocks=tuple(b for b in blocks if isinstance(b, dict)),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def status_line(lead: Lead | Refused, translator: Translator) -> str:
    """ "Already taken by X at 10:42" and its kin, for the updated message."""
    found = lead.lead if isinstance(lead, Refused) else lead
    locale = translator.locale

    def at(ts: float | None) -> str:
        return translator.time_text(datetime.fromtimestamp(ts or 0, UTC))

    if found.state is LeadState.DONE:
        return text(locale, "done_already", name=found.done_by, time=at(found.done_at))
    if found.state is LeadState.CLAIMED:
        return text(locale, "taken", name=found.claimed_by, time=at(found.claimed_at))
    return text(locale, "answered")


def updated_blocks(
    blocks: tuple[dict[str, Any], ...], lead: Lead, line: str, locale: str
) -> list[dict[str, Any]]:
    """The posted blocks with the buttons replaced by who took the lead (and Done while it
    is only claimed)."""
    kept = [b for b in blocks if b.get("block_id") != BLOCK_ID]
    kept.append({"type": "context", "elements": [{"type": "mrkdwn", "text": slack_escape(line)}]})
    if lead.state is LeadState.CLAIMED:
        kept.append(
            {
                "type": "actions",
                "block_id": BLOCK_ID,
                "elements": [_button(DONE, text(locale, "done_button"), lead.id)],
            }
        )
    return kept
