"""Property tests on odd hook bodies: parsing answers a Conversation or a PayloadError, and
whatever parses can be classified, routed by every kind of matcher and rendered."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.config.settings import EmailAction, RenderSettings, Settings, SlackAction
from relay.intake.payload import content_hash, parse
from relay.model.category import classify
from relay.model.conversation import Conversation
from relay.model.errors import PayloadError
from relay.render.renderer import Renderer
from relay.routing.decide import explain
from tests.support.data import sample

# Deterministic (same examples every run, no example database) and quick.
PROPERTY = settings(
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Every matcher, time windows in a DST zone included, so routing looks at every field.
EVERY_MATCHER_RULES: list[dict[str, Any]] = [
    {
        "name": "everything",
        "continue": True,
        "match": {
            "category": ["missed", "offline", "low-rated", "normal"],
            "rating_min": 1,
            "rating_max": 5,
            "has_rating": True,
            "account_id": [208],
            "country_code": ["CZ"],
            "group": ["b2b"],
            "has_email": True,
            "variables": {"vip": {"present": True, "equals": "1", "one_of": ["1"], "regex": "1"}},
            "message_regex": "(?i)refund",
            "triggered": True,
            "triggered_by": ["Spring"],
            "duration_min": 1,
            "duration_max": 600,
            "messages_min": 1,
            "messages_max": 50,
        },
        "actions": [{"type": "archive", "path": "a.jsonl"}],
    },
    {
        "name": "office-hours",
        "continue": True,
        "match": {
            "time": {
                "mode": "active",
                "timezone": "Europe/Prague",
                "weekdays": ["mon-fri"],
                "hours": ["22:00-06:00"],
            }
        },
        "actions": [{"type": "email", "to": ["sales@shop.test"]}],
    },
    {"name": "rest", "actions": [{"type": "slack", "channel": "#c"}]},
]
RULES = Settings(rules=EVERY_MATCHER_RULES).rule_set
RENDERER = Renderer(RenderSettings(timezone="Europe/Prague"), from_address="R <r@shop.test>")
EMAIL = EmailAction(type="email", to=["sales@shop.test"])
SLACK = SlackAction(type="slack", channel="#c")

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def leaf_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into ``value`` (dict keys and list indexes), the root excluded."""
    found: list[tuple[Any, ...]] = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += leaf_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += leaf_paths(item, (*path, index))
    return found


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: replaced(value[head], rest, new)}
    copy = list(value)
    copy[head] = replaced(copy[head], rest, new)
    return copy


SAMPLES = [sample("v1"), sample("v2")]
PATHS = [(i, p) for i, data in enumerate(SAMPLES) for p in leaf_paths(data)]


def deliver_everything(conversation: Conversation) -> None:
    """What the request path and the worker do with a parsed body: classify, route (every
    matcher looks at it), render the email and the Slack message."""
    category = classify(conversation)
    explain(conversation, category, RULES, now=1_700_000_000.0)
    content = RENDERER.email(conversation, category, EMAIL, message_id="<m@shop.test>")
    assert content.recipients == ("sales@shop.test",)
    content.message.as_bytes()  # serialising must work too
    slack = RENDERER.slack(conversation, category, SLACK)
    assert slack.channel == "#c" and slack.text


@PROPERTY
@given(value=json_value)
def test_any_json_value_parses_or_is_refused_by_name(value: Any) -> None:
    body = json.dumps(value).encode()
    try:
        conversation = parse(body)
    except PayloadError as exc:
        assert exc.reason and exc.message and exc.status_code == 400
        return
    deliver_everything(conversation)


@PROPERTY
@given(raw=st.binary(max_size=200))
def test_any_bytes_parse_or_are_refused_by_name(raw: bytes) -> None:
    try:
        parse(raw)
    except PayloadError as exc:
        assert exc.status_code == 400
    assert len(content_hash(raw)) == 64


