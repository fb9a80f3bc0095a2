"""What the four CRM senders have in common: the content check and the no-email skip."""

from __future__ import annotations

from typing import Any

from relay.model.content import Content
from relay.model.crm import CrmContent
from relay.model.errors import PermanentDeliveryError


def crm_content(system: str, content: Content) -> CrmContent:
    if not isinstance(content, CrmContent) or content.system != system:
        raise PermanentDeliveryError(f"{system} sender cannot send {type(content).__name__}")
    return content


def no_email_reason(system: str, what: str) -> str:
    return f"skipped: the visitor left no email address, and {system} needs one to find the {what}"


def first(items: Any) -> Any:
    """The first element of a JSON list, or None (for lists that may be missing or null)."""
    return items[0] if isinstance(items, list) and items else None
