"""One description per CRM fake: how to start it, the destination settings that reach it, and
what it holds (objects by kind, the transcript texts), so tests run over all four alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.support.crm_apis import FreshdeskApi, HubSpotApi, PipedriveApi, ZendeskApi
from tests.support.crm_fake import FakeApi

HUBSPOT_TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
PIPEDRIVE_TOKEN = "0123456789abcdef0123456789abcdef01234567"
FRESHDESK_KEY = "fd-key-abcdefghij123"
ZENDESK_TOKEN = "zd-token-abcdef123456"
ZENDESK_AGENT = "agent@shop.test"


@dataclass(frozen=True)
class System:
    name: str
    make: Callable[[], FakeApi]
    destination: Callable[[FakeApi], dict[str, Any]]
    counts: Callable[[Any], dict[str, int]]
    texts: Callable[[Any], list[str]]  # every transcript body the fake holds
    titles: Callable[[Any], list[str]]  # subjects / lead titles ([] where there are none)
    final: str  # the kind of object created last for a new conversation
    unauthorized_text: str
    needs_email: bool


def _hubspot_texts(api: HubSpotApi) -> list[str]:
    return [n["properties"]["hs_note_body"] for n in api.notes.values()]


def _freshdesk_texts(api: FreshdeskApi) -> list[str]:
    return [
        text
        for t in api.tickets.values()
        for text in [t["description"], *(c["body"] for c in t["conversations"])]
    ]


SYSTEMS = {
    "hubspot": System(
        "hubspot",
        lambda: HubSpotApi(HUBSPOT_TOKEN),
        lambda api: {
            "token": HUBSPOT_TOKEN,
            "api_url": api.url,
            "properties": {"chatPackage": "smartsupp_package"},
        },
        lambda api: {"contacts": len(api.contacts), "notes": len(api.notes)},
        _hubspot_texts,
        lambda api: [],
        "note",
        "Authentication credentials not found",
        True,
    ),
    "pipedrive": System(
        "pipedrive",
        lambda: PipedriveApi(PIPEDRIVE_TOKEN),
        lambda api: {"api_token": PIPEDRIVE_TOKEN, "api_url": api.url, "owner_id": 7},
        lambda api: {"persons": len(api.persons), "leads": len(api.leads)},
        lambda api: [n["content"] for n in api.notes.values()],
        lambda api: [lead["title"] for lead in api.leads.values()],
        "note",
        "unauthorized access",
        True,
    ),
    "freshdesk": System(
        "freshdesk",
        lambda: FreshdeskApi(FRESHDESK_KEY),
        lambda api: {"api_key": FRESHDESK_KEY, "api_url": api.url},
        lambda api: {"tickets": len(api.tickets)},
        _freshdesk_texts,
        lambda api: [t["subject"] for t in api.tickets.values()],
        "ticket",
        "You have to be logged in to perform this action.",
        False,
    ),
    "zendesk": System(
        "zendesk",
        lambda: ZendeskApi(ZENDESK_AGENT, ZENDESK_TOKEN),
        lambda api: {"api_token": ZENDESK_TOKEN, "email": ZENDESK_AGENT, "api_url": api.url},
        lambda api: {"tickets": len(api.tickets)},
        lambda api: [c["html_body"] for t in api.tickets.values() for c in t["comments"]],
        lambda api: [t["subject"] for t in api.tickets.values()],
        "ticket",
        "Couldn't authenticate you",
        False,
    ),
}
