"""The console's refusals and less travelled paths in-process: every page and form turns away
a visitor who is not signed in, missing and contested records, bodies that still do not
parse, replay and the rules test on pasted input, dates and filters that are not valid."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from relay.app import create_app
from relay.config.settings import Settings
from relay.console import auth
from relay.store.opening import open_store
from tests.support.app import runtime
from tests.support.console import Clock, add_user, csrf_of, login
from tests.support.data import TOKEN, body, sample
from tests.support.smtp import SmtpServer
from tests.support.store import bare_intake

T0 = 1_800_000_000.0
GETS = (
    "/console",
    "/console/leads",
    "/console/queue",
    "/console/quarantine",
    "/console/quarantine/1",
    "/console/conversations",
    "/console/conversations/1",
    "/console/rules",
    "/console/stats",
    "/console/audit",
)
POSTS = (
    "/console/logout",
    "/console/leads/1/claim",
    "/console/leads/1/done",
    "/console/queue/1/retry",
    "/console/queue/retry-dead",
    "/console/quarantine/1/reaccept",
    "/console/conversations/1/replay",
    "/console/rules/test",
)

Console = tuple[TestClient[Any], Settings, Clock]


@pytest.fixture
def start(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Console]]:
    """Start the app with these settings sections and a clock at T0."""
    with_clients: list[TestClient[Any]] = []

    def started(**sections: Any) -> Console:
        settings = make_settings(**sections)
        client = TestClient(create_app(settings))
        client.__enter__()
        with_clients.append(client)
        clock = Clock(T0)
        runtime(client).clock = clock
        return client, settings, clock

    yield started
    for client in with_clients:
        client.__exit__(None, None, None)


def missed_chat(client: TestClient[Any], channel_id: int = 1) -> None:
    data = sample("v1")
    data["channel"]["isMissed"] = True
    data["channel"]["id"] = channel_id
    assert client.post(f"/hooks/smartsupp/{TOKEN}", content=body(data)).status_code == 200


def message(page: str) -> str:
    """The page's notice (the text of its first <p class="msg ...">)."""
    found = re.search(r'<p class="msg[^"]*"[^>]*>(.*?)</p>', page, re.S)
    assert found is not None, page
    return found.group(1).strip()


def test_every_page_and_form_turns_away_a_visitor_who_is_not_signed_in(
    start: Callable[..., Console],
) -> None:
    client, settings, _ = start()
    for path in GETS:
        assert client.get(path).status_code == 404, path  # no user: the console is off
    for path in (*POSTS, "/console/login"):
        assert client.post(path, data={"csrf": "x"}).status_code == 404, path
    add_user(settings)
    for path in GETS:
        answer = client.get(path, follow_redirects=False)
        assert (answer.status_code, answer.headers["location"]) == (303, "/console/login"), path
    for path in POSTS:
        answer = client.post(path, data={"csrf": "x"}, follow_redirects=False)
        assert (answer.status_code, answer.headers["location"]) == (303, "/console/login"), path
    assert open_store(settings).audit_log() == []
    login(client)
    home = client.get("/console", follow_redirects=False)
    assert (home.status_code, home.headers["location"]) == (303, "/console/leads")


def test_a_login_without_its_form_cookie_or_token_is_refused(
    start: Callable[..., Console],
) -> None:
    client, settings, _ = start()
    add_user(settings)
    form = client.get("/console/login")
    token = csrf_of(form.text)
    client.cookies.delete("relay_console_login")
    data = {"csrf": token, "user": "jana", "password": "correct horse battery"}
    refused = client.post("/console/login", data=data, follow_redirects=False)
    assert refused.status_code == 403
    assert message(refused.text) == "This form is out of date. Please try again."
    assert "relay_console=" not in refused.headers.get("set-cookie", "")
    # The new form's cookie with another form's token is refused as well.
    again = client.post("/console/login", data=data, follow_redirects=False)
    assert again.status_code == 403
    assert open_store(settings).audit_log() == []


