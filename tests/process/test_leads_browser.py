"""In headless Chromium against a real `relay serve`: open the claim link from the email, enter
a name, claim. The browser makes no request off loopback; the confirm page is shot at 375 px."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import sync_playwright

from tests.support.chromium import OFFLINE_ARGS, require_chromium
from tests.support.config import write_config
from tests.support.data import TOKEN, body, sample
from tests.support.leads import LINK, follow_up
from tests.support.paths import DOCS
from tests.support.process import RelayProcess
from tests.support.smtp import SmtpServer, free_port

SCREENSHOT = DOCS / "screenshots" / "lead-confirm.png"


@pytest.mark.slow
def test_claim_in_a_real_browser(tmp_path: Path, smtp_server: SmtpServer) -> None:
    binary = require_chromium()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config, _ = write_config(
        tmp_path,
        server={"port": port},
        smtp={"host": "127.0.0.1", "port": smtp_server.port},
        follow_up=follow_up(public_url=base),
    )
    data = sample("v1")
    data["channel"]["isMissed"] = True
    requested: list[str] = []
    with RelayProcess(config, port), sync_playwright() as playwright:
        import httpx  # noqa: PLC0415

        posted = httpx.post(f"{base}/hooks/smartsupp/{TOKEN}", content=body(data))
        assert posted.status_code == 200
        (email,) = smtp_server.handler.wait_for(1)
        html_part = email.message.get_body(preferencelist=("html",))
        assert html_part is not None
        found = LINK.search(html_part.get_content())
        assert found is not None and found.group(0).startswith(f"{base}/leads/c")
        browser = playwright.chromium.launch(executable_path=binary, args=OFFLINE_ARGS)
        try:
            page = browser.new_page(viewport={"width": 375, "height": 720}, locale="en-US")
            page.on("request", lambda request: requested.append(request.url))
            page.goto(found.group(0))
            assert page.locator("h1").inner_text() == "Take this lead?"
            # Usable at 375 px: nothing wider than the viewport.
            assert page.evaluate("document.documentElement.scrollWidth") <= 375
            shot = page.screenshot(full_page=True)
            assert len(shot) > 5_000
            (tmp_path / "lead-confirm.png").write_bytes(shot)
            if os.environ.get("RELAY_WRITE_SCREENSHOTS") == "1":
                SCREENSHOT.write_bytes(shot)
            page.fill("#name", "Jana Nová")
            page.click("button[type=submit]")
            page.wait_for_selector("p.msg")
            assert "It is yours, Jana Nová" in page.locator("p.msg").inner_text()
            # Opened again, the page remembers who took it; the same browser cannot claim twice.
            page.goto(found.group(0))
            assert "Already taken by Jana Nová" in page.locator("p.msg").inner_text()
        finally:
            browser.close()
    from click.testing import CliRunner  # noqa: PLC0415

    from relay.cli import main  # noqa: PLC0415

    listed = CliRunner().invoke(main, ["leads", "--state", "claimed", "--config", str(config)])
    assert "claimed by Jana Nová" in listed.output
    hosts = {urlsplit(url).hostname for url in requested}
    assert hosts == {"127.0.0.1"}, requested
