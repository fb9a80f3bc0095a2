"""Zendesk Support API v2: one ticket per conversation (its ``external_id``); a later version
of the conversation adds a private comment to it."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

from relay.senders.base import Content
from relay.senders.crm.base import crm_content
from relay.senders.crm.config import ZendeskDestination
from relay.senders.crm.content import CrmContent, one_line
from relay.senders.crm.http import Api, SendResult

# A comment body is limited to 65,535 characters (64 KB).
MAX_COMMENT = 60_000
MAX_SUBJECT = 255
PRIORITY = {"low": "low", "medium": "normal", "high": "high", "urgent": "urgent"}


def error_text(body: Any) -> str:
    """``{"error": "Couldn't authenticate you"}`` or ``{"error": "RecordInvalid",
    "description": "...", "details": {"field": [{"description": "..."}]}}``; ``error`` may
    also be an object ``{"title", "message"}``."""
    error = body.get("error")
    if isinstance(error, dict):
        error = error.get("message") or error.get("title")
    parts = [str(error or ""), str(body.get("description") or "")]
    for field, problems in (body.get("details") or {}).items():
        for problem in problems if isinstance(problems, list) else [problems]:
            text = problem.get("description") if isinstance(problem, dict) else problem
            parts.append(f"{field}: {text}")
    return "; ".join(p for p in parts if p)


class ZendeskSender:
    """One per [destinations.zendesk.NAME]: basic auth ``{email}/token:{api_token}``."""

    def __init__(self, destination: ZendeskDestination) -> None:
        self.destination = destination
        self.deadline_seconds: float | None = destination.timeout_seconds * 3
        user = f"{destination.email}/token:{destination.api_token.get_secret_value()}"
        basic = base64.b64encode(user.encode()).decode()
        self.api = Api(
            "Zendesk",
            destination.api_url,
            error_text=error_text,
            headers={"Authorization": f"Basic {basic}"},
            timeout=destination.timeout_seconds,
        )

    async def probe(self) -> str:
        """A read-only request: the user the token authenticates as (anonymous = refused)."""
        async with self.api.client() as client:
            _, me = await self.api.call(client, "GET", "/api/v2/users/me.json")
        user = me.get("user") or {}
        if not user.get("id"):
            return "token NOT accepted: Zendesk answered as an anonymous user"
        return f"token accepted: {user.get('role')} {user.get('id')} {user.get('email')}"

    async def send(
        self, content: Content, *, delivery_id: int, skip: tuple[str, ...] = ()
    ) -> SendResult:
        crm = crm_content("zendesk", content)
        body = crm.html(MAX_COMMENT)
        comment = {"html_body": body, "public": False}
        async with self.api.client() as client:
            ticket_id = await self._existing(client, crm)
            if ticket_id is None:
                dest = self.destination
                _, created = await self.api.call(
                    client,
                    "POST",
                    "/api/v2/tickets.json",
                    json={
                        "ticket": {
                            "subject": one_line(crm.title, MAX_SUBJECT),
                            "comment": comment,
                            "requester": {
                                "name": one_line(crm.name or dest.placeholder_name, 255),
                                "email": crm.email or dest.placeholder_email,
                            },
                            "tags": list(crm.tags),
                            "priority": PRIORITY[crm.priority],
                            "external_id": crm.marker,
                        }
                    },
                )
                return SendResult(external_ref=str(created["ticket"]["id"]))
            _, comments = await self.api.call(
                client, "GET", f"/api/v2/tickets/{ticket_id}/comments.json"
            )
            texts = [
                str(c.get("html_body") or c.get("body") or "")
                for c in comments.get("comments") or ()
            ]
            if not any(crm.revision_marker in text for text in texts):
                await self.api.call(
                    client,
                    "PUT",
                    f"/api/v2/tickets/{ticket_id}.json",
                    json={"ticket": {"comment": comment}},
                )
            return SendResult(external_ref=ticket_id)

    async def _existing(self, client: Any, crm: CrmContent) -> str | None:
        """The ticket's id: the stored one if it still exists, else by ``external_id``."""
        if crm.known_ref is not None:
            status, _ = await self.api.call(
                client, "GET", f"/api/v2/tickets/{crm.known_ref}.json", allow=(404,)
            )
            if status != 404:
                return crm.known_ref
            crm = replace(crm, known_ref=None)
        _, found = await self.api.call(
            client, "GET", "/api/v2/tickets.json", params={"external_id": crm.marker}
        )
        hit = next(iter(found.get("tickets") or ()), None)
        return None if hit is None else str(hit["id"])
