"""The MIME tree the renderer builds directly: the same structure, encodings and decoded
content the stdlib's set_content/add_alternative/add_attachment give, a size estimate that is
never below the real size, and content that survives the render pool's pickling."""

from __future__ import annotations

import binascii
import copy
import email.policy
import json
import pickle
import random
import re
from email import message_from_bytes
from email.message import EmailMessage

import pytest

from relay.intake.payload import parse
from relay.model.category import Category
from relay.render.headers import flatten
from relay.render.mime import (
    QP_LINE_KEPT_LONGEST,
    QP_LINES_KEPT,
    QP_LONG_LINE_KEPT_LONGEST,
    QP_LONG_LINES_KEPT,
    MimeBuilder,
    qp_line,
    text_payload,
    unsafe_fold,
)
from relay.render.renderer import flattened_size
from tests.support.render import (
    EMAIL_ACTION,
    MESSAGE_ID,
    category_body,
    conversation_for,
    long_conversation,
    renderer_for,
)

TEXTS = {
    "ascii short lines": "Hello\nHow are you?\n",
    "8bit short lines": "Dobrý den, Příliš žluťoučký kůň\nÄrger über Öl\n",
    "ascii long line": "x = 1; " * 40,
    "latin long line": "Příliš žluťoučký kůň úpěl ďábelské ódy. " * 10,
    "arabic long line": "مرحبا، أريد طلب الباقة الاحترافية " * 10,
    "no final newline, CR and NUL": "a\r\nb\rc\x00d" + "=" * 100,
}


def lf(text: str) -> str:
    """Line ends as the renderer wrote them (the wire has CRLF)."""
    return text.replace("\r\n", "\n")


