"""Both documented body shapes, the minimal body, lax ids, and every refusal reason."""
# ruff: noqa: E501 -- the case tables read best with one case per line

from __future__ import annotations

import json

import pytest

from relay.intake.payload import content_hash, parse
from relay.model.conversation import SenderKind
from relay.model.errors import PayloadError, PayloadTooLarge
from tests.support.data import SAMPLES, body, sample


def test_v1_shape_numeric_from_and_group_key() -> None:
    conv = parse(body(sample("v1")))
    assert conv.key == "208-55039"
    assert conv.visitor.email_address == "dusan@domain.com"
    assert conv.visitor.variables is not None
    assert conv.visitor.variables["chatPackage"].text == "pro"
    senders = [m.sender for m in conv.messages]
    assert senders[1] == (SenderKind.AGENT, "3")
    assert senders[0][0] is SenderKind.VISITOR
    assert [m.email for m in conv.messages] == [None] * 6
    assert conv.paths[0].title == "POST Hook · Smartsupp"


def test_v2_shape_prefixed_from_and_group() -> None:
    data = sample("v2")
    data["visitor"]["group"] = "sales-cz"
    conv = parse(body(data))
    assert conv.visitor.group_name == "sales-cz"
    assert conv.visitor.email_address is None  # "" in this shape
    assert conv.messages[1].sender == (SenderKind.AGENT, "3")
    assert conv.messages[2].sender == (SenderKind.SYSTEM, None)
    assert conv.messages[0].sender == (
        SenderKind.VISITOR,
        "mxTiqn9adr2h39kmzAJ0FeaTGFJhmjio0R41491503012015",
    )


def test_group_key_is_used_when_group_is_absent() -> None:
    data = sample("v1")
    data["visitor"]["groupKey"] = "de"
    assert parse(body(data)).visitor.group_name == "de"


def test_minimal_body_ids_only() -> None:
    conv = parse(b'{"accountId": 1, "channel": {"id": 2}}')
    assert conv.key == "1-2"
    assert conv.messages == ()
    assert conv.visitor.display_name is None
    assert conv.end is None


def test_every_optional_field_may_be_null() -> None:
    data = {
        "accountId": 1,
        "beginAt": None,
        "endAt": None,
        "channel": {"id": 2, "isMissed": None, "rating": None, "ratingDesc": None},
        "visitor": None,
        "paths": None,
        "messages": [None, {"content": None, "from": None}],
    }
    conv = parse(body(data))
    assert conv.visitor.email_address is None
    assert len(conv.messages) == 1


def test_numeric_strings_are_accepted_for_ids() -> None:
    conv = parse(b'{"accountId": "208", "channel": {"id": "55039", "rating": "2"}}')
    assert (conv.account_id, conv.channel.id, conv.channel.rating) == (208, 55039, 2)


def test_unknown_fields_are_ignored() -> None:
    data = sample("v2")
    data["somethingNew"] = {"nested": [1, 2]}
    data["channel"]["tags"] = ["x"]
    assert parse(body(data)).key == "208-55040"


@pytest.mark.parametrize(
    ("raw", "reason", "words"),
    [
        (b"", "empty_body", "empty"),
        (b"   \n", "empty_body", "empty"),
        (b"{not json", "invalid_json", "not valid JSON"),
        (b"[1, 2]", "not_an_object", "got list"),
        (b'"text"', "not_an_object", "got str"),
        (b'{"channel": {"id": 1}}', "missing_field", "accountId"),
        (b'{"accountId": 1, "channel": {}}', "missing_field", "channel.id"),
        (b'{"accountId": 1}', "missing_field", "channel"),
        (b'{"accountId": "abc", "channel": {"id": 1}}', "wrong_type", "accountId"),
        (b'{"accountId": 1, "channel": {"id": 1}, "messages": "hi"}', "wrong_type", "messages"),
        (b'{"accountId": 1, "channel": "x"}', "wrong_type", "channel"),
        (b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}", "too_deeply_nested", "nesting"),
    ],
)
def test_refusals_name_the_problem(raw: bytes, reason: str, words: str) -> None:
    with pytest.raises(PayloadError) as info:
        parse(raw)
    assert info.value.reason == reason
    assert words in info.value.message


def test_size_limit() -> None:
    with pytest.raises(PayloadTooLarge) as info:
        parse(b"{" + b" " * 2000 + b"}", max_bytes=1000)
    assert info.value.status_code == 413