@PROPERTY
@given(where=st.sampled_from(PATHS), new=json_value)
def test_a_sample_with_any_field_replaced_is_delivered_or_refused_by_name(
    where: tuple[int, tuple[Any, ...]], new: Any
) -> None:
    index, path = where
    data = replaced(SAMPLES[index], path, new)
    try:
        conversation = parse(json.dumps(data).encode())
    except PayloadError as exc:
        assert exc.reason in {"wrong_type", "missing_field", "out_of_range", "not_an_object"}
        return
    deliver_everything(conversation)


TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]) | st.sampled_from("\0\r\n\u202e<>&"),
    max_size=40,
)


@PROPERTY
@given(name=TEXT, content=TEXT, email=TEXT, title=TEXT)
def test_any_text_in_the_visitor_fields_is_delivered(
    name: str, content: str, email: str, title: str
) -> None:
    data = sample("v1")
    data["visitor"].update(name=name, email=email, note=content, city=title)
    data["messages"][0]["content"] = content
    data["paths"][0]["title"] = title
    data["channel"]["ratingDesc"] = content
    deliver_everything(parse(json.dumps(data).encode()))


@pytest.mark.parametrize(
    ("field", "value", "source"),
    [
        ("endAt", 10**17, "beginAt"),  # year 3 million: no time zone can show it
        ("endAt", -(10**15), "beginAt"),
        ("beginAt", 10**17, "now"),  # (endAt removed)
        ("endAt", 253402300799999, "beginAt"),  # 9999-12-31T23:59:59Z; Prague is an hour on
    ],
)
def test_an_absurd_timestamp_does_not_break_time_window_routing(
    field: str, value: int, source: str
) -> None:
    data = sample("v1")
    data[field] = value
    if field == "beginAt":
        del data["endAt"]
    conversation = parse(json.dumps(data).encode())
    decision = explain(conversation, classify(conversation), RULES, now=1_700_000_000.0)
    assert decision.at_source == source
    assert decision.at_text.endswith(" UTC")  # the explanation can show it
    deliver_everything(conversation)


def test_a_lone_surrogate_escape_is_replaced_not_refused() -> None:
    raw = (
        b'{"accountId":1,"channel":{"id":2,"rating":1,"ratingDesc":"bad \\udc00"},'
        b'"visitor":{"name":"Jana \\ud83d","note":"ok \\ud83d\\ude00"},'
        b'"messages":[{"type":"visitor","content":"cut \\ud83d"}]}'
    )
    conversation = parse(raw)
    assert conversation.visitor.name == "Jana \ufffd"
    assert conversation.visitor.note == "ok \U0001f600"  # a proper pair stays an emoji
    assert conversation.channel.rating_desc == "bad \ufffd"
    assert conversation.messages[0].content == "cut \ufffd"
    deliver_everything(conversation)
    # A high surrogate before the closing quote in a field the relay does not read (msgspec:
    # "Input data was truncated"): repaired the same way.
    cut = parse(b'{"accountId":1,"channel":{"id":2},"x":"\\ud800","visitor":{"name":"\\ud800"}}')
    assert cut.visitor.name == "\ufffd"
    # Not JSON for other reasons: still refused, and named.
    with pytest.raises(PayloadError, match="not valid JSON"):
        parse(b'{"accountId":1,"channel":{"id":2},"x":"\\ud800",}')
    with pytest.raises(PayloadError, match="not valid JSON"):
        parse(b'{"accountId":1,"channel":{"id":2,"rating":NaN},"x":"\\ud800"}')


def test_a_duration_beyond_any_calendar_renders_as_unknown() -> None:
    data = sample("v1")
    data["channel"].update(duration=2**62, avgResponse=10**15, firstResponse=-1)
    deliver_everything(parse(json.dumps(data).encode()))


def test_replacing_a_field_by_itself_changes_nothing() -> None:
    """Guard for the helpers above: every path is reached and rebuilt faithfully."""
    for data in SAMPLES:
        for path in leaf_paths(data):
            node: Any = data
            for key in path:
                node = node[key]
            assert replaced(data, path, node) == data