def test_cookies_are_secure_when_configured_and_a_configured_key_signs_sessions(
    start: Callable[..., Console],
) -> None:
    key = "k" * 40
    client, settings, clock = start(console={"secure_cookies": True, "session_key": key})
    add_user(settings)
    assert "Secure" in client.get("/console/login").headers["set-cookie"]  # over plain HTTP
    # A client keeps Secure cookies only over HTTPS.
    secure = TestClient(client.app, base_url="https://testserver.local")
    answer = login(secure)
    assert answer.status_code == 303 and "Secure" in answer.headers["set-cookie"]
    assert "Signed in as jana" in secure.get("/console/audit").text
    assert not (settings.storage.state_dir / auth.KEY_FILE).exists()
    # A session sealed with the configured key elsewhere (another relay) is accepted here.
    session = auth.new_session("jana", clock.now, 1.0)
    store = open_store(settings)
    try:
        password_hash = store.console_password_hash("jana")
    finally:
        store.close()
    assert password_hash is not None
    other = TestClient(client.app)
    other.cookies.set("relay_console", auth.seal(key.encode(), session, password_hash))
    assert "Signed in as jana" in other.get("/console/audit").text
    other.cookies.set("relay_console", auth.seal(b"another key", session, password_hash))
    assert other.get("/console/audit", follow_redirects=False).status_code == 303


def test_leads_missing_taken_and_finished_are_refused_and_unknown_states_show_open(
    start: Callable[..., Console],
) -> None:
    client, settings, _ = start()
    add_user(settings)
    add_user(settings, "petr")
    missed_chat(client)
    (lead,) = open_store(settings).leads()
    petr = TestClient(client.app)
    login(petr, user="petr")
    petr_csrf = csrf_of(petr.get("/console/leads").text)
    claimed = petr.post(f"/console/leads/{lead.id}/claim", data={"csrf": petr_csrf})
    assert message(claimed.text) == f"Lead {lead.id} is yours."

    login(client)
    page = client.get("/console/leads?state=nonsense")
    assert (
        page.status_code == 200
        and 'href="/console/leads?state=open" aria-current="true"' in page.text
    )
    assert "Dusan Kmet" not in page.text  # the lead is claimed, not open
    csrf = csrf_of(page.text)
    missing = client.post("/console/leads/999/claim", data={"csrf": csrf})
    assert (missing.status_code, message(missing.text)) == (404, "Not found.")
    taken = client.post(f"/console/leads/{lead.id}/claim", data={"csrf": csrf})
    assert taken.status_code == 409
    assert message(taken.text) == f"Lead {lead.id} was not changed: already taken by petr"
    done = petr.post(f"/console/leads/{lead.id}/done", data={"csrf": petr_csrf, "note": " ok "})
    assert done.status_code == 200
    finished = client.post(f"/console/leads/{lead.id}/done", data={"csrf": csrf})
    assert finished.status_code == 409
    assert message(finished.text) == f"Lead {lead.id} was not changed: already done by petr"
    (stored,) = open_store(settings).leads()
    assert (stored.state.value, stored.done_by, stored.note) == ("done", "petr", "ok")
    audit = [(r.actor, r.action) for r in open_store(settings).audit_log()]
    assert audit == [("petr", "done"), ("jana", "login"), ("petr", "claim"), ("petr", "login")]


def test_a_redirect_reports_only_the_known_messages(start: Callable[..., Console]) -> None:
    client, settings, _ = start()
    add_user(settings)
    login(client)
    known = client.get("/console/queue?said=retried&count=3")
    assert message(known.text) == "3 deliveries scheduled for retry."
    unknown = client.get("/console/queue?said=form_expired&count=3")
    assert unknown.status_code == 200 and 'role="status"' not in unknown.text


def test_retry_with_nothing_dead_requeues_nothing_and_says_so(
    start: Callable[..., Console],
) -> None:
    client, settings, _ = start()
    add_user(settings)
    login(client)
    csrf = csrf_of(client.get("/console/queue").text)
    answer = client.post("/console/queue/retry-dead", data={"csrf": csrf}, follow_redirects=False)
    assert answer.headers["location"] == "/console/queue?said=retried&count=0"
    one = client.post("/console/queue/42/retry", data={"csrf": csrf})
    assert message(one.text) == "0 deliveries scheduled for retry."
    details = [(r.target, r.detail) for r in open_store(settings).audit_log()]
    assert details[:2] == [("delivery 42", "0 requeued"), ("every dead delivery", "0 requeued")]


def test_a_quarantined_body_that_is_not_utf8_is_shown_in_hex_and_stays_refused(
    start: Callable[..., Console],
) -> None:
    client, settings, _ = start()
    add_user(settings)
    raw = b'{"bad": "\xff\xfe"}'
    assert client.post(f"/hooks/smartsupp/{TOKEN}", content=raw).status_code == 400
    (entry,) = open_store(settings).quarantined()
    login(client)
    page = client.get(f"/console/quarantine/{entry.id}")
    assert page.status_code == 200 and "7b 2262 6164 223a 2022 fffe 227d" in page.text
    csrf = csrf_of(page.text)
    # The hex shown cannot be edited into the body: the stored bytes are tried again.
    refused = client.post(
        f"/console/quarantine/{entry.id}/reaccept", data={"csrf": csrf, "body": "{}"}
    )
    assert refused.status_code == 422
    assert message(refused.text).startswith("Still refused: invalid_utf8: ")
    assert "2022 fffe 227d" in refused.text
    assert [e.id for e in open_store(settings).quarantined()] == [entry.id]
    (audit, _login) = open_store(settings).audit_log()
    assert (audit.action, audit.detail) == ("reaccept-refused", "invalid_utf8")