def test_content_hash_ignores_key_order_and_whitespace() -> None:
    a = json.dumps({"accountId": 1, "channel": {"id": 2}}).encode()
    b = b'{ "channel" : {"id":2}, "accountId":1 }'
    assert content_hash(a) == content_hash(b)
    assert content_hash(a) != content_hash(b'{"accountId":1,"channel":{"id":3}}')


@pytest.mark.parametrize(
    "shape",
    [
        {"visitor": {"name": "Ann", "variables": []}},
        {"visitor": []},
        {"visitor": {"name": "Ann", "variables": {"vip": None, "plan": {"value": "pro"}}}},
        {"messages": [[], {"content": "hi"}], "paths": [[]]},
    ],
)
def test_php_empty_arrays_and_null_entries_are_tolerated(shape: dict[str, object]) -> None:
    """PHP's json_encode writes an empty associative array as []; refusing it would lose the
    conversation for good (Smartsupp does not retry)."""
    conv = parse(body({"accountId": 1, "channel": {"id": 2}, **shape}))
    assert conv.key == "1-2"
    assert all(var is not None for var in conv.visitor.variable_items.values())
    assert all(m.content == "hi" for m in conv.messages)


def test_other_wrong_types_are_still_refused() -> None:
    with pytest.raises(PayloadError) as info:
        parse(b'{"accountId": 1, "channel": {"id": 2}, "visitor": {"variables": [1]}}')
    assert info.value.reason == "wrong_type"
    with pytest.raises(PayloadError):
        parse(b'{"accountId": 1, "channel": []}')


def test_a_byte_order_mark_is_ignored() -> None:
    assert parse(b"\xef\xbb\xbf" + body(sample("v1"))).key == "208-55039"


def test_every_sample_body_is_its_own_conversation() -> None:
    """The README posts these bodies one after another; each must start a new conversation
    instead of becoming a later version of another sample."""
    keys = {path.name: parse(path.read_bytes()).key for path in sorted(SAMPLES.glob("*.json"))}
    assert len(keys) >= 3, keys
    assert len(set(keys.values())) == len(keys), keys


@pytest.mark.parametrize(
    ("raw", "reason", "message"),
    [
        (b"", "empty_body", "request body is empty; expected a JSON object"),
        (b'{"channel": {"id": 1}}', "missing_field", "required field accountId is missing"),
        (b'{"accountId": 1, "channel": {}}', "missing_field", "required field channel.id is missing"),
        (b'{"accountId": 1}', "missing_field", "required field channel is missing"),
        (b'{"accountId": "abc", "channel": {"id": 1}}', "wrong_type", "Expected `int`, got `str` at `accountId`"),
        (b'{"accountId":1,"channel":{"id":2},"messages":[{"content":5}]}', "wrong_type", "Expected `str | null`, got `int` at `messages[0].content`"),
        (b'{"accountId": NaN, "channel": {"id": 2}}', "invalid_json", "body is not valid JSON: JSON is malformed: invalid character (byte 14)"),
        # Only an empty array where an object is expected is read as null (PHP); not elsewhere.
        (b'{"accountId":1,"channel":{"id":2},"messages":[{"content":[]}]}', "wrong_type", "Expected `str | null`, got `array` at `messages[0].content`"),
        (b'{"accountId":1,"channel":{"id":2},"visitor":{"variables":{"x":[]}}}', "wrong_type", "Expected `object | null`, got `array` at `visitor.variables[...]`"),
        (b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}", "too_deeply_nested", "JSON nesting is too deep"),
        # Whitespace before a body that is not an object: the kind is still named.
        (b"  [1]", "not_an_object", "body must be a JSON object, got list"),
        (b"\n\t-5", "not_an_object", "body must be a JSON object, got number"),
        (b" 7", "not_an_object", "body must be a JSON object, got number"),
        (b" null", "not_an_object", "body must be a JSON object, got null"),
        (b"\r\n true", "not_an_object", "body must be a JSON object, got bool"),
        (b' "x"', "not_an_object", "body must be a JSON object, got str"),
    ],
)  # fmt: skip
def test_refusals_say_exactly_what_is_wrong(raw: bytes, reason: str, message: str) -> None:
    with pytest.raises(PayloadError) as info:
        parse(raw)
    assert (info.value.reason, info.value.message) == (reason, message)


