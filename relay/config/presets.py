"""Mail provider presets: the server and OAuth2 endpoint settings ``provider`` stands for."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

M365_TOKEN_URL: Final = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"  # noqa: S105
M365_SMTP_SCOPE: Final = "https://outlook.office365.com/.default"
GRAPH_SCOPE: Final = "https://graph.microsoft.com/.default"
GOOGLE_TOKEN_URL: Final = "https://oauth2.googleapis.com/token"  # noqa: S105
GOOGLE_SCOPE: Final = "https://mail.google.com/"

# Microsoft 365: SMTP AUTH submission (smtp.office365.com:587, STARTTLS), tokens from the
# tenant's v2.0 endpoint. Google Workspace: smtp.gmail.com:587, STARTTLS.
_SERVERS: Final[Mapping[str, Mapping[str, Any]]] = {
    "m365": {"host": "smtp.office365.com", "port": 587, "security": "starttls"},
    "google": {"host": "smtp.gmail.com", "port": 587, "security": "starttls"},
}


# A GUID or a verified domain name: it becomes a path segment of the token URL.
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}")


class PresetError(ValueError):
    pass


def preset_values(provider: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """What ``provider`` stands for, given the other settings of the section (the transport
    decides the scope; an M365 token URL needs the ``tenant``)."""
    if provider == "generic":
        return {}
    values: dict[str, Any] = {**_SERVERS[provider], "auth": "oauth2"}
    if provider == "m365":
        graph = given.get("transport") == "graph"
        values["oauth2_scope"] = GRAPH_SCOPE if graph else M365_SMTP_SCOPE
        tenant = given.get("tenant")
        if tenant and not (isinstance(tenant, str) and _TENANT.fullmatch(tenant)):
            raise PresetError(
                "tenant must be a directory (tenant) ID or a domain such as contoso.com"
            )
        if tenant:
            values["oauth2_token_url"] = M365_TOKEN_URL.format(tenant=tenant)
        elif not given.get("oauth2_token_url"):
            raise PresetError(
                'provider = "m365" needs tenant (the Directory (tenant) ID of the app '
                "registration) or oauth2_token_url"
            )
    else:
        values["oauth2_token_url"] = GOOGLE_TOKEN_URL
        values["oauth2_scope"] = GOOGLE_SCOPE
    return values


def apply_preset(data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``data`` with the preset's values for every key it does not set, and those values
    (what was filled in). Keys the section sets itself always win."""
    provider = data.get("provider", "generic")
    if not isinstance(provider, str) or provider not in ("generic", *_SERVERS):
        return dict(data), {}  # the field's own validation names the allowed values
    filled = {k: v for k, v in preset_values(provider, data).items() if data.get(k) is None}
    return {**data, **filled}, filled
