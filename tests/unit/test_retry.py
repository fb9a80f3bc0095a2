"""The retry decision is a pure function: backoff growth, cap, jitter bounds, age limit."""

from __future__ import annotations

from relay.delivery.retry import GiveUp, RetryAt, RetryPolicy, backoff, decide
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
