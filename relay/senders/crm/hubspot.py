"""HubSpot CRM v3: upsert the contact by email, then one note with the transcript on it."""

from __future__ import annotations

import time
from typing import Any

from relay.config.crm import HubSpotDestination
from relay.model.content import Content
from relay.model.crm import CrmContent
from relay.senders.base import SendResult
from relay.senders.crm.base import crm_content, no_email_reason
from relay.senders.crm.http import Api

# hs_note_body holds at most 65,536 characters.
MAX_NOTE = 65_536
MAX_PROPERTY = 1_000
NOTE_TO_CONTACT = 202  # HUBSPOT_DEFINED association type: note -> contact


def error_text(body: Any) -> str:
    """``{"status": "error", "message": "...", "category": "...", "correlationId": "..."}``"""
    message = str(body.get("message") or "")
    category = body.get("category")
    return f"{message} ({category})" if category else message


class HubSpotSender:
    """One per [destinations.hubspot.NAME]; the token is a private app's access token."""

    def __init__(self, destination: HubSpotDestination) -> None:
        self.destination = destination
        self.deadline_seconds: float | None = destination.timeout_seconds * 4
        token = destination.token.get_secret_value()
        self.api = Api(
            "HubSpot",
            destination.api_url,
            error_text=error_text,
            headers={"Authorization": f"Bearer {token}"},
            timeout=destination.timeout_seconds,
        )

    async def probe(self) -> str:
        """A read-only request that needs the token and the contacts read scope."""
        async with self.api.client() as client:
            _, found = await self.api.call(
                client, "GET", "/crm/v3/objects/contacts", params={"limit": 1}
            )
        return f"token accepted; contacts readable ({len(found.get('results') or ())} listed)"

    def contact_properties(self, content: CrmContent) -> dict[str, str]:
        props = {"email": content.email or ""}
        if content.name:
            first, _, last = content.name.partition(" ")
            props["firstname"] = first[:MAX_PROPERTY]
            if last:
                props["lastname"] = last[:MAX_PROPERTY]
        if content.phone:
            props["phone"] = content.phone[:MAX_PROPERTY]
        if content.country:
            props["country"] = content.country[:MAX_PROPERTY]
        for variable, prop in self.destination.properties.items():
            value = content.variables.get(variable)
            if value:
                props[prop] = value[:MAX_PROPERTY]
        return props

    async def send(
        self, content: Content, *, delivery_id: int, skip: tuple[str, ...] = ()
    ) -> SendResult:
        crm = crm_content("hubspot", content)
        if crm.email is None:
            return SendResult(skipped=no_email_reason("HubSpot", "contact"))
        body = crm.html(MAX_NOTE)
        async with self.api.client() as client:
            _, upserted = await self.api.call(
                client,
                "POST",
                "/crm/v3/objects/contacts/batch/upsert",
                json={
                    "inputs": [
                        {
                            "idProperty": "email",
                            "id": crm.email,
                            "properties": self.contact_properties(crm),
                        }
                    ]
                },
            )
            contact_id = str(upserted["results"][0]["id"])
            note = await self._existing_note(client, crm)
            if note is None:
                _, created = await self.api.call(
                    client,
                    "POST",
                    "/crm/v3/objects/notes",
                    json={
                        "properties": {
                            "hs_timestamp": str(int(time.time() * 1000)),
                            "hs_note_body": body,
                        },
                        "associations": [
                            {
                                "to": {"id": contact_id},
                                "types": [
                                    {
                                        "associationCategory": "HUBSPOT_DEFINED",
                                        "associationTypeId": NOTE_TO_CONTACT,
                                    }
                                ],
                            }
                        ],
                    },
                )
                return SendResult(external_ref=str(created["id"]))
            note_id, old_body = note
            if crm.revision_marker not in old_body:  # a later version: the note shows it
                await self.api.call(
                    client,
                    "PATCH",
                    f"/crm/v3/objects/notes/{note_id}",
                    json={"properties": {"hs_note_body": body}},
                )
            return SendResult(external_ref=note_id)

    async def _existing_note(self, client: Any, crm: CrmContent) -> tuple[str, str] | None:
        """The note of this conversation: by the stored id, else by its marker."""
        if crm.known_ref is not None:
            status, found = await self.api.call(
                client,
                "GET",
                f"/crm/v3/objects/notes/{crm.known_ref}",
                params={"properties": "hs_note_body"},
                allow=(404,),
            )
            if status != 404 and found is not None:
                return str(found["id"]), str(found["properties"].get("hs_note_body") or "")
        _, found = await self.api.call(
            client,
            "POST",
            "/crm/v3/objects/notes/search",
            json={
                "filterGroups": [
                    {
                        "filters": [
                            {
                                "propertyName": "hs_note_body",
                                "operator": "CONTAINS_TOKEN",
                                "value": crm.marker,
                            }
                        ]
                    }
                ],
                "properties": ["hs_note_body"],
                "limit": 10,
            },
        )
        for result in found.get("results") or ():
            text = str(result.get("properties", {}).get("hs_note_body") or "")
            if f"[{crm.marker}]" in text:
                return str(result["id"]), text
        return None
