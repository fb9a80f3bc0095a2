"""Settings of the CRM and help desk destinations and the routing actions that use them."""

from __future__ import annotations

import re
from typing import Literal

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from relay.addresses import Address
from relay.urls import http_url

CRM_TYPES = ("hubspot", "pipedrive", "freshdesk", "zendesk")
# Help desks without a visitor email file the ticket under this requester.
DEFAULT_PLACEHOLDER_EMAIL = "smartsupp-visitor@example.com"
DEFAULT_PLACEHOLDER_NAME = "Smartsupp visitor"
DEFAULT_SUBJECT = "Smartsupp {{ category }} chat from {{ name or email or 'a visitor' }}"


def check_template(value: str) -> str:
    """A subject or title template must compile (sandboxed Jinja, values never re-parsed)."""
    try:
        ImmutableSandboxedEnvironment().parse(value)
    except TemplateSyntaxError as exc:
        raise ValueError(f"template error: {exc.message} in {value!r}") from None
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Destination(_Section):
    timeout_seconds: float = Field(default=20.0, gt=0)

    @field_validator("api_url", check_fields=False)
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value).rstrip("/")


class HubSpotDestination(_Destination):
    """A HubSpot account: a private app's access token (Bearer)."""

    token: SecretStr
    api_url: str = "https://api.hubapi.com"
    # Smartsupp visitor variable name -> HubSpot contact property it fills.
    properties: dict[str, str] = {}

    @field_validator("properties")
    @classmethod
    def _property_names(cls, value: dict[str, str]) -> dict[str, str]:
        for variable, name in value.items():
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,99}", name):
                raise ValueError(f"{variable}: {name!r} is no HubSpot property name (a-z0-9_)")
            if name == "email":
                raise ValueError(
                    f"{variable}: the contact's email is the visitor's, not a variable"
                )
        return value


class PipedriveDestination(_Destination):
    """A Pipedrive company: a user's API token (``api_token`` query parameter)."""

    api_token: SecretStr
    api_url: str = "https://api.pipedrive.com"
    # The user who owns created persons and leads; None: the token's user.
    owner_id: int | None = Field(default=None, ge=1)


class FreshdeskDestination(_Destination):
    """A Freshdesk helpdesk (``https://DOMAIN.freshdesk.com``): an agent's API key (basic auth)."""

    api_url: str
    api_key: SecretStr
    placeholder_email: Address = DEFAULT_PLACEHOLDER_EMAIL
    placeholder_name: str = DEFAULT_PLACEHOLDER_NAME


class ZendeskDestination(_Destination):
    """A Zendesk account (``https://SUBDOMAIN.zendesk.com``): an agent's email and API token."""

    api_url: str
    email: Address
    api_token: SecretStr
    placeholder_email: Address = DEFAULT_PLACEHOLDER_EMAIL
    placeholder_name: str = DEFAULT_PLACEHOLDER_NAME


class _CrmAction(_Section):
    # A [destinations.<type>.NAME] table: the account and its credential.
    destination: str = Field(min_length=1)
    # A link back to the conversation, shown in the note or ticket: a template over
    # account_id, chat_id and key, e.g. "https://support.example.com/chats/{{ chat_id }}".
    link: str | None = None

    @field_validator("link")
    @classmethod
    def _link_template(cls, value: str | None) -> str | None:
        if value is not None:
            check_template(value)
            if not value.startswith(("https://", "http://")):
                raise ValueError(f"{value!r}: a link must start with https:// or http://")
        return value


class HubSpotAction(_CrmAction):
    """Upsert the contact by email, then one note with the transcript on it."""

    type: Literal["hubspot"]


class PipedriveAction(_CrmAction):
    """Find or create the person by email, then one lead with the transcript as its note."""

    type: Literal["pipedrive"]
    title: str = DEFAULT_SUBJECT

    _template = field_validator("title")(check_template)


Priority = Literal["low", "medium", "high", "urgent"]


class _TicketAction(_CrmAction):
    subject: str = DEFAULT_SUBJECT
    tags: list[str] = ["smartsupp"]
    priority: Priority = "medium"

    _template = field_validator("subject")(check_template)

    @field_validator("tags")
    @classmethod
    def _plain_tags(cls, value: list[str]) -> list[str]:
        for tag in value:
            if not tag or len(tag) > 32 or any(c in tag for c in " ,\r\n\t\0"):
                raise ValueError(f"tag {tag!r}: 1-32 characters, no spaces or commas")
        return value


class FreshdeskAction(_TicketAction):
    """One ticket per conversation; a later version of it adds a private note."""

    type: Literal["freshdesk"]


class ZendeskAction(_TicketAction):
    """One ticket per conversation (``external_id``); a later version adds a private comment."""

    type: Literal["zendesk"]


CrmAction = HubSpotAction | PipedriveAction | FreshdeskAction | ZendeskAction
