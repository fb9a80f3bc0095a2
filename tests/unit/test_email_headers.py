"""Header values from visitor data carry no encoded words; flattened bytes are checked."""

from __future__ import annotations

import email.policy
from collections.abc import Callable
from email.message import EmailMessage

import pytest

from relay.render.headers import (
    UnsafeHeaders,
    display_name,
    flatten,
    header_problem,
    header_safe,
    subject_line,
)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("=?utf-8?q?x=0D=0ABcc:_v@evil.test?=", "= ?utf-8?q?x=0D=0ABcc:_v@evil.test?="),
        ("a=?b =?c", "a= ?b = ?c"),
        ("==??", "== ??"),
        # Characters dropped by the cleaning must not join "=" and "?" afterwards.
        ("=\x00?utf-8?b?QmNjOiB4?=", "= ?utf-8?b?QmNjOiB4?="),
        ("=\u202e?utf-8?b?QmNjOiB4?=", "= ?utf-8?b?QmNjOiB4?="),
        ("=\r\n?x", "= ?x"),
        ("Is 1+1=2? Yes", "Is 1+1=2? Yes"),
    ],
)
def test_header_values_never_contain_an_encoded_word_start(raw: str, shown: str) -> None:
    assert header_safe(raw) == shown
    for value in (header_safe(raw), subject_line(raw), display_name(raw)):
        assert "=?" not in value


def message() -> EmailMessage:
    built = EmailMessage(policy=email.policy.SMTP)
    built["From"] = "R <r@shop.test>"
    built["To"] = "sales@shop.test, Ops <ops@shop.test>"
    built["Subject"] = "hello"
    built.set_content("body\n")
    return built


def test_flatten_returns_the_bytes_when_they_carry_the_headers_set() -> None:
    data = flatten(message())
    assert data == message().as_bytes()
    assert header_problem(message(), data) is None
    assert b"Content-Transfer-Encoding: 7bit" in flatten(message(), eight_bit=False)


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda d: d.replace(b"Subject: hello\r\n", b"Subject: hello\r\nBcc: v@evil.test\r\n"),
         "header fields"),
        (lambda d: d.replace(b"Subject: hello\r\n", b"Subject: hello\r\n\r\n"), "header fields"),
        (lambda d: d.replace(b"ops@shop.test", b"ceo@evil.test"), "to addresses changed"),
        (lambda d: d.replace(b"Subject: hello", b"Subject: he\nllo"), "bare CR or LF"),
        (lambda d: d.replace(b"Subject: hello", b"Subject: hello\r\nnot a field"), "no field"),
        (lambda d: d.replace(b"\r\n\r\n", b"\r\n"), "no empty line"),
    ],
)  # fmt: skip
def test_header_problem_names_what_differs(edit: Callable[[bytes], bytes], problem: str) -> None:
    found = header_problem(message(), edit(message().as_bytes()))
    assert found is not None and problem in found


def test_flatten_refuses_a_value_that_becomes_another_header() -> None:
    forged = message()
    forged.replace_header("Subject", "=?utf-8?q?x=0D=0ABcc:_v@evil.test?=")
    with pytest.raises(UnsafeHeaders):
        flatten(forged)


def test_smtputf8_bytes_are_read_as_utf8_and_a_changed_address_is_still_found() -> None:
    wide = message()
    wide.replace_header("To", "prodej@příklad.cz, Ops <ops@shop.test>")
    data = flatten(wide, utf8=True)
    assert "To: prodej@příklad.cz, Ops <ops@shop.test>\r\n".encode() in data
    assert header_problem(wide, data, utf8=True) is None
    # Read as a message without SMTPUTF8 is read, those bytes are no such address.
    assert header_problem(wide, data) is not None
    for forged in (
        data.replace("příklad".encode(), "příkład".encode()),
        data.replace(b"ops@shop.test", b"ceo@evil.test"),
        data.replace("příklad.cz".encode(), b"p\xff.cz"),
    ):
        found = header_problem(wide, forged, utf8=True)
        assert found is not None and "to addresses changed" in found


def test_a_visitor_name_never_starts_with_a_dot_and_unreadable_addresses_are_a_problem() -> None:
    for name in (".Bcc: e@evil.test" + "x" * 61, "." + "x" * 80, ". . .x", "...", " . J. R."):
        assert not display_name(name).startswith((".", " ")), name
    assert display_name("J. R. Bob.") == "J. R. Bob."
    # Bytes CPython folds for a long quoted name starting with "." (its quotes dropped): its
    # parser raises reading them back, which is a problem with the headers, not a crash.
    built = message()
    built["Reply-To"] = "x@shop.test"
    data = built.as_bytes().replace(
        b"Reply-To: x@shop.test", b"Reply-To:\r\n ." + b"x" * 80 + b"\r\n <x@shop.test>"
    )
    found = header_problem(built, data)
    assert found == "the reply-to addresses cannot be read back"
