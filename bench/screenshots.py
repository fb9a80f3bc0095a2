"""Regenerate docs/screenshots/<category>.png: the English HTML email per category in Chromium.

Usage: .venv/bin/python bench/screenshots.py [--locale en]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from relay.model.category import Category  # noqa: E402 -- after the sys.path set-up above
from tests.conftest_render import (  # noqa: E402 -- after the sys.path set-up above
    EMAIL_ACTION,
    MESSAGE_ID,
    conversation_for,
    renderer_for,
)
from tests.test_render_screenshot import chromium, screenshot  # noqa: E402 -- as above


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--locale", default="en", choices=["en", "cs", "de"])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    arguments = parser.parse_args()
    binary = chromium()
    if binary is None:
        raise SystemExit("chromium is not installed")
    arguments.out.mkdir(parents=True, exist_ok=True)
    renderer = renderer_for(arguments.locale)
    with tempfile.TemporaryDirectory() as scratch:
        for category in Category:
            content = renderer.email(
                conversation_for(category), category, EMAIL_ACTION, message_id=MESSAGE_ID
            )
            html_part = content.message.get_body(("html",))
            assert html_part is not None
            page = Path(scratch) / f"{category.value}.html"
            page.write_text(str(html_part.get_content()), encoding="utf-8")
            suffix = "" if arguments.locale == "en" else f".{arguments.locale}"
            png = arguments.out / f"{category.value}{suffix}.png"
            screenshot(page, png, Path(scratch) / "profile", binary)
            print(f"wrote {png.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
