"""Rule order, ``continue``, the fallback, and the decision that explains them."""
# ruff: noqa: E501 -- the case tables read best with one case per line

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from relay.config.settings import Settings
from relay.model.category import classify
from relay.routing.decide import EARLIEST_MS, LATEST_MS, evaluation_time, explain, route
from relay.routing.rules import (
    FALLBACK_RULE,
    EmailAction,
    Match,
    PipedriveAction,
    Rule,
    RuleSet,
    TimeWindow,
)
from tests.support.conversations import NOW, conversation

YES: dict[str, Any] = {"country_code": "CZ"}  # the v1 sample matches
NO: dict[str, Any] = {"country_code": "DE"}


def rule(name: str, match: dict[str, Any], *, cont: bool = False) -> Rule:
    action = {"type": "email", "to": [f"{name}@shop.test"]}
    return Rule.model_validate(
        {"name": name, "match": match, "actions": [action], "continue": cont}
    )


FALLBACK = (EmailAction(type="email", to=["catch-all@shop.test"]),)

# (rules as (name, match, continue), fallback actions, planned rule names, verdicts)
WALKS: list[tuple[str, list[tuple[str, dict[str, Any], bool]], tuple[Any, ...], list[str], list[str]]] = [
    ("first match wins", [("a", YES, False), ("b", YES, False)], (), ["a"], ["matched", "not reached"]),
    ("every later rule not reached", [("a", YES, False), ("b", YES, False), ("c", NO, False)], (), ["a"], ["matched", "not reached", "not reached"]),
    ("continue keeps going", [("a", YES, True), ("b", YES, False), ("c", YES, False)], (), ["a", "b"], ["matched", "matched", "not reached"]),
    ("continue past a miss", [("a", YES, True), ("b", NO, False), ("c", YES, True)], (), ["a", "c"], ["matched", "not matched", "matched"]),
    ("skip non-matching", [("a", NO, False), ("b", YES, False)], (), ["b"], ["not matched", "matched"]),
    ("nothing matches: drop", [("a", NO, False), ("b", NO, True)], (), [], ["not matched", "not matched"]),
    ("nothing matches: fallback", [("a", NO, False)], FALLBACK, [FALLBACK_RULE], ["not matched"]),
    ("a match beats the fallback", [("a", NO, False), ("b", YES, True)], FALLBACK, ["b"], ["not matched", "matched"]),
    ("no rules at all", [], FALLBACK, [FALLBACK_RULE], []),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rules", "fallback", "planned", "verdicts"), [w[1:] for w in WALKS], ids=[w[0] for w in WALKS]
)
def test_rule_walk(
    rules: list[tuple[str, dict[str, Any], bool]],
    fallback: tuple[Any, ...],
    planned: list[str],
    verdicts: list[str],
) -> None:
    conv = conversation()
    rule_set = RuleSet(tuple(rule(n, m, cont=c) for n, m, c in rules), fallback)
    decision = explain(conv, classify(conv), rule_set, now=NOW)
    assert [p.rule for p in decision.planned] == planned
    assert [o.verdict for o in decision.outcomes] == verdicts
    assert [o.rule for o in decision.outcomes] == list(rule_set.rules)
    assert decision.category is classify(conv)
    assert decision.fallback_used is (planned == [FALLBACK_RULE])
    assert decision.dropped is (planned == [])
    # route() is explain().planned: the explanation cannot disagree with the decision.
    assert route(conv, classify(conv), rule_set, now=NOW) == decision.planned


def test_planned_deliveries_are_made_once_per_rule_set_with_the_stored_key_and_json() -> None:
    """Every conversation a rule matches shares its planned deliveries; their action key and
    stored JSON are what the stores wrote before they were computed once (the dedupe keys of
    deliveries already stored go on matching)."""
    conv = conversation()
    rule_set = RuleSet((rule("first", YES, cont=True), rule("second", YES)), FALLBACK)
    first = explain(conv, classify(conv), rule_set, now=NOW).planned
    again = explain(conv, classify(conv), rule_set, now=NOW).planned
    assert [p.rule for p in first] == ["first", "second"]
    assert all(a is b for a, b in zip(first, again, strict=True))
    for plan in first:
        spec = f"{plan.rule}\0{plan.action.model_dump_json()}"
        assert plan.action_key == hashlib.sha256(spec.encode()).hexdigest()[:16]
        assert plan.action_json == plan.action.model_dump_json(by_alias=True)
    assert first[0].action_key != first[1].action_key  # the rule's name is part of the key
    fallback = explain(conv, classify(conv), RuleSet((rule("no", NO),), FALLBACK), now=NOW)
    assert [(p.rule, p.action) for p in fallback.planned] == [(FALLBACK_RULE, FALLBACK[0])]


def test_not_reached_rules_name_the_rule_that_stopped() -> None:
    conv = conversation()
    decision = explain(conv, classify(conv), [rule("a", YES), rule("b", NO)], now=NOW)
    assert decision.stopped_by == "a"
    assert decision.outcomes[1].checks == ()


def test_planned_fallback_uses_its_actions() -> None:
    conv = conversation()
    (plan,) = route(conv, classify(conv), RuleSet((rule("a", NO),), FALLBACK), now=NOW)
    assert plan.action == FALLBACK[0]
    assert plan.channel == "email"


def test_settings_fallback_drop_or_actions() -> None:
    assert Settings().rule_set.drops_unmatched
    assert Settings(routing={"fallback": "drop"}).rule_set.fallback == ()
    actions = [{"type": "archive", "path": "unmatched.jsonl"}]
    rule_set = Settings(routing={"fallback": actions}).rule_set
    assert [a.type for a in rule_set.fallback] == ["archive"]


