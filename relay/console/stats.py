"""The console's statistics from stored rows: pure functions over timestamps and categories."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from statistics import median
from zoneinfo import ZoneInfo

from relay.leads.model import Lead

CATEGORIES = ("missed", "offline", "low-rated", "normal")
# Time-to-claim buckets: upper bound in seconds and label.
CLAIM_BUCKETS: tuple[tuple[float, str], ...] = (
    (15 * 60, "< 15 min"),
    (3600, "< 1 h"),
    (4 * 3600, "< 4 h"),
    (86400, "< 1 d"),
    (float("inf"), "≥ 1 d"),
)


@dataclass(frozen=True)
class Period:
    days: tuple[date, ...]
    per_day: dict[str, tuple[int, ...]]  # category -> count per day
    missed_share: tuple[tuple[float | None, ...], ...]  # [weekday 0=Mon][hour]: missed / all
    claim_buckets: tuple[tuple[str, int], ...]
    median_claim_seconds: float | None
    ratings: tuple[tuple[int, int], ...]  # (stars 1..5, count)


def local_day(ts: float, zone: ZoneInfo) -> date:
    return datetime.fromtimestamp(ts, UTC).astimezone(zone).date()


def days_back(today: date, count: int) -> tuple[date, ...]:
    return tuple(today - timedelta(days=count - 1 - i) for i in range(count))


def summarise(
    conversations: Iterable[tuple[str, float, int | None]],
    leads: Iterable[Lead],
    *,
    days: Sequence[date],
    zone: ZoneInfo,
) -> Period:
    """Figures for ``days`` from (category, received_at, rating or None) per conversation and
    the leads created in the same period."""
    index = {day: i for i, day in enumerate(days)}
    per_day = {category: [0] * len(days) for category in CATEGORIES}
    missed = [[0] * 24 for _ in range(7)]
    every = [[0] * 24 for _ in range(7)]
    ratings: Counter[int] = Counter()
    for category, received, rating in conversations:
        moment = datetime.fromtimestamp(received, UTC).astimezone(zone)
        i = index.get(moment.date())
        if i is None:
            continue
        if category in per_day:
            per_day[category][i] += 1
        every[moment.weekday()][moment.hour] += 1
        if category == "missed":
            missed[moment.weekday()][moment.hour] += 1
        if rating is not None and 1 <= rating <= 5:
            ratings[rating] += 1
    waits = [
        lead.claimed_at - lead.created_at
        for lead in leads
        if lead.claimed_at is not None and lead.claimed_at >= lead.created_at
    ]
    buckets: Counter[str] = Counter()
    for wait in waits:
        buckets[next(label for limit, label in CLAIM_BUCKETS if wait < limit)] += 1
    return Period(
        days=tuple(days),
        per_day={category: tuple(counts) for category, counts in per_day.items()},
        missed_share=tuple(
            tuple(None if every[d][h] == 0 else missed[d][h] / every[d][h] for h in range(24))
            for d in range(7)
        ),
        claim_buckets=tuple((label, buckets[label]) for _, label in CLAIM_BUCKETS),
        median_claim_seconds=median(waits) if waits else None,
        ratings=tuple((stars, ratings[stars]) for stars in range(1, 6)),
    )
