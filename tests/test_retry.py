"""The retry decision is a pure function: backoff growth, cap, jitter bounds, age limit."""

from __future__ import annotations

from relay.retry import GiveUp, RetryAt, RetryPolicy, backoff, decide

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
