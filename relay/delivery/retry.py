"""Retry decisions: a pure function from an attempt's history to "try again at T" or "give up"."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    initial_seconds: float = 1.0
    max_seconds: float = 900.0
    max_age_seconds: float = 72 * 3600.0


@dataclass(frozen=True)
class RetryAt:
    at: float
    delay: float


@dataclass(frozen=True)
class GiveUp:
    reason: str


RetryDecision = RetryAt | GiveUp


def backoff(policy: RetryPolicy, attempts: int, jitter: float) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random.

    ``attempts`` counts attempts made so far (>= 1); ``jitter`` is a number in [0, 1).
    """
    exponent = min(max(attempts - 1, 0), 62)
    ceiling = min(policy.max_seconds, policy.initial_seconds * 2.0**exponent)
    return ceiling / 2 + ceiling / 2 * jitter


def decide(
    policy: RetryPolicy,
    *,
    attempts: int,
    created_at: float,
    now: float,
    jitter: float,
    retry_after: float | None = None,
) -> RetryDecision:
    """Schedule the next attempt, unless the delivery would be older than ``max_age_seconds``
    by then.

    A server's Retry-After is honoured within bounds: never sooner than the fixed half of this
    attempt's backoff (``Retry-After: 0`` must not make a hot loop) and never later than the
    age limit (a Retry-After of years gets one last attempt at the limit instead of a death
    sentence now). One that is not a finite number (NaN would not even fit the store's NOT
    NULL column) is ignored: plain backoff applies."""
    delay = backoff(policy, attempts, jitter)
    if retry_after is not None and math.isfinite(retry_after):
        floor = backoff(policy, attempts, 0.0)
        remaining = created_at + policy.max_age_seconds - now
        delay = min(max(retry_after, floor), max(remaining, floor))
    at = now + delay
    if at - created_at > policy.max_age_seconds:
        return GiveUp(
            f"still failing after {attempts} attempts over {duration(now - created_at)};"
            f" no further attempt within the {duration(policy.max_age_seconds)} age limit"
        )
    return RetryAt(at=at, delay=delay)


def duration(seconds: float) -> str:
    """A short human reading of a length of time: "40 s", "12 min", "71.9 h"."""
    seconds = max(seconds, 0.0)
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"
