"""Escalation and digest planning: pure functions of stored timestamps and a clock value."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from zoneinfo import ZoneInfo

from relay.leads import digest
from relay.leads.model import Lead, LeadState
from relay.leads.schedule import (
    business_due_at,
    day_figures,
    digest_due,
    digest_failed,
    digest_retry_due,
    due_escalations,
    in_business,
)
from relay.leads.scheduler import escalation_plan
from relay.leads.settings import FollowUpSettings
from relay.model.conversation import Conversation
from relay.render.environment import email_environment
from relay.routing.rules import EmailAction, TimeWindow
from tests.support.conversations import conversation

PRAGUE = ZoneInfo("Europe/Prague")
OFFICE = TimeWindow(timezone="Europe/Prague", weekdays=["mon-fri"], hours=["09:00-17:00"])


def at(*parts: int) -> float:
    return datetime(*parts, tzinfo=PRAGUE).timestamp()  # type: ignore[misc]


def settings(**changes: object) -> FollowUpSettings:
    values: dict[str, object] = {
        "enabled": True,
        "public_url": "https://relay.example.com",
        "escalate_after_seconds": 3600,
        "escalate_to": ["boss@shop.test"],
        "business_hours": OFFICE,
    }
    values.update(changes)
    return FollowUpSettings.model_validate(values)


def lead(created: float, **changes: object) -> Lead:
    return replace(Lead(id=1, conv_key="1-1", category="missed", created_at=created), **changes)  # type: ignore[arg-type]


def test_business_time_skips_nights_and_weekends() -> None:
    friday = at(2026, 12, 4, 16, 30)  # a Friday
    assert business_due_at(friday, 3600, OFFICE, at(2026, 12, 7, 12, 0)) == at(2026, 12, 7, 9, 30)
    assert business_due_at(friday, 3600, OFFICE, at(2026, 12, 7, 9, 29)) is None
    assert business_due_at(friday, 1200, OFFICE, at(2026, 12, 4, 18, 0)) == at(2026, 12, 4, 16, 50)
    assert business_due_at(100.0, 50.0, None, 150.0) == 150.0
    assert business_due_at(100.0, 50.0, None, 149.0) is None
    muted = OFFICE.model_copy(update={"mode": "mute"})
    assert in_business(muted, at(2026, 12, 5, 12, 0))
    assert not in_business(muted, at(2026, 12, 4, 12, 0))


def test_one_escalation_after_the_interval_of_business_time() -> None:
    created = at(2026, 12, 3, 10, 0)  # a Thursday
    open_lead = lead(created)
    assert due_escalations([open_lead], set(), settings(), at(2026, 12, 3, 10, 59)) == []
    (due,) = due_escalations([open_lead], set(), settings(), at(2026, 12, 3, 11, 0))
    assert (due.lead, due.step) == (open_lead, 1)
    # Recorded: never again, however often the pass runs.
    assert due_escalations([open_lead], {(1, 1)}, settings(), at(2026, 12, 3, 16, 0)) == []


def test_a_second_escalation_only_when_configured_and_after_the_first() -> None:
    created = at(2026, 12, 3, 10, 0)
    again = settings(escalate_again_after_seconds=7200)
    later = at(2026, 12, 3, 13, 0)
    (first,) = due_escalations([lead(created)], set(), again, later)
    assert first.step == 1
    (second,) = due_escalations([lead(created)], {(1, 1)}, again, later)
    assert second.step == 2
    assert due_escalations([lead(created)], {(1, 1)}, again, at(2026, 12, 3, 12, 59)) == []
    assert due_escalations([lead(created)], {(1, 1)}, settings(), later) == []


def test_none_outside_business_hours_even_when_overdue() -> None:
    created = at(2026, 12, 4, 10, 0)  # Friday morning
    saturday = at(2026, 12, 5, 11, 0)
    assert due_escalations([lead(created)], set(), settings(), saturday) == []
    evening = at(2026, 12, 4, 20, 0)
    assert due_escalations([lead(created)], set(), settings(), evening) == []
    (due,) = due_escalations([lead(created)], set(), settings(), at(2026, 12, 7, 9, 0))
    assert due.step == 1


def test_none_after_a_claim_or_when_settled() -> None:
    created = at(2026, 12, 3, 10, 0)
    now = at(2026, 12, 3, 15, 0)
    for state in (LeadState.CLAIMED, LeadState.DONE, LeadState.ANSWERED):
        assert due_escalations([lead(created, state=state)], set(), settings(), now) == []
    assert due_escalations([lead(created)], set(), settings(escalate_after_seconds=None), now) == []
    assert due_escalations([lead(created)], set(), settings(enabled=False), now) == []


def test_the_digest_is_due_once_a_day_after_its_time() -> None:
    daily = settings(digest_at="08:00", digest_to=["head@shop.test"])
    assert digest_due(daily, PRAGUE, at(2026, 12, 3, 7, 59), set()) is None
    assert digest_due(daily, PRAGUE, at(2026, 12, 3, 8, 0), set()) == date(2026, 12, 3)
    assert digest_due(daily, PRAGUE, at(2026, 12, 3, 23, 0), {"2026-12-03"}) is None
    assert digest_due(settings(), PRAGUE, at(2026, 12, 3, 9, 0), set()) is None


def test_a_digest_that_cannot_be_made_is_retried_after_a_delay_doubling_up_to_an_hour() -> None:
    day, other = date(2026, 12, 3), date(2026, 12, 4)
    backoff, delays, now = None, [], 1000.0
    for _ in range(10):
        backoff = digest_failed(backoff, day, now)
        delays.append(backoff.delay)
        assert backoff.retry_at == now + backoff.delay
        now = backoff.retry_at
    assert delays == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]
    assert backoff is not None and backoff.failures == 10
    assert digest_failed(backoff, other, now) == replace(
        backoff, day=other, failures=1, retry_at=now + 30, delay=30
    )
    assert digest_failed(replace(backoff, failures=10**6), day, now).delay == 3600
    assert digest_retry_due(None, day, now)
    assert digest_retry_due(backoff, other, now - 3600)  # another day's failures hold no day back
    assert not digest_retry_due(backoff, day, backoff.retry_at - 1.5)
    assert digest_retry_due(backoff, day, backoff.retry_at - 1.0)  # a pass a little early
    assert digest_retry_due(backoff, day, backoff.retry_at + 1e6)


def test_day_figures_count_by_category_and_hour_and_take_the_median_claim_time() -> None:
    rows = [
        ("missed", at(2026, 12, 2, 9, 15)),
        ("missed", at(2026, 12, 2, 9, 45)),
        ("offline", at(2026, 12, 2, 22, 5)),
        ("normal", at(2026, 12, 2, 10, 0)),
    ]
    created = at(2026, 12, 2, 9, 0)
    leads = [
        lead(created, claimed_at=created + 60),
        lead(created, claimed_at=created + 600),
        lead(created, claimed_at=created + 900),
        lead(created),
    ]
    figures = day_figures(rows, leads, PRAGUE)
    assert figures.counts == {"missed": 2, "offline": 1, "normal": 1}
    assert figures.missed_by_hour[9] == 2 and figures.missed_by_hour[22] == 1
    assert sum(figures.missed_by_hour) == 3
    assert figures.median_claim_seconds == 600


def digest_input(open_count: int, low_count: int) -> digest.DigestInput:
    now = at(2026, 12, 3, 8, 0)
    created = at(2026, 12, 2, 9, 0)
    opened = [
        (lead(created + i, id=i + 1, visitor_name=f"Visitor <b>{i}</b>"), f"https://r/leads/c{i}")
        for i in range(open_count)
    ]
    low: list[Conversation] = [
        conversation({"channel.rating": 1, "channel.ratingDesc": "Slow <script>x</script> " * 40})
        for _ in range(low_count)
    ]
    rows = [("missed", created + 3600 * h) for h in range(24)]
    return digest.DigestInput(date(2026, 12, 3), now, opened, day_figures(rows, [], PRAGUE), low)


def test_the_digest_is_small_escaped_and_speaks_three_languages() -> None:
    environment = email_environment(None)
    for locale, words in (
        ("en", "Missed chats by hour"),
        ("cs", "Zmeškané chaty podle hodiny"),
        ("de", "Verpasste Chats nach Stunde"),
    ):
        view = digest.build_view(digest_input(500, 100), locale, PRAGUE)
        content = digest.render(
            view,
            environment,
            from_address="Relay <relay@shop.test>",
            to=["head@shop.test"],
            message_id="<d@shop.test>",
            now=at(2026, 12, 3, 8, 0),
        )
        raw = content.message.as_bytes()
        assert len(raw) < 100_000
        html_part = content.message.get_body(preferencelist=("html",))
        assert html_part is not None
        html = html_part.get_content()
        assert words in html
        assert "<script>" not in html and "<b>0</b>" not in html
        assert "https://r/leads/c0" in html and "https://r/leads/c59" in html
        assert "440" in html  # "and 440 more"
        assert html.count("background-color: #f59e0b") == 24  # one bar per hour
        assert content.recipients == ("head@shop.test",)


def test_without_business_hours_escalation_runs_around_the_clock() -> None:
    created = at(2026, 12, 5, 22, 0)  # a Saturday night
    around = settings(business_hours=None, escalate_again_after_seconds=3600)
    assert due_escalations([lead(created)], set(), around, at(2026, 12, 5, 22, 59)) == []
    (first,) = due_escalations([lead(created)], set(), around, at(2026, 12, 5, 23, 0))
    assert first.step == 1
    # Long overdue for both steps: still the first one first, the second on a later pass.
    (still_first,) = due_escalations([lead(created)], set(), around, at(2026, 12, 6, 3, 0))
    assert still_first.step == 1
    (second,) = due_escalations([lead(created)], {(1, 1)}, around, at(2026, 12, 6, 3, 0))
    assert second.step == 2


def test_an_escalation_plans_one_email_for_the_addresses_and_a_post_per_channel() -> None:
    both = escalation_plan(settings(escalate_to=["boss@shop.test", "#sales", "#cz"]), 2, "en")
    assert [(p.rule, p.action.type) for p in both] == [
        ("follow-up-escalation-2", "email"),
        ("follow-up-escalation-2", "slack"),
        ("follow-up-escalation-2", "slack"),
    ]
    email = both[0].action
    assert isinstance(email, EmailAction) and email.to == ["boss@shop.test"]
    assert [getattr(p.action, "channel", None) for p in both[1:]] == ["#sales", "#cz"]
    only_slack = escalation_plan(settings(escalate_to="#sales"), 1, "en")
    assert [(p.rule, p.action.type) for p in only_slack] == [("follow-up-escalation-1", "slack")]
