"""The email templates' ``nl2br`` and ``linkify`` filters (one-line texts escaped without
splitting them) give exactly what splitting every text into lines gives, hostile text
included."""

from __future__ import annotations

import random

from markupsafe import Markup, escape

from relay.render.environment import linkify, nl2br

PIECES = (
    "a",
    " ",
    "\n",
    "\r",
    "\r\n",
    "\u2028",
    "\x0b",
    "<script>",
    "&amp;",
    '"',
    "'",
    "é",
    "https://shop.example/a?b=1&c=<2>",
    "javascript:alert(1)",
)


def split_nl2br(text: object) -> Markup:
    """``nl2br`` as it was: every text split into its lines, each escaped."""
    lines = str(text).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return Markup("<br>\n").join(escape(line) for line in lines)


class Shown:
    def __str__(self) -> str:
        return "<b>shown</b>"


def test_nl2br_and_linkify_give_what_splitting_every_text_gives() -> None:
    rng = random.Random(31)  # noqa: S311 -- test data
    texts: list[object] = ["", "one line", "<b>x</b>", Markup("<b>x</b>"), Shown(), 5, None]
    texts += ["".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 12))) for _ in range(3000)]
    for text in texts:
        expected = split_nl2br(text)
        found = nl2br(text)
        assert type(found) is Markup
        assert found == expected, repr(text)
        if "://" not in str(text):
            assert linkify(text, "color: red") == expected, repr(text)