def test_default_rules_still_route_missed_and_low_rated() -> None:
    rules = Settings(routing={"sales_inbox": "s@shop.test"}).rule_set
    missed = conversation({"channel.isMissed": True})
    (plan,) = route(missed, classify(missed), rules, now=NOW)
    assert plan.rule == "missed-and-offline-to-sales"
    low = conversation({"channel.rating": 1})
    assert [p.channel for p in route(low, classify(low), rules, now=NOW)] == ["slack"]
    normal = conversation()
    assert route(normal, classify(normal), rules, now=NOW) == ()


def test_an_outcome_keeps_the_checks_that_decided_it() -> None:
    conv = conversation()
    decision = explain(conv, classify(conv), [rule("a", NO | {"rating_min": 1})], now=NOW)
    (outcome,) = decision.outcomes
    assert [(c.matcher, c.ok) for c in outcome.checks] == [
        ("rating_min", True),
        ("country_code", False),
    ]


NIGHT = {"time": {"timezone": "UTC", "hours": ["22:00-06:00"]}}


def test_route_evaluates_time_windows_at_the_given_moment() -> None:
    """``at`` (relay routes test --at) wins over the conversation's own times; ``now`` is
    used only when the conversation has neither endAt nor beginAt."""
    rules = [rule("night", NIGHT)]
    day = datetime(2027, 1, 15, 12, tzinfo=UTC).timestamp()
    night = datetime(2027, 1, 15, 23, tzinfo=UTC).timestamp()
    ended_at_noon = conversation({"endAt": int(day * 1000)})
    assert route(ended_at_noon, classify(ended_at_noon), rules, now=night) == ()
    (plan,) = route(ended_at_noon, classify(ended_at_noon), rules, now=day, at=night)
    assert plan.rule == "night"
    undated = conversation({"endAt": None, "beginAt": None})
    assert route(undated, classify(undated), rules, now=day) == ()
    assert [p.rule for p in route(undated, classify(undated), rules, now=night)] == ["night"]


def test_the_first_and_last_showable_timestamps_are_used() -> None:
    for ms in (EARLIEST_MS, LATEST_MS):
        conv = conversation({"endAt": ms, "beginAt": 1_000})
        assert evaluation_time(conv, now=NOW) == (ms / 1000, "endAt")
    for ms in (EARLIEST_MS - 1, LATEST_MS + 1):
        conv = conversation({"endAt": ms, "beginAt": 1_000})
        assert evaluation_time(conv, now=NOW) == (1.0, "beginAt")


@pytest.mark.parametrize(
    ("weekdays", "days"),
    [
        (["mon-fri"], {0, 1, 2, 3, 4}),
        (["fri-mon"], {4, 5, 6, 0}),
        (["sun-tue"], {6, 0, 1}),
        (["sat-sun", "wed"], {5, 6, 2}),
        (["Thursday"], {3}),
    ],
)
def test_weekday_ranges_wrap_past_sunday(weekdays: list[str], days: set[int]) -> None:
    assert TimeWindow(timezone="UTC", weekdays=weekdays).days == days


def test_hours_are_minutes_of_the_day() -> None:
    window = TimeWindow(timezone="UTC", hours=["09:30-17:45", "22:00-06:05", "00:00-24:00"])
    assert window.minute_ranges == ((570, 1065), (1320, 365), (0, 1440))
    assert TimeWindow(timezone="UTC", hours=["10:59-23:59"]).minute_ranges == ((659, 1439),)


def refusal(kind: type[BaseModel], **fields: Any) -> str:
    with pytest.raises(ValidationError) as info:
        kind.model_validate(fields)
    (error,) = info.value.errors()
    return str(error["msg"]).removeprefix("Value error, ")


HINT = "(use HH:MM-HH:MM, e.g. 09:00-17:30)"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"weekdays": ["funday"]}, "unknown weekday 'funday' (use mon..sun or a range like mon-fri)"),
        ({"weekdays": ["xyz-fri"]}, "unknown weekday 'xyz-fri' (use mon..sun or a range like mon-fri)"),
        ({"weekdays": ["mon-xyz"]}, "unknown weekday 'mon-xyz' (use mon..sun or a range like mon-fri)"),
        ({"hours": ["9-17"]}, f"bad hours range '9-17' {HINT}"),
        ({"hours": ["0900"]}, f"bad hours range '0900' {HINT}"),
        ({"hours": ["9:5-10:00"]}, f"bad hours range '9:5-10:00' {HINT}"),
        ({"hours": [":30-10:00"]}, f"bad hours range ':30-10:00' {HINT}"),
        ({"hours": ["ab:cd-10:00"]}, f"bad hours range 'ab:cd-10:00' {HINT}"),
        ({"hours": ["10:60-11:00"]}, "bad time '10:60' in '10:60-11:00'"),
        ({"hours": ["10:00-10:60"]}, "bad time '10:60' in '10:00-10:60'"),
        ({"hours": ["23:00-24:01"]}, "bad time '24:01' in '23:00-24:01'"),
        ({"hours": ["09:00-09:00"]}, "empty hours range '09:00-09:00'"),
    ],
)  # fmt: skip
def test_a_bad_time_window_is_refused_naming_the_item(fields: dict[str, Any], message: str) -> None:
    assert refusal(TimeWindow, timezone="UTC", **fields) == message


def test_bad_regexes_and_templates_are_refused_at_load() -> None:
    assert refusal(Match, message_regex="(") == (
        "invalid regex '(': missing ), unterminated subpattern at position 0"
    )
    pipedrive = {"type": "pipedrive", "destination": "crm"}
    assert refusal(PipedriveAction, **pipedrive, title="{{ name }") == (
        "template error: unexpected '}' in '{{ name }'"
    )
    assert PipedriveAction.model_validate(pipedrive | {"title": "{{ name }}"}).title == "{{ name }}"
