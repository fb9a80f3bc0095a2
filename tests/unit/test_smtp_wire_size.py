"""The SMTP message size counted without copying the message equals aiosmtplib's count, and
what DATA, MAIL FROM and RCPT TO send equals what aiosmtplib's own commands send."""

from __future__ import annotations

import random

import pytest
from aiosmtplib.email import quote_address
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

from relay.senders.smtp import data_payload, envelope_path

PIECES = (b"\r\n", b"\r", b"\n", b"\n\r", b".", b"..\r\n", b"a", b"Subject: x", b"\xc3\xa9", b" ")


CASES = [
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
    b".",
    b"a\r\n.b\r\n",
    b"a\n.b",
    b"a\r.b",
    b"a\r\n\r\n.\r\n",
]


def aiosmtplib_data(data: bytes) -> bytes:
    """What aiosmtplib's execute_data_command writes after DATA for ``data``."""
    return PERIOD_REGEX.sub(b"..", normalize_message_line_endings(data)) + b".\r\n"


def test_crafted_line_ends_count_as_they_go_over_the_wire() -> None:
    for data in CASES:
        assert data_payload(data)[1] == len(normalize_message_line_endings(data)), data


def test_random_mixtures_of_line_ends_count_as_they_go_over_the_wire() -> None:
    rng = random.Random(19)  # noqa: S311 -- test data
    for _ in range(5000):
        data = b"".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 40)))
        assert data_payload(data)[1] == len(normalize_message_line_endings(data)), data


def test_a_flattened_email_is_counted_as_its_length() -> None:
    data = b"Subject: a\r\nTo: b@example.test\r\n\r\n.line\r\nbody\r\n" * 50
    assert data_payload(data)[1] == len(data)


def test_crafted_messages_go_after_data_as_aiosmtplib_sends_them() -> None:
    for data in CASES:
        assert data_payload(data) == (
            aiosmtplib_data(data),
            len(normalize_message_line_endings(data)),
        ), data


def test_random_messages_go_after_data_as_aiosmtplib_sends_them() -> None:
    rng = random.Random(20)  # noqa: S311 -- test data
    for _ in range(5000):
        data = b"".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 40)))
        payload, size = data_payload(data)
        assert payload == aiosmtplib_data(data), data
        assert size == len(normalize_message_line_endings(data)), data


def test_envelope_paths_are_aiosmtplibs_and_keep_what_is_unsafe_off_the_command_line() -> None:
    hostile = ["a@example.test\r\nRCPT TO:<b@example.test>", "a@example.test\nDATA"]
    for address in ["team@example.test", "Team <team@example.test>", " t@example.test ", *hostile]:
        path = envelope_path(address, "ascii")
        assert path == quote_address(address).encode("ascii")
        assert b"\r" not in path
        assert b"\n" not in path
    assert envelope_path("tým@example.test", "utf-8") == "<tým@example.test>".encode()
    for unsafe in ["<a b@example.test>", '"" <a"b@example.test>']:
        with pytest.raises(ValueError, match="not permitted in an SMTP mailbox"):
            envelope_path(unsafe, "ascii")
