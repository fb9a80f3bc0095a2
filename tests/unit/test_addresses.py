"""Email address settings: one mailbox per value, checked by email-validator, each refusal
saying why (``relay.config.addresses.check_address``)."""

from __future__ import annotations

import pytest

from relay.config.addresses import check_address


@pytest.mark.parametrize(
    "text",
    ["sales@shop.example", "Sales <sales@shop.example>", "ops@localhost", " a@relay.test "],
)
def test_one_mailbox_is_accepted_and_trimmed(text: str) -> None:
    assert check_address(text) == text.strip()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("sales@shop.example\r\nBcc: x@evil.example", "must be one email address on one line"),
        ("a@shop.example, b@shop.example", "give one address per list item"),
        ("sales", "is not an email address (expected name@example.com)"),
        ("sales@", "is not an email address (expected name@example.com)"),
        ("sa..les@shop.example", "is not a valid email address: "),
        ("sales@-shop.example", "is not a valid email address: "),
    ],
)
def test_anything_but_one_mailbox_is_refused_saying_why(text: str, problem: str) -> None:
    with pytest.raises(ValueError) as refused:
        check_address(text)
    assert problem in str(refused.value)
