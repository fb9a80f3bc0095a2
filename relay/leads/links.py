"""Signed, expiring claim and done links (HMAC-SHA256), and the CSRF token of their pages."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from relay.leads.settings import FollowUpSettings
from relay.ops.secretfile import kept_secret

log = logging.getLogger(__name__)

Action = Literal["claim", "done"]
_LETTER: Final[dict[Action, str]] = {"claim": "c", "done": "d"}
_ACTION: Final[dict[str, Action]] = {"c": "claim", "d": "done"}
_TOKEN = re.compile(r"^([cd])(\d{1,18})-(\d{1,12})-([A-Za-z0-9_-]{43})$")
KEY_FILE = "link_key"
MIN_KEY = 32  # characters of a generated link key: it has 43


@dataclass(frozen=True)
class LinkOk:
    action: Action
    lead_id: int
    expires: int


@dataclass(frozen=True)
class LinkBad:
    reason: Literal["invalid", "expired"]


def _mac(key: bytes, message: str) -> str:
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign(key: bytes, action: Action, lead_id: int, expires: int) -> str:
    letter = _LETTER[action]
    return f"{letter}{lead_id}-{expires}-{_mac(key, f'lead-link:{letter}:{lead_id}:{expires}')}"


def verify(key: bytes, token: str, now: float) -> LinkOk | LinkBad:
    """The link's action and lead if ``token`` was signed with ``key`` and has not expired;
    the signature is compared in constant time and checked before the expiry."""
    found = _TOKEN.match(token)
    if found is None:
        return LinkBad("invalid")
    letter, lead_id, expires, mac = found.groups()
    wanted = _mac(key, f"lead-link:{letter}:{lead_id}:{expires}")
    if not hmac.compare_digest(wanted.encode(), mac.encode()):
        return LinkBad("invalid")
    if int(expires) <= now:
        return LinkBad("expired")
    return LinkOk(_ACTION[letter], int(lead_id), int(expires))


def url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/leads/{token}"


@dataclass(frozen=True)
class LeadLinks:
    """The links one message about a lead carries (picklable, for the render helpers)."""

    lead_id: int
    claim_url: str
    done_url: str


def links_for(
    settings: FollowUpSettings, key: bytes, lead_id: int, since: float
) -> LeadLinks | None:
    """Claim and done links valid ``link_lifetime_days`` from ``since`` (the delivery's
    planning time, so a re-rendered message carries the same links)."""
    if not settings.enabled or settings.public_url is None or not key:
        return None
    expires = int(since + settings.lifetime_seconds)
    base = settings.public_url
    return LeadLinks(
        lead_id,
        url(base, sign(key, "claim", lead_id, expires)),
        url(base, sign(key, "done", lead_id, expires)),
    )


def csrf(key: bytes, token: str, nonce: str) -> str:
    """The form token of the page for link ``token``: valid only with that page's nonce."""
    return _mac(key, f"lead-form:{token}:{nonce}")


def csrf_ok(key: bytes, token: str, nonce: str, given: str) -> bool:
    if not nonce or not given:
        return False
    return hmac.compare_digest(csrf(key, token, nonce).encode(), given.encode())


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


def link_key(settings: FollowUpSettings, state_dir: Path) -> bytes:
    """The configured key (``follow_up__link_key`` in the credentials directory), or one
    generated once into ``<state_dir>/link_key`` with mode 0600 (ConfigError if that file
    holds too short a key to sign links with)."""
    if settings.link_key is not None:
        return settings.link_key.get_secret_value().encode()
    path = state_dir / KEY_FILE
    key, made = kept_secret(
        path,
        lambda: secrets.token_urlsafe(32),
        min_length=MIN_KEY,
        what="a key to sign follow-up links with (links already sent stop working)",
    )
    if made:
        log.warning("no follow_up.link_key configured; generated one in %s", path)
    return key.encode()
