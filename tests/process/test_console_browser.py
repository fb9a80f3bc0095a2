"""The console in headless Chromium against a real `relay serve` and a real aiosmtpd: sign in,
claim a missed-chat lead, open its conversation, retry a dead delivery (then received), re-accept
a corrected quarantined body, sign out; a POST without a CSRF token is refused; five wrong
passwords are slowed down. Every page (a refusal page too) is shot at 1280 and 375 px and
checked with axe-core at both widths. The browser makes no request off loopback."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from click.testing import CliRunner
from playwright.sync_api import Page, sync_playwright

from relay.cli import main
from relay.store.opening import open_store
from tests.support.chromium import OFFLINE_ARGS, require_chromium
from tests.support.config import write_config
from tests.support.data import TOKEN, body, sample
from tests.support.paths import DOCS
from tests.support.process import RelayProcess
from tests.support.smtp import SmtpServer, free_port

PASSWORD = "a long console password"
WIDTHS = (1280, 375)
SERIOUS = {"serious", "critical"}


def shoot(page: Page, name: str, tmp_path: Path) -> None:
    """The page at each width: nothing wider than 375 px, a screenshot (into docs/screenshots
    with RELAY_WRITE_SCREENSHOTS=1)."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        if width == 375:
            overflow = page.evaluate("document.documentElement.scrollWidth")
            assert overflow <= 375, f"{name} is {overflow} px wide at 375 px"
        shot = page.screenshot(full_page=True)
        assert len(shot) > 5_000
        file = f"console-{name}-{width}.png"
        (tmp_path / file).write_bytes(shot)
        if os.environ.get("RELAY_WRITE_SCREENSHOTS") == "1":
            (DOCS / "screenshots" / file).write_bytes(shot)
    page.set_viewport_size({"width": 1280, "height": 900})


