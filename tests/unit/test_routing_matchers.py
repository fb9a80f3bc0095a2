"""Every matcher, matching and not matching, with the failing check and the actual value."""
# ruff: noqa: E501 -- the case tables read best with one case per line

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from relay.model.category import Category, classify
from relay.routing.decide import evaluation_time
from relay.routing.matchers import Facts, checks
from relay.routing.rules import Match
from tests.support.conversations import NOW, conversation


def evaluate(match: dict[str, Any], changes: dict[str, Any] | None = None) -> list[Any]:
    conv = conversation(changes)
    at, _ = evaluation_time(conv, now=NOW)
    return list(checks(Match.model_validate(match), Facts.of(conv, classify(conv), at=at)))


# (match, changes to the v1 sample, None if it matches else (failing matcher, actual value))
# The v1 sample: normal, rating 5, account 208, CZ, email present, no group, variables
# chatId=208, chatPackage="pro", userId="1234", triggered (one message by "Test Trigger"),
# duration 36 s, 5 messages.
CASES: list[tuple[str, dict[str, Any], dict[str, Any], tuple[str, Any] | None]] = [
    ("no matchers", {}, {}, None),
    ("category one", {"category": "normal"}, {}, None),
    ("category several", {"category": ["missed", "offline"]}, {"channel.isMissed": True}, None),
    ("category miss", {"category": ["missed", "offline"]}, {}, ("category", "normal")),
    ("rating_min ok", {"rating_min": 5}, {}, None),
    ("rating_min low", {"rating_min": 4}, {"channel.rating": 3}, ("rating_min", 3)),
    ("rating_min none", {"rating_min": 1}, {"channel.rating": None}, ("rating_min", None)),
    ("rating_max ok", {"rating_max": 2}, {"channel.rating": 1}, None),
    ("rating_max high", {"rating_max": 2}, {}, ("rating_max", 5)),
    ("has_rating yes", {"has_rating": True}, {}, None),
    ("has_rating missing", {"has_rating": True}, {"channel.rating": ...}, ("has_rating", None)),
    ("has_rating false", {"has_rating": False}, {"channel.rating": None}, None),
    ("has_rating false miss", {"has_rating": False}, {}, ("has_rating", 5)),
    ("account_id", {"account_id": [1, 208]}, {}, None),
    ("account_id scalar", {"account_id": 208}, {}, None),
    ("account_id miss", {"account_id": [1]}, {}, ("account_id", 208)),
    ("country lower-case", {"country_code": ["cz", "sk"]}, {}, None),
    ("country miss", {"country_code": "DE"}, {}, ("country_code", "CZ")),
    ("country absent", {"country_code": "CZ"}, {"visitor.countryCode": None}, ("country_code", None)),
    ("group", {"group": "eshop"}, {"visitor.group": "eshop"}, None),
    ("group from groupKey", {"group": ["b2b", "eshop"]}, {"visitor.groupKey": "eshop"}, None),
    ("group number", {"group": 7}, {"visitor.group": 7}, None),
    ("group miss", {"group": "eshop"}, {"visitor.group": "b2b"}, ("group", "b2b")),
    ("group none", {"group": "eshop"}, {}, ("group", None)),
    ("has_email", {"has_email": True}, {}, None),
    ("has_email invalid", {"has_email": True}, {"visitor.email": "not an address"}, ("has_email", None)),
    ("has_email false", {"has_email": False}, {"visitor.email": None}, None),
    ("has_email false miss", {"has_email": False}, {}, ("has_email", "dusan@domain.com")),
    ("var equals", {"variables": {"chatPackage": {"equals": "pro"}}}, {}, None),
    ("var equals miss", {"variables": {"chatPackage": {"equals": "basic"}}}, {}, ("variables.chatPackage.equals", "pro")),
    ("var equals number", {"variables": {"chatId": {"equals": 208}}}, {}, None),
    ("var equals bool", {"variables": {"vip": {"equals": True}}}, {"visitor.variables.vip": {"value": True}}, None),
    ("var one_of", {"variables": {"chatPackage": {"one_of": ["pro", "max"]}}}, {}, None),
    ("var one_of miss", {"variables": {"chatPackage": {"one_of": ["free"]}}}, {}, ("variables.chatPackage.one_of", "pro")),
    ("var regex", {"variables": {"userId": {"regex": "^12"}}}, {}, None),
    ("var regex miss", {"variables": {"userId": {"regex": "^9"}}}, {}, ("variables.userId.regex", "1234")),
    ("var regex absent", {"variables": {"vip": {"regex": "."}}}, {}, ("variables.vip.regex", None)),
    ("var present", {"variables": {"userId": {"present": True}}}, {}, None),
    ("var present miss", {"variables": {"vip": {"present": True}}}, {}, ("variables.vip.present", None)),
    ("var absent", {"variables": {"vip": {"present": False}}}, {}, None),
    ("var empty is absent", {"variables": {"vip": {"present": False}}}, {"visitor.variables.vip": {"value": ""}}, None),
    ("var two conditions", {"variables": {"userId": {"present": True, "regex": "^9"}}}, {}, ("variables.userId.regex", "1234")),
    ("message_regex", {"message_regex": "(?i)TANKS"}, {}, None),
    ("message_regex miss", {"message_regex": "refund"}, {}, ("message_regex", None)),
    ("message_regex skips system", {"message_regex": "agent\\.join"}, {}, ("message_regex", None)),
    ("triggered", {"triggered": True}, {}, None),
    ("triggered miss", {"triggered": True}, {"channel.isTriggered": False}, ("triggered", False)),
    ("not triggered", {"triggered": False}, {"channel.isTriggered": None}, None),
    ("triggered_by", {"triggered_by": "Test Trigger"}, {}, None),
    ("triggered_by miss", {"triggered_by": ["Welcome"]}, {}, ("triggered_by", ("Test Trigger",))),
    ("duration_min", {"duration_min": 36}, {}, None),
    ("duration_min miss", {"duration_min": 60}, {}, ("duration_min", 36)),
    ("duration_max", {"duration_max": 36}, {}, None),
    ("duration_max miss", {"duration_max": 30}, {}, ("duration_max", 36)),
    ("duration absent", {"duration_max": 30}, {"channel.duration": None}, ("duration_max", None)),
    ("messages_min", {"messages_min": 5}, {}, None),
    ("messages_min miss", {"messages_min": 6}, {}, ("messages_min", 5)),
    ("messages_max", {"messages_max": 10}, {}, None),
    ("messages_max miss", {"messages_max": 4}, {}, ("messages_max", 5)),
    ("all together", {"category": "normal", "country_code": "CZ", "has_email": True, "rating_min": 4, "triggered": True, "variables": {"chatPackage": {"equals": "pro"}}}, {}, None),
    ("AND: one fails", {"country_code": "CZ", "rating_max": 2}, {}, ("rating_max", 5)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("match", "changes", "failure"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_matcher(
    match: dict[str, Any], changes: dict[str, Any], failure: tuple[str, Any] | None
) -> None:
    found = evaluate(match, changes)
    failed = [(c.matcher, c.actual) for c in found if not c.ok]
    assert failed == ([] if failure is None else [failure])
    assert len(found) >= len(match)  # every configured matcher produced a check


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


WORKDAY = {"timezone": "Europe/Prague", "weekdays": ["mon-fri"], "hours": ["09:00-17:00"]}
SUNDAY_2_TO_3 = {"timezone": "Europe/Prague", "weekdays": ["sun"], "hours": ["02:00-03:00"]}
NIGHT_SHIFT = {"timezone": "Europe/Prague", "hours": ["22:00-06:00"]}

# (window, UTC end time, matches, local time shown). Europe/Prague changes 2026-03-29
# 02:00 CET -> 03:00 CEST and 2026-10-25 03:00 CEST -> 02:00 CET.
WINDOWS: list[tuple[str, dict[str, Any], str, bool, str]] = [
    ("winter 09:30 CET", WORKDAY, "2026-03-27T08:30", True, "Fri 2026-03-27 09:30 CET"),
    ("winter 08:30 CET", WORKDAY, "2026-03-27T07:30", False, "Fri 2026-03-27 08:30 CET"),
    ("summer 09:30 CEST", WORKDAY, "2026-03-30T07:30", True, "Mon 2026-03-30 09:30 CEST"),
    ("summer 08:30 CEST", WORKDAY, "2026-03-30T06:30", False, "Mon 2026-03-30 08:30 CEST"),
    ("end is exclusive", WORKDAY, "2026-03-30T15:00", False, "Mon 2026-03-30 17:00 CEST"),
    ("saturday", WORKDAY, "2026-03-28T10:00", False, "Sat 2026-03-28 11:00 CET"),
    ("before the gap", SUNDAY_2_TO_3, "2026-03-29T00:59", False, "Sun 2026-03-29 01:59 CET"),
    ("after the gap", SUNDAY_2_TO_3, "2026-03-29T01:00", False, "Sun 2026-03-29 03:00 CEST"),
    ("first 02:30", SUNDAY_2_TO_3, "2026-10-25T00:30", True, "Sun 2026-10-25 02:30 CEST"),
    ("second 02:30", SUNDAY_2_TO_3, "2026-10-25T01:30", True, "Sun 2026-10-25 02:30 CET"),
    ("after the repeat", SUNDAY_2_TO_3, "2026-10-25T02:00", False, "Sun 2026-10-25 03:00 CET"),
    ("before the repeat", SUNDAY_2_TO_3, "2026-10-24T23:59", False, "Sun 2026-10-25 01:59 CEST"),
    ("wrap late", NIGHT_SHIFT, "2026-07-01T21:30", True, "Wed 2026-07-01 23:30 CEST"),
    ("wrap early", NIGHT_SHIFT, "2026-07-02T03:59", True, "Thu 2026-07-02 05:59 CEST"),
    ("wrap end", NIGHT_SHIFT, "2026-07-02T04:00", False, "Thu 2026-07-02 06:00 CEST"),
    ("wrap midday", NIGHT_SHIFT, "2026-07-02T10:00", False, "Thu 2026-07-02 12:00 CEST"),
    ("mute inside", WORKDAY | {"mode": "mute"}, "2026-03-27T08:30", False, "Fri 2026-03-27 09:30 CET"),
    ("mute outside", WORKDAY | {"mode": "mute"}, "2026-03-28T10:00", True, "Sat 2026-03-28 11:00 CET"),
    ("weekday range wraps", {"timezone": "UTC", "weekdays": ["sat-mon"]}, "2026-03-30T10:00", True, "Mon 2026-03-30 10:00 UTC"),
    ("full names", {"timezone": "UTC", "weekdays": ["Tuesday", "wednesday"]}, "2026-03-30T10:00", False, "Mon 2026-03-30 10:00 UTC"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("window", "end", "inside", "shown"), [w[1:] for w in WINDOWS], ids=[w[0] for w in WINDOWS]
)
def test_time_window_across_dst(window: dict[str, Any], end: str, inside: bool, shown: str) -> None:
    millis = int(utc(end) * 1000)
    (check,) = evaluate({"time": window}, {"endAt": millis})
    assert check.ok is inside
    assert f"got {shown} ({window['timezone']})" in check.describe()


def test_time_windows_use_end_then_begin_then_now() -> None:
    ended = conversation({"endAt": 2_000, "beginAt": 1_000})
    assert evaluation_time(ended, now=NOW) == (2.0, "endAt")
    assert evaluation_time(ended, now=NOW, at=5.0) == (5.0, "--at")
    begun = conversation({"endAt": ..., "beginAt": 1_000})
    assert evaluation_time(begun, now=NOW) == (1.0, "beginAt")
    neither = conversation({"endAt": None, "beginAt": ...})
    assert evaluation_time(neither, now=NOW) == (NOW, "now")


def test_a_check_explains_itself() -> None:
    (check,) = evaluate({"country_code": ["DE", "AT"]})
    assert check.describe() == 'FAIL country_code: wanted ["DE", "AT"], got "CZ"'
    (check,) = evaluate({"rating_min": 4})
    assert check.describe() == "ok   rating_min: wanted >= 4, got 5"


def test_category_comes_from_the_classifier() -> None:
    conv = conversation({"channel.rating": 1})
    facts = Facts.of(conv, classify(conv), at=NOW)
    assert facts.category is Category.LOW_RATED


# (match, changes to the v1 sample, what `relay routes test` prints for each check)
EXPLANATIONS: list[tuple[str, dict[str, Any], dict[str, Any], list[str]]] = [
    ("category", {"category": ["missed", "offline"]}, {}, ['FAIL category: wanted ["missed", "offline"], got "normal"']),
    ("rating_max", {"rating_max": 2}, {}, ["FAIL rating_max: wanted <= 2, got 5"]),
    ("has_rating none", {"has_rating": True}, {"channel.rating": None}, ["FAIL has_rating: wanted true, got nothing"]),
    ("has_rating false", {"has_rating": False}, {}, ["FAIL has_rating: wanted false, got 5"]),
    ("account_id", {"account_id": [1, 208]}, {}, ["ok   account_id: wanted [1, 208], got 208"]),
    ("country_code", {"country_code": "cz"}, {}, ['ok   country_code: wanted ["CZ"], got "CZ"']),
    ("group none", {"group": ["eshop", "Čeština"]}, {}, ['FAIL group: wanted ["eshop", "Čeština"], got nothing']),
    ("group", {"group": "Čeština"}, {"visitor.group": "Čeština"}, ['ok   group: wanted ["Čeština"], got "Čeština"']),
    ("has_email", {"has_email": True}, {}, ['ok   has_email: wanted true, got "dusan@domain.com"']),
    ("has_email false", {"has_email": False}, {"visitor.email": None}, ["ok   has_email: wanted false, got nothing"]),
    ("variable, every condition", {"variables": {"userId": {"present": True, "equals": "1234", "one_of": ["free", "1234"], "regex": "^9"}}}, {}, [
        'ok   variables.userId.present: wanted true, got "1234"',
        'ok   variables.userId.equals: wanted "1234", got "1234"',
        'ok   variables.userId.one_of: wanted ["free", "1234"], got "1234"',
        'FAIL variables.userId.regex: wanted /^9/, got "1234"',
    ]),
    ("variable absent", {"variables": {"vip": {"present": False, "equals": "x"}}}, {}, [
        "ok   variables.vip.present: wanted false, got nothing",
        'FAIL variables.vip.equals: wanted "x", got nothing',
    ]),
    # An object or list value is compared as its JSON text, keys sorted, on both sides.
    ("variable object", {"variables": {"cart": {"equals": {"b": 2, "a": "č"}}}}, {"visitor.variables.cart": {"value": {"a": "č", "b": 2}}}, [
        'ok   variables.cart.equals: wanted "{\\"a\\": \\"č\\", \\"b\\": 2}", got "{\\"a\\": \\"č\\", \\"b\\": 2}"',
    ]),
    ("variable list", {"variables": {"tags": {"regex": '"x"', "one_of": ['[1, "x"]']}}}, {"visitor.variables.tags": {"value": [1, "x"]}}, [
        'ok   variables.tags.one_of: wanted ["[1, \\"x\\"]"], got "[1, \\"x\\"]"',
        'ok   variables.tags.regex: wanted /"x"/, got "[1, \\"x\\"]"',
    ]),
    ("variable object miss", {"variables": {"cart": {"equals": {"a": 1}}}}, {"visitor.variables.cart": {"value": {"a": 1, "b": 2}}}, [
        'FAIL variables.cart.equals: wanted "{\\"a\\": 1}", got "{\\"a\\": 1, \\"b\\": 2}"',
    ]),
    ("message_regex", {"message_regex": "(?i)TANKS"}, {}, ['ok   message_regex: wanted /(?i)TANKS/, got "tanks"']),
    ("message_regex miss", {"message_regex": "refund"}, {}, ["FAIL message_regex: wanted /refund/, got nothing"]),
    ("triggered", {"triggered": True}, {"channel.isTriggered": False}, ["FAIL triggered: wanted true, got false"]),
    ("triggered_by", {"triggered_by": ["Welcome", "Exit"]}, {}, ['FAIL triggered_by: wanted ["Welcome", "Exit"], got ["Test Trigger"]']),
    ("triggered_by none", {"triggered_by": "Welcome"}, {"messages": []}, ['FAIL triggered_by: wanted ["Welcome"], got none']),
    ("lengths", {"duration_min": 60, "duration_max": 30, "messages_min": 6, "messages_max": 4}, {}, [
        "FAIL duration_min: wanted >= 60, got 36",
        "FAIL duration_max: wanted <= 30, got 36",
        "FAIL messages_min: wanted >= 6, got 5",
        "FAIL messages_max: wanted <= 4, got 5",
    ]),
    ("duration absent", {"duration_max": 30}, {"channel.duration": None}, ["FAIL duration_max: wanted <= 30, got nothing"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("match", "changes", "lines"),
    [e[1:] for e in EXPLANATIONS],
    ids=[e[0] for e in EXPLANATIONS],
)
def test_each_check_describes_itself(
    match: dict[str, Any], changes: dict[str, Any], lines: list[str]
) -> None:
    assert [check.describe() for check in evaluate(match, changes)] == lines


OFFICE = {
    "timezone": "Europe/Prague",
    "weekdays": ["mon-fri", "sun"],
    "hours": ["09:00-12:00", "13:00-17:00"],
}

# (window, UTC end time, matches). 2026-07-06 is a Monday; Prague is UTC+2 (CEST).
EDGES: list[tuple[str, dict[str, Any], str, bool]] = [
    ("first minute", OFFICE, "2026-07-06T07:00", True),
    ("minute before", OFFICE, "2026-07-06T06:59", False),
    ("second range's first minute", OFFICE, "2026-07-06T11:00", True),
    ("between the ranges", OFFICE, "2026-07-06T10:30", False),
    ("last minute", OFFICE, "2026-07-06T14:59", True),
    ("night's first minute", NIGHT_SHIFT, "2026-07-06T20:00", True),
    ("night's minute before", NIGHT_SHIFT, "2026-07-06T19:59", False),
    ("midnight inside a wrap", NIGHT_SHIFT, "2026-07-06T22:00", True),
    ("last minute of a wrap", NIGHT_SHIFT, "2026-07-07T03:59", True),
    ("end of a wrap", NIGHT_SHIFT, "2026-07-07T04:00", False),
    ("all day, last minute", {"timezone": "UTC"}, "2026-07-06T23:59", True),
    ("all day, first minute", {"timezone": "UTC"}, "2026-07-07T00:00", True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("window", "end", "inside"), [e[1:] for e in EDGES], ids=[e[0] for e in EDGES]
)
def test_time_window_edges(window: dict[str, Any], end: str, inside: bool) -> None:
    (active,) = evaluate({"time": window}, {"endAt": int(utc(end) * 1000)})
    assert active.ok is inside
    (muted,) = evaluate({"time": window | {"mode": "mute"}}, {"endAt": int(utc(end) * 1000)})
    assert muted.ok is not inside


def test_a_time_check_describes_the_window_and_the_local_time() -> None:
    end = {"endAt": int(utc("2026-07-06T07:00") * 1000)}
    (active,) = evaluate({"time": OFFICE}, end)
    assert active.describe() == (
        "ok   time (active): wanted inside mon-fri sun 09:00-12:00 13:00-17:00,"
        " got Mon 2026-07-06 09:00 CEST (Europe/Prague)"
    )
    (muted,) = evaluate({"time": OFFICE | {"mode": "mute"}}, end)
    assert muted.describe() == (
        "FAIL time (mute): wanted outside mon-fri sun 09:00-12:00 13:00-17:00,"
        " got Mon 2026-07-06 09:00 CEST (Europe/Prague)"
    )