def test_ids_from_0_to_the_largest_signed_64_bit_integer_are_accepted() -> None:
    largest = 2**63 - 1
    low = parse(b'{"accountId": 0, "channel": {"id": 0}}')
    assert (low.account_id, low.channel.id) == (0, 0)
    high = parse(f'{{"accountId": {largest}, "channel": {{"id": {largest}}}}}'.encode())
    assert (high.account_id, high.channel.id) == (largest, largest)


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        (b'{"accountId": -1, "channel": {"id": 2}}', "accountId"),
        (b'{"accountId": 9223372036854775808, "channel": {"id": 2}}', "accountId"),
        (b'{"accountId": 1, "channel": {"id": -1}}', "channel.id"),
        (b'{"accountId": 1, "channel": {"id": 9223372036854775808}}', "channel.id"),
    ],
)
def test_ids_just_outside_the_range_are_refused(raw: bytes, name: str) -> None:
    with pytest.raises(PayloadError) as info:
        parse(raw)
    assert info.value.reason == "out_of_range"
    assert info.value.message == f"{name} must be between 0 and 9223372036854775807"


def test_a_body_of_exactly_the_size_limit_is_accepted() -> None:
    raw = b'{"accountId": 1, "channel": {"id": 2}}'
    assert parse(raw, max_bytes=len(raw)).key == "1-2"
    with pytest.raises(PayloadTooLarge) as info:
        parse(raw, max_bytes=len(raw) - 1)
    assert info.value.limit == len(raw) - 1
    assert info.value.message == f"request body exceeds the limit of {len(raw) - 1} bytes"


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        # In a field the relay reads.
        (b'{"accountId": 1, "channel": {"id": 2}, "messages": [{"content": "\xff"}]}',
         "invalid start byte at byte 65"),
        # In a field the relay does not read: refused too. The raw body is stored and posted
        # on as it came (webhook actions, relay replay), so it must be text; Smartsupp sends
        # UTF-8, and a body that is not is broken as a whole, not in one field.
        (b'{"accountId": 1, "channel": {"id": 2}, "extra": "caf\xe9"}',
         "invalid continuation byte at byte 52"),
        (b'{"accountId": 1, "channel": {"id": 2}, "extra": {"deep": ["\xc3"]}}',
         "invalid continuation byte at byte 59"),
        # A UTF-16 surrogate written as UTF-8 bytes (not as a \\u escape) is not UTF-8 either.
        (b'{"accountId": 1, "channel": {"id": 2}, "extra": "\xed\xa0\xbd"}',
         "invalid continuation byte at byte 49"),
    ],
)  # fmt: skip
def test_bytes_that_are_not_utf8_are_refused_wherever_they_are(raw: bytes, detail: str) -> None:
    with pytest.raises(PayloadError) as info:
        parse(raw)
    assert info.value.reason == "invalid_utf8"
    assert info.value.message == f"body is not valid UTF-8: {detail}"


def test_the_surrogate_repair_does_not_let_other_faults_through() -> None:
    """A body with a lone surrogate escape is re-read to repair it; NaN in the same body must
    still be refused, with the decoder's error for the body as sent (at the surrogate)."""
    raw = b'{"accountId": 1, "channel": {"id": 2}, "x": "\\ud83d", "y": NaN}'
    assert raw.index(b"\\ud83d") + 6 == 51 < raw.index(b"NaN")
    with pytest.raises(PayloadError) as info:
        parse(raw)
    assert info.value.reason == "invalid_json"
    assert info.value.message.startswith("body is not valid JSON: ")
    assert info.value.message.endswith("(byte 51)")


@pytest.mark.parametrize(
    ("sent_from", "sender"),
    [
        (3, (SenderKind.AGENT, "3")),
        ("3", (SenderKind.AGENT, "3")),  # an agent's id as a string
        ("agent:", (SenderKind.AGENT, None)),
        ("system", (SenderKind.SYSTEM, None)),
        ("visitor:abc", (SenderKind.VISITOR, "abc")),
        ("abc3", (SenderKind.VISITOR, "abc3")),  # a bare visitor id
        ("robot:7", (SenderKind.VISITOR, "robot:7")),  # an unknown prefix is no kind
        ("", (SenderKind.UNKNOWN, None)),
        (None, (SenderKind.UNKNOWN, None)),
    ],
)
def test_every_form_of_a_messages_sender(sent_from: object, sender: object) -> None:
    data = sample("v1")
    data["messages"][0]["from"] = sent_from
    assert parse(body(data)).messages[0].sender == sender
