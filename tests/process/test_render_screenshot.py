"""The HTML email renders in headless Chromium to a real, non-trivial PNG."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from relay.model.category import Category
from tests.support.render import EMAIL_ACTION, MESSAGE_ID, conversation_for, renderer_for

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WINDOW = (800, 1400)


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def screenshot(
    html: Path, png: Path, profile: Path, binary: str, window: tuple[int, int] = WINDOW
) -> None:
    """Render ``html`` with headless Chromium, offline, into ``png`` (``window`` in px)."""
    subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--screenshot={png}",
            f"--window-size={window[0]},{window[1]}",
            html.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which must follow the signature."""
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR"
    assert length == 13
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.parametrize("category", [Category.MISSED, Category.LOW_RATED], ids=str)
def test_html_email_renders_in_chromium(category: Category, tmp_path: Path) -> None:
    binary = chromium()
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed but CI=true requires the screenshot test")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    content = renderer_for().email(
        conversation_for(category), category, EMAIL_ACTION, message_id=MESSAGE_ID
    )
    html_part = content.message.get_body(("html",))
    assert html_part is not None
    page = tmp_path / "email.html"
    page.write_text(str(html_part.get_content()), encoding="utf-8")
    png = tmp_path / "email.png"
    screenshot(page, png, tmp_path / "profile", binary)
    data = png.read_bytes()
    assert len(data) > 20_000, "the screenshot is suspiciously small (blank page?)"
    assert png_size(data) == WINDOW
