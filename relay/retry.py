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


Decision = RetryAt | GiveUp


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
) -> Decision:
    """Schedule the next attempt, honouring a server's Retry-After, unless the delivery is
    older than ``max_age_seconds`` by then. A Retry-After that is not a finite number (NaN
    would not even fit the store's NOT NULL column) is ignored: plain backoff applies."""
    delay = backoff(policy, attempts, jitter)
    if retry_after is not None and math.isfinite(retry_after):
        delay = max(retry_after, 0.0)
    at = now + delay
    if at - created_at > policy.max_age_seconds:
        hours = policy.max_age_seconds / 3600
        return GiveUp(f"still failing after {attempts} attempts over {hours:g} h")
    return RetryAt(at=at, delay=delay)
