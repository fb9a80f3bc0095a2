"""Freshdesk API v2: one ticket per conversation, found again by its marker tag; a later
version of the conversation adds a private note to it."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

from relay.config.crm import FreshdeskDestination
from relay.model.content import Content
from relay.model.crm import CrmContent, one_line
from relay.senders.base import SendResult
from relay.senders.crm.base import crm_content
from relay.senders.crm.http import Api

MAX_DESCRIPTION = 60_000
MAX_SUBJECT = 255
PRIORITY = {"low": 1, "medium": 2, "high": 3, "urgent": 4}
STATUS_OPEN = 2
SOURCE_CHAT = 7
PER_PAGE = 100
MAX_PAGES = 10


def error_text(body: Any) -> str:
    """``{"description": "Validation failed", "errors": [{"field", "message", "code"}]}`` or
    ``{"code": "invalid_credentials", "message": "..."}``."""
    parts = [str(body.get("description") or body.get("message") or "")]
    for error in body.get("errors") or ():
        field = f"{error.get('field')}: " if error.get("field") else ""
        parts.append(f"{field}{error.get('message') or error.get('code') or ''}")
    return "; ".join(p for p in parts if p)


def marker_tag(crm: CrmContent) -> str:
    return crm.marker


class FreshdeskSender:
    """One per [destinations.freshdesk.NAME]; the API key is the basic-auth user name."""

    def __init__(self, destination: FreshdeskDestination) -> None:
        self.destination = destination
        self.deadline_seconds: float | None = destination.timeout_seconds * 3
        key = destination.api_key.get_secret_value()
        basic = base64.b64encode(f"{key}:X".encode()).decode()
        self.api = Api(
            "Freshdesk",
            destination.api_url,
            error_text=error_text,
            headers={"Authorization": f"Basic {basic}"},
            timeout=destination.timeout_seconds,
        )

    async def probe(self) -> str:
        """A read-only request: the agent the API key belongs to."""
        async with self.api.client() as client:
            _, me = await self.api.call(client, "GET", "/api/v2/agents/me")
        contact = me.get("contact") or {}
        return f"API key accepted: agent {me.get('id')} {contact.get('email')}"

    async def send(
        self, content: Content, *, delivery_id: int, skip: tuple[str, ...] = ()
    ) -> SendResult:
        crm = crm_content("freshdesk", content)
        body = crm.html(MAX_DESCRIPTION)
        async with self.api.client() as client:
            ticket = await self._existing(client, crm)
            if ticket is None:
                dest = self.destination
                _, created = await self.api.call(
                    client,
                    "POST",
                    "/api/v2/tickets",
                    json={
                        "email": crm.email or dest.placeholder_email,
                        "name": one_line(crm.name or dest.placeholder_name, 255),
                        "subject": one_line(crm.title, MAX_SUBJECT),
                        "description": body,
                        "status": STATUS_OPEN,
                        "priority": PRIORITY[crm.priority],
                        "source": SOURCE_CHAT,
                        "tags": [*crm.tags, marker_tag(crm)],
                    },
                )
                return SendResult(external_ref=str(created["id"]))
            ticket_id, texts = ticket
            if not any(f"[{crm.revision_marker}]" in text for text in texts):
                await self.api.call(
                    client,
                    "POST",
                    f"/api/v2/tickets/{ticket_id}/notes",
                    json={"body": body, "private": True},
                )
            return SendResult(external_ref=ticket_id)

    async def _existing(self, client: Any, crm: CrmContent) -> tuple[str, list[str]] | None:
        """The ticket (by stored id, else by its marker tag) and the texts already on it."""
        ticket_id = crm.known_ref
        if ticket_id is None:
            _, found = await self.api.call(
                client,
                "GET",
                "/api/v2/search/tickets",
                params={"query": f"\"tag:'{marker_tag(crm)}'\""},
            )
            hit = next(iter(found.get("results") or ()), None)
            if hit is None:
                return None
            ticket_id = str(hit["id"])
        status, ticket = await self.api.call(
            client,
            "GET",
            f"/api/v2/tickets/{ticket_id}",
            allow=(404,),
        )
        if status == 404 or ticket is None:
            return (
                None
                if crm.known_ref is None
                else await self._existing(client, replace(crm, known_ref=None))
            )
        texts = [str(ticket.get("description") or "")]
        # Every note, page by page (include=conversations would give only the first ten).
        for page in range(1, MAX_PAGES + 1):
            _, notes = await self.api.call(
                client,
                "GET",
                f"/api/v2/tickets/{ticket_id}/conversations",
                params={"page": page, "per_page": PER_PAGE},
            )
            texts += [str(c.get("body") or "") for c in notes or ()]
            if len(notes or ()) < PER_PAGE:
                break
        return ticket_id, texts
