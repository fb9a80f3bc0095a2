"""Pipedrive API v1: find or create the person by email, then one lead with the transcript
as its note; a later version of the conversation adds a note to the same lead."""

from __future__ import annotations

from typing import Any

from relay.config.crm import PipedriveDestination
from relay.model.content import Content
from relay.model.crm import MAX_LINE, CrmContent, one_line
from relay.senders.base import SendResult
from relay.senders.crm.base import crm_content, first, no_email_reason
from relay.senders.crm.http import Api

# Note content is HTML; Pipedrive keeps up to 100,000 characters of it.
MAX_NOTE = 100_000


def error_text(body: Any) -> str:
    """``{"success": false, "error": "...", "error_info": "...", "errorCode": 401}``"""
    return str(body.get("error") or body.get("error_info") or "")


class PipedriveSender:
    """One per [destinations.pipedrive.NAME]; the API token goes in ``api_token``."""

    def __init__(self, destination: PipedriveDestination) -> None:
        self.destination = destination
        self.deadline_seconds: float | None = destination.timeout_seconds * 6
        self.api = Api(
            "Pipedrive",
            destination.api_url,
            error_text=error_text,
            params={"api_token": destination.api_token.get_secret_value()},
            timeout=destination.timeout_seconds,
            reset_header="x-ratelimit-reset",
        )

    async def probe(self) -> str:
        """A read-only request: the user the token belongs to."""
        async with self.api.client() as client:
            _, me = await self.api.call(client, "GET", "/v1/users/me")
        user = me.get("data") or {}
        return f"token accepted: user {user.get('id')} {user.get('email')}"

    def lead_title(self, crm: CrmContent) -> str:
        """The title from the template, ending with the marker (found again by it)."""
        tail = f" [{crm.marker}]"
        return one_line(crm.title, MAX_LINE - len(tail)) + tail

    async def send(
        self, content: Content, *, delivery_id: int, skip: tuple[str, ...] = ()
    ) -> SendResult:
        crm = crm_content("pipedrive", content)
        if crm.email is None:
            return SendResult(skipped=no_email_reason("Pipedrive", "person"))
        owner = {"owner_id": self.destination.owner_id} if self.destination.owner_id else {}
        async with self.api.client() as client:
            person_id = await self._person(client, crm, owner)
            lead_id = await self._existing_lead(client, crm, person_id)
            notes: list[Any] = []
            if lead_id is None:
                _, created = await self.api.call(
                    client,
                    "POST",
                    "/v1/leads",
                    json={"title": self.lead_title(crm), "person_id": person_id, **owner},
                )
                lead_id = str(created["data"]["id"])
            else:
                _, found = await self.api.call(
                    client, "GET", "/v1/notes", params={"lead_id": lead_id, "limit": 500}
                )
                notes = list(found.get("data") or ())
            if not any(f"[{crm.revision_marker}]" in str(n.get("content")) for n in notes):
                await self.api.call(
                    client,
                    "POST",
                    "/v1/notes",
                    json={
                        "content": crm.html(MAX_NOTE),
                        "lead_id": lead_id,
                        "person_id": person_id,
                    },
                )
        return SendResult(external_ref=lead_id)

    async def _existing_lead(self, client: Any, crm: CrmContent, person_id: int) -> str | None:
        """The lead of this conversation: by the stored id if it still exists, else the
        person's lead whose title ends with the marker."""
        if crm.known_ref is not None:
            status, _ = await self.api.call(
                client, "GET", f"/v1/leads/{crm.known_ref}", allow=(404,)
            )
            if status != 404:
                return crm.known_ref
        _, leads = await self.api.call(
            client, "GET", "/v1/leads", params={"person_id": person_id, "limit": 500}
        )
        tail = f"[{crm.marker}]"
        for lead in leads.get("data") or ():
            if str(lead.get("title") or "").endswith(tail):
                return str(lead["id"])
        return None

    async def _person(self, client: Any, crm: CrmContent, owner: dict[str, int]) -> int:
        _, found = await self.api.call(
            client,
            "GET",
            "/v1/persons/search",
            params={"term": crm.email or "", "fields": "email", "exact_match": "true"},
        )
        hit = first((found.get("data") or {}).get("items"))
        if hit is not None:
            return int(hit["item"]["id"])
        person: dict[str, Any] = {
            "name": one_line(crm.name or crm.email or "", MAX_LINE),
            "email": [{"value": crm.email, "primary": True, "label": "work"}],
            **owner,
        }
        if crm.phone:
            person["phone"] = [{"value": one_line(crm.phone), "primary": True, "label": "work"}]
        _, created = await self.api.call(client, "POST", "/v1/persons", json=person)
        return int(created["data"]["id"])
