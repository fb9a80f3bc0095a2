"""Chromium, as the browser tests start it, reaches nothing off loopback: an off-loopback name in
a page and the browser's own background fetches resolve to nothing without any DNS lookup, while
loopback (by address and as localhost) still works. Observed in Chromium's network log."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from tests.support.chromium import OFFLINE_ARGS, NetLog, require_chromium, screenshot

OFF_LOOPBACK = "relay-offline-check.example"
PIXEL = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00"
    b"\x00\x00IEND\xaeB`\x82"
)


class Site:
    """A page on 127.0.0.1 with one image from localhost and one from an off-loopback name."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.paths.append(self.path)
                if self.path == "/page.html":
                    port = self.server.server_address[1]
                    page = (
                        f"<html><body><p>offline check</p>"
                        f'<img id="near" src="http://localhost:{port}/pixel.png">'
                        f'<img id="far" src="http://{OFF_LOOPBACK}/pixel.png">'
                        f'<link rel="dns-prefetch" href="//prefetch.{OFF_LOOPBACK}">'
                        f"</body></html>"
                    ).encode()
                    self._answer(page, "text/html")
                else:
                    self._answer(PIXEL, "image/png")

            def _answer(self, data: bytes, kind: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/page.html"

    def __enter__(self) -> Site:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site() -> Iterator[Site]:
    with Site() as running:
        yield running


def assert_offline(log: NetLog) -> None:
    # The off-loopback names went through the rules: mapped to ~NOTFOUND, never looked up.
    assert "~notfound" in log.resolved
    assert OFF_LOOPBACK not in log.resolved
    assert "localhost" in log.resolved  # the log does record names that are resolved
    assert list(log.off_loopback()) == []
    assert log.lookups == []
    assert log.udp_sent == 0
    assert any(address.startswith("127.0.0.1:") for address in log.connects)  # the page


@pytest.mark.slow
def test_headless_screenshots_resolve_only_loopback(tmp_path: Path, site: Site) -> None:
    binary = require_chromium()
    net_log = tmp_path / "net-log.json"
    screenshot(site.url, tmp_path / "page.png", tmp_path / "profile", binary, net_log=net_log)
    assert site.paths[0] == "/page.html"
    assert "/pixel.png" in site.paths  # from localhost: loopback names still resolve
    assert_offline(NetLog.read(net_log))


@pytest.mark.slow
def test_playwright_browser_resolves_only_loopback(tmp_path: Path, site: Site) -> None:
    binary = require_chromium()
    net_log = tmp_path / "net-log.json"
    failed: dict[str, str | None] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=binary, args=[*OFFLINE_ARGS, f"--log-net-log={net_log}"]
        )
        try:
            page = browser.new_page()
            page.on("requestfailed", lambda request: failed.update({request.url: request.failure}))
            page.goto(site.url, wait_until="load")
            assert page.evaluate("document.getElementById('near').naturalWidth") == 1
            assert page.evaluate("document.getElementById('far').naturalWidth") == 0
        finally:
            browser.close()
    assert failed == {f"http://{OFF_LOOPBACK}/pixel.png": "net::ERR_NAME_NOT_RESOLVED"}
    assert_offline(NetLog.read(net_log))
