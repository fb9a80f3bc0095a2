"""The HTML email renders in headless Chromium to a real, non-trivial PNG."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from relay.model.category import Category
from tests.support.chromium import WINDOW, require_chromium, screenshot
from tests.support.render import EMAIL_ACTION, MESSAGE_ID, conversation_for, renderer_for

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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
    binary = require_chromium()
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
