"""Helpers for lead tests: follow-up settings, links found in an email, the page's form."""

from __future__ import annotations

import re
from email.message import EmailMessage
from html.parser import HTMLParser
from typing import Any

PUBLIC_URL = "http://relay.test"
LINK_KEY = "k" * 43
LINK = re.compile(r"https?://[^\s\"<>]+/leads/([cd]\d+-\d+-[A-Za-z0-9_-]{43})")


def follow_up(**changes: Any) -> dict[str, Any]:
    """A [follow_up] section that is on, with a known key and public URL."""
    return {"enabled": True, "public_url": PUBLIC_URL, "link_key": LINK_KEY, **changes}


def tokens_in(message: EmailMessage) -> dict[str, str]:
    """The claim and done tokens of the email's text part (the same as in its HTML part)."""
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    assert text_part is not None and html_part is not None
    found: dict[str, str] = {}
    for token in LINK.findall(text_part.get_content()):
        found["claim" if token.startswith("c") else "done"] = token
    assert set(LINK.findall(html_part.get_content())) == set(found.values())
    return found


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self.action: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "form":
            self.action = found.get("action")
        if tag == "input" and found.get("name"):
            self.fields[str(found["name"])] = found.get("value") or ""


def form_of(page: str) -> tuple[str | None, dict[str, str]]:
    """The page's form: its action and its input fields with their values."""
    parser = _Form()
    parser.feed(page)
    return parser.action, parser.fields
