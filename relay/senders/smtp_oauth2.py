"""SMTP AUTH XOAUTH2: the SASL string with a bearer token, refreshed once when refused."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from email.utils import parseaddr

import aiosmtplib

from relay.config.settings import SmtpSettings
from relay.senders.oauth2 import ClientCredentials, TokenCache

AUTH_CONTINUE = 334
AUTH_SUCCESSFUL = 235
AUTH_REFUSED = 535


def envelope_address(from_address: str) -> str:
    return parseaddr(from_address)[1] or from_address


def xoauth2_string(user: str, token: str) -> bytes:
    """The base64 SASL XOAUTH2 initial response: ``user={user}^Aauth=Bearer {token}^A^A``."""
    raw = f"user={user}\x01auth=Bearer {token}\x01\x01".encode()
    return base64.b64encode(raw)


def token_cache(
    settings: SmtpSettings, *, clock: Callable[[], float] = time.monotonic
) -> TokenCache | None:
    """The client-credentials token cache ``settings`` ask for; None for password logins."""
    s = settings
    if s.auth != "oauth2":
        return None
    if s.oauth2_service_account_key is not None and s.oauth2_token_url:
        # cryptography (~7 MB resident) only for the relays that sign with a service account.
        from relay.senders.google_jwt import (  # noqa: PLC0415
            ServiceAccountGrant,
            ServiceAccountKey,
        )

        key = ServiceAccountKey.from_json(s.oauth2_service_account_key.get_secret_value())
        grant = ServiceAccountGrant(
            token_url=s.oauth2_token_url,
            key=key,
            scope=s.oauth2_scope or "",
            subject=s.username or envelope_address(s.from_address),
        )
        return TokenCache(grant, timeout_seconds=s.timeout_seconds, clock=clock)
    # The settings' own validation guarantees these once auth = "oauth2".
    if not (s.oauth2_token_url and s.oauth2_client_id and s.oauth2_client_secret):
        raise ValueError("auth = oauth2 needs oauth2_token_url, client id and secret")
    credentials = ClientCredentials(
        token_url=s.oauth2_token_url,
        client_id=s.oauth2_client_id,
        client_secret=s.oauth2_client_secret.get_secret_value(),
        scope=s.oauth2_scope or "",
    )
    return TokenCache(credentials, timeout_seconds=s.timeout_seconds, clock=clock)


async def xoauth2_login(
    client: aiosmtplib.SMTP, user: str, tokens: TokenCache
) -> aiosmtplib.SMTPResponse:
    """AUTH XOAUTH2 on a connected client. A 535 (the token expired or was revoked early)
    drops the cached token and tries once more with a fresh one; a second refusal raises
    SMTPAuthenticationError. Token endpoint failures raise DeliveryError subclasses."""
    if client.is_ehlo_or_helo_needed:
        await client.ehlo()
    if "xoauth2" not in client.server_auth_methods:
        raise aiosmtplib.SMTPException("auth = oauth2 but the server does not offer AUTH XOAUTH2")
    token = await tokens.token()
    reply = await _authenticate(client, user, token)
    if reply.code == AUTH_REFUSED:
        tokens.invalidate(token)
        reply = await _authenticate(client, user, await tokens.token())
    if reply.code != AUTH_SUCCESSFUL:
        raise aiosmtplib.SMTPAuthenticationError(reply.code, reply.message)
    return reply


async def _authenticate(client: aiosmtplib.SMTP, user: str, token: str) -> aiosmtplib.SMTPResponse:
    reply = await client.execute_command(b"AUTH", b"XOAUTH2", xoauth2_string(user, token))
    if reply.code == AUTH_CONTINUE:
        # The server's error challenge (base64 JSON); an empty line asks for the final reply.
        reply = await client.execute_command(b"")
    return reply
