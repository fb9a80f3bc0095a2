"""Regenerate docs/screenshots/<case>-<width>.png: the HTML email in Chromium at 1280 and 375 px
for each category, a right-to-left visitor and an anonymous one.

Usage: .venv/bin/python bench/screenshots.py [--locale en]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from relay.intake.payload import parse  # noqa: E402 -- as above
from relay.model.category import Category  # noqa: E402 -- after the sys.path set-up above
from tests.support.chromium import chromium, screenshot  # noqa: E402 -- as above
from tests.support.render import (  # noqa: E402 -- after the sys.path set-up above
    EMAIL_ACTION,
    MESSAGE_ID,
    category_body,
    renderer_for,
)

WIDTHS = {1280: 1400, 375: 1600}  # window width: height
# An example deployment's link back to the conversation (render.conversation_url).
CONVERSATION_URL = "https://app.smartsupp.example/conversations/{chat_id}"


def rtl_body() -> dict[str, Any]:
    data = category_body(Category.MISSED)
    name = "محمد العلي"
    data["visitor"].update(name=name, city="الرياض", country="Saudi Arabia", countryCode="SA")
    for message in data["messages"]:
        if message["type"] == "visitor":
            message["name"] = name
    data["messages"][1]["content"] = (
        "مرحبا، أريد طلب الباقة الاحترافية. اتصل بي على +966 50 123 4567"
    )
    return data


def anonymous_body() -> dict[str, Any]:
    data = category_body(Category.OFFLINE)
    data["visitor"].update(name=None, email=None, note=None)
    data["messages"][0].update(name=None, email=None)
    data["messages"][0]["content"] = (
        "Your checkout fails with <b>error 502</b> when I pay by card, see "
        "https://shop.example/checkout?step=3 — please fix it, I tried three times."
    )
    return data


def cases() -> dict[str, tuple[dict[str, Any], Category]]:
    found = {category.value: (category_body(category), category) for category in Category}
    found["rtl"] = (rtl_body(), Category.MISSED)
    found["anonymous"] = (anonymous_body(), Category.OFFLINE)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--locale", default="en", choices=["en", "cs", "de"])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    arguments = parser.parse_args()
    binary = chromium()
    if binary is None:
        raise SystemExit("chromium is not installed")
    arguments.out.mkdir(parents=True, exist_ok=True)
    renderer = renderer_for(arguments.locale, conversation_url=CONVERSATION_URL)
    suffix = "" if arguments.locale == "en" else f".{arguments.locale}"
    with tempfile.TemporaryDirectory() as scratch:
        for name, (data, category) in cases().items():
            conversation = parse(json.dumps(data).encode())
            content = renderer.email(conversation, category, EMAIL_ACTION, message_id=MESSAGE_ID)
            html_part = content.message.get_body(("html",))
            assert html_part is not None
            page = Path(scratch) / f"{name}.html"
            page.write_text(str(html_part.get_content()), encoding="utf-8")
            for width, height in WIDTHS.items():
                png = arguments.out / f"{name}-{width}{suffix}.png"
                profile = Path(scratch) / "profile"
                screenshot(page, png, profile, binary, window=(width, height))
                print(f"wrote {png.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