def test_a_corrected_body_that_still_does_not_parse_is_refused_and_shown_as_typed(
    start: Callable[..., Console],
) -> None:
    client, settings, _ = start()
    add_user(settings)
    assert client.post(f"/hooks/smartsupp/{TOKEN}", content=b"{not json").status_code == 400
    (entry,) = open_store(settings).quarantined()
    login(client)
    csrf = csrf_of(client.get(f"/console/quarantine/{entry.id}").text)
    refused = client.post(
        f"/console/quarantine/{entry.id}/reaccept", data={"csrf": csrf, "body": "[1, 2]"}
    )
    assert refused.status_code == 422
    assert message(refused.text).startswith("Still refused: ")
    assert "[1, 2]" in refused.text and "{not json" not in refused.text
    assert len(open_store(settings).quarantined()) == 1


def test_missing_quarantine_entries_and_conversations_answer_404(
    start: Callable[..., Console],
) -> None:
    client, settings, _ = start()
    add_user(settings)
    login(client)
    csrf = csrf_of(client.get("/console/audit").text)
    for answer in (
        client.get("/console/quarantine/77"),
        client.post("/console/quarantine/77/reaccept", data={"csrf": csrf, "body": "{}"}),
        client.get("/console/conversations/77"),
        client.post("/console/conversations/77/replay", data={"csrf": csrf}),
    ):
        assert (answer.status_code, message(answer.text)) == (404, "Not found.")
    assert [r.action for r in open_store(settings).audit_log()] == ["login"]


def test_conversations_ignore_dates_and_categories_that_are_not_valid(
    start: Callable[..., Console],
) -> None:
    client, settings, _ = start()
    add_user(settings)
    missed_chat(client)
    login(client)
    page = client.get("/console/conversations?from=2027-13-40&to=yesterday&category=spam")
    assert page.status_code == 200 and "Dusan Kmet" in page.text
    assert 'name="from" value=""' in page.text and 'name="to" value=""' in page.text
    narrowed = client.get("/console/conversations?from=2099-01-01&category=missed")
    assert "Dusan Kmet" not in narrowed.text and 'value="2099-01-01"' in narrowed.text


def test_a_stored_body_that_no_longer_parses_is_listed_without_its_transcript(
    start: Callable[..., Console],
) -> None:
    client, settings, clock = start()
    add_user(settings)
    store = open_store(settings)
    accepted = store.accept(bare_intake(5, b'{"not": "a smartsupp body"}'), now=clock.now)
    store.close()
    login(client)
    page = client.get(f"/console/conversations/{accepted.conversation_id}")
    assert page.status_code == 200 and "1-5" in page.text
    assert "<h2>Transcript</h2>\n<p>Nothing here.</p>" in page.text
    stats = client.get("/console/stats")  # its rating is unknown: counted, not rated
    assert stats.status_code == 200 and "<svg" in stats.text


