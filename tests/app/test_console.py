"""The console through the app in-process: off until a user exists, sign-in with CSRF and a
rate limit on wrong passwords, every page for a signed-in user, actions in the audit log."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

from relay.app import create_app
from relay.cli import main
from relay.config.settings import Settings
from relay.store.opening import open_store
from tests.support.app import runtime
from tests.support.config import write_config
from tests.support.console import PASSWORD, Clock, add_user, csrf_of, login
from tests.support.data import TOKEN, body, sample


@pytest.fixture
def console(
    make_settings: Callable[..., Settings],
) -> Iterator[tuple[TestClient[Any], Settings, Clock]]:
    settings = make_settings()
    clock = Clock(1_800_000_000.0)
    with TestClient(create_app(settings)) as client:
        runtime(client).clock = clock
        yield client, settings, clock


def test_the_console_is_off_until_a_user_exists(console: Any) -> None:
    client, settings, _ = console
    assert client.get("/console/login").status_code == 404
    assert client.get("/console/leads").status_code == 404
    add_user(settings)
    assert client.get("/console/login").status_code == 200
    redirected = client.get("/console/leads", follow_redirects=False)
    assert (redirected.status_code, redirected.headers["location"]) == (303, "/console/login")


def test_sign_in_sets_a_signed_httponly_lax_cookie_and_sign_out_ends_it(console: Any) -> None:
    client, settings, _ = console
    add_user(settings)
    answer = login(client)
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert "relay_console=" in cookie and "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    assert "Max-Age=43200" in cookie  # [console] session_hours
    assert "Secure" not in cookie  # plain HTTP here
    page = client.get("/console/leads")
    assert page.status_code == 200 and "Signed in as jana" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    # A tampered cookie is no session.
    value = client.cookies["relay_console"]
    client.cookies.set("relay_console", value[:-2] + ("AA" if value[-2:] != "AA" else "BB"))
    assert client.get("/console/leads", follow_redirects=False).status_code == 303
    client.cookies.set("relay_console", value)
    out = client.post("/console/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert out.status_code == 303 and "Max-Age=0" in out.headers["set-cookie"]
    actions = [row.action for row in open_store(settings).audit_log()]
    assert actions == ["logout", "login"]


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(console: Any) -> None:
    client, settings, _ = console
    add_user(settings)
    data = sample("v1")
    data["channel"]["isMissed"] = True
    assert client.post(f"/hooks/smartsupp/{TOKEN}", content=body(data)).status_code == 200
    login(client)
    (lead,) = open_store(settings).leads()
    refused = client.post(f"/console/leads/{lead.id}/claim", data={})
    assert refused.status_code == 403
    forged = client.post(f"/console/leads/{lead.id}/claim", data={"csrf": "x" * 43})
    assert forged.status_code == 403
    assert open_store(settings).leads()[0].state.value == "open"
    page = client.get("/console/leads")
    claimed = client.post(f"/console/leads/{lead.id}/claim", data={"csrf": csrf_of(page.text)})
    assert claimed.status_code == 200 and "Lead 1 is yours." in claimed.text
    stored = open_store(settings).leads()[0]
    assert (stored.state.value, stored.claimed_by) == ("claimed", "jana")
    assert open_store(settings).audit_log()[0].action == "claim"


def test_five_wrong_passwords_slow_sign_in_down_per_user_and_address(console: Any) -> None:
    client, settings, clock = console
    add_user(settings)
    for _ in range(5):
        assert login(client, "wrong password").status_code == 401
    slowed = login(client)  # even the right password waits
    assert slowed.status_code == 429
    assert slowed.headers["retry-after"] == "60"
    clock.now += 61
    assert login(client).status_code == 303
    # Another user name from the same address is slowed down too once the address failed 5x.
    for _ in range(5):
        login(client, "wrong", user="petr")
    clock.now += 1
    again = login(client, "wrong", user="petr")
    assert again.status_code == 429 and int(again.headers["retry-after"]) == 59


def test_every_page_renders_for_a_signed_in_user_in_three_languages(console: Any) -> None:
    client, settings, _ = console
    add_user(settings)
    data = sample("v1")
    data["channel"]["isMissed"] = True
    assert client.post(f"/hooks/smartsupp/{TOKEN}", content=body(data)).status_code == 200
    assert client.post(f"/hooks/smartsupp/{TOKEN}", content=b"{not json").status_code == 400
    login(client)
    (conversation,) = open_store(settings).find_conversations()
    (entry,) = open_store(settings).quarantined()
    pages = {
        "/console/leads": "Dusan Kmet",
        "/console/queue": "Destination health",
        "/console/quarantine": "invalid_json",
        f"/console/quarantine/{entry.id}": "{not json",
        "/console/conversations?q=dusan": "Dusan Kmet",
        f"/console/conversations/{conversation.id}": "Transcript",
        "/console/rules": "Test the rules",
        "/console/stats": "<svg",
        "/console/audit": "login",
    }
    for path, expected in pages.items():
        page = client.get(path)
        assert page.status_code == 200, path
        assert expected in page.text, path
    assert "Kontakty" in client.get("/console/leads", headers={"Accept-Language": "cs"}).text
    assert "Gespräche" in client.get("/console/leads", headers={"Accept-Language": "de"}).text
    css = client.get("/console/static/console.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_rules_test_explains_a_stored_conversation_and_changes_nothing(console: Any) -> None:
    client, settings, _ = console
    add_user(settings)
    assert client.post(f"/hooks/smartsupp/{TOKEN}", content=body(sample("v1"))).status_code == 200
    login(client)
    (conversation,) = open_store(settings).find_conversations()
    before = open_store(settings).counts()
    page = client.get("/console/rules")
    answer = client.post(
        "/console/rules/test",
        data={"csrf": csrf_of(page.text), "conversation": str(conversation.id)},
    )
    assert answer.status_code == 200 and "Explanation" in answer.text
    assert "matched" in answer.text
    assert open_store(settings).counts() == before


def test_user_add_reads_the_password_from_stdin_and_remove_deletes(tmp_path: Path) -> None:
    config, settings = write_config(tmp_path)
    runner = CliRunner()
    added = runner.invoke(main, ["user", "add", "jana", "--config", str(config)], input=PASSWORD)
    assert added.exit_code == 0, added.output
    stored = open_store(settings).console_password_hash("jana")
    assert stored is not None and stored.startswith("$argon2id$") and PASSWORD not in stored
    short = runner.invoke(main, ["user", "add", "petr", "--config", str(config)], input="short")
    assert short.exit_code != 0
    for bad in ("", "a b", "x" * 65, "jana;drop"):
        named = runner.invoke(main, ["user", "add", bad, "--config", str(config)], input=PASSWORD)
        assert named.exit_code == 2 and "NAME: 1 to 64 letters" in named.output, bad
    removed = runner.invoke(main, ["user", "remove", "jana", "--config", str(config)])
    assert removed.exit_code == 0
    assert open_store(settings).console_user_count() == 0
    again = runner.invoke(main, ["user", "remove", "jana", "--config", str(config)])
    assert again.exit_code != 0 and "no user jana" in again.output
    assert [r.action for r in open_store(settings).audit_log()] == ["user remove", "user add"]
