"""The console under attack, in-process on both stores: ids, dates and search text no store
can hold, numbers of a status message written into the address, sign-in races, sessions of
removed or re-keyed users. Every answer is a page of its own (4xx), never a 500."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient
from pydantic import ValidationError

from relay.app import create_app
from relay.config.settings import Settings
from relay.console.auth import session_key
from relay.console.http import LOGIN_COOKIE, SESSION_COOKIE
from relay.model.errors import ConfigError
from relay.store.opening import open_store
from tests.support.app import runtime
from tests.support.console import (
    Clock,
    add_user,
    csrf_of,
    forms_to,
    login,
    remove_user,
    textarea_value,
)
from tests.support.data import TOKEN, body, sample

TOO_BIG = "9" * 30  # beyond the 64-bit integers of SQLite and PostgreSQL


@pytest.fixture
def signed_in(
    backend: str, make_settings: Callable[..., Settings]
) -> Iterator[tuple[TestClient[Any], Settings, Clock]]:
    """A relay on ``backend`` with one stored conversation (a missed chat, so a lead), one
    quarantined body and the user jana signed in."""
    settings = make_settings(render={"timezone": "Europe/Prague"})
    clock = Clock(1_800_000_000.0)
    with TestClient(create_app(settings)) as client:
        runtime(client).clock = clock
        add_user(settings)
        data = sample("v1")
        data["channel"]["isMissed"] = True
        assert client.post(f"/hooks/smartsupp/{TOKEN}", content=body(data)).status_code == 200
        assert client.post(f"/hooks/smartsupp/{TOKEN}", content=b"{not json").status_code == 400
        assert login(client).status_code == 303
        yield client, settings, clock


def page_of_its_own(answer: Any, status: int) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert "Relay console" in answer.text


def test_ids_beyond_the_stores_integers_are_not_found(signed_in: Any) -> None:
    client, settings, _ = signed_in
    for path in (f"/console/conversations/{TOO_BIG}", f"/console/quarantine/{TOO_BIG}"):
        page_of_its_own(client.get(path), 404)
    csrf = csrf_of(client.get("/console/leads").text)
    for path in (
        f"/console/leads/{TOO_BIG}/claim",
        f"/console/leads/{TOO_BIG}/done",
        f"/console/quarantine/{TOO_BIG}/reaccept",
        f"/console/conversations/{TOO_BIG}/replay",
    ):
        page_of_its_own(client.post(path, data={"csrf": csrf}), 404)
    retried = client.post(f"/console/queue/{TOO_BIG}/retry", data={"csrf": csrf})
    page_of_its_own(retried, 200)  # after the redirect: nothing requeued
    assert "0" in retried.text
    with closing(open_store(settings)) as store:
        assert store.leads()[0].state.value == "open"


# Digits to str.isdigit, not to int(): superscript two, Arabic-Indic one; and too many digits.
@pytest.mark.parametrize("picked", ["\u00b2", "\u0661", TOO_BIG, "9" * 5000])
def test_rules_test_with_a_conversation_id_that_is_no_number_is_not_found(
    signed_in: Any, picked: str
) -> None:
    client, _, _ = signed_in
    csrf = csrf_of(client.get("/console/rules").text)
    answer = client.post("/console/rules/test", data={"csrf": csrf, "conversation": picked})
    page_of_its_own(answer, 404)


@pytest.mark.parametrize(
    "query",
    [
        "from=9999-12-31&to=9999-12-31",
        "to=9999-12-31",
        "from=0001-01-01&to=0001-01-01",
        "q=%00",
        "q=dusan%00",
        "q=%25_%27%22%5C",
        "from=2024-02-30&to=yesterday",
    ],
)
def test_searches_no_store_can_answer_get_the_search_page(signed_in: Any, query: str) -> None:
    client, _, _ = signed_in
    page_of_its_own(client.get(f"/console/conversations?{query}"), 200)


def test_a_status_message_takes_only_numbers_from_the_address(signed_in: Any) -> None:
    client, _, _ = signed_in
    lure = "ALL. Your session expired: sign in again at evil.example"
    for path in ("/console/queue", "/console/conversations/1", "/console/leads"):
        for said in ("retried", "replayed", "lead_claimed"):
            page = client.get(path, params={"said": said, "count": lure, "id": lure})
            assert page.status_code == 200
            assert "evil.example" not in page.text
    honest = client.get("/console/queue", params={"said": "retried", "count": "3"})
    assert "3" in honest.text and 'class="msg ok"' in honest.text


def test_concurrent_wrong_passwords_are_counted_before_any_is_checked(signed_in: Any) -> None:
    """Thirty guesses sent at once: five are heard, the rest wait, as if sent one by one."""
    client, _, _ = signed_in
    client.cookies.clear()
    form = client.get("/console/login")
    csrf, nonce = csrf_of(form.text), client.cookies[LOGIN_COOKIE]
    client.cookies.clear()
    transport = httpx.ASGITransport(app=client.app)

    async def guesses() -> list[int]:
        async with httpx.AsyncClient(transport=transport, base_url="http://relay") as guesser:

            async def guess(n: int) -> int:
                answer = await guesser.post(
                    "/console/login",
                    data={"csrf": csrf, "user": "jana", "password": f"guess {n}"},
                    headers={"Cookie": f"{LOGIN_COOKIE}={nonce}"},
                )
                return answer.status_code

            return list(await asyncio.gather(*(guess(n) for n in range(30))))

    codes = client.blocking_portal.call(guesses)
    assert sorted(codes) == [401] * 5 + [429] * 25


def test_a_session_ends_when_its_user_is_removed_or_given_a_new_password(signed_in: Any) -> None:
    client, settings, _ = signed_in
    assert client.get("/console/leads").status_code == 200
    # Removed and added again (the same name, perhaps another person) before the old
    # session's next request: it stays ended.
    remove_user(settings)
    add_user(settings, password="another long password")
    assert client.get("/console/leads", follow_redirects=False).status_code == 303
    # A new password (`relay user add` for an existing user) ends the sessions signed in
    # with the old one.
    assert login(client, "another long password").status_code == 303
    copy = client.cookies[SESSION_COOKIE]
    add_user(settings, password="a third long password")
    client.cookies.set(SESSION_COOKIE, copy)
    assert client.get("/console/leads", follow_redirects=False).status_code == 303
    assert login(client, "a third long password").status_code == 303
    assert client.get("/console/leads").status_code == 200


def test_signing_out_ends_the_session_on_the_server_copies_of_the_cookie_too(
    signed_in: Any, make_settings: Callable[..., Settings]
) -> None:
    """A copied cookie stops working after sign-out (at the same clock reading even), and so
    do the user's other sessions; the next sign-in works, another user's session goes on."""
    client, settings, _ = signed_in
    page = client.get("/console/leads")
    copy = client.cookies[SESSION_COOKIE]
    assert login(client).status_code == 303  # a second session of jana (another browser)
    other = client.cookies[SESSION_COOKIE]
    add_user(settings, "petr")
    assert login(client, user="petr").status_code == 303
    petrs = client.cookies[SESSION_COOKIE]
    client.cookies.set(SESSION_COOKIE, copy)
    out = client.post("/console/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert out.status_code == 303 and "Max-Age=0" in out.headers["set-cookie"]
    for cookie in (copy, other):
        client.cookies.set(SESSION_COOKIE, cookie)
        answer = client.get("/console/leads", follow_redirects=False)
        assert (answer.status_code, answer.headers["location"]) == (303, "/console/login")
    client.cookies.set(SESSION_COOKIE, petrs)
    assert "Signed in as petr" in client.get("/console/leads").text
    client.cookies.clear()
    assert login(client).status_code == 303  # jana again, at the same clock reading
    fresh = client.get("/console/leads")
    assert "Signed in as jana" in fresh.text
    kept = client.cookies[SESSION_COOKIE]
    out = client.post("/console/logout", data={"csrf": csrf_of(fresh.text)})
    assert out.status_code == 200 and 'action="/console/login"' in out.text
    client.cookies.set(SESSION_COOKIE, kept)
    assert client.get("/console/leads", follow_redirects=False).status_code == 303
    with closing(open_store(settings)) as store:
        actions = [row.action for row in store.audit_log()]
    assert actions[:2] == ["logout", "login"] and actions.count("logout") == 2


@pytest.mark.parametrize("written", [b"", b"\n", b"short key\n"])
def test_a_session_key_too_short_to_sign_with_is_refused(
    make_settings: Callable[..., Settings], written: bytes
) -> None:
    """An empty console_key (a write cut short) signed cookies with an empty HMAC key: anyone
    could make a session for any user. Now the relay will not start on it."""
    settings = make_settings()
    state = Path(settings.storage.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    (state / "console_key").write_bytes(written)
    with pytest.raises(ConfigError, match=r"console_key.*delete it"):
        create_app(settings)
    with pytest.raises(ValidationError, match="at least 32"):
        make_settings(console={"session_key": "short"})


def test_a_generated_session_key_is_whole_private_and_kept(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    state = Path(settings.storage.state_dir)
    first = session_key(settings.console, state)
    assert len(first) >= 32
    assert (state / "console_key").stat().st_mode & 0o777 == 0o600
    assert session_key(settings.console, state) == first
    assert sorted(p.name for p in state.iterdir() if "console_key" in p.name) == ["console_key"]


OVERRIDE = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: what follows it on the line reads backwards


def outside_isolation(page: str, mark: str) -> list[str]:
    """The places ``mark`` appears in ``page`` outside a <bdi> element or a block of its own
    (an element with dir="auto"): where it would turn the text after it around."""
    found = []
    for at in [m.start() for m in re.finditer(mark, page)]:
        before = page[:at]
        opened = max(before.rfind("<bdi>"), before.rfind('dir="auto">'))
        closed = max(before.rfind("</bdi>"), before.rfind("</p>"), before.rfind("</blockquote>"))
        if opened <= closed:
            found.append(page[max(0, at - 60) : at + 20])
    return found


def test_a_visitors_bidi_controls_stay_inside_their_own_text(signed_in: Any) -> None:
    """A name like "Eve\u202e" would show the address after it, and every word the console
    prints after it on that line, backwards (as the e-mail's transcript guards against)."""
    client, settings, _ = signed_in
    data = sample("v1")
    data["channel"].update(id=777, isMissed=True, rating=1, ratingDesc=f"bad {OVERRIDE}service")
    data["visitor"].update(name=f"Eve {OVERRIDE}evE", email=f"eve{OVERRIDE}@example.com")
    for message in data["messages"]:
        message["content"] = f"{OVERRIDE}{message['content']}"
        if message.get("name"):
            message["name"] = f"{OVERRIDE}{message['name']}"
    assert client.post(f"/hooks/smartsupp/{TOKEN}", content=body(data)).status_code == 200
    with closing(open_store(settings)) as store:
        conversation = store.latest_version_id("208-777")
    for path in (
        "/console/leads",
        "/console/conversations",
        "/console/conversations?q=eve",
        f"/console/conversations/{conversation}",
    ):
        page = client.get(path)
        assert page.status_code == 200 and OVERRIDE in page.text, path
        assert outside_isolation(page.text, OVERRIDE) == [], path


def test_a_corrected_body_larger_than_the_hook_takes_is_still_refused(signed_in: Any) -> None:
    """Re-accept with a corrected body runs the normal intake: server.max_body_bytes too."""
    client, settings, _ = signed_in
    with closing(open_store(settings)) as store:
        (entry,) = store.quarantined()
    csrf = csrf_of(client.get(f"/console/quarantine/{entry.id}").text)
    data = sample("v1")
    data["channel"]["id"] = 4242
    data["messages"][0]["content"] = "y" * settings.server.max_body_bytes
    answer = client.post(
        f"/console/quarantine/{entry.id}/reaccept", data={"csrf": csrf, "body": body(data).decode()}
    )
    page_of_its_own(answer, 413)
    assert "body_too_large" in answer.text
    with closing(open_store(settings)) as store:
        assert store.latest_version_id("208-4242") is None
        assert [e.id for e in store.quarantined()] == [entry.id]


def test_a_search_finds_a_name_in_any_case_beyond_ascii(signed_in: Any) -> None:
    client, _, _ = signed_in
    data = sample("v1")
    data["channel"]["id"] = 4243
    data["visitor"].update(name="Žaneta Šťastná", email="ZANETA@EXAMPLE.CZ")
    assert client.post(f"/hooks/smartsupp/{TOKEN}", content=body(data)).status_code == 200
    for query in ("žaneta", "ŠŤASTNÁ", "zaneta@example", "Šťastná"):
        page = client.get("/console/conversations", params={"q": query})
        assert page.status_code == 200 and "208-4243" in page.text, query
    assert "208-4243" not in client.get("/console/conversations", params={"q": "žanetta"}).text


def wrong_passwords_from(client: TestClient[Any], addresses: list[str]) -> list[int]:
    """A wrong password for a new user name from each address in turn (as the TCP peer)."""
    client.cookies.clear()
    form = client.get("/console/login")
    csrf, nonce = csrf_of(form.text), client.cookies[LOGIN_COOKIE]
    client.cookies.clear()

    async def attempts() -> list[int]:
        codes = []
        for n, address in enumerate(addresses):
            transport = httpx.ASGITransport(app=client.app, client=(address, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://relay") as peer:
                answer = await peer.post(
                    "/console/login",
                    data={"csrf": csrf, "user": f"sprayed{n}", "password": "wrong password"},
                    headers={"Cookie": f"{LOGIN_COOKIE}={nonce}"},
                )
                codes.append(answer.status_code)
        return codes

    return client.blocking_portal.call(attempts)


def test_ipv6_addresses_of_one_network_are_counted_together(signed_in: Any) -> None:
    """A host has a /64 of its own: a new address for each guess must not reset the count."""
    client, _, _ = signed_in
    same_network = [f"2001:db8:1:2::{n:x}" for n in range(1, 8)]
    assert wrong_passwords_from(client, same_network) == [401] * 5 + [429] * 2
    # Another network, and IPv4 addresses, each count for themselves.
    assert wrong_passwords_from(client, ["2001:db8:1:3::1", "192.0.2.1", "192.0.2.2"]) == [401] * 3


CONSOLE_HEADERS = {
    "cache-control": "no-store",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
}
BROKEN_MULTIPART = (
    b'--b\r\nContent-Disposition: form-data; name="csrf"\r\n\r\nx\r\n--b\r\n'
    b'Content-Disposition: form-data; name="note"\r\n'  # no blank line, no closing boundary
)


def refusals(settings: Settings) -> list[tuple[str, str, dict[str, Any], int]]:
    """Requests Litestar itself refuses before a console handler runs: (method, path, what to
    send, status)."""
    with closing(open_store(settings)) as store:
        lead_id = store.leads()[0].id
    return [
        ("GET", "/console/conversations/abc", {}, 404),
        ("GET", "/console/quarantine/1.5", {}, 404),
        ("GET", "/console/no-such-page", {}, 404),
        ("POST", "/console/leads/x/claim", {}, 404),
        ("DELETE", "/console/leads", {}, 405),
        ("GET", "/console/logout", {}, 405),
        ("PUT", f"/console/leads/{lead_id}/claim", {}, 405),
        ("POST", "/console/logout", {"data": {"csrf": "x", "pad": "p" * 40_000}}, 413),
        (
            "POST",
            f"/console/leads/{lead_id}/claim",
            {
                "content": BROKEN_MULTIPART,
                "headers": {"Content-Type": "multipart/form-data; boundary=b"},
            },
            400,
        ),
    ]


def console_page_of_its_own(answer: Any, status: int) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert f'<p class="sub">HTTP {status}</p>' in answer.text
    for name, value in CONSOLE_HEADERS.items():
        assert answer.headers[name] == value, (name, answer.headers)
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    assert '<link rel="stylesheet" href="/console/static/console.css">' in answer.text


def test_litestars_own_refusals_under_console_are_console_pages(signed_in: Any) -> None:
    """A path no route matches, a method no route takes, a body over the limit, a form that
    does not parse: a console page with the console's headers, never JSON or a 500."""
    client, settings, _ = signed_in
    for method, path, sent, status in refusals(settings):
        answer = client.request(method, path, **sent)
        console_page_of_its_own(answer, status)
        assert "Signed in as jana" in answer.text, path  # the layout with its navigation
        assert "Relay console" in answer.text, path
        if status == 405:  # Litestar's Allow header is kept
            assert "POST" in answer.headers["allow"] or "GET" in answer.headers["allow"], path
        if "headers" not in sent:
            czech = client.request(method, path, headers={"Accept-Language": "cs"}, **sent)
            console_page_of_its_own(czech, status)
            assert 'lang="cs"' in czech.text and "Odhlásit" in czech.text, path
    with closing(open_store(settings)) as store:
        assert store.leads()[0].state.value == "open"


def test_refusals_for_someone_not_signed_in_are_console_pages_without_navigation(
    signed_in: Any,
) -> None:
    client, settings, _ = signed_in
    client.cookies.clear()
    for method, path, sent, status in refusals(settings):
        if sent:  # a body is read only for a signed-in user: sign in first (303)
            answer = client.request(method, path, follow_redirects=False, **sent)
            assert answer.status_code == 303, path
            continue
        answer = client.request(method, path, headers={"Accept-Language": "de"}, **sent)
        console_page_of_its_own(answer, status)
        assert 'lang="de"' in answer.text and "Relay-Konsole" in answer.text
        assert "<nav" not in answer.text and "Signed in" not in answer.text


def test_refusals_outside_the_console_stay_json(signed_in: Any) -> None:
    client, _, _ = signed_in
    for method, path, status in (
        ("GET", f"/hooks/smartsupp/{TOKEN}", 405),
        ("GET", "/no-such-page", 404),
        ("GET", "/consoles", 404),
    ):
        answer = client.request(method, path)
        assert answer.status_code == status, path
        assert answer.headers["content-type"].startswith("application/json"), path
        assert answer.json()["status_code"] == status


def test_with_no_user_every_console_address_answers_404_as_before(
    make_settings: Callable[..., Settings],
) -> None:
    """Off until a user exists: a wrong method or a broken id says no more than any path."""
    with TestClient(create_app(make_settings())) as client:
        for method, path in (
            ("GET", "/console/conversations/abc"),
            ("DELETE", "/console/leads"),
            ("GET", "/console/logout"),
        ):
            answer = client.request(method, path)
            assert answer.status_code == 404, path
            assert answer.text == "not found\n" and "Relay console" not in answer.text
            assert answer.headers["x-frame-options"] == "DENY"


def quarantined_as(settings: Settings, raw: bytes) -> int:
    """A body quarantined whose cause is fixed by now (it passes intake as it is)."""
    with closing(open_store(settings)) as store:
        return store.quarantine(
            "wrong_type", "fixed since", raw, "127.0.0.1",
            max_rows=100, max_bytes=10_000_000, max_body=10_000_000, now=1.0,
        )  # fmt: skip


def reaccepted(settings: Settings, channel_id: int) -> tuple[bytes, str]:
    """The stored body of the conversation and the audit detail of the newest re-accept."""
    with closing(open_store(settings)) as store:
        version = store.latest_version_id(f"208-{channel_id}")
        assert version is not None
        stored = store.conversation_raw(version)
        assert stored is not None
        (last,) = [row for row in store.audit_log() if row.action == "reaccept"][:1]
        return stored[0], last.detail


def awkward_body(channel_id: int) -> bytes:
    """A body a text area changes: a leading newline, LF and CR LF line ends."""
    data = sample("v1")
    data["channel"]["id"] = channel_id
    pretty = json.dumps(data, indent=2, ensure_ascii=False)
    return ("\n" + pretty.replace("\n", "\r\n", 5)).encode()


def test_reaccept_as_stored_posts_no_body_and_runs_the_stored_bytes(signed_in: Any) -> None:
    client, settings, _ = signed_in
    raw = awkward_body(5001)
    entry = quarantined_as(settings, raw)
    action = f"/console/quarantine/{entry}/reaccept"
    page = client.get(f"/console/quarantine/{entry}").text
    plain = [form for form in forms_to(page, action) if "<textarea" not in form]
    assert len(plain) == 1 and "Re-accept as stored" in plain[0]
    assert re.findall(r'name="([^"]+)"', plain[0]) == ["csrf"]  # no body is posted
    answer = client.post(action, data={"csrf": csrf_of(plain[0])})
    assert answer.status_code == 200 and "Accepted as conversation 208-5001" in answer.text
    stored, detail = reaccepted(settings, 5001)
    assert stored == raw  # byte for byte
    assert detail == "conversation 208-5001"


def test_reaccept_from_the_text_area_unedited_runs_the_stored_bytes(signed_in: Any) -> None:
    """The text area's value as a browser sends it back (leading newline, CR LF) is the stored
    body: not a correction."""
    client, settings, _ = signed_in
    raw = awkward_body(5002)
    entry = quarantined_as(settings, raw)
    action = f"/console/quarantine/{entry}/reaccept"
    page = client.get(f"/console/quarantine/{entry}").text
    (editable,) = [form for form in forms_to(page, action) if "<textarea" in form]
    assert "Re-accept as edited" in editable
    sent = textarea_value(editable)
    assert sent.encode() != raw  # what the browser posts differs from the stored bytes
    answer = client.post(action, data={"csrf": csrf_of(editable), "body": sent})
    assert answer.status_code == 200 and "Accepted as conversation 208-5002" in answer.text
    stored, detail = reaccepted(settings, 5002)
    assert stored == raw
    assert "(corrected)" not in detail


def test_a_real_correction_is_marked_corrected_and_stored_as_corrected(signed_in: Any) -> None:
    client, settings, _ = signed_in
    raw = awkward_body(5003)
    entry = quarantined_as(settings, raw.replace(b'"rating": 5', b'"rating": "five"'))
    action = f"/console/quarantine/{entry}/reaccept"
    page = client.get(f"/console/quarantine/{entry}").text
    (editable,) = [form for form in forms_to(page, action) if "<textarea" in form]
    sent = textarea_value(editable)
    refused = client.post(action, data={"csrf": csrf_of(editable), "body": sent})
    assert refused.status_code == 422 and "Still refused: wrong_type" in refused.text
    fixed = sent.replace('"rating": "five"', '"rating": 5')
    answer = client.post(action, data={"csrf": csrf_of(editable), "body": fixed})
    assert answer.status_code == 200 and "Accepted as conversation 208-5003" in answer.text
    stored, detail = reaccepted(settings, 5003)
    assert stored == raw.replace(b"\r\n", b"\n")  # the correction, with LF line ends
    assert detail == "conversation 208-5003 (corrected)"