def test_replay_plans_the_conversations_deliveries_again_and_they_are_sent(
    start: Callable[..., Console], smtp_server: SmtpServer
) -> None:
    rules = [{"name": "all-by-email", "actions": [{"type": "email", "to": ["ops@shop.test"]}]}]
    smtp = {"host": "127.0.0.1", "port": smtp_server.port, "from_address": "Relay <r@shop.test>"}
    client, settings, _ = start(smtp=smtp, rules=rules)
    add_user(settings)
    missed_chat(client)
    smtp_server.handler.wait_for(1)
    (conversation,) = open_store(settings).find_conversations()
    login(client)
    csrf = csrf_of(client.get(f"/console/conversations/{conversation.id}").text)
    answer = client.post(
        f"/console/conversations/{conversation.id}/replay",
        data={"csrf": csrf},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert location == f"/console/conversations/{conversation.id}?said=replayed&count=1"
    assert message(client.get(location).text) == "1 deliveries planned again."
    again = smtp_server.handler.wait_for(2)
    assert [m.rcpt_tos for m in again] == [["ops@shop.test"], ["ops@shop.test"]]
    replayed = open_store(settings).audit_log()[0]
    assert (replayed.action, replayed.detail) == ("replay", "1 planned")


def test_replay_without_rules_plans_nothing(start: Callable[..., Console]) -> None:
    client, settings, _ = start()
    add_user(settings)
    assert client.post(f"/hooks/smartsupp/{TOKEN}", content=body(sample("v1"))).status_code == 200
    (conversation,) = open_store(settings).find_conversations()
    login(client)
    csrf = csrf_of(client.get("/console/rules").text)
    answer = client.post(f"/console/conversations/{conversation.id}/replay", data={"csrf": csrf})
    assert message(answer.text) == "0 deliveries planned again."
    assert open_store(settings).deliveries(("pending", "sent")) == []


def test_the_rules_test_explains_a_pasted_body_and_refuses_what_does_not_parse(
    start: Callable[..., Console],
) -> None:
    client, settings, _ = start()
    add_user(settings)
    login(client)
    csrf = csrf_of(client.get("/console/rules").text)
    data = sample("v1")
    data["channel"]["isMissed"] = True
    pasted = client.post("/console/rules/test", data={"csrf": csrf, "body": body(data).decode()})
    assert pasted.status_code == 200 and "Explanation" in pasted.text
    assert "missed" in pasted.text
    broken = client.post("/console/rules/test", data={"csrf": csrf, "body": "{not json"})
    assert broken.status_code == 422
    assert message(broken.text).startswith("Still refused: invalid_json")
    assert "{not json" in broken.text  # kept in the form to correct
    for picked in ("123", "abc"):
        missing = client.post("/console/rules/test", data={"csrf": csrf, "conversation": picked})
        assert missing.status_code == 404
        assert message(missing.text) == f"No stored conversation {picked}."
    assert open_store(settings).find_conversations() == []  # nothing pasted was stored


def test_a_corrected_body_is_accepted_its_deliveries_sent_and_the_entry_dropped(
    start: Callable[..., Console], smtp_server: SmtpServer
) -> None:
    rules = [{"name": "all-by-email", "actions": [{"type": "email", "to": ["ops@shop.test"]}]}]
    smtp = {"host": "127.0.0.1", "port": smtp_server.port, "from_address": "Relay <r@shop.test>"}
    client, settings, _ = start(smtp=smtp, rules=rules)
    add_user(settings)
    broken = sample("v1")
    del broken["accountId"]
    assert client.post(f"/hooks/smartsupp/{TOKEN}", content=body(broken)).status_code == 400
    (entry,) = open_store(settings).quarantined()
    login(client)
    csrf = csrf_of(client.get(f"/console/quarantine/{entry.id}").text)
    fixed = body(sample("v1")).decode()
    answer = client.post(
        f"/console/quarantine/{entry.id}/reaccept", data={"csrf": csrf, "body": fixed}
    )
    assert answer.status_code == 200
    assert message(answer.text) == ("Accepted as conversation 208-55039 (version 1), 1 deliveries.")
    (sent,) = smtp_server.handler.wait_for(1)
    assert sent.rcpt_tos == ["ops@shop.test"]
    assert open_store(settings).quarantined() == []
    audit = open_store(settings).audit_log()[0]
    assert (audit.action, audit.detail) == ("reaccept", "conversation 208-55039 (corrected)")


def test_a_visitor_name_or_email_that_is_not_utf8_as_stored_is_listed_not_a_500(
    start: Callable[..., Console],
) -> None:
    """A visitor's name or email written as a lone surrogate escape ("\\ud800": JSON the hook
    accepts) is text SQLite's JSON functions give back as bytes that are not UTF-8: the
    conversation list, its search and the conversation's page still answer, showing the
    replacement character where those bytes are."""
    client, settings, _ = start()
    add_user(settings)
    data = sample("v1")
    data["channel"]["id"] = 7
    data["visitor"]["name"] = "Jana \ud800"
    data["visitor"]["email"] = "jana\ud800@example.com"
    raw = json.dumps(data).encode()  # ensure_ascii: the surrogate as its \ud800 escape
    assert b"\\ud800" in raw
    assert client.post(f"/hooks/smartsupp/{TOKEN}", content=raw).status_code == 200
    login(client)
    listed = client.get("/console/conversations")
    assert listed.status_code == 200, listed.text
    found = client.get("/console/conversations?q=jana")
    assert found.status_code == 200 and "Jana \ufffd" in found.text
    row = re.search(r'href="/console/conversations/(\d+)"', found.text)
    assert row is not None, found.text
    page = client.get(f"/console/conversations/{row.group(1)}")
    assert page.status_code == 200 and "Jana \ufffd" in page.text
