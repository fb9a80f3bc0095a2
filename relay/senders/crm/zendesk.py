"""Zendesk Support API v2: one ticket per conversation (its ``external_id``); a later version
of the conversation adds a private comment to it."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

from relay.config.crm import ZendeskDestination
from relay.model.content import Content
from relay.model.crm import CrmContent, one_line
from relay.senders.base import SendResult
from relay.senders.crm.base import crm_content
from relay.senders.crm.http import Api

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
        comment = {"html_body": crm.html(MAX_COMMENT), "public": False}
        async with self.api.client() as client:
            found = await self._existing(client, crm)
            if found is not None:
                ticket_id, status = found
                _, comments = await self.api.call(
                    client, "GET", f"/api/v2/tickets/{ticket_id}/comments.json"
                )
                texts = [
                    str(c.get("html_body") or c.get("body") or "")
                    for c in comments.get("comments") or ()
                ]
                if any(crm.revision_marker in text for text in texts):
                    return SendResult(external_ref=ticket_id)  # this version is there
                if status != "closed":
                    await self.api.call(
                        client,
                        "PUT",
                        f"/api/v2/tickets/{ticket_id}.json",
                        json={"ticket": {"comment": comment}},
                    )
                    return SendResult(external_ref=ticket_id)
            # New, or the ticket was closed (closed tickets take no updates): a follow-up.
            ticket = self._new_ticket(crm, comment)
            if found is not None:
                ticket["via_followup_source_id"] = int(found[0])
            _, created = await self.api.call(
                client, "POST", "/api/v2/tickets.json", json={"ticket": ticket}
            )
            return SendResult(external_ref=str(created["ticket"]["id"]))

    def _new_ticket(self, crm: CrmContent, comment: dict[str, Any]) -> dict[str, Any]:
        dest = self.destination
        return {
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

    async def _existing(self, client: Any, crm: CrmContent) -> tuple[str, str] | None:
        """(id, status) of the conversation's ticket: the stored one if it exists and is not
        closed, else the newest open one with the ``external_id``, else the newest closed."""
        if crm.known_ref is not None:
            status, found = await self.api.call(
                client, "GET", f"/api/v2/tickets/{crm.known_ref}.json", allow=(404,)
            )
            ticket = (found or {}).get("ticket") or {}
            if status != 404 and ticket.get("status") != "closed":
                return crm.known_ref, str(ticket.get("status"))
            crm = replace(crm, known_ref=None)
        _, listed = await self.api.call(
            client, "GET", "/api/v2/tickets.json", params={"external_id": crm.marker}
        )
        tickets = sorted(listed.get("tickets") or (), key=lambda t: int(t["id"]))
        if not tickets:
            return None
        open_ = [t for t in tickets if t.get("status") != "closed"]
        best = (open_ or tickets)[-1]
        return str(best["id"]), str(best.get("status"))