def accessible(page: Page, name: str, axe: Axe) -> None:
    """axe-core at each width: no serious or critical violation."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        results = axe.run(page)
        serious = [v for v in results.response["violations"] if v["impact"] in SERIOUS]
        assert not serious, f"{name} at {width} px: " + results.generate_report()
    page.set_viewport_size({"width": 1280, "height": 900})


def keyboard_reaches(page: Page, selector: str) -> None:
    """Tab from the top of the page until ``selector`` has the focus (it is reachable)."""
    page.locator("body").focus()
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate(f"document.activeElement.matches({json.dumps(selector)})"):
            return
    pytest.fail(f"{selector} cannot be reached with the keyboard")


@pytest.mark.slow
def test_console_in_a_real_browser(tmp_path: Path, smtp_server: SmtpServer) -> None:
    binary = require_chromium()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config, settings = write_config(
        tmp_path,
        server={"port": port},
        smtp={"host": "127.0.0.1", "port": smtp_server.port},
    )
    added = CliRunner().invoke(
        main, ["user", "add", "jana", "--config", str(config)], input=PASSWORD + "\n"
    )
    assert added.exit_code == 0, added.output
    # The missed chat's email is refused for good the first time: its delivery is dead.
    smtp_server.handler.data_replies.append("550 5.1.1 mailbox unavailable")
    missed = sample("v1")
    missed["channel"]["isMissed"] = True
    # A body that a Smartsupp change broke: the channel id arrives as text.
    broken = sample("v1")
    broken["channel"]["id"] = 991
    broken["visitor"]["name"] = "Eva Svobodová"
    broken["visitor"]["email"] = "eva@example.com"
    broken["channel"]["rating"] = "five"
    # A body refused before an upgrade that takes it as it is, laid out as a text area changes
    # it (a leading newline, LF and CR LF line ends): re-accepted unedited, byte for byte.
    fixed = sample("v1")
    fixed["channel"]["id"] = 992
    fixed["visitor"]["name"] = "Ota Fixed"
    awkward = ("\n" + json.dumps(fixed, indent=2).replace("\n", "\r\n", 4)).encode()
    store = open_store(settings)
    try:
        kept_id = store.quarantine(
            "invalid_json", "refused before an upgrade", awkward, "127.0.0.1",
            max_rows=100, max_bytes=1_000_000, max_body=1_000_000,
        )  # fmt: skip
    finally:
        store.close()
    requested: list[str] = []
    with RelayProcess(config) as relay, sync_playwright() as playwright:
        assert httpx.post(f"{base}/hooks/smartsupp/{TOKEN}", content=body(missed)).is_success
        refused = httpx.post(f"{base}/hooks/smartsupp/{TOKEN}", content=body(broken))
        assert refused.status_code == 400 and refused.json()["error"] == "wrong_type"
        smtp_server.handler.wait_for_attempts(1)
        browser = playwright.chromium.launch(executable_path=binary, args=OFFLINE_ARGS)
        try:
            # bypass_csp: axe-core is injected by the test; the pages themselves run no script.
            context = browser.new_context(
                viewport={"width": 1280, "height": 900}, locale="en-US", bypass_csp=True
            )
            page = context.new_page()
            page.on("request", lambda request: requested.append(request.url))
            axe = Axe()

            page.goto(f"{base}/console/leads")
            assert page.url.endswith("/console/login")
            shoot(page, "login", tmp_path)
            accessible(page, "login", axe)
            page.fill("#user", "jana")
            page.fill("#password", PASSWORD)
            page.click("main button[type=submit]")
            assert page.url.endswith("/console/leads")
            row = page.locator("tr", has_text="Dusan Kmet")
            assert "Missed chat" in row.inner_text()
            shoot(page, "leads", tmp_path)
            accessible(page, "leads", axe)
            keyboard_reaches(page, "form[action$='/claim'] button")
            page.keyboard.press("Enter")  # claimed with the keyboard
            page.wait_for_selector("p.msg")
            assert "is yours" in page.locator("p.msg").inner_text()
            claimed = page.locator("tr", has_text="Dusan Kmet").inner_text()
            assert "jana" in claimed

            page.click("tr:has-text('Dusan Kmet') >> text=Conversation")
            assert "/console/conversations/" in page.url
            conversation_url = page.url
            assert page.locator("ol.transcript li").count() > 0
            assert "550 5.1.1 mailbox unavailable" in page.locator("ol.timeline").inner_text()
            shoot(page, "conversation", tmp_path)
            accessible(page, "conversation", axe)

            page.goto(f"{base}/console/queue")
            dead = page.locator("tr", has_text="550 5.1.1").filter(has=page.locator("button"))
            assert "Dead" in dead.inner_text()
            assert "email" in page.locator("table").first.inner_text()  # destination health
            shoot(page, "queue", tmp_path)
            accessible(page, "queue", axe)
            dead.locator("button", has_text="Retry").click()
            assert "1 deliveries scheduled for retry" in page.locator("p.msg").inner_text()
            (sent,) = smtp_server.handler.wait_for(1)
            assert "Dusan Kmet" in sent.message.get_body(preferencelist=("plain",)).get_content()
            # The conversation's timeline lists both attempts: refused for good, then sent.
            relay.wait_for_line("delivery 1 sent")  # logged once recorded
            page.goto(conversation_url)
            attempts = page.locator("ol.attempts li").all_inner_texts()
            assert "failed, given up" in attempts[0] and "550 5.1.1" in attempts[0]
            assert "sent" in attempts[1]

            page.goto(f"{base}/console/quarantine")
            assert "wrong_type" in page.locator("table").inner_text()
            shoot(page, "quarantine", tmp_path)
            accessible(page, "quarantine", axe)
            page.click("tr:has-text('wrong_type') >> text=View")
            shown = page.locator("#body").input_value()
            assert '"five"' in shown
            shoot(page, "quarantine-entry", tmp_path)
            accessible(page, "quarantine-entry", axe)
            page.click("button:has-text('Re-accept as stored')")  # its cause is not fixed
            assert "Still refused: wrong_type" in page.locator("p.msg").inner_text()
            page.fill("#body", shown.replace('"five"', "5"))
            page.click("button:has-text('Re-accept as edited')")
            assert "Accepted as conversation" in page.locator("p.msg").inner_text()
            assert "wrong_type" not in page.locator("main").inner_text()
            # The text area left as it is: the stored bytes, not a correction.
            page.goto(f"{base}/console/quarantine/{kept_id}")
            assert page.locator("#body").input_value() == awkward.decode().replace("\r\n", "\n")
            page.click("button:has-text('Re-accept as edited')")
            assert "Accepted as conversation 208-992" in page.locator("p.msg").inner_text()

            page.goto(f"{base}/console/conversations?q=svobodov")
            assert "Eva Svobodová" in page.locator("table").inner_text()
            shoot(page, "conversations", tmp_path)
            accessible(page, "conversations", axe)

            page.goto(f"{base}/console/rules")
            page.fill("#conversation", "1")
            page.click("button:has-text('Explain')")
            assert "matched" in page.locator("pre").inner_text()
            shoot(page, "rules", tmp_path)
            accessible(page, "rules", axe)

            page.goto(f"{base}/console/stats")
            assert page.locator("svg.chart").count() == 4
            shoot(page, "stats", tmp_path)
            accessible(page, "stats", axe)

            page.goto(f"{base}/console/audit")
            log = page.locator("table").inner_text()
            for action in ("login", "claim", "retry", "reaccept-refused", "reaccept"):
                assert f"\t{action}\t" in log, log
            shoot(page, "audit", tmp_path)
            accessible(page, "audit", axe)

            # The console's own refusal (an id that is no number): a console page, not JSON.
            refused_page = page.goto(f"{base}/console/conversations/not-a-number")
            assert refused_page is not None and refused_page.status == 404
            assert "text/html" in refused_page.headers["content-type"]
            assert page.locator("header nav").count() == 1
            shoot(page, "not-found", tmp_path)
            accessible(page, "not-found", axe)

            # In Czech and German too (Accept-Language), still no wider than the phone.
            for language, word in (("cs", "Kontakty"), ("de", "Warteschlange")):
                other = browser.new_context(
                    viewport={"width": 375, "height": 800},
                    locale=language,
                    storage_state=context.storage_state(),
                )
                foreign = other.new_page()
                foreign.on("request", lambda request: requested.append(request.url))
                foreign.goto(f"{base}/console/queue")
                assert word in foreign.locator("nav").inner_text()
                assert foreign.evaluate("document.documentElement.scrollWidth") <= 375
                other.close()

            # A POST without the CSRF token, with the session cookie: refused, nothing changed.
            forged = page.request.post(
                f"{base}/console/leads/1/done", form={"note": "forged"}, max_redirects=0
            )
            assert forged.status == 403

            (session,) = [c for c in context.cookies() if c["name"] == "relay_console"]
            page.click("header button:has-text('Sign out')")
            assert page.url.endswith("/console/login")
            page.goto(f"{base}/console/leads")
            assert page.url.endswith("/console/login")
            # A copy of the cookie taken before signing out is no session any more.
            copied = httpx.get(f"{base}/console/leads", cookies={"relay_console": session["value"]})
            assert copied.status_code == 303 and copied.headers["location"] == "/console/login"

            # Five wrong passwords: the sixth attempt is answered 429 with Retry-After.
            answers: list[Any] = []

            def remember(response: Any) -> None:  # playwright takes no bound builtin
                answers.append(response)

            page.on("response", remember)
            for _ in range(5):
                page.fill("#user", "jana")
                page.fill("#password", "not the password")
                page.click("main button[type=submit]")
                assert "Wrong user name or password" in page.locator("p.msg").inner_text()
            page.fill("#user", "jana")
            page.fill("#password", PASSWORD)
            page.click("main button[type=submit]")
            assert "Too many wrong passwords" in page.locator("p.msg").inner_text()
            last = [r for r in answers if r.url.endswith("/console/login")][-1]
            assert last.status == 429 and int(last.headers["retry-after"]) > 0

            # The check can fail: a button without a name is a critical violation to axe.
            page.set_content("<!DOCTYPE html><html lang=en><title>t</title><button></button>")
            with pytest.raises(AssertionError, match="button-name"):
                accessible(page, "a nameless button", axe)
        finally:
            browser.close()
    store = open_store(settings)
    try:
        (lead,) = store.leads()
        assert (lead.state.value, lead.claimed_by) == ("claimed", "jana")
        assert store.quarantined() == []
        version = store.latest_version_id("208-992")
        assert version is not None
        stored = store.conversation_raw(version)
        assert stored is not None and stored[0] == awkward
        details = [row.detail for row in store.audit_log() if row.action == "reaccept"]
        assert "conversation 208-992" in details
        assert {row.visitor_name for row in store.find_conversations()} == {
            "Dusan Kmet",
            "Eva Svobodová",
            "Ota Fixed",
        }
    finally:
        store.close()
    hosts = {urlsplit(url).hostname for url in requested}
    assert hosts == {"127.0.0.1"}, requested
