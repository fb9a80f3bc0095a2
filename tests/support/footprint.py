"""Modules a relay on its built-in defaults has no use for in its own process."""

from __future__ import annotations

# Libraries only a configured destination needs (SMTP, Graph, Slack, Teams, webhooks, CRMs).
SENDER_LIBRARIES = ("httpx", "aiosmtplib", "aiohttp", "cryptography")

# The relay's own process renders nothing on these settings: the templates are checked in the
# render helper (which then renders the emails), so neither the renderer nor css-inline nor
# slack_sdk's block models are imported.
RENDER_LIBRARIES = ("relay.render.renderer", "css_inline", "slack_sdk")
