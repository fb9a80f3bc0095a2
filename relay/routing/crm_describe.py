"""How `relay check` and `relay routes test` name a CRM action and where it goes."""

from __future__ import annotations

from urllib.parse import urlsplit

from relay.routing.rules import (
    CrmAction,
    FreshdeskAction,
    HubSpotAction,
    PipedriveAction,
)

SYSTEM_NAMES = {
    "hubspot": "HubSpot",
    "pipedrive": "Pipedrive",
    "freshdesk": "Freshdesk",
    "zendesk": "Zendesk",
}


def host_of(url: str) -> str:
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or '?'}{port}"


def describe(action: CrmAction) -> str:
    """What the action makes of a conversation, and what it does without a visitor email."""
    name = SYSTEM_NAMES[action.type]
    if isinstance(action, HubSpotAction):
        what = "upsert the contact by email and one note with the transcript"
        without = "skipped without a visitor email"
    elif isinstance(action, PipedriveAction):
        what = f"find or create the person by email and one lead ({action.title!r}) with a note"
        without = "skipped without a visitor email"
    else:
        kind = "private note" if isinstance(action, FreshdeskAction) else "private comment"
        what = (
            f"one ticket ({action.subject!r}, priority {action.priority},"
            f" tags {', '.join(action.tags) or 'none'}); a later version adds a {kind}"
        )
        without = "a placeholder requester without a visitor email"
    return f"{name} (destination {action.destination!r}): {what}; {without}"
