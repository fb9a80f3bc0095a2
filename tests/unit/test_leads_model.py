"""The lead state machine and the follow-up decision: pure functions over frozen values."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

from relay.leads.model import (
    Lead,
    LeadState,
    Refused,
    answered_in_chat,
    claim,
    clean_name,
    finish,
    lead_facts,
    wants_follow_up,
)
from relay.model.category import Category
from tests.support.conversations import conversation

OPEN = Lead(id=1, conv_key="1-1", category="missed", created_at=100.0)


def test_claim_moves_an_open_lead_to_claimed_and_leaves_the_original_alone() -> None:
    claimed = claim(OPEN, "Jana", 200.0)
    assert isinstance(claimed, Lead)
    assert (claimed.state, claimed.claimed_by, claimed.claimed_at) == (
        LeadState.CLAIMED,
        "Jana",
        200.0,
    )
    assert OPEN.state is LeadState.OPEN
    with pytest.raises(FrozenInstanceError):
        OPEN.state = LeadState.DONE  # type: ignore[misc]


def test_a_second_claimer_is_refused_with_the_first_claim() -> None:
    claimed = claim(OPEN, "Jana", 200.0)
    assert isinstance(claimed, Lead)
    refused = claim(claimed, "Petr", 300.0)
    assert isinstance(refused, Refused)
    assert refused.reason == "taken"
    assert (refused.lead.claimed_by, refused.lead.claimed_at) == ("Jana", 200.0)
    assert claim(claimed, "Jana", 300.0) == claimed  # the same person again changes nothing


def test_done_records_who_when_and_the_note_and_claims_an_open_lead_on_the_way() -> None:
    done = finish(OPEN, "Petr", 500.0, "called back, ordered")
    assert isinstance(done, Lead)
    assert done.state is LeadState.DONE
    assert (done.claimed_by, done.done_by, done.done_at, done.note) == (
        "Petr",
        "Petr",
        500.0,
        "called back, ordered",
    )
    again = finish(done, "Jana", 600.0)
    assert isinstance(again, Refused) and again.reason == "finished"
    late = claim(done, "Jana", 600.0)
    assert isinstance(late, Refused) and late.reason == "finished"


def test_done_keeps_the_original_claimer() -> None:
    claimed = claim(OPEN, "Jana", 200.0)
    assert isinstance(claimed, Lead)
    done = finish(claimed, "Petr", 300.0)
    assert isinstance(done, Lead)
    assert (done.claimed_by, done.done_by) == ("Jana", "Petr")


def test_answered_in_chat_only_settles_an_open_lead() -> None:
    answered = answered_in_chat(OPEN, 400.0)
    assert isinstance(answered, Lead)
    assert (answered.state, answered.answered_at) == (LeadState.ANSWERED, 400.0)
    claimed = claim(OPEN, "Jana", 200.0)
    assert isinstance(claimed, Lead)
    assert isinstance(answered_in_chat(claimed, 400.0), Refused)
    refused = claim(answered, "Jana", 500.0)
    assert isinstance(refused, Refused) and refused.reason == "answered"


@pytest.mark.parametrize(
    ("category", "choices", "expected"),
    [
        (Category.MISSED, [], True),
        (Category.OFFLINE, [None], True),
        (Category.LOW_RATED, [], False),
        (Category.NORMAL, [None, None], False),
        (Category.MISSED, [False], False),
        (Category.LOW_RATED, [True], True),
        (Category.NORMAL, [False, True], True),
    ],
)
def test_follow_up_defaults_to_missed_and_offline_and_rules_override(
    category: Category, choices: list[bool | None], expected: bool
) -> None:
    assert wants_follow_up(category, choices) is expected


def test_names_are_one_short_line_without_control_characters() -> None:
    assert clean_name("  Jana\r\nNová\x00 ") == "Jana Nová"
    assert len(clean_name("x" * 500)) == 80


def test_lead_facts_name_the_visitor_and_see_an_agents_answer() -> None:
    agent_answered = conversation({"channel.isMissed": False})
    facts = lead_facts(agent_answered, Category.NORMAL, follow_up=False)
    assert facts.answered is True
    assert facts.visitor_email == "dusan@domain.com"
    assert facts.visitor_id
    missed = lead_facts(conversation({"channel.isMissed": True}), Category.MISSED, True)
    assert missed.answered is False and missed.follow_up is True
