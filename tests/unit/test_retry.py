"""The retry decision is a pure function: backoff growth, cap, jitter bounds, age limit."""

from __future__ import annotations

import pytest

from relay.delivery.retry import GiveUp, RetryAt, RetryPolicy, backoff, decide, duration
from relay.senders.base import retry_after_seconds

POLICY = RetryPolicy(initial_seconds=1, max_seconds=900, max_age_seconds=3 * 86400)


def test_backoff_doubles_with_equal_jitter_and_is_capped() -> None:
    assert backoff(POLICY, 1, 0.0) == 0.5
    assert backoff(POLICY, 1, 0.999) < 1.0
    assert backoff(POLICY, 4, 0.0) == 4.0
    assert backoff(POLICY, 40, 0.0) == 450.0
    assert backoff(POLICY, 40, 0.9999) < 900.0
    assert backoff(POLICY, 10_000, 0.5) <= 900.0


def test_retry_after_wins_over_backoff() -> None:
    decision = decide(POLICY, attempts=1, created_at=0, now=10, jitter=0.0, retry_after=2)
    assert decision == RetryAt(at=12, delay=2)


def test_gives_up_past_max_age() -> None:
    decision = decide(POLICY, attempts=30, created_at=0, now=3 * 86400 - 10, jitter=0.5)
    assert isinstance(decision, GiveUp)
    assert "30 attempts" in decision.reason
    assert isinstance(decide(POLICY, attempts=30, created_at=0, now=100, jitter=0.5), RetryAt)


def test_retry_after_0_waits_at_least_the_fixed_half_of_the_backoff() -> None:
    for attempts in (1, 2, 5, 40):
        floor = backoff(POLICY, attempts, 0.0)
        decision = decide(
            POLICY, attempts=attempts, created_at=0, now=100, jitter=0.9, retry_after=0
        )
        assert decision == RetryAt(at=100 + floor, delay=floor)
        assert decision.delay > 0


def test_a_retry_after_past_the_age_limit_is_one_last_attempt_at_the_limit() -> None:
    limit = POLICY.max_age_seconds
    for retry_after in (999_999_999.0, retry_after_seconds("Fri, 31 Dec 2099 23:59:59 GMT", 10)):
        decision = decide(
            POLICY, attempts=1, created_at=0, now=10, jitter=0.5, retry_after=retry_after
        )
        assert decision == RetryAt(at=limit, delay=limit - 10)


def test_the_dead_message_names_the_real_attempts_and_age() -> None:
    early = decide(POLICY, attempts=2, created_at=0, now=3 * 86400, jitter=0.5, retry_after=60)
    assert early == GiveUp(
        "still failing after 2 attempts over 72 h; no further attempt within the 72 h age limit"
    )
    young = RetryPolicy(initial_seconds=1, max_seconds=900, max_age_seconds=60)
    late = decide(young, attempts=7, created_at=0, now=40, jitter=0.0)
    assert late == GiveUp(
        "still failing after 7 attempts over 40 s; no further attempt within the 60 s age limit"
    )


def test_a_retry_landing_exactly_on_the_age_limit_is_still_made() -> None:
    """The limit is inclusive: an attempt due at created_at + max_age is scheduled; one due
    a millisecond later is not. created_at is far from 0 so the age is a difference."""
    created = 1_700_000_000.0
    limit = POLICY.max_age_seconds
    on_limit = decide(POLICY, attempts=1, created_at=created, now=created + limit - 0.5, jitter=0)
    assert on_limit == RetryAt(at=created + limit, delay=0.5)
    past = decide(POLICY, attempts=1, created_at=created, now=created + limit - 0.499, jitter=0)
    assert isinstance(past, GiveUp)


def test_jitter_spreads_linearly_over_the_random_half() -> None:
    # attempt 4: ceiling 8 s, so 4 s fixed plus jitter * 4 s
    assert [backoff(POLICY, 4, j) for j in (0.0, 0.25, 0.5, 0.75)] == [4.0, 5.0, 6.0, 7.0]
    assert [backoff(POLICY, 40, j) for j in (0.0, 0.5)] == [450.0, 675.0]


def test_the_exponent_stops_growing_at_62() -> None:
    """So a delivery with a huge attempt count cannot overflow a float, whatever the cap."""
    unbounded = RetryPolicy(initial_seconds=1, max_seconds=float("inf"), max_age_seconds=1e300)
    assert backoff(unbounded, 63, 0.0) == 2.0**61
    assert backoff(unbounded, 64, 0.0) == 2.0**61
    assert backoff(unbounded, 10**9, 0.0) == 2.0**61


def test_retry_after_0_with_a_late_created_at_keeps_the_floor() -> None:
    created = 1_700_000_000.0
    decision = decide(
        POLICY, attempts=3, created_at=created, now=created + 50, jitter=0.5, retry_after=0
    )
    assert decision == RetryAt(at=created + 52, delay=2.0)


def test_the_give_up_message_measures_the_age_from_created_at() -> None:
    created = 1_700_000_000.0
    decision = decide(POLICY, attempts=9, created_at=created, now=created + 200_000, jitter=0.5)
    assert isinstance(decision, RetryAt)
    late = decide(POLICY, attempts=30, created_at=created, now=created + 259_000, jitter=0.5)
    assert late == GiveUp(
        "still failing after 30 attempts over 71.9 h; no further attempt within the 72 h age limit"
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5.0, "0 s"),
        (0.0, "0 s"),
        (40.0, "40 s"),
        (119.0, "119 s"),
        (120.0, "2 min"),
        (5400.0, "90 min"),
        (7199.0, "120 min"),
        (7200.0, "2 h"),
        (35_964.0, "9.99 h"),
        (35_991.0, "10 h"),
        (258_840.0, "71.9 h"),
    ],
)
def test_duration_text_at_its_unit_boundaries(seconds: float, text: str) -> None:
    assert duration(seconds) == text
