"""Both documented body shapes, the minimal body, lax ids, and every refusal reason."""

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