@pytest.mark.parametrize("text", TEXTS.values(), ids=TEXTS.keys())
def test_text_parts_encode_as_the_stdlib_chooses_and_decode_back(text: str) -> None:
    stdlib = EmailMessage(policy=email.policy.SMTP)
    stdlib.set_content(text)
    cte, _ = text_payload(text, 78)
    assert cte == stdlib["Content-Transfer-Encoding"]
    part = MimeBuilder().text_part(text, "plain")
    assert part.get_content() == stdlib.get_content()
    # As sent (CRLF line ends) and read back by a mail program.
    parsed = message_from_bytes(part.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert lf(parsed.get_content()) == lf(stdlib.get_content())
    assert parsed.get_content_type() == "text/plain"
    assert parsed.get_content_charset() == "utf-8"


def structure(message: EmailMessage) -> list[tuple[int, str, str | None]]:
    return [
        (depth, part.get_content_type(), part.get_filename()) for depth, part in walk(message, 0)
    ]


def walk(message: EmailMessage, depth: int) -> list[tuple[int, EmailMessage]]:
    found = [(depth, message)]
    if message.is_multipart():
        for part in message.iter_parts():
            assert isinstance(part, EmailMessage)
            found.extend(walk(part, depth + 1))
    return found


def test_alternative_and_mixed_have_the_stdlib_structure() -> None:
    short = renderer_for().email(
        conversation_for(Category.NORMAL), Category.NORMAL, EMAIL_ACTION, message_id=MESSAGE_ID
    )
    assert structure(short.message) == [
        (0, "multipart/alternative", None),
        (1, "text/plain", None),
        (1, "text/html", None),
    ]
    long = renderer_for().email(
        long_conversation(2_000), Category.LOW_RATED, EMAIL_ACTION, message_id=MESSAGE_ID
    )
    assert structure(long.message) == [
        (0, "multipart/mixed", None),
        (1, "multipart/alternative", None),
        (2, "text/plain", None),
        (2, "text/html", None),
        (1, "text/plain", "transcript.txt"),
    ]
    for content in (short, long):
        message = content.message
        assert message["MIME-Version"] == "1.0"
        sent = message_from_bytes(flatten(message), policy=email.policy.default)
        assert isinstance(sent, EmailMessage)
        for kind in ("plain", "html"):
            before, after = message.get_body((kind,)), sent.get_body((kind,))
            assert before is not None and after is not None
            assert lf(after.get_content()) == before.get_content()


def arabic() -> EmailMessage:
    data = category_body(Category.MISSED)
    data["visitor"].update(name="محمد العلي", city="الرياض")
    data["messages"][1]["content"] = "مرحبا، أريد طلب الباقة الاحترافية " * 40
    conversation = parse(json.dumps(data).encode())
    return (
        renderer_for("cs")
        .email(conversation, Category.MISSED, EMAIL_ACTION, message_id=MESSAGE_ID)
        .message
    )


def test_the_size_estimate_is_never_below_the_flattened_size() -> None:
    renderer = renderer_for()
    messages = [
        renderer.email(conversation_for(c), c, EMAIL_ACTION, message_id=MESSAGE_ID).message
        for c in Category
    ]
    messages.append(
        renderer.email(
            long_conversation(2_000), Category.LOW_RATED, EMAIL_ACTION, message_id=MESSAGE_ID
        ).message
    )
    messages.append(arabic())
    for message in messages:
        estimate = flattened_size(message, renderer._mime.folded)
        assert estimate == flattened_size(copy.deepcopy(message))  # the shared sizes agree
        real = len(flatten(copy.deepcopy(message)))
        assert real <= estimate <= real + 1_000


def test_rendered_content_survives_pickling_for_the_render_pool() -> None:
    content = renderer_for().email(
        conversation_for(Category.MISSED), Category.MISSED, EMAIL_ACTION, message_id=MESSAGE_ID
    )
    copied = pickle.loads(pickle.dumps(content))  # noqa: S301 -- our own object
    assert copied.message["To"] == content.message["To"]
    for kind in ("plain", "html"):
        before, after = content.message.get_body((kind,)), copied.message.get_body((kind,))
        assert before is not None and after is not None
        assert after.get_content() == before.get_content()
    copied.message["X-Test"] = "set after unpickling"  # its policy still makes headers
    assert copied.message["X-Test"] == "set after unpickling"


QP_PIECES = (
    "a",
    " ",
    "\t",
    "=",
    "é",
    "\n",
    "\r",
    "\r\n",
    ".",
    "From ",
    "\x00",
    "x" * 90,
    '<td style="a">',
)


def test_quoted_printable_from_known_lines_is_the_whole_bodys_encoding() -> None:
    rng = random.Random(21)  # noqa: S311 -- test data
    texts = [*TEXTS.values()]
    texts += [
        "".join(rng.choice(QP_PIECES) for _ in range(rng.randrange(0, 60))) for _ in range(3000)
    ]
    known: dict[bytes, bytes] = {}
    for text in texts * 2:  # the second time from what the first encoded
        assert text_payload(text, 78, known) == text_payload(text, 78), repr(text)
    assert 0 < len(known) <= QP_LINES_KEPT


def test_known_quoted_printable_lines_are_bounded() -> None:
    known: dict[bytes, bytes] = {}
    for n in range(QP_LINES_KEPT * 2 + 5):
        assert qp_line(b"=%d" % n, known) == b"=3D%d\n" % n
        assert len(known) <= QP_LINES_KEPT


def test_known_quoted_printable_lines_stay_small_however_long_the_lines() -> None:
    """Hostile conversations of long distinct lines (each one encoded quoted-printable)
    leave the builder's kept lines within a few MB, not QP_LINES_KEPT times the longest."""
    known: dict[bytes, bytes] = {}
    for n in range(QP_LINES_KEPT):  # as many as are kept before they are cleared
        long = b"%d " % n + "é= \t".encode() * 1_000
        for line in (long, long[:QP_LINE_KEPT_LONGEST], long[: QP_LINE_KEPT_LONGEST + 1]):
            assert qp_line(line, known) == binascii.b2a_qp(line + b"\n", istext=True)
    assert sum(len(line) + len(encoded) for line, encoded in known.items()) <= 2_500_000


def test_quoted_printable_from_known_long_lines_is_the_whole_bodys_encoding() -> None:
    """Long lines kept apart (an HTML template's lines with their CSS inlined) give the
    same bodies as encoding each body whole, from the first email to the last, for the
    rendered emails' HTML and for lines around every length limit."""
    rng = random.Random(22)  # noqa: S311 -- test data
    renderer = renderer_for()
    htmls = []
    for category in Category:
        content = renderer.email(
            conversation_for(category), category, EMAIL_ACTION, message_id=MESSAGE_ID
        )
        html = content.message.get_body(("html",))
        assert html is not None
        htmls.append(html.get_content())
    sizes = (
        QP_LINE_KEPT_LONGEST,
        QP_LINE_KEPT_LONGEST + 1,
        QP_LONG_LINE_KEPT_LONGEST,
        QP_LONG_LINE_KEPT_LONGEST + 1,
    )
    texts = [*htmls, *TEXTS.values()]
    for _ in range(300):
        pieces = "".join(rng.choice(QP_PIECES) for _ in range(rng.randrange(0, 40)))
        texts.append((pieces * (1 + rng.choice(sizes) // max(len(pieces), 1)))[: rng.choice(sizes)])
    known: dict[bytes, bytes] = {}
    long_known: dict[bytes, bytes] = {}
    for text in texts * 2:  # the second time from what the first encoded
        assert text_payload(text, 78, known, long_known) == text_payload(text, 78), repr(text)
    assert 0 < len(long_known) <= QP_LONG_LINES_KEPT
    assert all(QP_LINE_KEPT_LONGEST < len(line) <= QP_LONG_LINE_KEPT_LONGEST for line in long_known)
    assert all(len(line) <= QP_LINE_KEPT_LONGEST for line in known)


def test_known_long_quoted_printable_lines_are_bounded() -> None:
    """However many distinct long lines a hostile conversation has, at most
    QP_LONG_LINES_KEPT are kept, each of at most QP_LONG_LINE_KEPT_LONGEST bytes."""
    known: dict[bytes, bytes] = {}
    long_known: dict[bytes, bytes] = {}
    for n in range(QP_LONG_LINES_KEPT * 4 + 3):
        line = b"%d " % n + "é= \t".encode() * (QP_LONG_LINE_KEPT_LONGEST // 5)
        for piece in (line, line[: QP_LINE_KEPT_LONGEST + 1], line + b"x" * 100):
            expected = binascii.b2a_qp(piece + b"\n", istext=True)
            assert qp_line(piece, known, long_known) == expected
            assert len(long_known) <= QP_LONG_LINES_KEPT
    assert not known
    assert all(len(line) <= QP_LONG_LINE_KEPT_LONGEST for line in long_known)
    assert sum(len(line) + len(encoded) for line, encoded in long_known.items()) <= 1_500_000


def test_the_choice_of_base64_from_known_lines_is_the_sniffs() -> None:
    """With known lines, quoted-printable or base64 is chosen from the first ten lines'
    kept encodings and base64's length worked out, exactly as encoding the sniff chooses:
    bodies of fewer, exactly and more than ten lines, around the point where the two are
    as long (each "é" is 2 bytes, 6 quoted-printable characters), hostile pieces included."""
    rng = random.Random(23)  # noqa: S311 -- test data
    texts = []
    for _ in range(2000):
        count = rng.choice((1, 2, 9, 10, 11, 30))
        share = rng.random()
        lines = [
            "".join(
                "é" if rng.random() < share else rng.choice(QP_PIECES)
                for _ in range(rng.randrange(1, 120))
            )
            for _ in range(count)
        ]
        texts.append("\n".join(lines))
    chosen = set()
    known: dict[bytes, bytes] = {}
    long_known: dict[bytes, bytes] = {}
    for text in texts * 2:  # the second time from what the first encoded
        expected = text_payload(text, 78)
        assert text_payload(text, 78, known, long_known) == expected, repr(text)
        chosen.add(expected[0])
    assert {"base64", "quoted-printable"} <= chosen


_OLD_NEW_LINE = re.compile(rb"\r\n(?![ \t])|\r(?!\n)|(?<!\r)\n")


def test_a_fold_is_unsafe_exactly_where_the_search_finds_a_new_line() -> None:
    """``unsafe_fold`` (one-line headers answered without the search) says what the search
    over the whole fold says, for random folds of CR, LF, spaces, tabs and text."""
    rng = random.Random(24)  # noqa: S311 -- test data
    pieces = (b"\r", b"\n", b"\r\n", b"\r\n ", b"\r\n\t", b" ", b"\t", b"a", b"Subject: x")
    folds = [b"", b"\r\n", b"X: y\r\n", b"X: y\r\n z\r\n", b"X: y\r\nBcc: e\r\n", b"X: y"]
    for _ in range(5000):
        fold = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 8)))
        folds += [fold, fold + b"\r\n"]
    for fold in folds:
        expected = not fold.endswith(b"\r\n") or bool(_OLD_NEW_LINE.search(fold, 0, len(fold) - 2))
        assert unsafe_fold(fold) is expected, fold
