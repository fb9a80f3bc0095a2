"""Time the HTML transcript email for a 2,000-message chat against baselines in the same run.

Usage: .venv/bin/python bench/render.py [--messages 2000] [--repeat 7]

Cases (median of --repeat runs each, after one warm-up):
  email-small   Renderer.email() for a 20-message chat (HTML with CSS inlined + text + headers)
  email-small-per-email-css  the same with the CSS inlined into each email (as before the
                template was inlined once at load)
  email-large   the same for the --messages chat
  html-raw      the large chat's HTML template only, without css-inline
  html-inlined  the large chat's HTML template plus css_inline
  slack-large   Renderer.slack() for the large chat
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from relay.model.category import Category  # noqa: E402 -- after the sys.path set-up above
from relay.render.view import build_view  # noqa: E402 -- as above
from tests.support.render import (  # noqa: E402 -- as above
    EMAIL_ACTION,
    MESSAGE_ID,
    SLACK_ACTION,
    long_conversation,
    renderer_for,
)


def median_ms(run: Callable[[], object], repeat: int) -> float:
    run()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=7)
    arguments = parser.parse_args()
    renderer = renderer_for("en")
    per_email = renderer_for("en")
    per_email._inlined.clear()  # the bench reaches in: inline every email, as before
    small = long_conversation(20)
    large = long_conversation(arguments.messages)
    category = Category.LOW_RATED
    # The bench reaches into the renderer to time the template without css-inline.
    template = renderer._email_env.get_template("email/transcript.html.j2")
    translator = renderer._translator

    def raw_html() -> str:
        view = build_view(large, category, translator)
        return template.render(renderer._variables(large, category, view))

    cases: dict[str, Callable[[], object]] = {
        "email-small": lambda: renderer.email(small, category, EMAIL_ACTION, message_id=MESSAGE_ID),
        "email-small-per-email-css": lambda: per_email.email(
            small, category, EMAIL_ACTION, message_id=MESSAGE_ID
        ),
        "email-large": lambda: renderer.email(large, category, EMAIL_ACTION, message_id=MESSAGE_ID),
        "html-raw": raw_html,
        "html-inlined": lambda: renderer.inline_css(raw_html()),
        "slack-large": lambda: renderer.slack(large, category, SLACK_ACTION),
    }
    results = {name: median_ms(run, arguments.repeat) for name, run in cases.items()}
    html_bytes = len(renderer.inline_css(raw_html()).encode())
    print(
        f"messages={arguments.messages} repeat={arguments.repeat} python={sys.version.split()[0]}"
    )
    for name, ms in results.items():
        print(f"{name:<26} {ms:9.1f} ms")
    print(f"inlined HTML size for {arguments.messages} messages: {html_bytes / 1024:.0f} KiB")
    inline_ratio = results["html-inlined"] / results["html-raw"]
    size_ratio = results["email-large"] / results["email-small"]
    print(f"css-inline cost: html-inlined / html-raw = {inline_ratio:.2f}x")
    once = results["email-small-per-email-css"] / results["email-small"]
    print(f"inlined at load: email-small-per-email-css / email-small = {once:.2f}x")
    print(f"size cost: email-large / email-small = {size_ratio:.1f}x")
    print(f"slack-large / email-large = {results['slack-large'] / results['email-large']:.3f}x")


if __name__ == "__main__":
    main()
