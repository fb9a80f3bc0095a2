"""Driving the console in-process: a settable clock, a console user, sign-in with the form's
CSRF token."""

from __future__ import annotations

import re
from typing import Any

from litestar.testing import TestClient

from relay.config.settings import Settings
from relay.console.auth import hash_password
from relay.store.opening import open_store

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
PASSWORD = "correct horse battery"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def add_user(settings: Settings, name: str = "jana") -> None:
    store = open_store(settings)
    try:
        store.add_console_user(name, hash_password(PASSWORD), 0.0)
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
