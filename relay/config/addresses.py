"""Email address settings: one address or a list, each checked by email-validator."""

from __future__ import annotations

from email.utils import getaddresses
from typing import Annotated, Any

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from pydantic import AfterValidator, BeforeValidator


def _special_use(domain: str) -> bool:
    domain = domain.lower().rstrip(".")
    return any(domain == name or domain.endswith("." + name) for name in SPECIAL_USE_DOMAIN_NAMES)


def check_address(text: str) -> str:
    """``text`` if it is one mailbox (``a@example.com`` or ``Name <a@example.com>``), else
    ValueError saying why. Reserved names (``localhost``, ``.local``, ``.test``) are accepted
    with ordinary syntax rules: a relay on an internal network may well mail them."""
    if not isinstance(text, str) or any(c in text for c in "\r\n\0"):
        raise ValueError("must be one email address on one line")
    found = getaddresses([text])
    if len(found) != 1:
        raise ValueError(f"{text!r}: give one address per list item")
    _, address = found[0]
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"{text!r} is not an email address (expected name@example.com)")
    probe = f"{local}@{domain}.com" if _special_use(domain) else address
    try:
        validate_email(probe, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise ValueError(f"{text!r} is not a valid email address: {exc}") from None
    return text.strip()


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Address = Annotated[str, AfterValidator(check_address)]
# One address or a TOML list of them.
Addresses = Annotated[list[Address], BeforeValidator(_one_or_many)]
