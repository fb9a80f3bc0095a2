"""The SMTP message size counted without copying the message equals aiosmtplib's count."""

from __future__ import annotations

import random

from aiosmtplib.protocol import normalize_message_line_endings

from relay.senders.smtp import wire_size

PIECES = (b"\r\n", b"\r", b"\n", b"\n\r", b".", b"..\r\n", b"a", b"Subject: x", b"\xc3\xa9", b" ")


def test_crafted_line_ends_count_as_they_go_over_the_wire() -> None:
    cases = [
        b"",
        b"\r\n",
        b"a",
        b"a\r\n",
        b"a\r\nb",
        b"a\nb\n",
        b"a\rb\r",
        b"a\r\n\r\nb\r\n",
        b"a\r\r\nb",
        b"a\n\r\nb",
        b"\r",
        b"\n",
        b"\n\r",
        b".\r\n..\r\n",
    ]
    for data in cases:
        assert wire_size(data) == len(normalize_message_line_endings(data)), data


def test_random_mixtures_of_line_ends_count_as_they_go_over_the_wire() -> None:
    rng = random.Random(19)  # noqa: S311 -- test data
    for _ in range(5000):
        data = b"".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 40)))
        assert wire_size(data) == len(normalize_message_line_endings(data)), data


def test_a_flattened_email_is_counted_as_its_length() -> None:
    data = b"Subject: a\r\nTo: b@example.test\r\n\r\n.line\r\nbody\r\n" * 50
    assert wire_size(data) == len(data)
