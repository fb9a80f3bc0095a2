"""Console helpers: a console user in the store, the sign-in form's CSRF token, signing in."""

from __future__ import annotations

import html
import re
from typing import Any

from litestar.testing import TestClient

from relay.config.settings import Settings
from relay.console.auth import hash_password
from relay.store.opening import open_store

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
FORM = re.compile(r"<form\b[^>]*>.*?</form>", re.DOTALL)
TEXTAREA = re.compile(r"<textarea\b[^>]*>(.*?)</textarea>", re.DOTALL)
PASSWORD = "correct horse battery"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def add_user(settings: Settings, name: str = "jana", password: str = PASSWORD) -> None:
    """Add a console user (or give one a new password), as `relay user add` does."""
    store = open_store(settings)
    try:
        store.add_console_user(name, hash_password(password), 0.0)
    finally:
        store.close()


def remove_user(settings: Settings, name: str = "jana") -> None:
    store = open_store(settings)
    try:
        store.remove_console_user(name)
    finally:
        store.close()


def csrf_of(page: str) -> str:
    found = CSRF.search(page)
    assert found is not None, page
    return found.group(1)


def login(client: TestClient[Any], password: str = PASSWORD, user: str = "jana") -> Any:
    form = client.get("/console/login")
    return client.post(
        "/console/login",
        data={"csrf": csrf_of(form.text), "user": user, "password": password},
        follow_redirects=False,
    )


def forms_to(page: str, action: str) -> list[str]:
    """The HTML of each form on ``page`` that posts to ``action``."""
    return [form for form in FORM.findall(page) if f'action="{action}"' in form]


def textarea_value(form: str) -> str:
    """What a browser submits for the form's text area left as it is: the text as parsed
    (entities decoded, the one newline right after the start tag dropped) with every line end
    (CR LF, lone CR, lone LF) sent as CR LF (HTML's "normalize line breaks")."""
    found = TEXTAREA.search(form)
    assert found is not None, form
    text = html.unescape(found.group(1))
    if text.startswith("\n"):
        text = text[1:]
    return re.sub(r"\r\n|\r|\n", "\r\n", text)
