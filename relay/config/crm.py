"""Settings of the CRM and help desk destinations: each account's API URL and credential."""

from __future__ import annotations

import re

from pydantic import Field, SecretStr, field_validator

from relay.config.addresses import Address
from relay.config.section import Section
from relay.model.urls import http_url

# Help desks without a visitor email file the ticket under this requester.
DEFAULT_PLACEHOLDER_EMAIL = "smartsupp-visitor@example.com"
DEFAULT_PLACEHOLDER_NAME = "Smartsupp visitor"


class _Destination(Section):
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
